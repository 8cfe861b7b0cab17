"""When the input value checks run: every call on the CPU, a schedule of calls on accelerators.

A value check (finite images, masks in [0, 1], boxes in [0, 1], ...) reduces the batch on its device and
reads the result back to the host: one read per call, by design, since the error must be raised before
any work and name what is wrong. On the CPU that read waits for nothing (the values are in host memory),
so every call is checked. On an accelerator it drains the stream: the host waits until the device has
finished all queued work. So there (and inside :func:`objaug.testing.accelerator_paths`) a module with
``check_inputs=True`` checks its **first** calls, where setup mistakes show (a [0, 255] batch, normalised
images, masks out of range, pixel boxes), and then **every** ``every``-th call; the other calls read
nothing. The defaults check calls 1 to 10 and then calls 110, 210, 310, ...: after the first ten, one
stall in a hundred calls.

Under ``torch.compile`` the schedule's decision runs outside the graph (one graph break) and a due check
is one more break; ``check_inputs=False`` compiles whole.
"""

from __future__ import annotations

import torch
from torch import Tensor

from objaug._paths import fixed_shape_path
from objaug.validation import check_int

__all__ = ["CheckSchedule"]


class CheckSchedule:
    """Decides, per call, whether a module's input value checks run (see the module docstring).

    Args:
        first: the first ``first`` calls on an accelerator are checked (>= 0).
        every: after them, every ``every``-th call is checked (>= 1; 1 checks every call).

    Attributes:
        calls: the calls on the fixed-shape paths counted so far (CPU calls are always checked and not counted).

    Example:
        >>> mix = BackgroundMixup()
        >>> mix.check_schedule = CheckSchedule(every=1)   # check every call on the GPU too
    """

    def __init__(self, first: int = 10, every: int = 100) -> None:
        self.first = check_int(first, "first", low=0, why=" (calls checked first on an accelerator)")
        self.every = check_int(every, "every", low=1, why=" (then every N-th call; 1 checks every call)")
        self.calls = 0

    def __repr__(self) -> str:
        return f"CheckSchedule(first={self.first}, every={self.every})"

    @torch.compiler.disable
    def due(self, batch: Tensor) -> bool:
        """Whether this call's checks run: always for CPU tensors, else by the schedule (counts the call).

        Args:
            batch: a tensor of the call's batch (only its device is read).
        """
        if not fixed_shape_path(batch):
            return True
        self.calls += 1
        return self.calls <= self.first or (self.calls - self.first) % self.every == 0
