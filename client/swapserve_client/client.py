"""``Client``: predict, reload, status and metadata over one gRPC channel."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
import numpy as np
import numpy.typing as npt

from swapserve_client import messages
from swapserve_client._proto.swapserve.v1 import prediction_pb2_grpc as pb_grpc
from swapserve_client.base import (
    BaseClient,
    Pem,
    channel_options,
    channel_target,
    tls_credentials,
)
from swapserve_client.errors import SwapserveError
from swapserve_client.messages import (
    ModelMetadata,
    ModelStatus,
    PredictResult,
    ReloadResult,
    SignatureInfo,
    TensorInfo,
    VersionStatus,
)

__all__ = [
    "Client",
    "ModelMetadata",
    "ModelStatus",
    "Pem",
    "PredictResult",
    "ReloadResult",
    "SignatureInfo",
    "TensorInfo",
    "VersionStatus",
]


class Client(BaseClient):
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
        tls_ca: PEM CA bundle to verify the server with (bytes, or a file path); setting any
            ``tls_*`` argument makes the channel TLS (with only ``tls_ca`` unset, the system's
            roots are used).
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
        tls_ca: Pem | None = None,
        tls_cert: Pem | None = None,
        tls_key: Pem | None = None,
        retries: int = 3,
    ) -> None:
        super().__init__(timeout, metadata)
        self._own_channel = channel is None
        if channel is None:
            address, options = channel_target(target), channel_options(retries)
            credentials = tls_credentials(tls_ca, tls_cert, tls_key)
            if credentials is not None:
                channel = grpc.secure_channel(address, credentials, options=options)
            else:
                channel = grpc.insecure_channel(address, options=options)
        self._channel = channel
        self._stub = pb_grpc.PredictionServiceStub(self._channel)  # type: ignore[no-untyped-call]

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
        cast: bool = False,
    ) -> dict[str, np.ndarray]:
        """Runs a signature and returns its outputs by name.

        Args:
            model: the model name.
            inputs: one array per signature input; dtypes must match the signature exactly,
                unless ``cast``.
            version: 0 for the served version, else a loaded version.
            signature: the signature name; "" for ``serving_default``.
            output_filter: the outputs to compute; empty for all.
            label: a version label (e.g. ``"stable"``) instead of ``version``.
            timeout: this call's deadline in seconds, overriding the client's default.
            cast: convert the inputs to the signature's dtypes first (``[[1, 2]]`` for a float32
                input), from metadata cached per model and version choice and fetched again
                when another version answers.

        Raises:
            SwapserveError: the server's status code and message.
            ValueError: with ``cast``, an input that cannot be converted.
        """
        return self.predict_full(
            model,
            inputs,
            version=version,
            signature=signature,
            output_filter=output_filter,
            label=label,
            timeout=timeout,
            cast=cast,
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
        cast: bool = False,
    ) -> PredictResult:
        """Like ``predict`` but also reports the version and signature that answered."""
        key = (model, version, label)
        meta = self._cached(key) if cast else None
        if cast and meta is None:
            meta = self._remember(key, self.metadata(model, version=version, label=label,
                                                     timeout=timeout))  # fmt: skip
        request = self._predict_request(
            model, inputs, meta, version=version, signature=signature,
            output_filter=output_filter, label=label,
        )  # fmt: skip
        return self._predict_result(self._call(self._stub.Predict, request, timeout), key, meta)

    def reload(
        self, model: str, version: int = 0, *, force: bool = False, timeout: float | None = None
    ) -> ReloadResult:
        """Follows the version policy again (``version=0``, unpins: the newest version serves) or
        loads, serves and pins ``version``.

        Returns once the version serves, or once it started as a canary (``canary_version``).
        A load failure or a gate's refusal raises ``SwapserveError`` with
        ``FAILED_PRECONDITION``; the previous version keeps serving. ``force`` serves the
        version without gates or canary (a refused or rolled-back one too).
        """
        request = self._reload_request(model, version, force)
        response = self._call(self._stub.Reload, request, timeout)
        return messages.reload_result(response)

    def wait_for_version(
        self, model: str, version: int, timeout: float = 300.0, poll: float = 0.5
    ) -> ModelStatus:
        """Waits until ``version`` of ``model`` serves requests without a version (for a
        pipeline that exports and lets the server's watcher find it instead of calling Reload).

        A server that is unreachable (UNAVAILABLE: restarting, not up yet) is asked again until
        the timeout.

        Raises:
            SwapserveError: DEADLINE_EXCEEDED after ``timeout`` seconds (the message says what
                serves and the version's state), FAILED_PRECONDITION at once if the version
                failed to load, UNAVAILABLE if the server was still unreachable at the timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = self.model_status(model)
            except SwapserveError as err:
                self._ask_again(err, time.monotonic() >= deadline)
                time.sleep(poll)
                continue
            if messages.version_serves(status, version, timeout, time.monotonic() >= deadline):
                return status
            time.sleep(poll)

    def status(self, model: str, *, timeout: float | None = None) -> list[VersionStatus]:
        """Every version the server knows for ``model``, newest first."""
        return self.model_status(model, timeout=timeout).versions

    def model_status(self, model: str, *, timeout: float | None = None) -> ModelStatus:
        """``status`` plus the served and pinned versions."""
        response = self._call(self._stub.GetModelStatus, self._status_request(model), timeout)
        return messages.model_status(response)

    def metadata(
        self, model: str, *, version: int = 0, label: str = "", timeout: float | None = None
    ) -> ModelMetadata:
        """The signatures of a loaded version (the served one by default, or a label's)."""
        request = self._metadata_request(model, version, label)
        return messages.model_metadata(self._call(self._stub.GetModelMetadata, request, timeout))

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, **self._call_options(timeout))
        except grpc.RpcError as err:
            raise SwapserveError.from_rpc_error(err) from None
