"""The floor for a single request: a minimal gRPC server doing exactly swapserve's work for it.

It serves ``swapserve.v1.PredictionService/Predict`` on a ``grpc.server`` thread pool of the same
size as swapserve's default, and its handler does what swapserve's does for a request, nothing
more: decode the inputs (``swapserve_client.tensors``), ``LoadedVersion.run`` (the same cached
callable, in the calling thread), encode the outputs. No data plane, version resolution, metrics,
call records, access log or shutdown gate. ``bench/eager.py``'s ``floor`` scenario compares it
with swapserve.

    python bench/floor_server.py EXPORT_DIR   # prints its port, serves until killed
"""

from __future__ import annotations

import sys
from concurrent import futures
from pathlib import Path

import grpc

from swapserve.config.model_settings import SessionSettings
from swapserve.config.settings import Settings
from swapserve.model.loaded_version import LoadedVersion
from swapserve_client import tensors
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb


def main(export: Path) -> None:
    loaded = LoadedVersion.load(1, export, SessionSettings())

    def predict(request: pb.PredictRequest, context: grpc.ServicerContext) -> pb.PredictResponse:
        inputs = tensors.decode_map(request.inputs, what="input")
        signature, outputs = loaded.run(request.signature_name, inputs, list(request.output_filter))
        response = pb.PredictResponse(
            model_name=request.model_name, version=1, signature_name=signature
        )
        tensors.encode_map(outputs, response.outputs)
        return response

    handler = grpc.method_handlers_generic_handler(
        "swapserve.v1.PredictionService",
        {
            "Predict": grpc.unary_unary_rpc_method_handler(
                predict,
                request_deserializer=pb.PredictRequest.FromString,
                response_serializer=pb.PredictResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(Settings(models=()).grpc_threads))
    server.add_generic_rpc_handlers((handler,))
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} EXPORT_DIR")
    main(Path(sys.argv[1]))
