"""Shared pytest setup: `--runslow` opt-in for slow checks, and paths to the shared real data."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def real_data() -> Path:
    """Folder of the shared real images; tests using it skip when it is absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"shared real data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny tensors: thread start-up and contention on a shared 2-core machine cost more than they save."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
