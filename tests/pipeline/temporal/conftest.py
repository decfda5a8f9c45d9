"""Shared fixture of the temporal tests: torch on one thread."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every temporal test runs on one torch thread (`one_thread` of tests/conftest.py)."""
