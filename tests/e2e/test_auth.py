"""Bearer tokens: admin RPCs and data RPCs, on every protocol; health stays open."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from helpers import estimator_version, serving
from swapserve.config.model_settings import ModelSettings, SettingsError
from swapserve.config.settings import Settings
from swapserve_client import Client, SwapserveError
from swapserve_client import cli as client_cli

ADMIN = "admin-token-0123456789abcdef"
DATA = "data-token-0123456789abcdef"
X = {"number": np.ones([1, 1], np.float32)}


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_tokens_gate_admin_and_data_rpcs(tmp_path: Path) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with serving(tmp_path, poll_seconds=600, admin_token=ADMIN, token=DATA) as server:
        target = f"127.0.0.1:{server.port}"
        with Client(target) as anonymous, pytest.raises(SwapserveError) as exc:
            anonymous.predict("m", X)
        assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert "needs an 'authorization: Bearer <token>' header" in exc.value.message
        with (
            Client(target, metadata=bearer("wrong-token-0123456789")) as wrong,
            pytest.raises(SwapserveError) as exc,
        ):
            wrong.predict("m", X)
        assert exc.value.code == grpc.StatusCode.PERMISSION_DENIED
        with Client(target, metadata=bearer(DATA)) as data:
            assert data.predict_full("m", X).version == 1
            with pytest.raises(SwapserveError) as exc:
                data.reload("m")  # the data token is not an admin token
            assert exc.value.code == grpc.StatusCode.PERMISSION_DENIED
            assert "invalid admin token" in exc.value.message
        estimator_version(tmp_path, 2, weight=2.0)
        with Client(target, metadata=bearer(ADMIN)) as admin:
            assert admin.reload("m").version == 2  # admin token: any peer, all RPCs
            assert admin.predict_full("m", X).version == 2
        # V2 clients send the same header.
        v2 = triton.InferenceServerClient(target)
        inp = triton.InferInput("number", [1, 1], "FP32")
        inp.set_data_from_numpy(X["number"])
        with pytest.raises(InferenceServerException) as v2exc:
            v2.infer("m", [inp])
        assert v2exc.value.status() == "StatusCode.UNAUTHENTICATED"
        result = v2.infer("m", [inp], headers={"authorization": f"Bearer {DATA}"})
        np.testing.assert_allclose(result.as_numpy("output"), [[4.0]])
        with pytest.raises(InferenceServerException) as v2exc:
            v2.load_model("m", headers={"authorization": f"Bearer {DATA}"})
        assert v2exc.value.status() == "StatusCode.PERMISSION_DENIED"
        v2.load_model("m", headers={"authorization": f"Bearer {ADMIN}"})
        v2.close()
        # Probes need no token.
        with grpc.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING


def test_client_cli_sends_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    estimator_version(tmp_path / "root", 1, weight=1.0)
    token_file = tmp_path / "token"
    token_file.write_text(DATA + "\n")
    with serving(tmp_path / "root", poll_seconds=600, token=DATA) as server:
        target = f"--target=127.0.0.1:{server.port}"
        assert client_cli.run([target, "status", "m"]) == 1
        assert capsys.readouterr().err.startswith("UNAUTHENTICATED:")
        assert client_cli.run([target, f"--token-file={token_file}", "status", "m"]) == 0
        monkeypatch.setenv("SWAPSERVE_TOKEN", DATA)
        assert client_cli.run([target, "predict", "m", "--input", "number=[[1.0]]"]) == 0


def test_weak_tokens_are_refused() -> None:
    with pytest.raises(SettingsError, match="admin token must be at least 16"):
        Settings(models=(ModelSettings("m", Path("/tmp")),), admin_token="short").validate()


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer ", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(tmp_path: Path, scheme: str) -> None:
    estimator_version(tmp_path, 1, weight=1.0)
    with serving(tmp_path, poll_seconds=600, admin_token=ADMIN, token=DATA) as server:
        target = f"127.0.0.1:{server.port}"
        with Client(target, metadata=[("authorization", f"{scheme} {DATA}")]) as client:
            assert client.predict_full("m", X).version == 1  # before: UNAUTHENTICATED
        with Client(target, metadata=[("authorization", f"{scheme} {ADMIN}")]) as admin:
            assert admin.reload("m").version == 1
        with Client(target, metadata=[("authorization", f"Basic {DATA}")]) as other:
            with pytest.raises(SwapserveError) as exc:
                other.predict("m", X)
            assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_with_only_a_data_token_admin_calls_need_it_too(tmp_path: Path) -> None:
    """Before: with only --token-file, Reload from loopback needed no token at all."""
    estimator_version(tmp_path, 1, weight=1.0)
    with serving(tmp_path, poll_seconds=600, token=DATA) as server:
        target = f"127.0.0.1:{server.port}"
        with Client(target) as anonymous, pytest.raises(SwapserveError) as exc:
            anonymous.reload("m")
        assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert "needs an 'authorization: Bearer <token>' header" in exc.value.message
        with Client(target, metadata=bearer("wrong-token-0123456789")) as wrong:
            with pytest.raises(SwapserveError) as exc:
                wrong.reload("m")
            assert exc.value.code == grpc.StatusCode.PERMISSION_DENIED
        with Client(target, metadata=bearer(DATA)) as data:
            assert data.reload("m").version == 1  # from loopback, with the data token
