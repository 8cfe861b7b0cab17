"""Which code path a batch takes: the CPU's host-reading fast paths or the fixed-shape accelerator paths.

A few kernels have two implementations that compute the same values. On the CPU they may read values
back to the host (``nonzero()`` to compact a batch, a chunked Python loop over the photometric ops),
which costs nothing there: the tensors already live in host memory. On an accelerator every read of a
value computed from the batch would stall the stream, so there the shapes stay fixed and nothing is
read back; those paths also compile whole (``torch.compile(fullgraph=True)``).

:func:`fixed_shape_path` is the one switch every such kernel asks. The accelerator paths are taken for
tensors on any device but the CPU, while :func:`objaug.testing.accelerator_paths` is active (to run and
test them on the CPU), and while ``torch.compile`` traces (a compiled CPU graph has no use for a host
read: it would only break the graph).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["fixed_shape_path"]

#: How many :func:`objaug.testing.accelerator_paths` blocks are active (they nest).
_forced: int = 0


def fixed_shape_path(t: Tensor) -> bool:
    """Whether work on ``t`` must take the fixed-shape path: no host read of a value computed from the batch.

    Args:
        t: a tensor of the batch (only its device is read).

    Returns:
        True on accelerators, inside :func:`objaug.testing.accelerator_paths` and while ``torch.compile``
        traces; False for CPU tensors otherwise.
    """
    return t.device.type != "cpu" or _forced > 0 or torch.compiler.is_compiling()
