"""Copies docs/benchmarks/results.md into docs/performance.md between the bench markers
(``make bench``), so the performance page always shows the last full run."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main() -> None:
    results = (REPO / "docs" / "benchmarks" / "results.md").read_text()
    body = results.split("\n", 1)[1].strip()  # drop the "# Benchmarks" title
    body = body.replace("](", "](benchmarks/").replace(
        "`results.json`", "`benchmarks/results.json`"
    )
    page_path = REPO / "docs" / "performance.md"
    page = page_path.read_text()
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    page_path.write_text(f"{head}{START}\n{body}\n{END}{tail}")


if __name__ == "__main__":
    main()
