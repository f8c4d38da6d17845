"""Regenerates requirements-runtime.lock and requirements-dev.lock from the installed .venv
(``make lock``), or checks them (``--check``: a unit test does).

Runtime pins are the closure of what the server needs at run time -- swapserve with its extras
``s3`` and ``otel``, and swapserve-client -- walked through the installed distributions'
requirements; every other installed package is a development pin. The Docker image installs the
runtime pins only.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
ROOTS = (("swapserve", ("cpu", "s3", "otel")), ("swapserve-client", ()))
_SELF = {"swapserve", "swapserve-client"}
_HEADERS = {
    "runtime": "# Exact versions of what the server needs at run time (swapserve with its extras\n"
    "# cpu, s3 and otel, and the client); the Docker image installs these only.\n"
    "# make lock writes it.\n",
    "dev": "# Exact versions of the development and test tools, on top of\n"
    "# requirements-runtime.lock (make setup uses both). make lock writes it.\n",
}


def norm(name: str) -> str:
    """A distribution name as pip compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure() -> set[str]:
    """Normalised names of every distribution the runtime roots need, installed or not."""
    seen: set[str] = set()
    todo = [(name, extras) for name, extras in ROOTS]
    while todo:
        name, extras = todo.pop()
        key = norm(name)
        if key in seen and not extras:
            continue
        seen.add(key)
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            wanted = [{"extra": e} for e in (*extras, "")]
            if req.marker is None or any(req.marker.evaluate(env) for env in wanted):
                todo.append((req.name, tuple(req.extras)))
    return seen


def pins() -> dict[str, str]:
    """Every installed distribution (but ours) as ``name==version``, by normalised name."""
    out = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if norm(name) not in _SELF and norm(name) != "pip":
            out[norm(name)] = f"{name}=={dist.version}"
    return out


def split() -> dict[str, str]:
    """The two lock files' contents."""
    installed, runtime = pins(), runtime_closure()
    chosen = {
        "runtime": sorted(v for k, v in installed.items() if k in runtime),
        "dev": sorted(v for k, v in installed.items() if k not in runtime),
    }
    return {kind: _HEADERS[kind] + "\n".join(lines) + "\n" for kind, lines in chosen.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the files are current")
    args = parser.parse_args()
    stale = []
    for kind, text in split().items():
        path = REPO / f"requirements-{kind}.lock"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        sys.stderr.write(f"out of date (run make lock): {', '.join(stale)}\n")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
