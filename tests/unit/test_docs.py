"""The docs stay true to the tree: every module is on the architecture page, every server flag is
in the configuration page's table, and every relative link points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "deploy" / "README.md"]


def test_architecture_names_every_module() -> None:
    page = (REPO / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`([a-z0-9_/]+\.py)`", page))
    root = REPO / "server" / "swapserve"
    modules = {
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.name != "__init__.py" or p.parent == root
    }
    assert modules - named == set(), "modules missing from docs/architecture.md"
    stale = {
        m
        for m in named - modules
        if "/" in m and m.split("/")[0] in {"model", "codecs", "transport", "cluster"}
    }
    assert stale == set(), "docs/architecture.md names modules that do not exist"


_LOCKS = ("Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore")


def test_architecture_lists_every_lock() -> None:
    """Every lock, condition and semaphore an object creates is in the locks table, with what it
    guards -- and says so where it is created (a comment on the line, or a ``guarded by`` note
    beside the fields)."""
    import ast

    page = (REPO / "docs" / "architecture.md").read_text()
    table = page.split("## Locks and conditions")[1]
    missing, silent = [], []
    for root in (REPO / "server" / "swapserve", REPO / "client" / "swapserve_client"):
        for path in root.rglob("*.py"):
            if "_proto" in path.parts:
                continue
            source = path.read_text()
            lines = source.splitlines()
            for cls in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef)):
                for node in ast.walk(cls):
                    if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
                        continue
                    func = node.value.func
                    name = func.attr if isinstance(func, ast.Attribute) else ""
                    target = node.targets[0]
                    if name not in _LOCKS or not isinstance(target, ast.Attribute):
                        continue
                    if f"`{cls.name}.{target.attr}`" not in table:
                        missing.append(f"{cls.name}.{target.attr} ({path.name})")
                    nearby = "\n".join(lines[node.lineno - 2 : node.lineno + 6])
                    if "guard" not in nearby.lower() and "#" not in lines[node.lineno - 1]:
                        silent.append(f"{cls.name}.{target.attr} ({path.name})")
    assert missing == [], "locks missing from docs/architecture.md"
    assert silent == [], "locks that do not say what they guard"


def test_configuration_flag_table_is_the_declarations() -> None:
    """docs/configuration.md's flag table is what the settings declare (one declaration gives
    the field, the flag, its help and the table row); every ``swapserve --help`` flag is in it."""
    from swapserve.config.flags import build_parser, markdown_table

    page = (REPO / "docs" / "configuration.md").read_text()
    assert markdown_table() in page, (
        "docs/configuration.md's flag table is stale: paste the output of "
        "`python -m swapserve.config.flags --markdown`"
    )
    flags = {
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--version")
    }
    in_table = set(re.findall(r"^\| `(--[a-z-]+)`", markdown_table(), re.M))
    assert flags == in_table


def test_relative_links_resolve() -> None:
    """Links between the pages (and to files in the repository) point at something, and a
    ``#fragment`` names a heading of the page it points at."""
    broken = []
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.name}: {target}")
            elif fragment and file.suffix == ".md" and fragment not in _anchors(file):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert broken == []


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors
