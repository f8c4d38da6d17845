"""``swapserve-client``: call a swapserve server from the shell; prints JSON.

Exit codes: 0 success, 1 the server refused the call (the status code name and message go to
stderr), 2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from swapserve_client import targets, watch
from swapserve_client.client import Client, ModelMetadata
from swapserve_client.errors import SwapserveError
from swapserve_client.messages import Rollout, cast_inputs

log = logging.getLogger(__name__)


class UsageError(Exception):
    """A bad command-line argument (exit code 2)."""


def _read(path: str | None, flag: str) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise UsageError(f"cannot read {flag} {path}: {err.strerror}") from None


def _token(path: str | None) -> str | None:
    if path:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError as err:
            raise UsageError(f"cannot read --token-file {path}: {err.strerror}") from None
    return os.environ.get("SWAPSERVE_TOKEN") or None


def _parse_input(spec: str) -> tuple[str, Any]:
    name, sep, value = spec.partition("=")
    if not sep or not name:
        raise UsageError(f"--input {spec!r}: expected NAME=JSON, e.g. number=[[100.0]]")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError as err:
        raise UsageError(f"--input {name}: value is not JSON: {err}") from None


def _typed_inputs(raw: dict[str, Any], meta: ModelMetadata, signature: str) -> dict[str, Any]:
    """Casts JSON values to the dtypes the signature expects, so `[[100.0]]` works for float32."""
    try:
        return cast_inputs(raw, meta, signature)
    except ValueError as err:
        raise UsageError(f"--{err}") from None


def _jsonable(array: np.ndarray) -> Any:
    if array.dtype == object:
        return (
            [_jsonable_bytes(x) for x in array.reshape(-1)]
            if array.ndim
            else _jsonable_bytes(array.item())
        )
    return array.tolist()


def _jsonable_bytes(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode("ascii")


_TARGETS_HELP = (
    "comma-separated replicas (host:port; a DNS name counts as every address it resolves to): "
    "ask each one and report each answer"
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swapserve-client", description="Call a swapserve prediction server."
    )
    parser.add_argument(
        "--target",
        default="localhost:8500",
        help="server host:port; a DNS name or a comma-separated list of replicas spreads calls "
        "over them (round robin) (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="deadline in seconds (default: %(default)s)"
    )
    parser.add_argument("--tls-ca", help="PEM CA bundle: connect with TLS, verifying the server")
    parser.add_argument("--tls-cert", help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--token-file",
        help="file holding the bearer token to send (default: $SWAPSERVE_TOKEN, if set)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="run a signature and print its outputs")
    p.add_argument("model")
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="an input as JSON, cast to the signature's dtype; repeat for each input",
    )
    p.add_argument("--version", type=int, default=0, help="version to use (0: the served one)")
    p.add_argument("--label", default="", help="a version label (e.g. stable) instead of --version")
    p.add_argument("--signature", default="", help="signature name (default: serving_default)")
    p.add_argument(
        "--output", action="append", default=[], metavar="NAME", help="only return these outputs"
    )

    p = sub.add_parser("reload", help="load the newest version now, or load and pin --version")
    p.add_argument("model")
    p.add_argument("--version", type=int, default=0, help="version to pin (0: follow the newest)")
    p.add_argument(
        "--force",
        action="store_true",
        help="serve it even if a gate refused it or its canary was rolled back (no gates, no "
        "canary; ends a running canary)",
    )
    p.add_argument("--targets", help=_TARGETS_HELP)

    p = sub.add_parser(
        "wait",
        help="wait until VERSION serves (a pipeline step after an export the server's watcher "
        "picks up; exit 1 if it failed to load or --timeout passed)",
    )
    p.add_argument("model")
    p.add_argument("version", type=int)

    p = sub.add_parser("status", help="every version of a model and its state")
    p.add_argument("model")
    p.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="show a table refreshed every SECONDS until Ctrl-C, instead of JSON once",
    )
    p.add_argument("--count", type=int, default=0, help="with --watch: stop after N refreshes")
    p.add_argument("--targets", help=_TARGETS_HELP)

    p = sub.add_parser("metadata", help="the signatures of a model version")
    p.add_argument("model")
    p.add_argument("--version", type=int, default=0, help="version (0: the served one)")
    p.add_argument("--label", default="", help="a version label instead of --version")
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        token = _token(args.token_file)
        options: dict[str, Any] = {
            "timeout": args.timeout,
            "metadata": [("authorization", f"Bearer {token}")] if token else [],
            "tls_ca": _read(args.tls_ca, "--tls-ca"),
            "tls_cert": _read(args.tls_cert, "--tls-cert"),
            "tls_key": _read(args.tls_key, "--tls-key"),
        }
        if getattr(args, "targets", None):
            replicas = [a for t in targets.split(args.targets) for a in targets.resolve(t)]
            if args.command == "status" and args.watch:
                return watch.fleet(replicas, options, args.model, args.watch, args.count)
            return _print_fleet(_fleet(replicas, options, args))
        with Client(args.target, **options) as client:
            if args.command == "status" and args.watch:
                return watch.one(client, args.model, args.watch, args.count)
            result = _dispatch(client, args)
    except (UsageError, ValueError) as err:
        print(f"swapserve-client: error: {err}", file=sys.stderr)
        return 2
    except SwapserveError as err:
        print(f"{err.code.name}: {err.message}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _dispatch(client: Client, args: argparse.Namespace) -> Any:
    if args.command == "predict":
        raw = dict(_parse_input(spec) for spec in args.input)
        meta = client.metadata(args.model, version=args.version, label=args.label)
        res = client.predict_full(
            args.model,
            _typed_inputs(raw, meta, args.signature),
            version=args.version,
            signature=args.signature,
            output_filter=args.output,
            label=args.label,
        )
        return {
            "model": res.model,
            "version": res.version,
            "signature": res.signature,
            "outputs": {k: _jsonable(v) for k, v in sorted(res.outputs.items())},
        }
    if args.command == "reload":
        r = client.reload(args.model, args.version, force=args.force)
        return {
            "model": r.model,
            "previous_version": r.previous_version,
            "version": r.version,
            "load_seconds": round(r.load_seconds, 3),
            "pinned": r.pinned,
            **(
                {"canary_version": r.canary_version, "canary_percent": r.canary_percent}
                if r.canary_version
                else {}
            ),
        }
    if args.command == "wait":
        done = client.wait_for_version(args.model, args.version, timeout=args.timeout)
        return {"model": done.model, "serving_version": done.serving_version}
    if args.command == "status":
        status = client.model_status(args.model)
        return {
            "model": status.model,
            "serving_version": status.serving_version,
            "pinned_version": status.pinned_version,
            "labels": status.labels,
            **({"storage_error": status.storage_error} if status.storage_error else {}),
            **({"rollout": _rollout(status.rollout)} if status.rollout.phase else {}),
            "versions": [
                {
                    "version": v.version,
                    "state": v.state,
                    "serving": v.serving,
                    **({"labels": list(v.labels)} if v.labels else {}),
                    "load_seconds": round(v.load_seconds, 3),
                    **({"error": v.error} if v.error else {}),
                    **(
                        {
                            "requests": v.request_count,
                            "errors": v.error_count,
                            "p99_ms": round(v.p99_seconds * 1e3, 3),
                        }
                        if v.state in ("AVAILABLE", "UNLOADING")
                        else {}
                    ),
                }
                for v in status.versions
            ],
        }
    meta = client.metadata(args.model, version=args.version, label=args.label)
    return {
        "model": meta.model,
        "version": meta.version,
        "signatures": {
            name: {
                "method_name": sig.method_name,
                "inputs": {i.name: _info_json(i) for i in sig.inputs.values()},
                "outputs": {o.name: _info_json(o) for o in sig.outputs.values()},
            }
            for name, sig in sorted(meta.signatures.items())
        },
    }


def _fleet(
    replicas: list[str], options: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Runs the command on every replica at once (each on its own, no retries); every answer or
    error by replica."""

    def one(replica: str) -> Any:
        try:
            with Client(replica, retries=0, **options) as client:
                return _dispatch(client, args)
        except SwapserveError as err:
            return {"error": f"{err.code.name}: {err.message}"}

    with ThreadPoolExecutor(max_workers=min(32, len(replicas))) as pool:
        answers = dict(zip(replicas, pool.map(one, replicas), strict=True))
    return {"command": args.command, "model": args.model, "replicas": answers}


def _print_fleet(result: dict[str, Any]) -> int:
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if any("error" in a for a in result["replicas"].values()) else 0


def _info_json(info: Any) -> dict[str, Any]:
    return {"dtype": info.dtype, "shape": None if info.shape is None else list(info.shape)}


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING)
    try:
        code = run()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)


def _rollout(r: Rollout) -> dict[str, Any]:
    """The rollout phase as ``status`` prints it."""
    return {
        "phase": r.phase,
        "version": r.version,
        "previous_version": r.previous_version,
        **({"canary_percent": r.canary_percent} if r.phase == "CANARY" else {}),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.since_unix)),
        **({"gate": r.gate} if r.gate else {}),
        **({"message": r.message} if r.message else {}),
    }
