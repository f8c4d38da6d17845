"""``tritonserver``'s command line, translated into swapserve's.

A Triton deployment's entrypoint (``tritonserver --model-repository=/models --grpc-port=8001
--model-control-mode=poll …``) starts swapserve unchanged when run as ``tritonserver``: Triton's
ports are the defaults (HTTP 8000, gRPC 8001, metrics 8002), its flags keep their meaning, those
that tune Triton's internals are accepted with a warning, and the rest are refused saying why.
"""

from __future__ import annotations

from collections.abc import Sequence

from swapserve.config.model_settings import SettingsError

DEFAULTS = ("--port", "8001", "--rest-port", "8000", "--metrics-port", "8002")
"""Triton's ports, before the user's flags (a later flag wins)."""

RENAMED = {
    "grpc-port": "--port",
    "http-port": "--rest-port",
    "metrics-port": "--metrics-port",
    "model-repository": "--model-repository",
    "model-store": "--model-repository",
    "exit-timeout-secs": "--grace-seconds",
}

IGNORED = {
    "id": "no server id is reported",
    "strict-model-config": "config.pbtxt is optional; inputs and outputs it lists are checked "
    "against the signature",
    "strict-readiness": "readiness is every served model having a version (an unloaded one "
    "does not count)",
    "exit-on-error": "a model that fails to load is reported and the others serve",
    "backend-config": "TensorFlow runs in-process; use --intra-op-threads, --inter-op-threads",
    "backend-directory": "TensorFlow runs in-process",
    "repoagent-directory": "no repository agents",
    "pinned-memory-pool-byte-size": "swapserve serves on the CPU",
    "cuda-memory-pool-byte-size": "swapserve serves on the CPU",
    "min-supported-compute-capability": "swapserve serves on the CPU",
    "buffer-manager-thread-count": "no buffer manager",
    "model-load-thread-count": "versions load one at a time per model, off the request path",
    "rate-limit": "use --max-concurrent-rpcs",
    "log-info": "INFO is swapserve's default level",
    "log-warning": "warnings are always logged",
    "log-error": "errors are always logged",
    "log-format": "use --log-format json|text",
    "allow-gpu-metrics": "no GPU",
    "allow-cpu-metrics": "process CPU and memory are always exported",
    "metrics-interval-ms": "metrics are read when scraped",
    "grpc-infer-allocation-pool-size": "no allocation pool",
    "http-thread-count": "HTTP requests run on --grpc-threads threads",
    "disable-auto-complete-config": "config.pbtxt is never rewritten",
}
"""Accepted with a warning: they tune Triton's internals, not results."""

REFUSED = {
    "grpc-use-ssl": "use --tls-cert, --tls-key and --tls-client-ca (PEM files)",
    "trace-config": "use --otel (OpenTelemetry over OTLP)",
    "cache-config": "no response cache",
}
"""Refused at start: ignoring them would serve something other than what was asked."""


def translate(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Triton's flags in ``argv`` as swapserve's.

    Returns:
        The translated command line (Triton's ports first) and one warning per ignored flag.

    Raises:
        SettingsError: a refused flag, naming it and what to use instead.
    """
    pairs = _pairs(argv)
    out: list[str] = list(DEFAULTS)
    warnings: list[str] = []
    mode, poll, loads, repositories = "none", "", [], 0  # Triton's default mode
    for name, value in pairs:
        if name in RENAMED:
            if RENAMED[name] == "--model-repository":
                repositories += 1
                if repositories > 1:
                    raise SettingsError("more than one --model-repository: serve one here")
            out += [RENAMED[name], value]
        elif name == "model-control-mode":
            mode = value
            if value not in ("poll", "none", "explicit"):
                raise SettingsError(f"--{name}={value}: expected none, poll or explicit")
        elif name == "repository-poll-secs":
            poll = value
        elif name == "load-model":
            loads.append(value)
        elif name in ("allow-http", "allow-metrics"):
            if not _truth(name, value):
                flag = "--rest-port" if name == "allow-http" else "--metrics-port"
                out = _without(out, flag)
        elif name in ("allow-grpc",):
            if not _truth(name, value):
                raise SettingsError("--allow-grpc=false: swapserve always serves gRPC")
        elif name in ("http-address", "grpc-address", "metrics-address"):
            out += ["--host", value]
        elif name == "log-verbose":
            if value.strip() not in ("", "0"):
                out += ["--log-level", "DEBUG"]
        elif name in REFUSED:
            raise SettingsError(f"--{name} (Triton) is not supported: {REFUSED[name]}")
        elif name in IGNORED:
            warnings.append(f"--{name} (Triton) is ignored: {IGNORED[name]}")
        else:
            out.append(f"--{name}" + (f"={value}" if value else ""))
    if mode == "explicit":  # only --load-model's models load; RepositoryModelLoad the rest
        out += ["--startup-models", ",".join(loads)]
    elif loads:
        warnings.append(
            f"--load-model {' '.join(loads)} (Triton) is ignored: it applies with "
            "--model-control-mode=explicit; every model of the repository loads at start"
        )
    if mode != "poll":
        out += ["--config-poll-seconds", "0"]  # the model set is read once (or on load)
    else:
        out += ["--config-poll-seconds", poll or "15"]  # Triton polls every 15 s by default
    return out, warnings


def _pairs(argv: Sequence[str]) -> list[tuple[str, str]]:
    """(name, value) of each ``--name=value`` or ``--name value`` (a value never starts with
    ``--``; a bare ``--name`` has the value "")."""
    pairs: list[tuple[str, str]] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("--"):
            raise SettingsError(f"unexpected argument {arg!r} (Triton takes --name=value flags)")
        name, eq, value = arg[2:].partition("=")
        if not eq and i < len(args) and not args[i].startswith("--"):
            value = args[i]
            i += 1
        pairs.append((name, value))
    return pairs


def _truth(name: str, value: str) -> bool:
    if value.lower() in ("", "true", "1", "on"):
        return True
    if value.lower() in ("false", "0", "off"):
        return False
    raise SettingsError(f"--{name}={value}: expected true or false")


def _without(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag`` and its value (wherever it appears)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        else:
            out.append(arg)
    return out
