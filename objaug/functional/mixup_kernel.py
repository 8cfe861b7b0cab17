"""The unchecked background-mixup kernel and its CPU fast path (workspaces, in-place writes, compaction).

:func:`mixup_kernel` checks nothing: :func:`objaug.functional.mixup.background_mixup` (the public,
checked kernel) and :class:`objaug.augment.mixup.BackgroundMixup` (which keeps a :class:`Workspace`
between calls and asks :func:`uses_compact_path` how large it must be) validate, then run it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from objaug._paths import fixed_shape_path
from objaug.functional.backgrounds import (
    BackgroundMixupOutput,
    MixupSource,
    _backgrounds,
    _flat_rows,
    _rectangle_weight,
    _source_rows_cols,
    largest_strip,
    needs_grad,
)
from objaug.functional.rectangles import _object_rectangles

__all__ = ["Workspace", "mixup_kernel", "uses_compact_path"]

def uses_compact_path(t: Tensor) -> bool:
    """Whether :func:`mixup_kernel` compacts the batch to the images that build a background, for tensors like ``t``.

    Reading how many there are (``nonzero``) synchronises nothing on the CPU, where the tensors already
    live on the host; on an accelerator it would stall the stream, so there the shapes stay fixed
    (:func:`objaug._paths.fixed_shape_path`; :func:`objaug.testing.accelerator_paths` forces it on the CPU).
    """
    return not fixed_shape_path(t)


class Workspace(NamedTuple):
    """Buffers of one :func:`mixup_kernel` call without autograd (all contiguous, the images' dtype/device).

    ``storage`` (Q + B, C, H, W): rows [0, Q) are the background queue (``queue``: that view, the
    module's queue buffer as long as the workspace is current), rows [Q, Q + B) receive the
    batch's backgrounds, so one ``index_select`` reads a partner's background or a queued one.
    ``scratch`` (>= B, C, H, W; >= 2B on compacting devices): temporary rows (the built images, the
    tiling, and the mixing source). ``maps`` (>= 2B, 1, H, W on compacting devices, else empty):
    mask-sized rows (the built images' masks and blend weights). Fresh buffers of this size cost more
    in page faults on the CPU than the kernels that fill them.
    """

    storage: Tensor
    queue: Tensor
    queue_rows: int
    scratch: Tensor
    maps: Tensor


def mixup_kernel(
    images: Tensor,
    masks: Tensor,
    apply: Tensor,
    perm: Tensor,
    threshold: float | Tensor,
    source: MixupSource,
    queue: Tensor | None,
    queue_slot: Tensor | None,
    queue_len: Tensor | None,
    *,
    workspace: Workspace | None = None,
    inplace: bool = False,
    fallback_mass: float | None = None,
) -> tuple[BackgroundMixupOutput, Tensor, Tensor | None]:
    """Unchecked kernel of :func:`background_mixup`; also returns the backgrounds and how they are laid out.

    Returns ``(output, backgrounds, ranks)``: with ``ranks`` None, ``backgrounds`` is (B, C, H, W), row
    i the background of image i (the image itself where none was built); otherwise it is (k, C, H, W),
    only the k built backgrounds (the CPU path, see below), and ``ranks`` (k,) int64 gives each row's
    rank among them in batch order.

    The per-image decisions (rectangles, strips, who is mixed with what) are computed once for the
    batch from small tensors. The backgrounds of all images are built in three batched passes
    (:func:`_backgrounds`); then one ``index_select`` over [queue; backgrounds] picks each image's
    source (the partner's background, a queued one, or, for unmixed images, any row: their blend
    weight keeps the image exactly), and one ``lerp`` with the soft mask as weight blends the image
    back in (``lerp(bg, x, 1) == x`` for finite x). ``workspace`` (from the module) holds the queue
    and reusable buffers, so no large temporary is allocated; ``inplace`` writes the result into
    ``images`` (contiguous, no autograd). Without a workspace, or with autograd recording, everything
    runs out of place (same values).

    On CPU tensors without autograd (:func:`uses_compact_path`) the same values are computed for
    the built images only (:func:`_mixup_compact`): there, counting them costs no synchronisation, and
    the other images need no work at all.
    """
    b, _, h, w = images.shape
    dev = images.device
    grad = needs_grad(images, masks)
    x = images.contiguous()
    boxes = _object_rectangles(masks, threshold, fallback_mass)
    strip, area = largest_strip(boxes, h, w)
    built = apply & (area > 0)
    partner_built = built[perm]
    from_partner = built & partner_built
    q = queue.shape[0] if queue is not None else 0
    from_queue: Tensor | None = None
    if q > 0 and queue_slot is not None and queue_len is not None:
        from_queue = built & ~partner_built & (queue_len > 0)
        mixed = from_partner | from_queue
    else:
        mixed = from_partner
    if not grad and uses_compact_path(x):
        return _mixup_compact(images, x, masks, boxes, strip, built, mixed, from_partner, from_queue, perm,
                              threshold, source, queue, queue_slot, workspace, inplace)
    ar = torch.arange(b, device=dev)
    weight = torch.where(mixed.view(-1, 1, 1, 1), masks.to(x.dtype), 1.0)
    if grad or workspace is None:  # out of place: autograd, or no reusable buffers (the functional API)
        bg = _backgrounds(x, masks, boxes, built, threshold, source)
        src = bg.index_select(0, torch.where(from_partner, perm, ar))
        if from_queue is not None:
            assert queue is not None and queue_slot is not None
            src = torch.where(from_queue.view(-1, 1, 1, 1), queue.index_select(0, queue_slot), src)
        return BackgroundMixupOutput(torch.lerp(src, x, weight), mixed, built, boxes), bg.detach(), None
    storage, q = workspace.storage, workspace.queue_rows
    bg = _backgrounds(x, masks, boxes, built, threshold, source, out=storage[q:q + b],
                      tmp=workspace.scratch[:b])
    index = q + torch.where(from_partner, perm, ar)
    if from_queue is not None:
        assert queue_slot is not None
        index = torch.where(from_queue, queue_slot, index)
    if inplace and x is images:
        src = torch.index_select(storage, 0, index, out=workspace.scratch[:b])
        out = torch.lerp(src, images, weight, out=images)  # elementwise, so writing over `end` is safe
    else:
        out = storage.index_select(0, index).lerp_(x, weight)
    return BackgroundMixupOutput(out, mixed, built, boxes), bg, None


def _mixup_compact(
    images: Tensor,
    x: Tensor,
    masks: Tensor,
    boxes: Tensor,
    strip: Tensor,
    built: Tensor,
    mixed: Tensor,
    from_partner: Tensor,
    from_queue: Tensor | None,
    perm: Tensor,
    threshold: float | Tensor,
    source: MixupSource,
    queue: Tensor | None,
    queue_slot: Tensor | None,
    workspace: Workspace | None,
    inplace: bool,
) -> tuple[BackgroundMixupOutput, Tensor, Tensor]:
    """The CPU path of :func:`mixup_kernel` (no autograd): the same values, computed for the built images only.

    Only an image that builds a background can be mixed (method.md §4), so the k built images (about
    ``p`` of the batch) are gathered once, those with a top/bottom strip first, then those with a
    left/right one: each group then needs a single tiling pass (rows, or columns). Their backgrounds
    are built, each is blended with its partner's or a queued background, and the results are
    scattered back; the other images are not touched (in place) or copied once. ``x`` is
    ``images.contiguous()``, ``strip`` the (B,) :func:`largest_strip` index. Returns the output, the
    (k, C, H, W) backgrounds in that grouped order, and their (k,) int64 ranks in batch order (the order
    a queue receives them).
    """
    b, _, h, w = x.shape
    dev = x.device
    by_rows = (strip == 0) | (strip == 3)
    # On the CPU, nonzero reads host memory: no device synchronisation.
    tile_rows = (built & by_rows).nonzero().squeeze(1)
    rows = torch.cat([tile_rows, (built & ~by_rows).nonzero().squeeze(1)])
    k, n_rows = rows.numel(), tile_rows.numel()
    fresh = x is not images  # .contiguous() already made a copy
    out = x if inplace or fresh else x.clone()
    output = BackgroundMixupOutput(out, mixed, built, boxes)
    ranks = (built.cumsum(0) - 1).index_select(0, rows)  # batch-order rank of each background row
    if k == 0:
        return output, x.new_empty((0, *x.shape[1:])), ranks
    pos = torch.zeros(b, dtype=torch.int64, device=dev).index_copy_(0, rows, torch.arange(k, device=dev))
    if workspace is not None:
        q = workspace.queue_rows
        xs = torch.index_select(x, 0, rows, out=workspace.scratch[:k])
        tmp: Tensor | None = workspace.scratch[k:2 * k]
        bg_out: Tensor | None = workspace.storage[q:q + k]
    else:
        q = 0
        xs, tmp, bg_out = x.index_select(0, rows), None, None
    flat_masks = masks.reshape(b, h * w)
    ins_out: Tensor | None = None
    if workspace is not None and workspace.maps.shape[0] >= 2 * k and masks.dtype == x.dtype:
        mk = torch.index_select(flat_masks, 0, rows, out=workspace.maps[:k].view(k, h * w)).view(k, 1, h, w)
        ins_out = workspace.maps[k:2 * k]
    else:
        mk = flat_masks.index_select(0, rows).view(k, 1, h, w)  # a copy: filled below
    bk = boxes.index_select(0, rows)
    if source == "tiled-strip":
        bg = _tiled_grouped(xs, bk, strip.index_select(0, rows), n_rows, bg_out, tmp, ins_out)
    else:
        thr = threshold.index_select(0, rows) if isinstance(threshold, Tensor) else threshold
        bg = _backgrounds(xs, mk, bk, torch.ones(k, dtype=torch.bool, device=dev), thr, source,
                          out=bg_out, tmp=tmp)
    own = torch.arange(k, device=dev)
    part = pos[perm].index_select(0, rows)  # the partner's background row (valid where it was built)
    partner = torch.where(from_partner.index_select(0, rows), part, own)
    weight = mk.to(x.dtype)  # the soft mask; 1 (keep the image exactly) for built but unmixed images
    weight.index_fill_(0, (~mixed.index_select(0, rows)).nonzero().squeeze(1), 1.0)
    if workspace is not None:
        index = q + partner
        if from_queue is not None:
            assert queue_slot is not None
            index = torch.where(from_queue.index_select(0, rows), queue_slot.index_select(0, rows), index)
        src = torch.index_select(workspace.storage, 0, index, out=tmp)
    else:
        src = bg.index_select(0, partner)
        if from_queue is not None:
            assert queue is not None and queue_slot is not None
            fq = from_queue.index_select(0, rows)
            src = torch.where(fq.view(-1, 1, 1, 1), queue.index_select(0, queue_slot.index_select(0, rows)), src)
    res = torch.lerp(src, xs, weight, out=src)  # elementwise, so writing over `input` is safe
    out.index_copy_(0, rows, res)
    return output, bg, ranks


def _tiled_grouped(xs: Tensor, boxes: Tensor, strip: Tensor, n_rows: int, out: Tensor | None,
                   tmp: Tensor | None, inside_out: Tensor | None = None) -> Tensor:
    """:func:`_tiled_into` for images whose rectangles do not cover the frame, sorted by strip axis.

    The first ``n_rows`` images tile a top/bottom strip (one ``index_select`` of pixel rows), the
    others a left/right strip (one ``gather`` of columns); one ``lerp`` restricts the tiling to the
    rectangles. ``xs`` (k, C, H, W) contiguous; ``out`` / ``tmp`` optional contiguous buffers like
    ``xs``, ``inside_out`` an optional contiguous (k, 1, H, W) buffer of its dtype.
    """
    k, c, h, w = xs.shape
    dev = xs.device
    act = torch.ones(k, dtype=torch.bool, device=dev)
    src_y, src_x, in_y, in_x = _source_rows_cols(boxes, strip, act, h, w)
    tiled = torch.empty_like(xs) if tmp is None else tmp
    if n_rows > 0:
        torch.index_select(xs[:n_rows].view(n_rows * c * h, w), 0, _flat_rows(src_y[:n_rows], c, h),
                           out=tiled[:n_rows].view(n_rows * c * h, w))
    if n_rows < k:
        n_cols = k - n_rows
        index = src_x[n_rows:].view(n_cols, 1, 1, w).expand(n_cols, c, h, w)
        torch.gather(xs[n_rows:], 3, index, out=tiled[n_rows:])
    inside = _rectangle_weight(in_y, in_x, xs.dtype, out=inside_out)
    if out is None:
        return torch.lerp(xs, tiled, inside)
    return torch.lerp(xs, tiled, inside, out=out)

