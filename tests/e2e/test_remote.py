"""Export roots in S3, against a real S3 API on loopback (moto's standalone server) with s3fs."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import s3fs
from moto.server import ThreadedMotoServer

from helpers import RolloutLoad, ServerProcess, estimator_export, serving, wait_for
from swapserve_client import Client

X = {"number": np.ones([1, 1], np.float32)}
log = logging.getLogger(__name__)


@pytest.fixture
def s3(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[ThreadedMotoServer, s3fs.S3FileSystem, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
    }.items():
        monkeypatch.setenv(key, value)
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    bucket = f"exports-{uuid.uuid4().hex[:12]}"  # moto keeps buckets across server restarts
    fs.mkdir(bucket)
    try:
        yield server, fs, bucket
    finally:
        server.stop()


def _upload(fs: s3fs.S3FileSystem, url: str, src: Path, version: int, delay: float = 0.0) -> None:
    """Puts an export's files under <url>/<version>/, saved_model.pb first (as a slow copy that
    is visible half-way)."""
    files = sorted(src.rglob("*"), key=lambda p: p.name != "saved_model.pb")
    for path in files:
        if path.is_file():
            fs.pipe(f"{url}/{version}/{path.relative_to(src)}", path.read_bytes())
            time.sleep(delay)


def _serving(client: Client) -> int:
    return client.model_status("m").serving_version


def test_s3_export_root(
    tmp_path: Path,
    s3: tuple[ThreadedMotoServer, s3fs.S3FileSystem, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server_s3, fs, bucket = s3
    url = f"s3://{bucket}/m"
    cache = tmp_path / "cache"
    monkeypatch.setenv("SWAPSERVE_CACHE_DIR", str(cache))
    exports = {
        w: estimator_export(tmp_path / f"src{w}", weight=float(w), bias=0.0) for w in (1, 2, 3)
    }
    _upload(fs, url, exports[1], 1)
    from swapserve.config.model_settings import ModelSettings

    located = ModelSettings.at("m", url)
    assert located.remote == url and located.export_root == cache / "m"
    with (
        serving(
            located.export_root,
            remote=url,
            poll_seconds=0.1,
            settle_seconds=0.6,
        ) as server,
        Client(f"127.0.0.1:{server.port}", timeout=30) as client,
    ):
        assert isinstance(server.registry.get("m").settings, ModelSettings)
        np.testing.assert_allclose(client.predict("m", X)["output"], [[2.0]])

        # A slow upload: the version is listed half-way, but only loads once its files settle.
        uploading = threading.Thread(target=_upload, args=(fs, url, exports[2], 2, 0.25))
        uploading.start()
        while uploading.is_alive():  # several polls see a complete-looking, changing version
            assert _serving(client) == 1
            assert not (cache / "m" / "2").exists()
            time.sleep(0.05)
        wait_for(lambda: _serving(client) == 2, what="version 2 from S3")
        np.testing.assert_allclose(client.predict("m", X)["output"], [[4.0]])
        # Version 1 was released: its cached copy is deleted.
        wait_for(lambda: not (cache / "m" / "1").exists(), what="cache of version 1 deleted")

        # S3 goes away: the served version keeps serving; status and metrics say why.
        server_s3.stop()
        status = wait_for(
            lambda: (s := client.model_status("m")).storage_error and s, what="a storage error"
        )
        assert f"listing {url} failed" in status.storage_error
        assert status.serving_version == 2
        np.testing.assert_allclose(client.predict("m", X)["output"], [[4.0]])
        errors = server.metrics.registry.get_sample_value(
            "swapserve_storage_errors_total", {"model": "m"}
        )
        assert errors and errors >= 1

        # S3 is back (same port, same data) with a new version: picked up after the backoff.
        host, port = server_s3.get_host_and_port()
        restored = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        restored.start()
        try:
            _upload(fs, url, exports[3], 3)
            wait_for(lambda: _serving(client) == 3, timeout=60, what="version 3 after the outage")
            assert client.model_status("m").storage_error == ""
            np.testing.assert_allclose(client.predict("m", X)["output"], [[6.0]])
        finally:
            restored.stop()


def test_fleet_on_one_s3_root(
    tmp_path: Path, s3: tuple[ThreadedMotoServer, s3fs.S3FileSystem, str]
) -> None:
    """Three server processes watch one S3 prefix; a balancing client under load sees the
    rollout of a new version: every replica converges, no request fails, every reply names the
    version that computed it."""
    _, fs, bucket = s3
    url = f"s3://{bucket}/m"
    exports = {w: estimator_export(tmp_path / f"src{w}", weight=float(w), bias=0.0) for w in (1, 2)}
    _upload(fs, url, exports[1], 1)
    flags = ["--model-name", "m", "--export-root", url, "--poll-seconds", "0.2"]
    flags += ["--settle-seconds", "0.4"]
    replicas = [
        ServerProcess(*flags, env={"SWAPSERVE_CACHE_DIR": str(tmp_path / f"cache{i}")})
        for i in range(3)
    ]
    try:
        addresses = [f"127.0.0.1:{r.port}" for r in replicas]
        status = [Client(a, timeout=30, retries=0) for a in addresses]
        client = Client(addresses, timeout=30)
        for s in status:
            wait_for(lambda s=s: s.model_status("m").serving_version == 1, timeout=120)
        with RolloutLoad(client) as load:
            wait_for(lambda: load.seen[1] >= 20, what="load on version 1")
            uploaded = time.monotonic()
            _upload(fs, url, exports[2], 2)
            converged = {}
            for address, s in zip(addresses, status, strict=True):
                wait_for(lambda s=s: s.model_status("m").serving_version == 2, timeout=60)
                converged[address] = round(time.monotonic() - uploaded, 2)
            wait_for(lambda: load.seen[2] >= 20, what="answers from version 2")
        seen = dict(load.seen)
        log.info("fleet on S3: converged after %s s; answers by version %s", converged, seen)
        assert load.failures == []
        assert set(seen) == {1, 2}
        client.close()
        for s in status:
            s.close()
    finally:
        for r in replicas:
            assert r.stop() == 0, r.log


def test_s3_outage_mid_download(
    tmp_path: Path,
    s3: tuple[ThreadedMotoServer, s3fs.S3FileSystem, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S3 dies while a version is being copied: nothing half-copied is ever loaded, the served
    version keeps serving, and the copy starts over once S3 is back."""
    server_s3, fs, bucket = s3
    url = f"s3://{bucket}/m"
    cache = tmp_path / "cache"
    one = estimator_export(tmp_path / "src1", weight=1.0, bias=0.0)
    two = estimator_export(tmp_path / "src2", weight=2.0, bias=0.0)
    (two / "assets.extra").mkdir()
    for i in range(6):  # enough bytes that the copy takes a while
        (two / "assets.extra" / f"blob{i}.bin").write_bytes(os.urandom(16 << 20))
    _upload(fs, url, one, 1)
    with (
        serving(cache, remote=url, poll_seconds=0.1, settle_seconds=0.3) as server,
        Client(f"127.0.0.1:{server.port}", timeout=30) as client,
    ):
        _upload(fs, url, two, 2)
        staging = cache / ".download-2"
        wait_for(staging.exists, timeout=60, interval=0.005, what="the download to start")
        server_s3.stop()
        status = wait_for(
            lambda: (s := client.model_status("m")).storage_error and s, what="the storage error"
        )
        assert "download of version 2 failed" in status.storage_error
        assert not (cache / "2").exists() and not staging.exists()
        assert status.serving_version == 1
        np.testing.assert_allclose(client.predict("m", X)["output"], [[2.0]])
        host, port = server_s3.get_host_and_port()
        restored = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        restored.start()
        try:
            wait_for(lambda: _serving(client) == 2, timeout=120, what="version 2 after the outage")
            np.testing.assert_allclose(client.predict("m", X)["output"], [[4.0]])
        finally:
            restored.stop()


def test_workers_mirror_into_their_own_caches(
    tmp_path: Path, s3: tuple[ThreadedMotoServer, s3fs.S3FileSystem, str]
) -> None:
    _, fs, bucket = s3
    url = f"s3://{bucket}/m"
    _upload(fs, url, estimator_export(tmp_path / "src1", weight=1.0, bias=0.0), 1)
    cache = tmp_path / "cache"
    server = ServerProcess(
        "--model-name", "m", "--export-root", url, "--workers", "2", "--poll-seconds", "0.2",
        env={"SWAPSERVE_CACHE_DIR": str(cache)},
    )  # fmt: skip
    try:
        wait_for(lambda: server.log.count("serving (loaded in") >= 2, timeout=120)
        assert sorted(p.name for p in (cache / "m").iterdir()) == ["worker-0", "worker-1"]
        assert all(
            (cache / "m" / w / "1" / "saved_model.pb").exists() for w in ("worker-0", "worker-1")
        )
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            np.testing.assert_allclose(client.predict("m", X)["output"], [[2.0]])
    finally:
        assert server.stop() == 0, server.log


def test_s3_versions_beyond_int64_are_ignored(
    tmp_path: Path,
    s3: tuple[ThreadedMotoServer, s3fs.S3FileSystem, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """2^63 under an S3 root is never listed as a version; 2^63 - 1 loads and serves."""
    caplog.set_level(logging.WARNING, logger="swapserve")
    _, fs, bucket = s3
    url = f"s3://{bucket}/m"
    monkeypatch.setenv("SWAPSERVE_CACHE_DIR", str(tmp_path / "cache"))
    export = estimator_export(tmp_path / "src", weight=1.0, bias=0.0)
    _upload(fs, url, export, 1)
    top = 2**63 - 1
    with (
        serving(tmp_path / "cache" / "m", remote=url, poll_seconds=0.1, settle_seconds=0.3) as app,
        Client(f"127.0.0.1:{app.port}", timeout=30) as client,
    ):
        answers: list[str] = []
        stop = threading.Event()

        def predict() -> None:
            while not stop.is_set():
                try:
                    out = client.predict_full("m", X)
                    answers.append("ok" if out.outputs["output"][0, 0] == 2.0 else "wrong")
                except Exception as err:
                    answers.append(repr(err))

        threads = [threading.Thread(target=predict) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            _upload(fs, url, export, top + 1)
            time.sleep(1.0)  # ten polls, past the settle period
            assert _serving(client) == 1
            assert not (tmp_path / "cache" / "m" / str(top + 1)).exists()
            _upload(fs, url, export, top)
            wait_for(lambda: _serving(client) == top, what="version 2^63-1 from S3")
            assert next(v.version for v in client.status("m")) == top
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert answers and set(answers) == {"ok"}, sorted(set(answers))[:5]
    skipped = [r.getMessage() for r in caplog.records if "version numbers go up to" in r.message]
    assert len(skipped) == 1, skipped
