"""Regenerates requirements-runtime.lock and requirements-dev.lock from the installed .venv
(``make lock``), or checks them (``--check``: a unit test does).

Runtime pins are the closure of what the server needs at run time -- swapserve with its extras
``s3`` and ``otel``, and swapserve-client -- walked through the installed distributions'
requirements; every other installed package is a development pin.

It also writes deploy/runtime-hashes.lock: the runtime pins (and pip's) with the sha256 of every
file PyPI serves for each pinned version (asked of PyPI), for ``pip install --require-hashes``
(deploy/install-runtime.sh, which the image and ``make setup`` both run).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

REPO = Path(__file__).resolve().parents[1]
ROOTS = (("swapserve", ("cpu", "s3", "otel")), ("swapserve-client", ()))
_SELF = {"swapserve", "swapserve-client"}
HASHED = REPO / "deploy" / "runtime-hashes.lock"
PIP = "pip==25.3"
"""The pip ``make setup`` installs first; the image installs it too, hash-checked."""
INDEX = "https://pypi.org/simple"
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


def locked(text: str) -> list[str]:
    """The ``name==version`` lines of a lock file (comments, blanks and hashes left out)."""
    return [
        line.split()[0]
        for line in text.splitlines()
        if line and not line.startswith(("#", " ", "\t"))
    ]


def file_hashes(pin: str) -> list[str]:
    """The sha256 of every file PyPI serves for ``name==version`` (its simple JSON API)."""
    import json  # noqa: PLC0415 (only for --hashes)
    import urllib.request  # noqa: PLC0415

    name, version = pin.split("==")
    request = urllib.request.Request(  # noqa: S310 (a fixed https URL)
        f"{INDEX}/{norm(name)}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 (a fixed https URL)
        files = json.load(answer)["files"]
    out = []
    for entry in files:
        filename = entry["filename"]
        try:
            if filename.endswith(".whl"):
                found = str(parse_wheel_filename(filename)[1])
            else:
                found = str(parse_sdist_filename(filename)[1])
        except (InvalidSdistFilename, InvalidWheelFilename):
            continue
        if found == version and "sha256" in entry.get("hashes", {}):
            out.append(entry["hashes"]["sha256"])
    if not out:
        raise SystemExit(f"{INDEX} serves no file of {pin}")
    return sorted(out)


def hashed(runtime: str) -> str:
    """deploy/runtime-hashes.lock for the runtime lock's text."""
    lines = [
        "# requirements-runtime.lock and pip, with the sha256 of every file PyPI serves for each",
        "# version: pip install --require-hashes refuses any other file (install-runtime.sh).",
        "# make lock writes it (asking PyPI for the hashes).",
    ]
    for pin in [PIP, *locked(runtime)]:
        lines.append(pin + "".join(f" \\\n    --hash=sha256:{h}" for h in file_hashes(pin)))
    return "\n".join(lines) + "\n"


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
    runtime = (REPO / "requirements-runtime.lock").read_text()
    if not args.check:
        HASHED.write_text(hashed(runtime))  # asks PyPI
    elif not HASHED.exists() or locked(HASHED.read_text()) != [PIP, *locked(runtime)]:
        stale.append(HASHED.name)
    if stale:
        sys.stderr.write(f"out of date (run make lock): {', '.join(stale)}\n")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
