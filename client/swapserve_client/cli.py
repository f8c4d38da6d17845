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
from typing import Any

import numpy as np

from swapserve_client.client import Client, ModelMetadata, ModelStatus
from swapserve_client.errors import SwapserveError

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


def _typed_inputs(
    raw: dict[str, Any], meta: ModelMetadata, signature: str
) -> dict[str, np.ndarray]:
    """Casts JSON values to the dtypes the signature expects, so `[[100.0]]` works for float32."""
    sig = meta.signatures.get(signature or "serving_default")
    out: dict[str, np.ndarray] = {}
    for name, value in raw.items():
        info = sig.inputs.get(name) if sig is not None else None
        if info is None:
            # Let the server produce the precise error for unknown names and signatures.
            out[name] = np.asarray(value)
        elif info.dtype == "DT_STRING":
            out[name] = np.asarray(value, dtype=object)
        else:
            try:
                out[name] = np.asarray(value, dtype=info.numpy_dtype)
            except (TypeError, ValueError) as err:
                raise UsageError(f"--input {name}: cannot convert to {info.dtype}: {err}") from None
    return out


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


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swapserve-client", description="Call a swapserve prediction server."
    )
    parser.add_argument(
        "--target", default="localhost:8500", help="server host:port (default: %(default)s)"
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

    p = sub.add_parser("status", help="every version of a model and its state")
    p.add_argument("model")
    p.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="show a table refreshed every SECONDS until Ctrl-C, instead of JSON once",
    )
    p.add_argument("--count", type=int, default=0, help="with --watch: stop after N refreshes")

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
        metadata = [("authorization", f"Bearer {token}")] if token else []
        with Client(
            args.target,
            timeout=args.timeout,
            metadata=metadata,
            tls_ca=_read(args.tls_ca, "--tls-ca"),
            tls_cert=_read(args.tls_cert, "--tls-cert"),
            tls_key=_read(args.tls_key, "--tls-key"),
        ) as client:
            if args.command == "status" and args.watch:
                return _watch(client, args.model, args.watch, args.count)
            result = _dispatch(client, args)
    except UsageError as err:
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
        r = client.reload(args.model, args.version)
        return {
            "model": r.model,
            "previous_version": r.previous_version,
            "version": r.version,
            "load_seconds": round(r.load_seconds, 3),
            "pinned": r.pinned,
        }
    if args.command == "status":
        status = client.model_status(args.model)
        return {
            "model": status.model,
            "serving_version": status.serving_version,
            "pinned_version": status.pinned_version,
            "labels": status.labels,
            "versions": [
                {
                    "version": v.version,
                    "state": v.state,
                    "serving": v.serving,
                    **({"labels": list(v.labels)} if v.labels else {}),
                    "load_seconds": round(v.load_seconds, 3),
                    **({"error": v.error} if v.error else {}),
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


def status_table(status: ModelStatus, now: float) -> str:
    """A human-readable view of a model's versions (``status --watch``)."""
    pin = f", pinned to {status.pinned_version}" if status.pinned_version else ""
    lines = [
        f"model {status.model}: serving {status.serving_version or 'nothing'}{pin}",
        f"{'VERSION':>12}  {'STATE':<10} {'SERVING':<7} {'LOAD s':>7} {'SINCE':>8}  "
        f"{'LABELS':<16} ERROR",
    ]
    for v in status.versions:
        since = f"{max(0.0, now - v.updated_unix):.0f}s" if v.updated_unix else "-"
        lines.append(
            f"{v.version:>12}  {v.state:<10} {'*' if v.serving else '':<7} "
            f"{v.load_seconds:>7.3f} {since:>8}  {','.join(v.labels) or '-':<16} {v.error[:80]}"
        )
    return "\n".join(lines)


def _watch(client: Client, model: str, seconds: float, count: int) -> int:
    shown = 0
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    try:
        while True:
            try:
                text = status_table(client.model_status(model), time.time())
            except SwapserveError as err:
                text = f"{err.code.name}: {err.message}"
            sys.stdout.write(f"{clear}{text}\n\n")
            sys.stdout.flush()
            shown += 1
            if count and shown >= count:
                return 0
            time.sleep(seconds)
    except KeyboardInterrupt:
        return 0


def _info_json(info: Any) -> dict[str, Any]:
    return {"dtype": info.dtype, "shape": None if info.shape is None else list(info.shape)}


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING)
    sys.exit(run())
