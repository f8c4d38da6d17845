"""The one exception the client raises for a failed call."""

from __future__ import annotations

import grpc


class SwapserveError(Exception):
    """A call the server (or the channel) refused.

    Attributes:
        code: the gRPC status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
        message: the server's message (or the channel's, for transport failures).
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> SwapserveError:
        """Wraps the error a stub raised; its code and details become ours."""
        code, details = getattr(err, "code", None), getattr(err, "details", None)
        if callable(code) and callable(details):  # grpc.Call, or grpc.aio.AioRpcError
            return cls(code(), details() or "")
        return cls(grpc.StatusCode.UNKNOWN, str(err))
