"""Object rectangles of background mixup: the part of each image a mixed view keeps.

Pure, batched kernels (no Python loop over samples, no host synchronisation). Rectangles are (B, 4) int64
``(y0, y1, x0, x1)`` with **inclusive** bounds, the convention of :mod:`objaug.functional.mixup`, which
re-exports these names.
"""

from __future__ import annotations

import torch
from torch import Tensor

from objaug.validation import check_fallback_mass, check_threshold

__all__ = ["mask_bounding_boxes", "mass_rectangles", "object_rectangles"]


def _check_masks(masks: object) -> None:
    """``ValueError`` unless a (B, 1, H, W) tensor, ``TypeError`` unless floating (metadata only)."""
    if not isinstance(masks, Tensor) or masks.ndim != 4 or masks.shape[1] != 1:
        shape = tuple(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
        raise ValueError(f"masks must be a (B, 1, H, W) tensor, got {shape}.")
    if not masks.is_floating_point():
        raise TypeError(f"masks must be floating point with values in [0, 1], got {masks.dtype}.")


def _bounding_boxes(masks: Tensor, threshold: float | Tensor) -> Tensor:
    """Unchecked kernel of :func:`mask_bounding_boxes`."""
    return _extent(masks, threshold)[0]


def _extent(masks: Tensor, threshold: float | Tensor) -> tuple[Tensor, Tensor]:
    """``(boxes, empty)``: the tight rectangles of ``masks >= threshold`` and (B,) bool, the empty hard masks."""
    b, _, h, w = masks.shape
    dev = masks.device
    if isinstance(threshold, Tensor):  # per-image cut-offs (B,)
        threshold = threshold.view(b, 1)
    # A row (column) meets the hard mask iff its maximum reaches the threshold: two reductions of the
    # soft mask, no (B, 1, H, W) bool temporary.
    rows = masks.amax(dim=3).view(b, h) >= threshold
    cols = masks.amax(dim=2).view(b, w) >= threshold
    ys = torch.arange(h, device=dev)
    xs = torch.arange(w, device=dev)
    y0 = torch.where(rows, ys, h).amin(dim=1)
    y1 = torch.where(rows, ys, -1).amax(dim=1)
    x0 = torch.where(cols, xs, w).amin(dim=1)
    x1 = torch.where(cols, xs, -1).amax(dim=1)
    empty = y1 < 0  # no row reaches the threshold: the rectangle is the whole image
    y0 = torch.where(empty, 0, y0)
    y1 = torch.where(empty, h - 1, y1)
    x0 = torch.where(empty, 0, x0)
    x1 = torch.where(empty, w - 1, x1)
    return torch.stack([y0, y1, x0, x1], dim=1), empty


def mask_bounding_boxes(masks: Tensor, threshold: float = 0.2) -> Tensor:
    """Tight bounding rectangle of the hard masks ``masks >= threshold``, per image.

    Args:
        masks: floating (B, 1, H, W) soft masks in [0, 1], any device.
        threshold: cut-off in (0, 1]; a pixel is object iff ``mask >= threshold``.

    Returns:
        (B, 4) int64 ``(y0, y1, x0, x1)`` with inclusive bounds, on ``masks.device``; the whole image
        ``(0, H - 1, 0, W - 1)`` where no pixel reaches the threshold.

    Raises:
        TypeError: ``masks`` not a floating tensor, ``threshold`` not a number.
        ValueError: ``masks`` not (B, 1, H, W), ``threshold`` outside (0, 1].
    """
    threshold = check_threshold(threshold)
    _check_masks(masks)
    return _bounding_boxes(masks, threshold)


def _mass_rectangles(masks: Tensor, coverage: float) -> Tensor:
    """Unchecked kernel of :func:`mass_rectangles`."""
    b, _, h, w = masks.shape
    trim = (1.0 - coverage) / 2.0
    out = []
    for profile, n in ((masks.sum(dim=3).view(b, h), h), (masks.sum(dim=2).view(b, w), w)):
        p = profile.double()
        cum = p.cumsum(dim=1)
        total = cum[:, -1:]
        cut = trim * total * (1 + 1e-9)  # a hair of slack: a profile of equal rows trims exact multiples
        lo = (cum <= cut).sum(dim=1).clamp_max(n - 1)  # leading rows holding at most `trim` of the mass
        hi = (n - 1 - (total - cum + p <= cut).sum(dim=1)).clamp_min(0)  # the same from the other end
        hi = torch.maximum(hi, lo)
        empty = total[:, 0] <= 0
        out += [torch.where(empty, 0, lo), torch.where(empty, n - 1, hi)]
    return torch.stack(out, dim=1)


def mass_rectangles(masks: Tensor, coverage: float = 0.9) -> Tensor:
    """The smallest rectangle holding ``coverage`` of each soft mask's mass along each axis, per image.

    Along the rows (and, separately, the columns) the mask's mass profile is trimmed by ``(1 - coverage) / 2``
    of its total at each end: the first kept row is the first whose cumulative mass exceeds that share, the
    last kept row the last whose mass from the end does. A threshold-free, outlier-robust object rectangle:
    a few stray activations near the frame (which make the tight rectangle of a hard mask cover the whole
    image) move it little. Background mixup uses it where the tight rectangle covers the frame
    (``fallback_mass``).

    Args:
        masks: floating (B, 1, H, W) soft masks in [0, 1], any device.
        coverage: share of the mass kept along each axis, in (0, 1]; 1 gives the tight rectangle of
            ``masks > 0``.

    Returns:
        (B, 4) int64 inclusive ``(y0, y1, x0, x1)`` on ``masks.device``; the whole image for an all-zero
        mask.

    Raises:
        TypeError: ``masks`` not a floating tensor.
        ValueError: ``masks`` not (B, 1, H, W), ``coverage`` outside (0, 1].

    Example:
        >>> m = torch.zeros(1, 1, 10, 10); m[0, 0, 2:6, 3:9] = 1.0; m[0, 0, 9, 0] = 0.2  # a stray pixel
        >>> mass_rectangles(m, 0.9).tolist(), mask_bounding_boxes(m, 0.1).tolist()
        ([[2, 5, 3, 8]], [[2, 9, 0, 8]])
    """
    coverage = check_threshold(coverage, "coverage")
    _check_masks(masks)
    return _mass_rectangles(masks, coverage)


def _object_rectangles(masks: Tensor, threshold: float | Tensor, fallback_mass: float | None) -> Tensor:
    """Unchecked kernel of :func:`object_rectangles`."""
    boxes, empty = _extent(masks, threshold)
    if fallback_mass is None:
        return boxes
    b, _, h, w = masks.shape
    frame = torch.tensor([0, h - 1, 0, w - 1], device=masks.device)
    covers = (boxes == frame).all(dim=1) & ~empty
    return torch.where(covers.view(b, 1), _mass_rectangles(masks, fallback_mass), boxes)


def object_rectangles(masks: Tensor, threshold: float | Tensor = 0.2, fallback_mass: float | None = None) -> Tensor:
    """Background mixup's object rectangle R of each image (what :func:`background_mixup` keeps).

    The tight rectangle of ``masks >= threshold`` (:func:`mask_bounding_boxes`); with ``fallback_mass``,
    where that rectangle covers the whole frame although the hard mask is not empty, the
    :func:`mass_rectangles` of the soft mask instead. An empty hard mask keeps the whole frame (no
    object to keep: the image stays unmixed). An image can be mixed iff R leaves a strip
    (:func:`largest_strip` area > 0).

    Args:
        masks: floating (B, 1, H, W) soft masks in [0, 1], any device.
        threshold: cut-off in (0, 1], or a (B,) tensor of per-image cut-offs on ``masks``' device (e.g.
            :func:`objaug.masks.otsu_thresholds`).
        fallback_mass: ``None`` (the paper's rule) or the mass share in (0, 1] of the fallback rectangle.

    Returns:
        (B, 4) int64 inclusive ``(y0, y1, x0, x1)`` on ``masks.device``.

    Raises:
        TypeError: ``masks`` not a floating tensor.
        ValueError: ``masks`` not (B, 1, H, W), ``threshold`` or ``fallback_mass`` outside (0, 1].
    """
    if not isinstance(threshold, Tensor):
        threshold = check_threshold(threshold)
    fallback_mass = check_fallback_mass(fallback_mass)
    _check_masks(masks)
    if isinstance(threshold, Tensor) and threshold.shape != (masks.shape[0],):
        raise ValueError(f"a threshold tensor must have shape ({masks.shape[0]},) (one cut per image), got "
                         f"{tuple(threshold.shape)}.")
    return _object_rectangles(masks, threshold, fallback_mass)
