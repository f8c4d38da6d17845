"""Hostile input over every protocol: every answer is a precise client error or OK, never INTERNAL
or a crash, and the server answers correctly afterwards (hypothesis; short runs in CI)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tritonclient.grpc import service_pb2 as v2
from tritonclient.grpc import service_pb2_grpc as v2_grpc

from helpers import HALF_PLUS_TWO, copy_version, serving
from swapserve_client import Client
from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb
from swapserve_client._proto.swapserve.v1 import prediction_pb2_grpc as pb_grpc

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
names = st.one_of(st.just("x"), st.just("y"), st.text(max_size=12))
shapes = st.lists(
    st.one_of(st.integers(0, 4), st.integers(-3, -1), st.integers(1 << 20, 1 << 40)), max_size=4
)
content = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda n: np.full(n, np.nan, np.float32).tobytes(), st.integers(0, 8)),
    st.builds(lambda n: np.full(n, np.inf, np.float32).tobytes(), st.integers(0, 8)),
)


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    root = tmp_path_factory.mktemp("fuzz")
    copy_version(HALF_PLUS_TWO, root, 1)
    with serving(root, name="hp2", poll_seconds=600) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            yield ch
        # The server is unharmed by everything above.
        with Client(f"127.0.0.1:{server.port}") as client:
            out = client.predict("hp2", {"x": np.float32([[2.0]])})
            np.testing.assert_allclose(out["y"], [[3.0]])


def _code(call: object, request: object) -> grpc.StatusCode:
    try:
        call(request, timeout=10)  # type: ignore[operator]
    except grpc.RpcError as err:
        return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


@FUZZ
@given(
    model=st.sampled_from(["hp2", "", "nope", "hp2\x00", "ünï"]),
    name=names,
    dtype=st.integers(0, 30),
    shape=shapes,
    data=content,
    strings=st.lists(st.binary(max_size=8), max_size=4),
    output_filter=st.lists(names, max_size=2),
    signature=st.sampled_from(["", "serving_default", "regress_x_to_y", "nope"]),
    version=st.integers(-2, 200),
)
def test_fuzz_swapserve_api(
    channel: grpc.Channel, model: str, name: str, dtype: int, shape: list[int], data: bytes,
    strings: list[bytes], output_filter: list[str], signature: str, version: int,
) -> None:  # fmt: skip
    request = pb.PredictRequest(
        model_name=model, version=version, signature_name=signature, output_filter=output_filter
    )
    tensor = request.inputs[name]
    tensor.dtype = dtype  # type: ignore[assignment]
    tensor.shape.extend(shape)
    tensor.tensor_content = data
    tensor.string_val.extend(strings)
    assert _code(pb_grpc.PredictionServiceStub(channel).Predict, request) in ALLOWED


@FUZZ
@given(name=names, dtype=st.integers(0, 30), shape=shapes, data=content,
       floats=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=5),
       unknown_rank=st.booleans())  # fmt: skip
def test_fuzz_tfserving_api(
    channel: grpc.Channel, name: str, dtype: int, shape: list[int], data: bytes,
    floats: list[float], unknown_rank: bool,
) -> None:  # fmt: skip
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp2"
    tensor: tensor_pb2.TensorProto = request.inputs[name]
    tensor.dtype = dtype  # type: ignore[assignment]
    for d in shape:
        tensor.tensor_shape.dim.add(size=d)
    tensor.tensor_shape.unknown_rank = unknown_rank
    if data:
        tensor.tensor_content = data
    else:
        tensor.float_val.extend(floats)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert _code(stub.Predict, request) in ALLOWED


@FUZZ
@given(name=names, datatype=st.sampled_from(["FP32", "FP16", "BYTES", "INT64", "BOOL", "BF16", "", "FP3"]),
       shape=shapes, raw=st.one_of(st.none(), content),
       fp32=st.lists(st.floats(width=32), max_size=5), version=st.sampled_from(["", "1", "x", "-1"]))  # fmt: skip
def test_fuzz_kserve_v2(
    channel: grpc.Channel, name: str, datatype: str, shape: list[int], raw: bytes | None,
    fp32: list[float], version: str,
) -> None:  # fmt: skip
    request = v2.ModelInferRequest(model_name="hp2", model_version=version)
    tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
    if raw is None:
        tensor.contents.fp32_contents.extend(fp32)
    else:
        request.raw_input_contents.append(raw)
    stub = v2_grpc.GRPCInferenceServiceStub(channel)
    assert _code(stub.ModelInfer, request) in ALLOWED
