"""Helpers for testing code that uses objaug, without the hardware it targets.

:func:`accelerator_paths` runs objaug's accelerator code paths on the CPU: the kernels then behave as
they do on a GPU (fixed shapes, no value computed from the batch read back to the host, whole graphs
under ``torch.compile(fullgraph=True)``), so a CPU-only test suite covers them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from objaug import _paths

__all__ = ["accelerator_paths"]


@contextmanager
def accelerator_paths() -> Iterator[None]:
    """Context manager: objaug takes its accelerator code paths for CPU tensors inside the block.

    On the CPU objaug normally uses host-reading fast paths that compute the same values (background
    mixup processes only the images it mixes, counted with ``nonzero()``; the photometric ops of
    :class:`objaug.ObjectAwareAugment` run in cache-sized chunks). Inside this block CPU tensors take the
    paths an accelerator takes instead: every image goes through every kernel, nothing is read back to
    the host except the documented input checks (``check_inputs``, see docs/performance.md), and
    :class:`~objaug.ObjectAwareAugment`, :class:`~objaug.BackgroundMixup`,
    :class:`~objaug.ObjectAwareRandomResizedCrop` and :class:`~objaug.ContraCAM` compile with
    ``torch.compile(fullgraph=True)``. Blocks nest; the previous state is restored on exit, also when an
    exception is raised. The switch is process-wide (not per thread).

    Example:
        >>> from objaug.testing import accelerator_paths
        >>> with accelerator_paths():
        ...     views = augment(images, boxes, valid)    # as on a GPU, on the CPU
    """
    _paths._forced += 1
    try:
        yield
    finally:
        _paths._forced -= 1
