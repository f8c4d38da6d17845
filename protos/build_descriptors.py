"""Compile protos/tensorflow_serving and protos/inference into the server's descriptor sets.

The server carries its TF Serving and KServe V2 API as serialized FileDescriptorSets (package
data in server/swapserve/apis/), loaded at run time into a private descriptor pool: that keeps
``tensorflow-serving-api`` (which depends on the full ``tensorflow`` wheel) and ``tritonclient``
out of the runtime, and never clashes with those packages' own stubs when a process imports both
(tests do). Imports from outside protos/ (``tensorflow/core/...``, ``google/protobuf/...``) are
taken from the installed tensorflow and protobuf packages, so they always match what the server
runs with; the output holds only our own files. Run by ``make protos``; ``make lint`` checks that
the committed sets match protos/.

It also writes type stubs (``--pyi-out``): protoc's ``.pyi`` files for every file of the sets
(ours and the TensorFlow files they import, renamed under ``swapserve/apis/_typing/`` so their
imports resolve there) and ``apis/tfserving.pyi``/``apis/kserve_v2.pyi`` naming each message
class, so mypy and editors see the real classes the pool hands out at run time.
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
STUB_PREFIX = "swapserve/apis/_typing/"
# apis/<module>.pyi: the packages whose messages it names, first match wins (as at run time),
# and what the module defines besides its messages.
FACADES = {
    "tfserving": (
        ("tensorflow.serving.", "tensorflow.", "google.protobuf."),
        "PACKAGES: tuple[str, ...]\nPREDICTION_SERVICE: str\nMODEL_SERVICE: str\n",
    ),
    "kserve_v2": (("inference.",), "PACKAGE: str\nSERVICE: str\n"),
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


def _renamed(name: str) -> str:
    return name if name.startswith("google/protobuf/") else STUB_PREFIX + name


def build_stubs(sets: dict[str, descriptor_pb2.FileDescriptorSet], out_root: Path) -> None:
    """Type stubs for every file of ``sets`` (by facade module) under ``out_root`` (server/)."""
    typing_root = out_root / STUB_PREFIX
    if typing_root.exists():
        for old in sorted(typing_root.rglob("*.pyi"), reverse=True):
            old.unlink()
    merged: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for fds in sets.values():
        for file in fds.file:
            copy = descriptor_pb2.FileDescriptorProto()
            copy.CopyFrom(file)
            copy.name = _renamed(file.name)
            copy.dependency[:] = [_renamed(d) for d in file.dependency]
            merged[copy.name] = copy
    wanted = sorted(n for n in merged if n.startswith(STUB_PREFIX))
    with tempfile.TemporaryDirectory() as tmp:
        all_path = Path(tmp) / "all.binpb"
        all_set = descriptor_pb2.FileDescriptorSet(file=list(merged.values()))
        all_path.write_bytes(all_set.SerializeToString(deterministic=True))
        if protoc.main(["protoc", f"--descriptor_set_in={all_path}",
                        f"--pyi_out={out_root}", *wanted]) != 0:  # fmt: skip
            sys.exit("protoc failed writing the type stubs")
    for leaf in {typing_root, *(p.parent for p in typing_root.rglob("*.pyi"))}:
        directory = leaf
        while True:  # every package level needs an __init__.pyi for mypy
            (directory / "__init__.pyi").touch()
            if directory == typing_root:
                break
            directory = directory.parent
    for facade, ((*packages,), extra) in FACADES.items():
        lines: list[str] = []
        seen: set[str] = set()
        for package in packages:
            for file in merged.values():
                if file.package + "." != package:
                    continue
                module = file.name.removesuffix(".proto").replace("/", ".").replace("-", "_")
                for message in file.message_type:
                    if message.name in seen:
                        continue
                    seen.add(message.name)
                    lines.append(f"from {module}_pb2 import {message.name} as {message.name}")
        head = "# Generated by protos/build_descriptors.py: the message classes of the pool.\n\n"
        (out_root / "swapserve" / "apis" / f"{facade}.pyi").write_text(
            head + "\n".join(sorted(lines)) + "\n\n" + extra
        )


def build(out_dir: Path, stubs: Path | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    sets: dict[str, descriptor_pb2.FileDescriptorSet] = {}
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
        ours = descriptor_pb2.FileDescriptorSet.FromString((out_dir / out_name).read_bytes())
        sets[out_name] = descriptor_pb2.FileDescriptorSet(file=[*deps.file, *ours.file])
    if stubs is not None:
        build_stubs(sets, stubs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT.parent / "server" / "swapserve" / "apis" / "descriptors"
    )
    parser.add_argument(
        "--pyi-out", type=Path, default=None, help="write type stubs under this directory (server/)"
    )
    args = parser.parse_args()
    build(args.out, args.pyi_out)


if __name__ == "__main__":
    main()
