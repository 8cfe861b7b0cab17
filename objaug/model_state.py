"""Leaving a model as found: its train/eval modes and ``requires_grad`` flags, strides, device.

A model handed to objaug is left exactly as found, also when an exception is raised: these context
managers record what they change and restore it on the way out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["expanded_resolution", "module_device", "preserve_model_state"]


@contextmanager
def preserve_model_state(*modules: nn.Module, eval_mode: bool = True) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block and restore each submodule's own mode afterwards.

    The train/eval flag of every submodule is recorded and restored exactly (mixed modes, such as a
    frozen BatchNorm inside a training model, survive), also when the block raises. Parameters'
    ``requires_grad`` flags are recorded and restored too.
    """
    subs: dict[int, nn.Module] = {}
    for m in modules:
        for s in m.modules():
            subs[id(s)] = s
    training = {k: s.training for k, s in subs.items()}
    params: dict[int, Tensor] = {}
    for s in subs.values():
        for p in s.parameters(recurse=False):
            params[id(p)] = p
    requires = {k: p.requires_grad for k, p in params.items()}
    try:
        if eval_mode:
            for s in subs.values():
                s.training = False
        yield
    finally:
        for k, s in subs.items():
            s.training = training[k]
        for k, param in params.items():
            if param.requires_grad != requires[k]:
                param.requires_grad_(requires[k])


@contextmanager
def expanded_resolution(convs: list[nn.Conv2d]) -> Iterator[None]:
    """Set stride 1 on ``convs`` for the block (doubling the last stage's resolution); restore after."""
    saved: list[tuple[nn.Conv2d, tuple[int, ...]]] = [(c, tuple(c.stride)) for c in convs]
    try:
        for c in convs:
            c.stride = (1, 1)
        yield
    finally:
        for c, stride in saved:
            c.stride = stride  # type: ignore[assignment]


def module_device(module: nn.Module) -> torch.device | None:
    """The device of the first parameter or buffer of ``module`` (``None`` if it has neither)."""
    for t in module.parameters():
        return t.device
    for buf in module.buffers():
        return buf.device
    return None
