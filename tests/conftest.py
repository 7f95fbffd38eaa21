"""Shared fixtures: the real media in ``../shared/data`` (see its MANIFEST.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (see the project README)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def set5(shared_data: Path) -> Path:
    """The shared Set5 folder (the SR protocol's reference set)."""
    folder = shared_data / "images" / "eval" / "Set5"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (see ../shared/data/MANIFEST.md)")
    return folder
