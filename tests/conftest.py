"""Shared fixtures: tiny suites on tiny data, and the real data in ../shared when present."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers.suites import TINY_SUITE

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout; the test is skipped where it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return path


@pytest.fixture
def write_suite(tmp_path):
    """Write a suite (the tiny one, updated by keyword sections) and return its path."""

    def write(data: dict | None = None, name: str = "suite.yaml", text: str | None = None,
              **sections) -> Path:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
            return path
        doc = {**(data if data is not None else TINY_SUITE), **sections}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write
