"""Compile protos/tensorflow_serving and protos/inference into the server's descriptor sets.

The server carries its TF Serving and KServe V2 API as serialized FileDescriptorSets (package
data in server/swapserve/apis/), loaded at run time into a private descriptor pool: that keeps
``tensorflow-serving-api`` (which depends on the full ``tensorflow`` wheel) and ``tritonclient``
out of the runtime, and never clashes with those packages' own stubs when a process imports both
(tests do). Imports from outside protos/ (``tensorflow/core/...``, ``google/protobuf/...``) are
taken from the installed tensorflow and protobuf packages, so they always match what the server
runs with; the output holds only our own files. Run by ``make protos``; ``make lint`` checks that
the committed sets match protos/.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_tools import protoc

# The imports come from tensorflow's modules: importing them starts TensorFlow, quietly.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent
SETS = {
    "tfserving.binpb": "tensorflow_serving",
    "kserve_v2.binpb": "inference",
}
_IMPORT = re.compile(r'^import\s+"([^"]+)";', re.MULTILINE)


def _external_imports(files: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in files:
        for name in _IMPORT.findall(path.read_text()):
            if not (ROOT / name).exists():
                names.add(name)
    return names


def _installed_closure(names: set[str]) -> descriptor_pb2.FileDescriptorSet:
    """The installed descriptors of ``names`` and everything they import, dependencies first."""
    for name in names:
        importlib.import_module(name.removesuffix(".proto").replace("/", ".") + "_pb2")
    pool = descriptor_pool.Default()
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        file = pool.FindFileByName(name)
        for dep in file.dependencies:
            visit(dep.name)
        ordered.append(name)

    for name in sorted(names):
        visit(name)
    out = descriptor_pb2.FileDescriptorSet()
    for name in ordered:
        out.file.add().MergeFromString(pool.FindFileByName(name).serialized_pb)
    return out


def build(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for out_name, tree in SETS.items():
        files = sorted((ROOT / tree).rglob("*.proto"))
        deps = _installed_closure(_external_imports(files))
        with tempfile.TemporaryDirectory() as tmp:
            deps_path = Path(tmp) / "deps.binpb"
            deps_path.write_bytes(deps.SerializeToString(deterministic=True))
            args = [
                "protoc",
                f"--descriptor_set_in={deps_path}",
                f"-I{ROOT}",
                f"--descriptor_set_out={out_dir / out_name}",
                *(str(f) for f in files),
            ]
            if protoc.main(args) != 0:
                sys.exit(f"protoc failed on protos/{tree}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT.parent / "server" / "swapserve" / "apis" / "descriptors"
    )
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
