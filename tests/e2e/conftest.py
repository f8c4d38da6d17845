"""Shared fixtures. The tests run a real server on 127.0.0.1:0 with the real TensorFlow."""

from __future__ import annotations

import logging

import pytest

from helpers import TESTDATA


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if not TESTDATA.is_dir():
        raise pytest.UsageError(
            f"test models not found at {TESTDATA}: clone the project with ../shared beside it, "
            "or set SWAPSERVE_TESTDATA"
        )
