"""swapserve.apis: our TF Serving and KServe V2 messages in a private pool. No TensorFlow."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from swapserve.apis import kserve_v2, pool, tfserving


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], check=True, capture_output=True, text=True
    )
    return out.stdout


def test_config_messages_import_no_tensorflow_and_live_beside_the_reference_stubs() -> None:
    """Reading configs needs no TensorFlow; and the reference stubs, which register the same
    names in protobuf's default pool, load in the same process without a clash."""
    out = _run(
        """
        import sys
        from swapserve.apis import kserve_v2, pool, tfserving
        config = tfserving.ModelServerConfig()
        config.model_config_list.config.add(name="m", base_path="/m")
        tfserving.BatchingParameters(); tfserving.MonitoringConfig(); kserve_v2.ModelConfig()
        kserve_v2.ModelInferRequest()
        from tensorflow_serving.config import model_server_config_pb2
        from tritonclient.grpc import model_config_pb2
        theirs = model_server_config_pb2.ModelServerConfig.FromString(config.SerializeToString())
        print(theirs.model_config_list.config[0].name)
        print(model_config_pb2.ModelConfig.DESCRIPTOR is not kserve_v2.ModelConfig.DESCRIPTOR)
        print("tensorflow" in sys.modules)
        """
    )
    assert out.split() == ["m", "True", "False"]


# TF Serving publishes these in session_bundle_config.proto, monitoring_config.proto and
# ssl_config.proto; its
# Python wheel ships no module for them, so the numbers are checked here.
BATCHING = {
    "max_batch_size": 1,
    "batch_timeout_micros": 2,
    "max_enqueued_batches": 3,
    "num_batch_threads": 4,
    "thread_pool_name": 5,
    "allowed_batch_sizes": 6,
    "pad_variable_length_inputs": 7,
    "enable_large_batch_splitting": 8,
    "max_execution_batch_size": 9,
}


def test_messages_the_reference_wheel_lacks_have_the_published_numbers() -> None:
    fields = tfserving.BatchingParameters.DESCRIPTOR.fields_by_name
    assert {name: f.number for name, f in fields.items()} == BATCHING
    monitoring = tfserving.MonitoringConfig.DESCRIPTOR.fields_by_name
    assert monitoring["prometheus_config"].number == 1
    prometheus = tfserving.PrometheusConfig.DESCRIPTOR.fields_by_name
    assert (prometheus["enable"].number, prometheus["path"].number) == (1, 2)
    ssl = tfserving.SSLConfig.DESCRIPTOR.fields_by_name
    assert {name: f.number for name, f in ssl.items()} == {
        "server_key": 1, "server_cert": 2, "custom_ca": 3, "client_verify": 4,
    }  # fmt: skip


def test_one_class_per_message() -> None:
    """Every module sees the same class: a message of one pool fits a field of the same pool."""
    assert pool.message_class("tensorflow.serving.ModelServerConfig") is tfserving.ModelServerConfig
    config = kserve_v2.ModelConfig()
    config.dynamic_batching.CopyFrom(kserve_v2.ModelDynamicBatching(preferred_batch_size=[4]))
    assert list(config.dynamic_batching.preferred_batch_size) == [4]


@pytest.mark.parametrize("name", ["NoSuchMessage", "_private"])
def test_unknown_names_raise_attribute_error(name: str) -> None:
    with pytest.raises(AttributeError):
        getattr(kserve_v2, name)


def test_a_server_without_tensorflow_says_which_extra_to_install(tmp_path: Path) -> None:
    """swapserve without TensorFlow (installed with neither [cpu] nor [gpu]) exits at once with
    the fix, instead of an ImportError traceback."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['tensorflow'] = None\n"
            "from swapserve.cli import main\n"
            f"main(['--model-name', 'm', '--export-root', {str(tmp_path)!r}])",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "TensorFlow is not installed" in out.stderr
    assert "'swapserve[cpu]'" in out.stderr and "'swapserve[gpu]'" in out.stderr
