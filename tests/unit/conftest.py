"""The unit layer: logic without TensorFlow and without a server. It must stay that way."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent


@pytest.fixture(autouse=True, scope="session")
def _no_tensorflow(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the run if a unit-only session imported TensorFlow (it costs seconds per import and
    would let the core grow a dependency on it unnoticed)."""
    yield
    items = request.session.items
    if items and all(Path(str(item.path)).is_relative_to(UNIT) for item in items):
        assert "tensorflow" not in sys.modules, "a unit test imported TensorFlow"
