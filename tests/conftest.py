"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext

import pytest
import torch

from objaug.testing import accelerator_paths


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine, 2 OpenMP threads run tiny models several times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(params=["compact", "fixed"])
def mixup_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a background-mixup test on both kernels: the CPU's compacting path and the fixed-shape
    (accelerator) one, forced on the CPU by :func:`objaug.testing.accelerator_paths`."""
    with accelerator_paths() if request.param == "fixed" else nullcontext():
        yield str(request.param)
