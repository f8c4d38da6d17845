"""``tensorflow_model_server``'s command line, translated into swapserve's.

A TF Serving deployment's entrypoint (``--model_name=m --model_base_path=/models/m
--rest_api_port=8501 …``) should start swapserve unchanged. ``translate`` rewrites the flags
whose meaning swapserve has into its own spelling, accepts those that only tune TF Serving's
internals (with a warning naming each), and refuses those whose meaning it cannot keep with a
message saying what to use instead -- never a bare "unrecognized arguments". Our own flags may be
spelled with underscores too (``--export_root``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path

from swapserve.config import text_files
from swapserve.config.model_settings import SettingsError

RENAMED = {
    "port": "--port",
    "rest_api_port": "--rest-port",
    "model_name": "--model-name",
    "model_base_path": "--export-root",
    "model_config_file": "--config",
    "file_system_poll_wait_seconds": "--poll-seconds",
    "enable_batching": "--enable-batching",
    "tensorflow_intra_op_parallelism": "--intra-op-threads",
    "tensorflow_inter_op_parallelism": "--inter-op-threads",
    "grpc_max_threads": "--grpc-threads",
    "model_config_file_poll_wait_seconds": "--config-poll-seconds",
    "monitoring_config_file": "--rest-metrics-path",
    "version": "--version",
    "grpc_channel_arguments": "--grpc-channel-arguments",
    "grpc_socket_path": "--grpc-socket-path",
    "rest_api_enable_cors_support": "--cors",
    "enable_per_model_batching_parameters": "--version-batching-file",
    "saved_model_tags": "--saved-model-tags",
}
"""TF Serving flag -> ours, same meaning (special values are handled in ``translate``)."""

BOOLEAN = {
    "enable_batching", "enable_model_warmup", "version",
    "allow_version_labels_for_unavailable_models", "flush_filesystem_caches",
    "xla_cpu_compilation_enabled", "xla_gpu_compilation_enabled", "enable_profiler",
    "remove_unused_fields_from_bundle_metagraph", "enable_signature_method_name_check",
    "enable_grpc_healthcheck_service", "enable_serialization_as_tensor_content",
    "skip_initialize_tpu", "use_alts_credentials", "prefer_tflite_model",
    "rest_api_enable_cors_support", "enable_per_model_batching_parameters",
}  # fmt: skip
"""Flags TF Serving parses as booleans: ``--flag``, ``--flag=true|false`` (no separate value)."""

IGNORED = {
    "rest_api_num_threads": "HTTP requests run on --grpc-threads threads",
    "num_load_threads": "versions load one at a time per model, off the request path",
    "num_unload_threads": "versions unload once their requests finish",
    "max_num_load_retries": "a failed version is retried when its files change or on Reload",
    "load_retry_interval_micros": "a failed version is retried when its files change",
    "flush_filesystem_caches": "no effect here",
    "per_process_gpu_memory_fraction": "swapserve serves on the CPU",
    "xla_cpu_compilation_enabled": "graphs run as exported",
    "xla_gpu_compilation_enabled": "swapserve serves on the CPU",
    "enable_profiler": "no profiler service",
    "remove_unused_fields_from_bundle_metagraph": "no effect here",
    "enable_signature_method_name_check": "classify/regress accept any signature of their shape",
    "num_request_iterations_for_warmup": "each warm-up record runs once",
    "enable_grpc_healthcheck_service": "grpc.health.v1 is always on",
    "enable_serialization_as_tensor_content": "tensors are answered as tensor_content",
    "skip_initialize_tpu": "no TPU",
    "allow_version_labels_for_unavailable_models": "always allowed: such a label answers "
    "NOT_FOUND until its version serves",
    "prefer_tflite_model": "the SavedModel beside the TFLite model is served",
    "num_tflite_pools": "TFLite models are not served",
    "num_tflite_interpreters_per_pool": "TFLite models are not served",
    "mixed_precision": "graphs run as exported (float32 where they were exported so)",
}
"""Accepted and ignored, with a warning: they tune TF Serving internals, not results."""

REFUSED = {
    "use_alts_credentials": "use --tls-cert and --tls-key",
    "platform_config_file": "swapserve serves TensorFlow SavedModels only",
    "thread_pool_factory_config_file": "use --intra-op-threads and --inter-op-threads",
}
"""Refused with what to use instead: their meaning cannot be kept, and ignoring them would
serve something other than what was asked (no TLS, another platform, …)."""


TAKES_VALUE = (
    set(RENAMED)
    | set(IGNORED)
    | set(REFUSED)
    | {"tensorflow_session_parallelism", "batching_parameters_file", "rest_api_timeout_in_ms"}
    | {"ssl_config_file", "tensorflow_session_config_file"}
) - BOOLEAN


def _truth(flag: str, value: str | None) -> bool:
    if value is None or value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise SettingsError(f"--{flag}={value}: expected true or false")


def translate(argv: Sequence[str], ours: Iterable[str]) -> tuple[list[str], list[str]]:
    """Rewrites TF Serving flags in ``argv`` into swapserve's.

    Args:
        argv: the command line (without the program name).
        ours: swapserve's option strings (``--model-name``, …), for the underscore spelling.

    Returns:
        The translated command line and one warning per ignored flag.

    Raises:
        SettingsError: a flag swapserve refuses, naming it and what to use instead.
    """
    known = set(ours)
    out: list[str] = []
    warnings: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("--") or arg == "--":
            out.append(arg)
            continue
        name, eq, inline = arg[2:].partition("=")
        value: str | None = inline if eq else None
        if name in TAKES_VALUE and value is None and i < len(args):
            value = args[i]
            i += 1
        if name in TAKES_VALUE or name in BOOLEAN:
            out += _one(name, value, warnings)
            continue
        dashed = "--" + name.replace("_", "-")
        if "_" in name and dashed in known:
            out.append(dashed + (eq + inline if eq else ""))
            continue
        out.append(arg)
    return out, warnings


def _one(name: str, value: str | None, warnings: list[str]) -> list[str]:
    """Our flags for one TF Serving flag (appending a warning if it is ignored)."""
    if name in REFUSED:
        if name in BOOLEAN and not _truth(name, value):
            return []  # turned off: nothing to refuse
        raise SettingsError(f"--{name} (TensorFlow Serving) is not supported: {REFUSED[name]}")
    if name in IGNORED:
        warnings.append(f"--{name} (TensorFlow Serving) is ignored: {IGNORED[name]}")
        return []
    if name == "enable_model_warmup":
        return [] if _truth(name, value) else ["--no-warm-up"]
    if name in BOOLEAN:  # enable_batching, version, rest_api_enable_cors_support
        return [RENAMED[name]] if _truth(name, value) else []
    if value is None:
        return [RENAMED.get(name, "--" + name)]  # our parser reports the missing value
    if name == "rest_api_port" and value.strip() == "0":
        return []  # TF Serving: 0 turns the REST API off (ours: 0 = any free port)
    if name == "batching_parameters_file":
        return _batching_flags(value)
    if name == "monitoring_config_file":
        return _monitoring_flags(value)
    if name == "ssl_config_file":
        return _ssl_flags(value)
    if name == "tensorflow_session_config_file":
        return _session_flags(value, warnings)
    if name == "model_config_file_poll_wait_seconds" and _number(value) <= 0:
        return []  # TF Serving: 0 reads the file once
    if name == "rest_api_timeout_in_ms":
        return [f"--rest-timeout-seconds={_number(value) / 1000:g}"] if _number(value) > 0 else []
    if name == "tensorflow_session_parallelism":
        return ["--intra-op-threads", value, "--inter-op-threads", value]
    if name == "file_system_poll_wait_seconds" and _number(value) <= 0:
        raise SettingsError(
            f"--{name}={value}: swapserve always watches the export root; give a positive interval"
        )
    return [RENAMED[name], value]


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 1.0  # our parser reports the bad number


def parse_argv(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``translate`` with swapserve's parser; a refused flag exits with its message (status 2)."""
    try:
        return translate(argv, parser._option_string_actions)
    except SettingsError as err:
        parser.error(str(err))


def _batching_flags(path: str) -> list[str]:
    """Our batching flags for a TF Serving ``BatchingParameters`` text file (they apply with
    ``--enable_batching``, as in TF Serving). A file that sets ``batch_timeout_micros`` gets
    TF Serving's timing (``--batching-mode timeout``); without one, our eager batcher."""
    from swapserve.config.tfserving import parse_batching_parameters  # noqa: PLC0415 (protobuf)

    text = text_files.read(Path(path), "--batching_parameters_file")
    values, allowed = parse_batching_parameters(text, Path(path).name)
    out = [f"--{key.replace('_', '-')}={value}" for key, value in values.items()]
    if "batch_timeout_micros" in values:  # the file gives a timeout: TF Serving's timing
        out.append("--batching-mode=timeout")
    return out + ([f"--allowed-batch-sizes={','.join(map(str, allowed))}"] if allowed else [])


def _monitoring_flags(path: str) -> list[str]:
    """``--rest-metrics-path`` for a TF Serving ``MonitoringConfig`` text file (nothing when its
    ``prometheus_config`` is not enabled)."""
    from swapserve.config.tfserving import parse_monitoring_config  # noqa: PLC0415 (protobuf)

    text = text_files.read(Path(path), "--monitoring_config_file")
    metrics_path = parse_monitoring_config(text, Path(path).name)
    return [f"--rest-metrics-path={metrics_path}"] if metrics_path else []


def _ssl_flags(path: str) -> list[str]:
    """``--tls-cert``/``--tls-key`` (and ``--tls-client-ca`` with ``client_verify``) for TF
    Serving's ``SSLConfig`` text file, whose PEM texts are written to a private temporary
    directory removed at exit."""
    import atexit  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from swapserve.config.tfserving import write_ssl_config  # noqa: PLC0415 (protobuf)

    text = text_files.read(Path(path), "--ssl_config_file")
    directory = Path(tempfile.mkdtemp(prefix="swapserve-tls-"))  # mode 0700
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    files = write_ssl_config(text, Path(path).name, directory)
    flags = {"cert": "--tls-cert", "key": "--tls-key", "client_ca": "--tls-client-ca"}
    return [f"{flags[name]}={file}" for name, file in files.items()]


def _session_flags(path: str, warnings: list[str]) -> list[str]:
    """``--intra-op-threads``/``--inter-op-threads`` for TF Serving's
    ``--tensorflow_session_config_file`` (a ``ConfigProto`` in text format); any other field it
    sets is named in a warning."""
    from tensorflow.core.protobuf import config_pb2  # noqa: PLC0415 (TensorFlow's own proto)

    from swapserve.config import text_proto  # noqa: PLC0415

    config = config_pb2.ConfigProto()
    text_proto.parse(text_files.read(Path(path), "--tensorflow_session_config_file"), config, path)
    used = {"intra_op_parallelism_threads", "inter_op_parallelism_threads"}
    others = sorted(f.name for f, _ in config.ListFields() if f.name not in used)
    if others:
        warnings.append(
            f"--tensorflow_session_config_file (TensorFlow Serving): {', '.join(others)} ignored; "
            "only the intra- and inter-op thread counts apply"
        )
    return [
        f"--intra-op-threads={config.intra_op_parallelism_threads}",
        f"--inter-op-threads={config.inter_op_parallelism_threads}",
    ]
