"""Registers a servicer object for a gRPC service described in our descriptor pool.

The TF Serving and KServe V2 APIs have no generated ``*_pb2_grpc`` modules here (their messages
live in a private pool, :mod:`swapserve.apis.pool`), so the method handlers are built from the
service descriptor: one unary handler per RPC the servicer defines. An RPC of the service that
the servicer lacks is left out, and gRPC answers it UNIMPLEMENTED, as generated base classes do.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import message_factory

from swapserve.apis import pool


def add_service(server: grpc.Server, service_name: str, servicer: Any) -> list[str]:
    """Adds ``servicer``'s methods for ``service_name`` (e.g. ``inference.GRPCInferenceService``)
    to ``server``; returns the RPC names it serves.

    Raises:
        KeyError: a service not in our descriptors.
        ValueError: a streaming RPC (none of our APIs has one).
    """
    service = pool.service(service_name)
    handlers: dict[str, grpc.RpcMethodHandler] = {}  # type: ignore[type-arg]
    for method in service.methods:
        behaviour = getattr(servicer, method.name, None)
        if behaviour is None:
            continue
        if method.client_streaming or method.server_streaming:
            raise ValueError(f"{service_name}/{method.name} streams: not supported here")
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, handlers),))
    # Lets grpcio route by the registered path without the generic-handler lookup (>= 1.62).
    server.add_registered_method_handlers(service_name, handlers)  # type: ignore[attr-defined]
    return sorted(handlers)
