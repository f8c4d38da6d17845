"""Writes one FileDescriptorSet holding TF Serving's API (ours, protos/tensorflow_serving) and
every TensorFlow and protobuf file it imports, taken from the installed packages as the server's
own descriptor sets are (protos/build_descriptors.py). protoc reads it with --descriptor_set_in
to generate TF Serving's messages in another language: TensorFlow's .proto sources are not in
this repository.

    python tests/clients/descriptors.py OUT.binpb
"""

from __future__ import annotations

import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "protos"))

import build_descriptors  # noqa: E402 (protos/ is not a package)


def closure() -> descriptor_pb2.FileDescriptorSet:
    """TF Serving's files and their imports, dependencies first."""
    ours = descriptor_pb2.FileDescriptorSet.FromString(
        (REPO / "server/swapserve/apis/descriptors/tfserving.binpb").read_bytes()
    )
    names = {f.name for f in ours.file}
    external = {d for f in ours.file for d in f.dependency if d not in names}
    deps = build_descriptors._installed_closure(external)
    return descriptor_pb2.FileDescriptorSet(file=[*deps.file, *ours.file])


if __name__ == "__main__":
    Path(sys.argv[1]).write_bytes(closure().SerializeToString(deterministic=True))
