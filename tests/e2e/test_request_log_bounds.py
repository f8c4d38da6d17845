"""The request log bounded in bytes (issue 30, item 8), on a real ``swapserve`` process under
load: before, 8 MB binary V2 requests with ``--request-log-responses`` took RSS from 700 MB to a
3.05 GB peak (2.48 GB held after the queue drained) and, with max-bytes 1 MB x 3 files, 45 MB
went to disk. Now the queue holds at most ``--request-log-queue-bytes`` of tensors, a record
larger than a file is skipped, and the files never exceed max-bytes x max-files."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import numpy as np
import tritonclient.http as triton_http

from helpers import HALF_PLUS_TWO, ServerProcess, copy_version, wait_for

MIB = 1 << 20


def _counts(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    prefix = 'swapserve_request_log_records_total{result="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def test_memory_and_disk_stay_within_their_byte_bounds(tmp_path: Path) -> None:
    copy_version(HALF_PLUS_TWO, tmp_path / "m", 1)
    logs = tmp_path / "logs"
    server = ServerProcess(
        "--model-name", "m", "--export-root", str(tmp_path / "m"), "--rest-port", "0",
        "--metrics-port", "0", "--request-log", str(logs), "--request-log-responses",
        "--request-log-max-bytes", str(4 * MIB), "--request-log-max-files", "3",
        "--request-log-queue-bytes", str(8 * MIB),
    )  # fmt: skip
    metrics = server.metrics_port
    client = triton_http.InferenceServerClient(f"127.0.0.1:{server.rest_port}")
    try:
        wait_for(lambda: client.is_model_ready("m"), 60)
        before = server.rss()
        errors: list[str] = []

        def send(rows: int, times: int) -> None:
            x = np.ones([rows, 1], np.float32)
            # One client per thread: tritonclient.http runs on gevent, which threads cannot share.
            own = triton_http.InferenceServerClient(f"127.0.0.1:{server.rest_port}")
            try:
                for _ in range(times):
                    tensor = triton_http.InferInput("x", list(x.shape), "FP32")
                    tensor.set_data_from_numpy(x, binary_data=True)
                    try:
                        result = own.infer("m", [tensor])
                        assert float(result.as_numpy("y")[0, 0]) == 2.5
                    except Exception as err:  # every failure is the test's finding
                        errors.append(repr(err))
            finally:
                own.close()

        # 1 MB in + 1 MB out per record (fits a 4 MiB file); 3 MB + 3 MB does not.
        threads = [threading.Thread(target=send, args=(250_000, 15)) for _ in range(4)]
        threads.append(threading.Thread(target=send, args=(750_000, 3)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], errors[:3]
        counts = wait_for(lambda: (c := _counts(metrics)) and sum(c.values()) >= 63 and c, 30)
        assert counts.get("oversize") == 3, counts
        assert counts.get("written", 0) > 0, counts
        assert server.rss() - before < 400 * MIB, (before, server.rss())
    finally:
        client.close()
        server.stop()
    files = sorted(logs.glob("*.tfrecord"))
    assert 0 < len(files) <= 3, files
    assert all(f.stat().st_size <= 4 * MIB for f in files), [f.stat().st_size for f in files]
