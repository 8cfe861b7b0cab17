"""The process group of a multi-process precompute run (``torch.distributed``, started by ``torchrun``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

__all__ = ["ProcessGroup"]


class ProcessGroup:
    """Rank, world size and a barrier (a gloo group with a long timeout, or nothing when alone)."""

    def __init__(self, timeout: timedelta) -> None:
        import torch.distributed as dist

        self._dist = dist
        self._group: Any = None
        self.rank, self.world = 0, 1
        if dist.is_available() and dist.is_initialized():
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            if self.world > 1:
                self._group = dist.new_group(backend="gloo", timeout=timeout)

    def barrier(self) -> None:
        if self._group is not None:
            self._dist.barrier(group=self._group)

    def gather(self, value: str) -> list[str]:
        """Every rank's ``value`` (rank order); ``[value]`` when alone."""
        if self._group is None:
            return [value]
        out: list[Any] = [None] * self.world
        self._dist.all_gather_object(out, value, group=self._group)
        return [str(v) for v in out]
