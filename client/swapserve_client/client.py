"""``Client``: predict, reload, status and metadata over one gRPC channel."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import grpc
import numpy as np
import numpy.typing as npt

from swapserve_client import targets, tensors
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb
from swapserve_client._proto.swapserve.v1 import prediction_pb2_grpc as pb_grpc
from swapserve_client.errors import SwapserveError

__all__ = [
    "Client",
    "ModelMetadata",
    "ModelStatus",
    "PredictResult",
    "ReloadResult",
    "SignatureInfo",
    "TensorInfo",
    "VersionStatus",
]

_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class PredictResult:
    """A prediction with the version that computed it."""

    model: str
    version: int
    signature: str
    outputs: dict[str, np.ndarray]


@dataclass(frozen=True)
class ReloadResult:
    """What a reload changed."""

    model: str
    previous_version: int
    version: int
    load_seconds: float
    pinned: bool


@dataclass(frozen=True)
class VersionStatus:
    """One version of a model and its state (``AVAILABLE``, ``FAILED``, ...)."""

    version: int
    state: str
    error: str
    serving: bool
    load_seconds: float
    updated_unix: float
    labels: tuple[str, ...] = ()
    request_count: int = 0
    """Calls it answered successfully since it loaded."""
    error_count: int = 0
    """Calls it took that failed."""
    last_error_unix: float = 0.0
    """When its last failed call was (0: never)."""
    p99_seconds: float = 0.0
    """99th percentile latency of its recent successful calls (0: none)."""


@dataclass(frozen=True)
class ModelStatus:
    """Every version of a model (newest first), the served version, the pin (0: none) and the
    version labels."""

    model: str
    serving_version: int
    pinned_version: int
    versions: list[VersionStatus]
    labels: dict[str, int] = field(default_factory=dict)
    storage_error: str = ""


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature; -1 in ``shape`` is a dimension of any size."""

    name: str
    dtype: str
    shape: tuple[int, ...] | None  # None: any rank

    @property
    def numpy_dtype(self) -> np.dtype[np.generic]:
        """The numpy dtype to send for this input."""
        return tensors.numpy_dtype(pb.DataType.Value(self.dtype)).newbyteorder("=")


@dataclass(frozen=True)
class SignatureInfo:
    """A signature's method name, inputs and outputs."""

    name: str
    method_name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]


@dataclass(frozen=True)
class ModelMetadata:
    """Every signature of one model version."""

    model: str
    version: int
    signatures: dict[str, SignatureInfo]


class Client:
    """A swapserve client. Thread-safe; use it as a context manager or call ``close()``.

    Args:
        target: ``host:port`` of the server; a DNS name whose records are the replicas
            (``dns:///swapserve:8500``); or several replicas, as a list or ``"a:8500,b:8500"``
            (resolved once, now). Calls are spread over every address (round robin).
        retries: retries of a call answered UNAVAILABLE (a replica down or not serving yet),
            with backoff from 0.1 s to 1 s; 0 turns retries off.
        timeout: default deadline of each call in seconds (``None``: no deadline).
        channel: an existing channel to use instead of opening one (it is not closed by us).
        metadata: extra gRPC metadata sent with every call (e.g. authorization headers).
        tls_ca: PEM CA bundle to verify the server with; setting any ``tls_*`` argument makes the
            channel TLS (with only ``tls_ca`` unset, the system's roots are used).
        tls_cert: PEM client certificate chain, for servers requiring mutual TLS.
        tls_key: PEM private key of ``tls_cert``.
    """

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        timeout: float | None = 30.0,
        channel: grpc.Channel | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        tls_ca: bytes | None = None,
        tls_cert: bytes | None = None,
        tls_key: bytes | None = None,
        retries: int = 3,
    ) -> None:
        self._own_channel = channel is None
        options = [
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.service_config", targets.service_config(retries)),
            ("grpc.enable_retries", 1 if retries > 0 else 0),
        ]
        if channel is None:
            address = targets.channel_target(target)
            if tls_ca or tls_cert or tls_key:
                credentials = grpc.ssl_channel_credentials(tls_ca, tls_key, tls_cert)
                channel = grpc.secure_channel(address, credentials, options=options)
            else:
                channel = grpc.insecure_channel(address, options=options)
        self._channel = channel
        self._stub = pb_grpc.PredictionServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout
        self._metadata = tuple(metadata)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel if this client opened it."""
        if self._own_channel:
            self._channel.close()

    def predict(
        self,
        model: str,
        inputs: Mapping[str, npt.ArrayLike],
        version: int = 0,
        signature: str = "",
        output_filter: Iterable[str] = (),
        *,
        label: str = "",
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs a signature and returns its outputs by name.

        Args:
            model: the model name.
            inputs: one array per signature input; dtypes must match the signature exactly.
            version: 0 for the served version, else a loaded version.
            signature: the signature name; "" for ``serving_default``.
            output_filter: the outputs to compute; empty for all.
            label: a version label (e.g. ``"stable"``) instead of ``version``.
            timeout: this call's deadline in seconds, overriding the client's default.

        Raises:
            SwapserveError: the server's status code and message.
        """
        return self.predict_full(
            model,
            inputs,
            version=version,
            signature=signature,
            output_filter=output_filter,
            label=label,
            timeout=timeout,
        ).outputs

    def predict_full(
        self,
        model: str,
        inputs: Mapping[str, npt.ArrayLike],
        version: int = 0,
        signature: str = "",
        output_filter: Iterable[str] = (),
        *,
        label: str = "",
        timeout: float | None = None,
    ) -> PredictResult:
        """Like ``predict`` but also reports the version and signature that answered."""
        request = pb.PredictRequest(
            model_name=model,
            version=version,
            signature_name=signature,
            output_filter=list(output_filter),
            version_label=label,
        )
        tensors.encode_map(inputs, request.inputs)
        response: pb.PredictResponse = self._call(self._stub.Predict, request, timeout)
        return PredictResult(
            model=response.model_name,
            version=response.version,
            signature=response.signature_name,
            outputs=tensors.decode_map(response.outputs),
        )

    def reload(self, model: str, version: int = 0, *, timeout: float | None = None) -> ReloadResult:
        """Follows the version policy again (``version=0``, unpins: the newest version serves) or
        loads, serves and pins ``version``.

        Returns once the version serves. A load failure raises ``SwapserveError`` with
        ``FAILED_PRECONDITION``; the previous version keeps serving.
        """
        response: pb.ReloadResponse = self._call(
            self._stub.Reload, pb.ReloadRequest(model_name=model, version=version), timeout
        )
        return ReloadResult(
            model=response.model_name,
            previous_version=response.previous_version,
            version=response.version,
            load_seconds=response.load_seconds,
            pinned=response.pinned,
        )

    def wait_for_version(
        self, model: str, version: int, timeout: float = 300.0, poll: float = 0.5
    ) -> ModelStatus:
        """Waits until ``version`` of ``model`` serves requests without a version (for a
        pipeline that exports and lets the server's watcher find it instead of calling Reload).

        Raises:
            SwapserveError: DEADLINE_EXCEEDED after ``timeout`` seconds (the message says what
                serves and the version's state), or FAILED_PRECONDITION at once if the version
                failed to load.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self.model_status(model)
            if status.serving_version == version:
                return status
            mine = next((v for v in status.versions if v.version == version), None)
            if mine is not None and mine.state == "FAILED":
                raise SwapserveError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"version {version} of model '{model}' failed to load: {mine.error}",
                )
            if time.monotonic() >= deadline:
                state = mine.state if mine is not None else "not seen by the server"
                raise SwapserveError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"version {version} of model '{model}' does not serve after {timeout:g}s "
                    f"(it is {state}; serving: {status.serving_version or 'nothing'})",
                )
            time.sleep(poll)

    def status(self, model: str, *, timeout: float | None = None) -> list[VersionStatus]:
        """Every version the server knows for ``model``, newest first."""
        return self.model_status(model, timeout=timeout).versions

    def model_status(self, model: str, *, timeout: float | None = None) -> ModelStatus:
        """``status`` plus the served and pinned versions."""
        response: pb.GetModelStatusResponse = self._call(
            self._stub.GetModelStatus, pb.GetModelStatusRequest(model_name=model), timeout
        )
        versions = [
            VersionStatus(
                version=v.version,
                state=pb.ModelVersionStatus.State.Name(v.state),
                error=v.error_message,
                serving=v.serving,
                load_seconds=v.load_seconds,
                updated_unix=v.updated_unix,
                labels=tuple(v.labels),
                request_count=v.request_count,
                error_count=v.error_count,
                last_error_unix=v.last_error_unix,
                p99_seconds=v.p99_seconds,
            )
            for v in response.versions
        ]
        return ModelStatus(
            model=response.model_name,
            serving_version=response.serving_version,
            pinned_version=response.pinned_version,
            versions=versions,
            labels=dict(response.version_labels),
            storage_error=response.storage_error,
        )

    def metadata(
        self, model: str, *, version: int = 0, label: str = "", timeout: float | None = None
    ) -> ModelMetadata:
        """The signatures of a loaded version (the served one by default, or a label's)."""
        response: pb.GetModelMetadataResponse = self._call(
            self._stub.GetModelMetadata,
            pb.GetModelMetadataRequest(model_name=model, version=version, version_label=label),
            timeout,
        )
        return ModelMetadata(
            model=response.model_name,
            version=response.version,
            signatures={
                s.name: SignatureInfo(
                    name=s.name,
                    method_name=s.method_name,
                    inputs={t.name: _tensor_info(t) for t in s.inputs},
                    outputs={t.name: _tensor_info(t) for t in s.outputs},
                )
                for s in response.signatures
            },
        )

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(
                request,
                timeout=self._timeout if timeout is None else timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as err:
            raise SwapserveError.from_rpc_error(err) from None


def _tensor_info(t: pb.TensorInfo) -> TensorInfo:
    return TensorInfo(
        name=t.name,
        dtype=tensors.dtype_name(t.dtype),
        shape=None if t.unknown_rank else tuple(t.shape),
    )
