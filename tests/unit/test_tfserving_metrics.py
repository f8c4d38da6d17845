"""TF Serving's metric names: which calls count, the buckets, the text TF Serving writes."""

from __future__ import annotations

import re

from swapserve.observability.calls import CallRecord
from swapserve.observability.tfserving_metrics import BUCKETS, TFServingMetrics


def _record(
    protocol: str, method: str, code: str, seconds: float, grpc_code: str = ""
) -> CallRecord:
    record = CallRecord(protocol, method, model="m", code=code, seconds=seconds)
    record.grpc_code = grpc_code
    return record


def test_only_tf_servings_calls_count_and_only_successes_are_timed() -> None:
    metrics = TFServingMetrics()
    metrics.observe(_record("tfserving", "Predict", "OK", 0.000015), known=True)
    metrics.observe(_record("tfserving", "GetModelStatus", "OK", 0.001), known=True)  # not counted
    metrics.observe(_record("swapserve", "Predict", "OK", 0.001), known=True)  # ours: not counted
    metrics.observe(_record("tfserving_rest", "predict", "404", 0.001, "NOT_FOUND"), known=False)
    metrics.observe(_record("tfserving_rest", "predict", "200", 5000.0, "OK"), known=True)
    text = metrics.text()
    assert '\n:tensorflow:serving:request_count{model_name="m",status="OK"} 2\n' in text
    assert ':tensorflow:serving:request_count{model_name="",status="NOT_FOUND"} 1' in text
    grpc = 'model_name="m",API="Predict",entrypoint="GRPC"'
    assert f':tensorflow:serving:request_latency_bucket{{{grpc},le="10"}} 0' in text
    assert f':tensorflow:serving:request_latency_bucket{{{grpc},le="18"}} 1' in text  # 15 us
    rest = 'model_name="m",API="predict",entrypoint="REST"'
    assert f':tensorflow:serving:request_latency_bucket{{{rest},le="+Inf"}} 1' in text
    assert re.search(rf":tensorflow:serving:request_latency_count\{{{rest}\}} 1$", text, re.M)
    assert 'API="GetModelStatus"' not in text


def test_buckets_are_tf_servings_and_a_removed_model_goes() -> None:
    assert len(BUCKETS) == 33 and BUCKETS[0] == 10 and abs(BUCKETS[1] - 18) < 1e-9
    assert 1e9 < BUCKETS[-1] < 2e9  # ~20 minutes in microseconds
    metrics = TFServingMetrics()
    metrics.observe(_record("tfserving", "Regress", "OK", 0.001), known=True)
    metrics.forget_model("m")
    assert 'model_name="m"' not in metrics.text()


def test_tritons_names_count_v2_inference_only() -> None:
    from swapserve.observability.triton_metrics import TritonMetrics

    metrics = TritonMetrics()
    ok = CallRecord("kserve_v2", "ModelInfer", model="m", version=3, rows=8, seconds=0.002)
    ok.queue_seconds, ok.run_seconds = 0.0005, 0.001
    metrics.observe(ok, known=True)
    metrics.observe(CallRecord("kserve_v2_rest", "ModelInfer", model="m", code="503"), known=True)
    metrics.observe(CallRecord("kserve_v2", "ModelMetadata", model="m"), known=True)  # not counted
    text = metrics.text().decode()
    assert 'nv_inference_request_success{model="m",version="3"} 1\n' in text
    assert 'nv_inference_count{model="m",version="3"} 8\n' in text
    assert 'nv_inference_request_duration_us{model="m",version="3"} 2000\n' in text
    assert 'nv_inference_queue_duration_us{model="m",version="3"} 500\n' in text
    assert 'nv_inference_request_failure{model="m",reason="REJECTED",version=""} 1\n' in text
    metrics.forget_model("m")
    assert 'model="m"' not in metrics.text().decode()
