"""Prometheus metrics on --metrics-port, scraped over HTTP and parsed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import BAD, estimator_version, scrape, serving, value, wait_for
from swapserve.config.model_settings import BatchingSettings
from swapserve_client import Client, SwapserveError


def test_request_model_and_version_metrics(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with (
        serving(tmp_path, poll_seconds=600, metrics_port=0) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        assert server.metrics_port
        x = {"number": np.ones([2, 1], np.float32)}
        for _ in range(3):
            client.predict("m", x)
        with pytest.raises(SwapserveError):
            client.predict("m", {"bad": np.ones([1, 1], np.float32)})
        with pytest.raises(SwapserveError):
            client.predict("no-such-model", x)
        before = scrape(server.metrics_port)
        assert value(before, "swapserve_model_runs_total", model="m", version="1") == 3
        estimator_version(tmp_path, 2, weight=2.0)
        client.reload("m")
        shutil.copytree(BAD, tmp_path / "3")
        (tmp_path / "3" / "saved_model.pb").write_bytes(b"junk")
        with pytest.raises(SwapserveError):
            client.reload("m", version=3)
        server.registry.get("m").wait_unloaded(10)
        s = scrape(server.metrics_port)

    labels = {"model": "m", "protocol": "swapserve", "method": "Predict"}
    assert value(s, "swapserve_requests_total", **labels, code="OK") == 0  # version 1 released
    ok = value(before, "swapserve_requests_total", **labels, code="OK", version="1",
               signature="serving_default")  # fmt: skip
    assert ok == 3
    bad = value(before, "swapserve_requests_total", **labels, code="INVALID_ARGUMENT",
                version="1", signature="")  # fmt: skip
    assert bad == 1
    # Unknown model names are not turned into label values (bounded cardinality).
    assert (
        value(
            s,
            "swapserve_requests_total",
            model="",
            version="",
            signature="",
            protocol="swapserve",
            method="Predict",
            code="NOT_FOUND",
        )
        == 1
    )
    assert value(before, "swapserve_request_seconds_count", **labels, version="1") == 4
    assert value(before, "swapserve_model_run_seconds_count", model="m", version="1") == 3
    # A released version's series are dropped: metrics do not grow with every export.
    assert not [k for k in s if ("version", "1") in k[1]], [
        k for k in s if ("version", "1") in k[1]
    ]
    assert value(before, "swapserve_version_rss_bytes", model="m", version="1") > 0
    assert value(s, "process_resident_memory_bytes") > 0
    assert value(s, "python_gc_collections_total") > 0
    assert value(s, "swapserve_version_loads_total", model="m", outcome="success") == 2
    assert value(s, "swapserve_version_loads_total", model="m", outcome="failure") == 1
    assert value(s, "swapserve_swaps_total", model="m") == 1
    assert value(s, "swapserve_unloads_total", model="m") == 1
    assert value(s, "swapserve_served_version", model="m") == 2
    assert value(s, "swapserve_loaded_versions", model="m") == 1
    assert value(s, "swapserve_inflight_requests", model="m") == 0
    assert value(s, "swapserve_version_load_seconds_count", model="m") == 2


def test_batching_metrics(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    settings = BatchingSettings(
        enabled=True, max_batch_size=8, batch_timeout_micros=0, allowed_batch_sizes=(4, 8)
    )
    with (
        serving(tmp_path, batching=settings, metrics_port=0) as server,
        Client(f"127.0.0.1:{server.port}") as client,
    ):
        client.predict("m", {"number": np.ones([3, 1], np.float32)})
        s = wait_for(
            lambda: (
                (r := scrape(server.metrics_port))
                and value(r, "swapserve_batch_size_count", model="m") == 1
                and r
            )
        )
    assert value(s, "swapserve_batch_size_sum", model="m") == 4  # padded to 4
    assert value(s, "swapserve_batch_queue_seconds_count", model="m") == 1


def test_the_metrics_port_serves_only_metrics_and_counts_http_requests(tmp_path: Path) -> None:
    import json
    import urllib.error
    import urllib.request
    from dataclasses import replace

    from helpers import serving_settings
    from swapserve.config.model_settings import ModelSettings
    from swapserve.config.settings import Settings

    estimator_version(tmp_path, 1, weight=1.0)
    settings = Settings(
        models=(ModelSettings(name="m", export_root=tmp_path, poll_seconds=600),),
        host="127.0.0.1",
        port=0,
        metrics_port=0,
    )
    with serving_settings(replace(settings, rest_port=0)) as server:
        assert server.metrics_port and server.rest_port
        for path in ("/", "/other", "/metricsx"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}{path}", timeout=10)
            assert err.value.code == 404
            err.value.close()
        base = f"http://127.0.0.1:{server.rest_port}"
        body = json.dumps({"inputs": [[1.0]]}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{base}/v1/models/m:predict", body)).close()
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(urllib.request.Request(f"{base}/v1/models/m:predict", b"{"))
        bad.value.close()
        v2 = json.dumps(
            {"inputs": [{"name": "number", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}
        ).encode()
        urllib.request.urlopen(urllib.request.Request(f"{base}/v2/models/m/infer", v2)).close()
        samples = scrape(server.metrics_port)
        total = "swapserve_requests_total"
        assert value(samples, total, model="m", protocol="tfserving_rest", method="predict",
                     code="200") == 1  # fmt: skip
        assert value(samples, total, model="m", protocol="tfserving_rest", method="predict",
                     code="400") == 1  # fmt: skip
        assert value(samples, total, model="m", protocol="kserve_v2_rest", method="ModelInfer",
                     code="200") == 1  # fmt: skip
