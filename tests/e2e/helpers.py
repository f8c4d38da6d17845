"""Test helpers: export builders, a server runner and polling waits."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from swapserve.app import App, create_app
from swapserve.config.model_settings import ModelSettings
from swapserve.config.settings import Settings
from swapserve.dataplane.admin import Admin
from swapserve.dataplane.gate import CallGate
from swapserve.dataplane.requests import DataPlane
from swapserve.model.manager import ModelManager
from swapserve.model.registry import ModelRegistry
from swapserve.observability.metrics import Metrics
from swapserve.observability.recorder import CallRecorder
from swapserve.transport.access import Access
from swapserve.transport.calls import CallPath
from swapserve.transport.grpc.swapserve_v1 import PredictionServicer

REPO = Path(__file__).resolve().parents[2]
TESTDATA = Path(
    os.environ.get("SWAPSERVE_TESTDATA", REPO.parent / "shared" / "testdata" / "tfserving")
)
HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"
HALF_PLUS_TWO_TF2 = TESTDATA / "saved_model_half_plus_two_tf2_cpu" / "00000123"
HALF_PLUS_THREE = TESTDATA / "saved_model_half_plus_three" / "00000123"
COUNTER = TESTDATA / "saved_model_counter" / "00000123"
BAD = TESTDATA / "bad_half_plus_two" / "00000123"


def copy_version(src: Path, root: Path, version: int) -> Path:
    """Copies an export into ``root/<version>`` atomically (stage, then rename), writable."""
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f"temp-{version}"
    shutil.copytree(src, staging)
    for dirpath, dirnames, filenames in os.walk(staging):
        for name in dirnames + filenames:
            os.chmod(os.path.join(dirpath, name), 0o755 if name in dirnames else 0o644)
    os.chmod(staging, 0o755)
    final = root / str(version)
    os.rename(staging, final)
    return final


def estimator_export(path: Path, weight: float, bias: float) -> Path:
    """Writes an export laid out as ``estimator.export_saved_model`` writes the seed model:
    placeholder ``number`` [None, 1] -> tile to [x, x] -> dense(1) -> ``output``, TF1 graph with
    a ``serving_default`` signature_def. output = 2 * weight * x + bias."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        number = tf.compat.v1.placeholder(tf.float32, [None, 1], name="number")
        features = tf.tile(number, [1, 2])
        kernel = tf.compat.v1.get_variable(
            "dense/kernel", initializer=tf.constant([[weight], [weight]], tf.float32)
        )
        bias_var = tf.compat.v1.get_variable("dense/bias", initializer=tf.constant([bias]))
        output = tf.identity(tf.matmul(features, kernel) + bias_var, name="output")
        sess.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(path))
        sig = tf.compat.v1.saved_model.predict_signature_def(
            inputs={"number": number}, outputs={"output": output}
        )
        builder.add_meta_graph_and_variables(
            sess,
            [tf.compat.v1.saved_model.tag_constants.SERVING],
            signature_def_map={"serving_default": sig, "predict": sig},
        )
        builder.save()
    return path


def estimator_version(root: Path, version: int, weight: float, bias: float = 0.0) -> Path:
    """``estimator_export`` into ``root/<version>`` via a temp dir and a rename."""
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f"temp-{version}"
    estimator_export(staging, weight, bias)
    final = root / str(version)
    os.rename(staging, final)
    return final


def graph_version(
    root: Path, version: int, blocking_on: Path | None = None, tags: tuple[str, ...] = ("serve",)
) -> Path:
    """A half_plus_two TF1 export (``x`` -> ``y``, serving_default only) into
    ``root/<version>``. With ``blocking_on``, its load waits until the test reads that named
    pipe (its main_op writes to it): a slow load the test ends. ``tags``: its MetaGraph's tag
    set."""
    staging = root / f"temp-{version}"
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        x = tf.compat.v1.placeholder(tf.float32, [None, 1], name="x")
        y = tf.identity(0.5 * x + 2.0, name="y")
        builder = tf.compat.v1.saved_model.Builder(str(staging))
        sig = tf.compat.v1.saved_model.predict_signature_def(inputs={"x": x}, outputs={"y": y})
        if blocking_on is not None:
            os.mkfifo(blocking_on)
        builder.add_meta_graph_and_variables(
            sess,
            list(tags),
            signature_def_map={"serving_default": sig},
            main_op=tf.io.write_file(str(blocking_on), "loaded") if blocking_on else None,
        )
        builder.save()
    final = root / str(version)
    os.rename(staging, final)
    return final


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on a metrics port, by (name, sorted labels)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of the ``name`` samples carrying ``labels`` (and any others)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, what: str = "", interval: float = 0.02
) -> Any:
    """Polls ``predicate`` every ``interval`` seconds until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@contextmanager
def serving(
    root: Path,
    name: str = "m",
    wait: bool = True,
    metrics_port: int | None = None,
    admin_token: str | None = None,
    token: str | None = None,
    **model_kwargs: Any,
) -> Iterator[App]:
    """A started server on 127.0.0.1:<free port> for one model; stopped on exit."""
    model_kwargs.setdefault("poll_seconds", 0.1)
    settings = Settings(
        models=(ModelSettings(name=name, export_root=root, **model_kwargs),),
        host="127.0.0.1",
        port=0,
        grace_seconds=5.0,
        metrics_port=metrics_port,
        admin_token=admin_token,
        token=token,
    )
    with serving_settings(settings, wait) as server:
        yield server


@contextmanager
def serving_process(
    root: Path, name: str, *flags: str, rest: bool = False
) -> Iterator[ServerProcess]:
    """``swapserve`` started from its console script for one model (HTTP too with ``rest``),
    once the model serves; stopped on exit. Nothing of the test process is in the server."""
    from swapserve_client import Client

    server = ServerProcess(
        "--model-name", name, "--export-root", str(root), *(("--rest-port", "0") if rest else ()),
        *flags,
    )  # fmt: skip
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            wait_for(lambda: client.model_status(name).serving_version, 60, f"{name} to serve")
        if rest:
            server.rest_port
        yield server
    finally:
        server.stop()


@contextmanager
def serving_settings(settings: Settings, wait: bool = True) -> Iterator[App]:
    """A started server for ``settings`` (port 0 for tests); every model serves before it is
    yielded unless ``wait`` is false."""
    server = create_app(settings)
    server.start()
    try:
        if wait:
            for manager in server.registry:
                wait_for(lambda m=manager: m.status().serving_version, what="a version to serve")
        yield server
    finally:
        server.stop(grace=5.0)


def half_plus_two(x: np.ndarray) -> np.ndarray:
    return 0.5 * x + 2.0


class ServerProcess:
    """``swapserve`` run as its own process; its log is collected on a thread."""

    def __init__(
        self,
        *args: str,
        preexec_fn: Callable[[], None] | None = None,
        env: dict[str, str] | None = None,
        program: str = "swapserve",
    ) -> None:
        import re
        import subprocess
        import sys
        import threading

        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / program),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--drain-seconds",  # tests that drain pass their own (the last flag wins)
                "0",
                *args,
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
            preexec_fn=preexec_fn,  # noqa: PLW1509 (tests only; no threads touch the child)
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        match = wait_for(
            lambda: (
                next(
                    (
                        m
                        for line in list(self.lines)
                        if (m := re.search(r"listening on 127\.0\.0\.1:(\d+)", line))
                    ),
                    None,
                )
                or (self.proc.poll() is not None and "exited")
            ),
            timeout=120,
            what="the server to listen",
        )
        assert match != "exited", self.log
        self.port = int(match.group(1))  # type: ignore[union-attr]

    @property
    def rest_port(self) -> int:
        """The HTTP port (started with ``--rest-port 0``), from the log."""
        return self._logged_port(r"HTTP on [\d.]+:(\d+)", "the HTTP port")

    @property
    def metrics_port(self) -> int:
        """The metrics port (started with ``--metrics-port 0``), from the log."""
        return self._logged_port(r"metrics on http://[\d.]+:(\d+)", "the metrics port")

    def _logged_port(self, pattern: str, what: str) -> int:
        import re

        def found() -> re.Match[str] | None:
            return next((m for ln in list(self.lines) if (m := re.search(pattern, ln))), None)

        return int(wait_for(found, timeout=30, what=what).group(1))

    def fds(self) -> int:
        """Descriptors the server process has open now."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss(self) -> int:
        """The server's resident memory in bytes."""
        with open(f"/proc/{self.proc.pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 60) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()


class RolloutLoad:
    """Threads calling Predict on an estimator_version model until stopped, counting answers by
    the version that gave them. An error, or an answer that does not match the weights of the
    version it names (output = 2 * version * x for weight = version), goes to ``failures``."""

    def __init__(self, client: Any, model: str = "m", threads: int = 4) -> None:
        import threading
        from collections import Counter

        self._client, self._model = client, model
        self.seen: Counter[int] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> RolloutLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _run(self) -> None:
        from swapserve_client import SwapserveError

        x = {"number": np.ones([1, 1], np.float32)}
        while not self._stop.is_set():
            try:
                out = self._client.predict_full(self._model, x)
            except SwapserveError as err:
                self.failures.append(str(err))
                continue
            if float(out.outputs["output"][0, 0]) != 2.0 * out.version:
                self.failures.append(f"version {out.version} answered {out.outputs['output']}")
            self.seen[out.version] += 1


class CallLoad:
    """Threads calling ``calls`` round-robin until stopped: the load a test keeps running
    *through* the event it tests. Each exception is kept as ``"CODE: message"`` (gRPC errors)
    or its repr; ``ok`` counts answers."""

    def __init__(self, calls: list[Callable[[], Any]], threads: int = 4) -> None:
        import threading

        self._calls = calls
        self.ok = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()  # guards ok and errors
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> CallLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def wait_for_answers(self, count: int, timeout: float = 30.0) -> None:
        """Waits until ``count`` more calls have been answered (the load is really running)."""
        start = self.ok
        wait_for(lambda: self.ok >= start + count, timeout, what=f"{count} answers")

    def _run(self, index: int) -> None:
        import grpc

        from swapserve_client import SwapserveError

        i = index
        while not self._stop.is_set():
            call = self._calls[i % len(self._calls)]
            i += 1
            try:
                call()
            except grpc.RpcError as err:
                with self._lock:
                    self.errors.append(f"{err.code().name}: {err.details()}")  # type: ignore[attr-defined]
                continue
            except SwapserveError as err:
                with self._lock:
                    self.errors.append(str(err))
                continue
            except Exception as err:  # every failure is the test's finding
                status = getattr(err, "status", None)  # tritonclient's InferenceServerException
                text = (
                    f"{str(status()).removeprefix('StatusCode.')}: {err}"
                    if callable(status)
                    else repr(err)
                )
                with self._lock:
                    self.errors.append(text)
                continue
            with self._lock:
                self.ok += 1


def servicer(manager: ModelManager, access: Access) -> PredictionServicer:
    """The swapserve.v1 servicer over one model, built as the app builds it."""
    metrics = Metrics()
    registry = ModelRegistry([manager], metrics)
    gate = CallGate()
    dataplane = DataPlane(registry, gate, metrics.stats)
    calls = CallPath(CallRecorder(metrics, dataplane.known), access)
    return PredictionServicer(dataplane, Admin(registry, gate), calls)
