"""The API type stubs (``apis/tfserving.pyi``, ``apis/kserve_v2.pyi``) name exactly classes the
private pool hands out at run time, and mypy sees them as real message classes, not ``Any``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from swapserve.apis import kserve_v2, tfserving

REPO = Path(__file__).resolve().parents[2]
APIS = REPO / "server" / "swapserve" / "apis"


@pytest.mark.parametrize("module", [tfserving, kserve_v2])
def test_every_stub_name_resolves_to_a_message_of_the_pool(module: object) -> None:
    name = module.__name__.rsplit(".", 1)[1]  # type: ignore[attr-defined]
    stub = (APIS / f"{name}.pyi").read_text()
    names = re.findall(r"^from (\S+) import (\w+) as \2$", stub, re.M)
    assert len(names) > 20
    for stub_module, message in names:
        cls = getattr(module, message)
        proto_file = stub_module.removeprefix("swapserve.apis._typing.").replace(".", "/")
        assert cls.DESCRIPTOR.name == message
        assert cls.DESCRIPTOR.file.name.removesuffix(".proto") + "_pb2" == proto_file or (
            stub_module.startswith("google.protobuf")
        )


def test_mypy_sees_the_message_classes(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from swapserve.apis import tfserving, kserve_v2\n"
        "reveal_type(tfserving.PredictRequest().model_spec.name)\n"
        "reveal_type(kserve_v2.ModelInferRequest().inputs[0].shape)\n"
        "tfserving.PredictRequest().no_such_field\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--config-file",
         str(REPO / "pyproject.toml"), str(probe)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert 'Revealed type is "str"' in out.stdout, out.stdout
    assert "RepeatedScalarFieldContainer[int]" in out.stdout, out.stdout
    assert '"PredictRequest" has no attribute "no_such_field"' in out.stdout, out.stdout
