"""Python client for swapserve: grpcio, protobuf and numpy only, no TensorFlow needed.

The names below are imported on first use (PEP 562), so ``swapserve_client.dtypes`` can be
imported -- by the server's model core among others -- without loading grpc or protobuf.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swapserve_client.client import Client
    from swapserve_client.dtypes import TensorError
    from swapserve_client.errors import SwapserveError
    from swapserve_client.messages import (
        ModelMetadata,
        ModelStatus,
        PredictResult,
        ReloadResult,
        Rollout,
        SignatureInfo,
        TensorInfo,
        VersionStatus,
    )
    from swapserve_client.pipeline import reload_after_export
    from swapserve_client.tensors import decode, encode

__version__ = "0.1.0"

_HOMES = {
    "Client": "client",
    "ModelMetadata": "messages",
    "ModelStatus": "messages",
    "PredictResult": "messages",
    "ReloadResult": "messages",
    "Rollout": "messages",
    "SignatureInfo": "messages",
    "TensorInfo": "messages",
    "VersionStatus": "messages",
    "SwapserveError": "errors",
    "TensorError": "dtypes",
    "decode": "tensors",
    "encode": "tensors",
    "reload_after_export": "pipeline",
}

__all__ = [  # noqa: RUF022 (grouped as _HOMES)
    "Client",
    "ModelMetadata",
    "ModelStatus",
    "PredictResult",
    "ReloadResult",
    "Rollout",
    "SignatureInfo",
    "TensorInfo",
    "VersionStatus",
    "SwapserveError",
    "TensorError",
    "decode",
    "encode",
    "reload_after_export",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'swapserve_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"swapserve_client.{home}"), name)
    globals()[name] = value
    return value
