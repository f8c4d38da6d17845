"""Copies docs/benchmarks/results.md into README.md between the bench markers (``make bench``)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main() -> None:
    results = (REPO / "docs" / "benchmarks" / "results.md").read_text()
    body = results.split("\n", 1)[1].strip()  # drop the "# Benchmarks" title
    body = body.replace("## ", "### ").replace("](", "](docs/benchmarks/")
    readme_path = REPO / "README.md"
    readme = readme_path.read_text()
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    readme_path.write_text(f"{head}{START}\n{body}\n{END}{tail}")


if __name__ == "__main__":
    main()
