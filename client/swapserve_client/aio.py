"""``swapserve_client.aio.Client``: the same calls as ``swapserve_client.Client`` on
``grpc.aio``, for asyncio services and pipelines (``await client.predict(...)``). Requests and
answers are built and read by ``swapserve_client.base``; this module only does the I/O."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import grpc.aio
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
    VersionStatus,
)

__all__ = ["Client"]


class Client(BaseClient):
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
        super().__init__(timeout, metadata)
        self._own_channel = channel is None
        if channel is None:
            address, options = channel_target(target), channel_options(retries)
            credentials = tls_credentials(tls_ca, tls_cert, tls_key)
            if credentials is not None:
                channel = grpc.aio.secure_channel(address, credentials, options=options)
            else:
                channel = grpc.aio.insecure_channel(address, options=options)
        self._channel = channel
        self._stub = pb_grpc.PredictionServiceStub(channel)  # type: ignore[no-untyped-call]

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
        meta = self._cached(key) if cast else None
        if cast and meta is None:
            meta = self._remember(
                key, await self.metadata(model, version=version, label=label, timeout=timeout)
            )
        request = self._predict_request(
            model, inputs, meta, version=version, signature=signature,
            output_filter=output_filter, label=label,
        )  # fmt: skip
        response = await self._call(self._stub.Predict, request, timeout)
        return self._predict_result(response, key, meta)

    async def reload(
        self, model: str, version: int = 0, *, force: bool = False, timeout: float | None = None
    ) -> ReloadResult:
        """See ``swapserve_client.Client.reload``."""
        request = self._reload_request(model, version, force)
        return messages.reload_result(await self._call(self._stub.Reload, request, timeout))

    async def status(self, model: str, *, timeout: float | None = None) -> list[VersionStatus]:
        """See ``swapserve_client.Client.status``."""
        return (await self.model_status(model, timeout=timeout)).versions

    async def model_status(self, model: str, *, timeout: float | None = None) -> ModelStatus:
        """See ``swapserve_client.Client.model_status``."""
        request = self._status_request(model)
        return messages.model_status(await self._call(self._stub.GetModelStatus, request, timeout))

    async def metadata(
        self, model: str, *, version: int = 0, label: str = "", timeout: float | None = None
    ) -> ModelMetadata:
        """See ``swapserve_client.Client.metadata``."""
        request = self._metadata_request(model, version, label)
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
                self._ask_again(err, time.monotonic() >= deadline)
                await asyncio.sleep(poll)
                continue
            if messages.version_serves(status, version, timeout, time.monotonic() >= deadline):
                return status
            await asyncio.sleep(poll)

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(request, **self._call_options(timeout))
        except grpc.aio.AioRpcError as err:
            raise SwapserveError.from_rpc_error(err) from None
