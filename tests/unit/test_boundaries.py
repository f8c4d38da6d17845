"""Module boundaries the design depends on, checked on the real import graph."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "server" / "swapserve"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(name: str) -> set[str]:
    """Every module ``name`` imports at run time, at module level or inside a function (a lazy
    import is still a dependency), resolved to the imported module where it is one of ours."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    # A package named only as the ``from`` part of ``from package import module`` is not a
    # dependency of its own (our packages' __init__ files are docstrings).
    packages = {m for m in found if m in MODULES and MODULES[m].name == "__init__.py"}
    return {m for m in found if m in MODULES or not m.startswith("swapserve.")} - packages - {name}


GRAPH = {name: _imports(name) for name in MODULES}


def _ours(imports: set[str]) -> set[str]:
    return {m for m in imports if m in MODULES and MODULES[m].name != "__init__.py"}


def test_no_import_cycles() -> None:
    """No module imports itself through others (TYPE_CHECKING imports aside)."""
    graph = {name: _ours(deps) for name, deps in GRAPH.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == [], " | ".join(" -> ".join(c) for c in cycles)


def test_few_modules_at_the_package_root() -> None:
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= 8, root


def test_modules_stay_small() -> None:
    """One concern per module: none grows past ~400 lines."""
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert max(sizes.values()) <= 420, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def _deps_under(prefix: str) -> dict[str, set[str]]:
    return {n: d for n, d in GRAPH.items() if n == prefix or n.startswith(prefix + ".")}


def _banned(imports: set[str], banned: tuple[str, ...]) -> set[str]:
    return {m for m in imports if any(m == b or m.startswith(b + ".") for b in banned)}


PROTOCOL_LIBRARIES = ("grpc", "grpc_health", "grpc_reflection", "aiohttp", "prometheus_client")
GENERATED = ("swapserve.apis", "swapserve_client._proto", "google.protobuf")


def test_model_core_imports_no_metrics_transport_or_generated_code() -> None:
    """The core reports through ``model/events.py`` hooks; it never imports metrics, a
    transport, a protocol library or generated protobuf (the call record and the plain
    statistics are the only observability modules it may name)."""
    allowed = {"swapserve.observability.calls", "swapserve.observability.stats"}
    for name, deps in _deps_under("swapserve.model").items():
        bad = _banned(deps, (*PROTOCOL_LIBRARIES, *GENERATED, "swapserve.transport",
                             "swapserve.dataplane", "swapserve.codecs", "swapserve.app"))  # fmt: skip
        bad |= {d for d in deps if d.startswith("swapserve.observability")} - allowed
        assert not bad, f"{name} imports {sorted(bad)}"


def test_data_plane_and_config_import_no_transport_or_protocol_library() -> None:
    for package in ("swapserve.dataplane", "swapserve.config"):
        for name, deps in _deps_under(package).items():
            bad = _banned(deps, (*PROTOCOL_LIBRARIES, "swapserve.transport", "swapserve.codecs"))
            if name not in (
                "swapserve.config.tfserving",
                "swapserve.config.triton",
                "swapserve.config.text_proto",
            ):
                bad |= _banned(deps, GENERATED)  # those two parse their formats' messages
            assert not bad, f"{name} imports {sorted(bad)}"


def test_only_the_http_hosting_modules_know_aiohttp() -> None:
    """The server, its connections and its body reader host; routes and the API never see it."""
    users = {n for n, deps in GRAPH.items() if _banned(deps, ("aiohttp",))}
    assert users == {
        "swapserve.transport.http.server",
        "swapserve.transport.http.connections",
        "swapserve.transport.http.bodies",
    }


def test_transports_reach_models_only_through_the_data_plane() -> None:
    """No servicer, route or codec imports the registry, a manager, the serving map or a loaded
    version: every version and label is resolved in ``swapserve.dataplane``."""
    for package in ("swapserve.transport", "swapserve.codecs"):
        for name, deps in _deps_under(package).items():
            bad = {d for d in deps if d.startswith("swapserve.model")}
            assert not bad, f"{name} imports {sorted(bad)}"


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


def test_codecs_import_without_the_core_metrics_or_tensorflow() -> None:
    """Importing every codec loads no model core, data-plane implementation, prometheus-client
    or TensorFlow (measured in a fresh interpreter)."""
    loaded = _imported(tuple(n for n in MODULES if n.startswith("swapserve.codecs.")))
    core = {"swapserve.model.manager", "swapserve.model.registry", "swapserve.model.serving",
            "swapserve.model.loaded_version", "swapserve.dataplane.requests",
            "swapserve.observability.metrics"}  # fmt: skip
    bad = sorted(
        m for m in loaded if m in core or m.split(".")[0] in ("tensorflow", "prometheus_client")
    )
    assert bad == []


CORE = tuple(
    n for n in MODULES
    if n.startswith(("swapserve.model.", "swapserve.dataplane.", "swapserve.config."))
    and n not in ("swapserve.model.loaded_version", "swapserve.model.warmup",
                  "swapserve.model.session_calls", "swapserve.config.tfserving",
                  "swapserve.config.triton", "swapserve.config.text_proto",
                  "swapserve.config.flags")
)  # fmt: skip
"""The core that imports without TensorFlow, grpc or protobuf: all of model/, dataplane/ and
config/ but the modules that run TensorFlow or parse TF Serving's and Triton's messages."""


def test_core_imports_no_grpc_protobuf_or_tensorflow() -> None:
    loaded = _imported(CORE)
    for banned in ("tensorflow", "grpc", "google.protobuf", "swapserve_client._proto",
                   "prometheus_client", "aiohttp"):  # fmt: skip
        found = sorted(m for m in loaded if m == banned or m.startswith(banned + "."))
        assert not found, f"the core imports {banned}: {found[:5]}"


def test_unit_tested_modules_import_no_tensorflow() -> None:
    extra = ("swapserve.config.tfserving", "swapserve.config.triton", "swapserve.config.flags",
             "swapserve.apis.pool", "swapserve.cluster.metrics_merge",
             "swapserve.cluster.supervisor", "swapserve_client", "swapserve_client.tensors",
             *(n for n in MODULES if n.startswith(("swapserve.codecs.", "swapserve.transport."))))  # fmt: skip
    loaded = _imported((*CORE, *extra))
    assert "tensorflow" not in loaded


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
