"""Module boundaries the design depends on, checked on the real import graph."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE = (
    "swapserve.model.policy",
    "swapserve.model.records",
    "swapserve.model.discovery",
    "swapserve.model.serving",
    "swapserve.model.source",
    "swapserve.model.loading",
    "swapserve.model.manager",
    "swapserve.model.registry",
    "swapserve.model.watcher",
    "swapserve.model.config_poll",
    "swapserve.dataplane",
    "swapserve.dataplane_types",
    "swapserve.coordination",
    "swapserve.calls",
    "swapserve.stats",
    "swapserve.access_log",
    "swapserve.sources",
    "swapserve.args",
    "swapserve.settings",
    "swapserve.config_file",
    "swapserve.errors",
)
TENSORFLOW_FREE = (
    *CORE,
    "swapserve.tfserving_config",
    "swapserve.triton_config",
    "swapserve.model.batching",
    "swapserve.apis.pool",
    "swapserve.cluster.metrics_merge",
    "swapserve.cluster.supervisor",
    "swapserve.codecs.kserve_v2",
    "swapserve.codecs.swapserve_v1",
    "swapserve_client",
    "swapserve_client.tensors",
)


def _imported(modules: tuple[str, ...]) -> set[str]:
    code = textwrap.dedent(
        f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        print("\\n".join(sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO
    )
    return set(out.stdout.split())


def test_core_imports_no_grpc_protobuf_or_tensorflow() -> None:
    """The model core and the data plane: no transport, no generated code, no TensorFlow."""
    loaded = _imported(CORE)
    for banned in ("tensorflow", "grpc", "google.protobuf", "swapserve_client._proto"):
        found = sorted(m for m in loaded if m == banned or m.startswith(banned + "."))
        assert not found, f"the core imports {banned}: {found[:5]}"


def test_unit_tested_modules_import_no_tensorflow() -> None:
    loaded = _imported(TENSORFLOW_FREE)
    assert "tensorflow" not in loaded


def test_modules_stay_small() -> None:
    """One concern per module: none grows past ~400 lines."""
    sizes = {
        str(p.relative_to(REPO)): len(p.read_text().splitlines())
        for p in (REPO / "server" / "swapserve").rglob("*.py")
    }
    assert max(sizes.values()) <= 420, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_transports_reach_models_only_through_the_data_plane() -> None:
    """No servicer or codec imports the registry, a manager, the serving map or a loaded version:
    every version and label is resolved in ``swapserve.dataplane``."""
    import ast

    reaching = {"registry", "manager", "serving", "loaded", "loading", "source", "policy"}
    for package in ("transport", "codecs"):
        for path in (REPO / "server" / "swapserve" / package).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    parts = node.module.split(".")
                    assert not (parts[:2] == ["swapserve", "model"] and reaching & set(parts)), (
                        f"{path.name} imports {node.module}"
                    )


def test_dtype_table_matches_the_api() -> None:
    """``swapserve_client.dtypes`` repeats the DataType enum without importing it."""
    from swapserve_client import dtypes
    from swapserve_client._proto.swapserve.v1 import prediction_pb2 as pb

    enum = {v.number: v.name for v in pb.DESCRIPTOR.enum_types_by_name["DataType"].values}
    assert enum == dtypes.DTYPE_NAMES


def test_runtime_and_dev_pins_are_current_and_apart() -> None:
    """requirements-runtime.lock is the server's run-time closure (what the Docker image
    installs), requirements-dev.lock the rest; both match what is installed."""
    out = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "split_lock.py"), "--check"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    names = {
        kind: {
            line.split("==")[0].lower()
            for line in (REPO / f"requirements-{kind}.lock").read_text().splitlines()
            if "==" in line
        }
        for kind in ("runtime", "dev")
    }
    assert not names["runtime"] & names["dev"]
    assert {"pytest", "moto", "hypothesis", "mypy"} <= names["dev"]
    assert not {"pytest", "moto", "hypothesis", "mypy", "sympy"} & names["runtime"]
