"""``swapserve_client.aio.Client``: the same calls as ``swapserve_client.Client`` on
``grpc.aio``, for asyncio services and pipelines (``await client.predict(...)``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio
import numpy as np
import numpy.typing as npt

from swapserve_client import messages, targets
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb
from swapserve_client._proto.swapserve.v1 import prediction_pb2_grpc as pb_grpc
from swapserve_client.client import Pem, channel_options, tls_credentials
from swapserve_client.errors import SwapserveError
from swapserve_client.messages import (
    ModelMetadata,
    ModelStatus,
    PredictResult,
    ReloadResult,
    VersionStatus,
)

__all__ = ["Client"]


class Client:
    """An asyncio swapserve client; use ``async with`` or ``await client.close()``. Arguments
    as ``swapserve_client.Client`` (``channel``: an existing ``grpc.aio`` channel)."""

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        timeout: float | None = 30.0,
        channel: grpc.aio.Channel | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        tls_ca: Pem | None = None,
        tls_cert: Pem | None = None,
        tls_key: Pem | None = None,
        retries: int = 3,
    ) -> None:
        self._own_channel = channel is None
        if channel is None:
            address = targets.channel_target(target)
            options = channel_options(retries)
            credentials = tls_credentials(tls_ca, tls_cert, tls_key)
            if credentials is not None:
                channel = grpc.aio.secure_channel(address, credentials, options=options)
            else:
                channel = grpc.aio.insecure_channel(address, options=options)
        self._channel = channel
        self._stub = pb_grpc.PredictionServiceStub(channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout
        self._metadata = tuple(metadata)
        self._signatures: dict[tuple[str, int, str], ModelMetadata] = {}  # one event loop

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel if this client opened it."""
        if self._own_channel:
            await self._channel.close(None)

    async def predict(
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
        """See ``swapserve_client.Client.predict``."""
        result = await self.predict_full(
            model, inputs, version, signature, output_filter, label=label, timeout=timeout,
            cast=cast,
        )  # fmt: skip
        return result.outputs

    async def predict_full(
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
        """See ``swapserve_client.Client.predict_full``."""
        key = (model, version, label)
        meta = self._signatures.get(key) if cast else None
        if cast and meta is None:
            meta = self._signatures[key] = await self.metadata(
                model, version=version, label=label, timeout=timeout
            )
        if meta is not None:
            inputs = messages.cast_inputs(inputs, meta, signature)
        request = messages.predict_request(
            model, inputs, version=version, signature=signature, output_filter=output_filter,
            label=label,
        )  # fmt: skip
        result = messages.predict_result(await self._call(self._stub.Predict, request, timeout))
        if meta is not None and result.version != meta.version:
            self._signatures.pop(key, None)
        return result

    async def reload(
        self, model: str, version: int = 0, *, timeout: float | None = None
    ) -> ReloadResult:
        """See ``swapserve_client.Client.reload``."""
        request = pb.ReloadRequest(model_name=model, version=version)
        return messages.reload_result(await self._call(self._stub.Reload, request, timeout))

    async def status(self, model: str, *, timeout: float | None = None) -> list[VersionStatus]:
        """See ``swapserve_client.Client.status``."""
        return (await self.model_status(model, timeout=timeout)).versions

    async def model_status(self, model: str, *, timeout: float | None = None) -> ModelStatus:
        """See ``swapserve_client.Client.model_status``."""
        request = pb.GetModelStatusRequest(model_name=model)
        return messages.model_status(await self._call(self._stub.GetModelStatus, request, timeout))

    async def metadata(
        self, model: str, *, version: int = 0, label: str = "", timeout: float | None = None
    ) -> ModelMetadata:
        """See ``swapserve_client.Client.metadata``."""
        request = pb.GetModelMetadataRequest(model_name=model, version=version, version_label=label)
        response = await self._call(self._stub.GetModelMetadata, request, timeout)
        return messages.model_metadata(response)

    async def wait_for_version(
        self, model: str, version: int, timeout: float = 300.0, poll: float = 0.5
    ) -> ModelStatus:
        """See ``swapserve_client.Client.wait_for_version``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = await self.model_status(model)
            except SwapserveError as err:
                # A server restarting (a rollout, a crash) is not an answer: ask again.
                if err.code != grpc.StatusCode.UNAVAILABLE or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(poll)
                continue
            if messages.version_serves(status, version, timeout, time.monotonic() >= deadline):
                return status
            await asyncio.sleep(poll)

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(
                request,
                timeout=self._timeout if timeout is None else timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as err:
            raise SwapserveError.from_rpc_error(err) from None
