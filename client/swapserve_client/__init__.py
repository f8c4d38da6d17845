"""Python client for swapserve: grpcio, protobuf and numpy only, no TensorFlow needed."""

from swapserve_client.client import (
    Client,
    ModelMetadata,
    ModelStatus,
    PredictResult,
    ReloadResult,
    SignatureInfo,
    TensorInfo,
    VersionStatus,
)
from swapserve_client.errors import SwapserveError
from swapserve_client.tensors import TensorError, decode, encode

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ModelMetadata",
    "ModelStatus",
    "PredictResult",
    "ReloadResult",
    "SignatureInfo",
    "SwapserveError",
    "TensorError",
    "TensorInfo",
    "VersionStatus",
    "decode",
    "encode",
]
