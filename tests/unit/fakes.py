"""Fakes for the unit layer: a loaded version without TensorFlow, and export roots on disk whose
``saved_model.pb`` says whether the fake loader accepts it."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from swapserve.config.model_settings import SessionSettings
from swapserve.errors import LoadError
from swapserve.model.outcomes import WarmupRequest
from swapserve.model.signature import (
    DEFAULT_SIGNATURE,
    SignatureSpec,
    TensorSpec,
    unknown_signature,
)

SIGNATURE = SignatureSpec(
    DEFAULT_SIGNATURE,
    "tensorflow/serving/predict",
    inputs={"x": TensorSpec("x", "x:0", 1, (-1,))},
    outputs={"y": TensorSpec("y", "y:0", 1, (-1,))},
)


RENAMED = SignatureSpec(
    DEFAULT_SIGNATURE,
    "tensorflow/serving/predict",
    inputs={"z": TensorSpec("z", "z:0", 1, (-1,))},
    outputs={"y": TensorSpec("y", "y:0", 1, (-1,))},
)

BEHAVIOURS = ("good", "nan", "renamed", "nan-above-1")
"""What a fake version's graph file may say: answer y = version * x; answer NaN; take input
``z`` instead of ``x``; answer NaN where x > 1 (passes a warm-up on zeros)."""


def write_version(
    root: Path, version: int, good: bool = True, complete: bool = True, behaviour: str = "good"
) -> Path:
    """``root/<version>`` with a variables file and, when complete, a graph file whose content
    tells ``FakeLoader`` to accept it (``good``, with one of ``BEHAVIOURS``) or refuse it."""
    path = root / str(version)
    (path / "variables").mkdir(parents=True, exist_ok=True)
    (path / "variables" / "variables.index").write_bytes(b"index")
    graph = path / "saved_model.pb"
    if complete:
        graph.write_bytes(behaviour.encode() if good else b"broken graph")
    elif graph.exists():
        graph.unlink()
    return path


def remove_version(root: Path, version: int) -> None:
    shutil.rmtree(root / str(version), ignore_errors=True)


class FakeVersion:
    """Answers y = version * x on ``serving_default``; counts itself open in its loader."""

    def __init__(self, version: int, loader: FakeLoader, behaviour: str = "good") -> None:
        self.version = version
        self.behaviour = behaviour
        self.warmup_requests: list[Any] = []
        self.path = Path()
        self.load_seconds = 0.001
        self.run_thread = "caller"
        self.run_thread_timing: tuple[float, float] | None = None
        self.signatures = {DEFAULT_SIGNATURE: RENAMED if behaviour == "renamed" else SIGNATURE}
        self.signature_defs: dict[str, Any] = {}
        self._loader = loader
        self.closed = False

    def prepare(
        self, signature: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
    ) -> tuple[SignatureSpec, tuple[str, ...]]:
        sig = self.signatures.get(signature or DEFAULT_SIGNATURE)
        if sig is None:
            raise unknown_signature(signature, self.signatures)
        sig.validate(inputs)
        return sig, sig.select_outputs(output_filter)

    def execute(
        self, sig: SignatureSpec, wanted: tuple[str, ...], inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        x = next(iter(inputs.values()))
        y = x * self.version
        if self.behaviour == "nan":
            y = np.full_like(y, np.nan)
        elif self.behaviour == "nan-above-1":
            y = np.where(x > 1, np.nan, y).astype(y.dtype)
        return {"y": y}

    def run(
        self, signature: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
    ) -> tuple[str, dict[str, np.ndarray]]:
        sig, wanted = self.prepare(signature, inputs, output_filter)
        return sig.name, self.execute(sig, wanted, inputs)

    def run_examples(
        self, signature: str, serialized: np.ndarray, method: str
    ) -> tuple[str, dict[str, np.ndarray]]:
        raise unknown_signature(signature, self.signatures)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loader.closed(self.version)


class FakeLoader:
    """``ModelManager``'s loader: refuses a graph file that does not say ``good``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.loads: Counter[int] = Counter()
        self.open: Counter[int] = Counter()
        self.max_open: Counter[int] = Counter()

    def __call__(
        self, version: int, path: Path, session: SessionSettings, warm_up: bool, rows: int
    ) -> FakeVersion:
        behaviour = (path / "saved_model.pb").read_bytes().decode(errors="replace")
        if behaviour not in BEHAVIOURS:
            raise LoadError(f"version {version} is broken")
        with self._lock:
            self.loads[version] += 1
            self.open[version] += 1
            self.max_open[version] = max(self.max_open[version], self.open[version])
        loaded = FakeVersion(version, self, behaviour)
        if warm_up:
            zeros = {
                name: np.zeros(1, np.float32)
                for name in loaded.signatures[DEFAULT_SIGNATURE].inputs
            }
            loaded.warmup_requests = [WarmupRequest(DEFAULT_SIGNATURE, zeros)]
        return loaded

    def closed(self, version: int) -> None:
        with self._lock:
            self.open[version] -= 1
