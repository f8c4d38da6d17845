"""Copies the tables of docs/benchmarks/*.md into README.md (run by ``make bench``)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "docs" / "benchmarks"


def _table(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if line.startswith("|")) + "\n"


def _line(path: Path, prefix: str) -> str:
    return next(line for line in path.read_text().splitlines() if line.startswith(prefix))


def main() -> None:
    readme_path = REPO / "README.md"
    readme = readme_path.read_text()
    blocks = re.findall(r"(?:^\|.*\n)+", readme, flags=re.MULTILINE)
    for header, source in (
        ("| protocol (client)", BENCH / "protocols.md"),
        ("| clients | phase", BENCH / "swap_latency.md"),
    ):
        old = next(b for b in blocks if b.startswith(header))
        readme = readme.replace(old, _table(source))
    swaps = BENCH / "swap_latency.md"
    for prefix in ("In-process floor", "p99 during swaps / steady p99"):
        readme = re.sub(
            rf"^{re.escape(prefix)}.*$", _line(swaps, prefix), readme, flags=re.MULTILINE
        )
    readme_path.write_text(readme)


if __name__ == "__main__":
    main()
