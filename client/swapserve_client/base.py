"""What the blocking and the asyncio client share: the channel's address, options and TLS, the
requests they build, the answers they read, the metadata cache behind ``cast=True`` and the
step of ``wait_for_version``. ``Client`` and ``aio.Client`` add only the I/O (as httpx's
``BaseClient`` under ``Client`` and ``AsyncClient``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc
import numpy.typing as npt

from swapserve_client import messages, targets
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb
from swapserve_client.errors import SwapserveError
from swapserve_client.messages import ModelMetadata, PredictResult

Pem = bytes | str | os.PathLike[str]
"""PEM data, or the path of a file holding it."""

MetaKey = tuple[str, int, str]
"""(model, version, label): the version choice a cached signature set belongs to."""

_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class BaseClient:
    """Requests, answers and the metadata cache; no I/O.

    Args:
        timeout: default deadline of each call in seconds (``None``: no deadline).
        metadata: extra gRPC metadata sent with every call (e.g. authorization headers).
    """

    def __init__(self, timeout: float | None, metadata: Sequence[tuple[str, str]]) -> None:
        self._timeout = timeout
        self._metadata = tuple(metadata)
        self._lock = threading.Lock()  # guards _signatures
        self._signatures: dict[MetaKey, ModelMetadata] = {}  # guarded by _lock

    def _call_options(self, timeout: float | None) -> dict[str, Any]:
        """The keyword arguments of one stub call: its deadline and metadata."""
        return {
            "timeout": self._timeout if timeout is None else timeout,
            "metadata": self._metadata,
        }

    # ---- the metadata cache behind cast=True ----------------------------------------------------

    def _cached(self, key: MetaKey) -> ModelMetadata | None:
        with self._lock:
            return self._signatures.get(key)

    def _remember(self, key: MetaKey, meta: ModelMetadata) -> ModelMetadata:
        with self._lock:
            self._signatures[key] = meta
        return meta

    # ---- requests -------------------------------------------------------------------------------

    @staticmethod
    def _predict_request(
        model: str,
        inputs: Mapping[str, npt.ArrayLike],
        meta: ModelMetadata | None,
        *,
        version: int,
        signature: str,
        output_filter: Iterable[str],
        label: str,
    ) -> pb.PredictRequest:
        """The request, the inputs cast to the signature's dtypes first when ``meta`` is given."""
        if meta is not None:
            inputs = messages.cast_inputs(inputs, meta, signature)
        return messages.predict_request(
            model, inputs, version=version, signature=signature, output_filter=output_filter,
            label=label,
        )  # fmt: skip

    @staticmethod
    def _reload_request(model: str, version: int, force: bool = False) -> pb.ReloadRequest:
        return pb.ReloadRequest(model_name=model, version=version, force=force)

    @staticmethod
    def _status_request(model: str) -> pb.GetModelStatusRequest:
        return pb.GetModelStatusRequest(model_name=model)

    @staticmethod
    def _metadata_request(model: str, version: int, label: str) -> pb.GetModelMetadataRequest:
        return pb.GetModelMetadataRequest(model_name=model, version=version, version_label=label)

    # ---- answers --------------------------------------------------------------------------------

    def _predict_result(
        self, response: pb.PredictResponse, key: MetaKey, meta: ModelMetadata | None
    ) -> PredictResult:
        """The decoded answer; a cached signature set is dropped when another version answered
        (its dtypes are fetched again next time)."""
        result = messages.predict_result(response)
        if meta is not None and result.version != meta.version:
            with self._lock:
                self._signatures.pop(key, None)
        return result

    @staticmethod
    def _ask_again(err: SwapserveError, expired: bool) -> None:
        """A step of ``wait_for_version`` that got an error: an unreachable server
        (UNAVAILABLE: restarting, not up yet) is asked again until the timeout; anything else
        is the answer.

        Raises:
            SwapserveError: ``err``, unless it is UNAVAILABLE before the timeout.
        """
        if err.code != grpc.StatusCode.UNAVAILABLE or expired:
            raise err


def channel_target(target: str | Sequence[str]) -> str:
    """The channel address for a target (one address, a DNS name, or several replicas)."""
    return targets.channel_target(target)


def channel_options(retries: int) -> list[tuple[str, Any]]:
    """Message size limits and the retry policy (both clients)."""
    return [
        ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
        ("grpc.service_config", targets.service_config(retries)),
        ("grpc.enable_retries", 1 if retries > 0 else 0),
    ]


def tls_credentials(
    ca: Pem | None, cert: Pem | None, key: Pem | None
) -> grpc.ChannelCredentials | None:
    """TLS credentials when any part is given (None: plaintext); paths are read here."""
    if ca is None and cert is None and key is None:
        return None
    return grpc.ssl_channel_credentials(_pem(ca), _pem(key), _pem(cert))


def _pem(value: Pem | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as f:
        return f.read()
