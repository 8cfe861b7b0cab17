"""Batched connected-component labelling of binary masks, on the input's device.

The labelling is a parallel label propagation with pointer jumping, written with plain tensor
ops so that a whole batch is labelled at once on the CPU or a GPU, without per-image Python
loops or host transfers of the data.

Algorithm (per image, all images at once). Pixels are numbered by their row-major flat index
``p = y * W + x``. A label table ``L`` (one entry per pixel plus a background sentinel) starts
as ``L[p] = p`` on the foreground. One iteration:

1. *neighbour min*: ``m[p] = min(L[p], L[q] for foreground neighbours q of p)``;
2. *hooking*: the label a pixel points to is lowered to the neighbour min,
   ``L[L[p]] <- min(L[L[p]], m[p])`` (a ``scatter_reduce`` with ``amin``), then
   ``L[p] <- min(L[p], m[p])``;
3. *pointer jumping*, twice: ``L[p] <- L[L[p]]`` (a ``gather``).

Every entry of ``L`` is always the index of a pixel of the same component and never larger
than the entry's own index, so every step only lowers labels, and one iteration lowers each
label at least as far as one step of plain neighbour-min propagation would
(``L_{t+1} <= N(L_t)``, hence ``L_t <= N^t(L_0)``). Plain propagation reaches the answer (every
pixel labelled with the smallest flat index of its component) after at most ``H * W - 1``
steps, whatever the shape (a spiral or a snake is the worst case), so this loop does too. In
practice hooking and jumping need few iterations, growing like the log of the path length:
measured, 4 for smooth CAM blobs at 224 x 224, 5-7 for random noise near the percolation
threshold, 7 for a one-pixel-wide spiral or snake filling 225 x 225 (plain propagation: ~25,000).

Convergence check: labels are a fixed point exactly when no foreground pixel has a neighbour
with a smaller label, i.e. when step 1 changes nothing (``m == L``), and then they are
constant on every component and equal to the answer. That test is one ``torch.equal`` (one
host synchronisation on a GPU), made after step 1 of every ``check_every``-th iteration only;
between checks nothing waits for the device. The loop stops at the first successful check, or
after ``max_iters`` iterations (default ``H * W``, the bound above, so the default result is
always exact, even if every check were skipped).

Layout and speed: see :func:`_label`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from objaug.validation import check_choice, check_int, check_optional_int

__all__ = ["connected_components"]

# Offsets (dy, dx) of the neighbours of a pixel.
_NEIGHBOURS_4 = ((-1, 0), (1, 0), (0, -1), (0, 1))
_NEIGHBOURS_8 = _NEIGHBOURS_4 + ((-1, -1), (-1, 1), (1, -1), (1, 1))


def _check_binary(binary: object, connectivity: object, max_iters: object, check_every: object) -> Tensor:
    if not isinstance(binary, Tensor):
        raise TypeError(f"binary must be a torch.Tensor of shape (B, 1, H, W), got {type(binary).__name__}.")
    if binary.ndim != 4 or binary.shape[1] != 1:
        hint = " Add the channel dimension with binary.unsqueeze(1)." if binary.ndim == 3 else ""
        raise ValueError(f"binary must have shape (B, 1, H, W), got {tuple(binary.shape)}.{hint}")
    if binary.dtype != torch.bool:
        raise TypeError(
            f"binary must be a bool tensor, got {binary.dtype}. Binarise first, e.g. binary = maps >= 0.5."
        )
    check_choice(connectivity, "connectivity", (4, 8))
    check_optional_int(max_iters, "max_iters", low=0, none="until converged")
    check_int(check_every, "check_every", low=1)
    return binary


def connected_components(
    binary: Tensor,
    *,
    connectivity: int = 4,
    max_iters: int | None = None,
    check_every: int = 2,
) -> Tensor:
    """Label the connected components of a batch of binary masks.

    Works on the input's device for the whole batch at once (see the module docstring for the
    algorithm and its convergence argument).

    Args:
        binary: (B, 1, H, W) bool tensor, ``True`` on the foreground, on any device.
        connectivity: 4 (pixels sharing an edge are connected) or 8 (edges or corners).
        max_iters: the most iterations to run; ``None`` (default) means ``H * W``, which is
            always enough for the exact answer. A smaller value bounds the run time, but a
            component whose labels have not converged by then comes out split into several
            labels.
        check_every: run the convergence check (one ``torch.equal``, i.e. one host
            synchronisation on a GPU) on every ``check_every``-th iteration only. Smaller
            values stop sooner after convergence (at most ``check_every - 1`` wasted
            iterations) at the cost of more synchronisations; the result does not depend on it.

    Returns:
        (B, 1, H, W) int64 tensor on ``binary``'s device: 0 on the background; on the
        foreground, ``1 + the smallest row-major flat index (y * W + x) of the pixel's
        component``, so all pixels of one component share a label, different components of
        an image get different labels, and labels lie in ``[1, H * W]``.

    Raises:
        TypeError: ``binary`` is not a bool tensor.
        ValueError: wrong shape, ``connectivity`` not 4 or 8, bad ``max_iters`` or
            ``check_every``.
    """
    binary = _check_binary(binary, connectivity, max_iters, check_every)
    return _label(binary, connectivity, max_iters, check_every)[0]


def _label(binary: Tensor, connectivity: int, max_iters: int | None, check_every: int) -> tuple[Tensor, int]:
    """The labelling itself (inputs already checked); also returns the iterations run.

    Implementation notes (CPU speed matters as much as GPU speed here): the label table is laid
    out as the flattened zero-padded image, (B, (H + 2) * (W + 2)) int64, whose one-pixel border
    holds the sentinel ``s`` (the largest padded index; it points to itself). In that layout
    the neighbours of all pixels are contiguous 1-D shifts of the table (by 1 and by W + 2), so
    the neighbour min is a few contiguous ``minimum`` passes, and the whole iteration runs in
    preallocated buffers with in-place / ``out=`` ops (allocating fresh multi-megabyte tensors
    every step would dominate the CPU time). Labels are padded flat indices during the loop and
    are mapped to unpadded ones at the end.
    """
    b, _, h, w = binary.shape
    if binary.numel() == 0:
        return torch.zeros(binary.shape, dtype=torch.int64, device=binary.device), 0
    limit = h * w if max_iters is None else max_iters
    offsets = _NEIGHBOURS_4 if connectivity == 4 else _NEIGHBOURS_8
    device = binary.device
    hp, wp = h + 2, w + 2
    size = hp * wp
    sentinel = size - 1
    # Neighbour shifts in the flat padded layout; `reach` = the largest one.
    shifts = [dy * wp + dx for dy, dx in offsets]
    reach = wp + 1

    background = torch.ones((b, hp, wp), dtype=torch.bool, device=device)
    background[:, 1:-1, 1:-1] = ~binary[:, 0]
    background = background.view(b, size)
    table = torch.arange(size, device=device, dtype=torch.int64).expand(b, size).masked_fill(background, sentinel)

    m = torch.empty_like(table)
    spare = torch.empty_like(table)
    # Only positions reach .. size - reach - 1 have all their neighbours inside the table; the
    # others are border pixels, which the background mask resets to the sentinel anyway.
    centre = slice(reach, size - reach)
    m[:, :reach] = sentinel
    m[:, size - reach :] = sentinel
    # 8-connectivity: the 3 x 3 min is separable (row min, then column min of the row mins).
    row_min = torch.full_like(table, sentinel) if connectivity == 8 else m
    it = 0
    while it < limit:
        # 1. neighbour min (the border holds the sentinel, which never wins); background -> sentinel.
        mc = m[:, centre]
        if connectivity == 4:
            torch.minimum(table[:, centre], table[:, reach + shifts[0] : size - reach + shifts[0]], out=mc)
            for sh in shifts[1:]:
                torch.minimum(mc, table[:, reach + sh : size - reach + sh], out=mc)
        else:
            rows = row_min[:, 1 : size - 1]
            torch.minimum(table[:, : size - 2], table[:, 1 : size - 1], out=rows)
            torch.minimum(rows, table[:, 2:], out=rows)
            torch.minimum(row_min[:, centre], row_min[:, reach - wp : size - reach - wp], out=mc)
            torch.minimum(mc, row_min[:, reach + wp : size - reach + wp], out=mc)
        m.masked_fill_(background, sentinel)
        # Convergence check: no pixel has a neighbour with a smaller label <=> labels are
        # constant on every component <=> done (labels only decrease, see the module docstring).
        if it > 0 and it % check_every == 0 and torch.equal(m, table):
            break
        # 2. hooking: each pixel's own entry and the entry it points to are lowered to its
        #    neighbour min. Background and border pixels point to the sentinel with value
        #    sentinel: no change there.
        torch.minimum(table, m, out=spare)
        spare.scatter_reduce_(1, table, m, reduce="amin")
        # 3. pointer jumping, twice (cheap, and halves the iterations on long components).
        torch.gather(spare, 1, spare, out=table)
        torch.gather(table, 1, table, out=spare)
        table, spare = spare, table
        it += 1
    # Padded flat index -> 1 + unpadded flat index (the sentinel and border map to 0).
    to_label = torch.zeros((hp, wp), dtype=torch.int64, device=device)
    to_label[1:-1, 1:-1] = torch.arange(1, h * w + 1, device=device, dtype=torch.int64).view(h, w)
    labels = torch.take(to_label, table.view(b, hp, wp)[:, 1:-1, 1:-1])
    return labels.unsqueeze(1), it
