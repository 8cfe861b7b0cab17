"""Pure kernels of ContraCAM (method.md §1): the contrastive score and the Grad-CAM map.

Each function works on a whole batch, on any device, without host synchronisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "contrastive_score",
    "box_mean",
    "edge_refine",
    "fill_masked",
    "gradcam_map",
    "minmax_normalize",
    "nearest_negatives",
    "upsample_maps",
]


def contrastive_score(
    z: Tensor,
    keys: Tensor,
    in_batch: Sequence[Tensor],
    *,
    bank: Tensor | None = None,
    temperature: float = 1.0,
    batch_mask: Tensor | None = None,
    bank_mask: Tensor | None = None,
) -> Tensor:
    """Per-sample contrastive score S_i of ContraCAM.

    ``S_i = z_i . k_i / t - logsumexp_{s, j != i}(z_i . z_j^s / t  [, z_i . n_m / t])``

    With ``batch_mask`` / ``bank_mask`` (from :func:`nearest_negatives`) the sum runs over the selected
    negatives only: entry ``[i, j]`` True keeps image j (at every iteration s) as a negative of image i.

    Args:
        z: (B, D) unit-norm embeddings of the current images (the ones differentiated).
        keys: (B, D) unit-norm positives (the original images' embeddings), no gradient.
        in_batch: the in-batch negatives, one (B, D) unit-norm tensor per refinement iteration so far
            (original and masked images), no gradient. Entry j of each is a negative for every i != j.
        bank: optional external negatives (N, D), unit norm (a MoCo queue, a lightly memory bank).
        temperature: the softmax temperature t > 0.
        batch_mask: optional (B, B) bool, which in-batch images are negatives of each image (the
            diagonal is ignored: an image is never its own negative).
        bank_mask: optional (B, N) bool, which bank entries are negatives of each image.

    Returns:
        (B,) float tensor, the score of each sample; S.sum() differentiates each z_i independently.
    """
    b = z.shape[0]
    pos = (z * keys).sum(dim=1) / temperature
    logits = []
    if len(in_batch):
        stacked = torch.cat(list(in_batch), dim=0)  # (T*B, D)
        neg = z @ stacked.T / temperature  # (B, T*B)
        drop = torch.eye(b, dtype=torch.bool, device=z.device)
        if batch_mask is not None:
            drop = drop | ~batch_mask
        logits.append(neg.masked_fill(drop.repeat(1, len(in_batch)), float("-inf")))
    if bank is not None:
        bank_logits = z @ bank.T / temperature
        if bank_mask is not None:
            bank_logits = bank_logits.masked_fill(~bank_mask, float("-inf"))
        logits.append(bank_logits)
    if not logits:
        raise ValueError("contrastive_score needs negatives: in-batch embeddings or a bank.")
    return pos - torch.logsumexp(torch.cat(logits, dim=1), dim=1)


def gradcam_map(features: Tensor, grads: Tensor) -> Tensor:
    """Grad-CAM with non-negative channel weights: ``ReLU(sum_k max(0, mean_hw dS/dA_k) A_k)``.

    Args:
        features: (B, C, h, w) feature map A.
        grads: (B, C, h, w) gradient dS/dA.

    Returns:
        (B, 1, h, w) map in float32 (float64 for float64 input), non-negative, not normalised.
    """
    dtype = torch.promote_types(features.dtype, torch.float32)
    a = features.to(dtype)
    weights = grads.to(dtype).mean(dim=(2, 3), keepdim=True).clamp_min(0)
    return (weights * a).sum(dim=1, keepdim=True).relu()


def _interpolation_matrix(n: int, size: int, mode: str, like: Tensor) -> Tensor:
    """(size, n): row i holds the weights of the n input samples in output sample i of a 1-D resize.

    Read off ``F.interpolate`` itself (the resize of each unit vector), so it has torch's weights and border
    rule for ``mode`` (``align_corners=False``), in ``like``'s dtype and device.
    """
    eye = torch.eye(n, dtype=like.dtype, device=like.device).view(1, 1, n, n)
    return F.interpolate(eye, size=(size, n), mode=mode, align_corners=False)[0, 0]


def upsample_maps(maps: Tensor, size: tuple[int, int], *, mode: str = "bicubic") -> Tensor:
    """Resize (B, 1, h, w) maps to ``size`` = (H, W) (``align_corners=False`` like the reference).

    Bicubic and bilinear resizes are separable, so they are computed as two small matrix products,
    ``R_y @ maps @ R_x.T`` with the 1-D resize matrices of :func:`F.interpolate` (for 7x7 -> 224x224 maps,
    about 8x faster than ``F.interpolate`` on the CPU); the values equal ``F.interpolate``'s up to float
    rounding (a different summation order: differences below 1e-6 for maps in [0, 1]). ``"nearest"`` and
    ``"area"`` use ``F.interpolate``.
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if mode in ("nearest", "area"):
        return F.interpolate(maps, size=size, mode=mode)
    h, w = maps.shape[-2:]
    rows = _interpolation_matrix(h, size[0], mode, maps)
    cols = _interpolation_matrix(w, size[1], mode, maps)
    return rows @ maps @ cols.T


def minmax_normalize(maps: Tensor, *, eps: float = 1e-20) -> Tensor:
    """Per-image min-max normalisation of (B, 1, H, W) maps to [0, 1] (a constant map becomes 0)."""
    flat = maps.flatten(1)
    low = flat.amin(dim=1).view(-1, 1, 1, 1)
    shifted = maps - low
    high = shifted.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return shifted / (high + eps)


def fill_masked(images: Tensor, masks: Tensor, fill: Tensor) -> Tensor:
    """``images * (1 - masks) + fill * masks``: paint the found regions with a colour.

    Args:
        images: (B, C, H, W) floating images.
        masks: (B, 1, H, W) maps in [0, 1].
        fill: a tensor broadcastable to (B, C, H, W), e.g. the (1, C, 1, 1) mean colour.
    """
    m = masks.to(images.dtype)
    return images * (1 - m) + fill.to(images.dtype) * m


#: Cosine-similarity slack under which a bank entry counts as a copy of the image (:func:`nearest_negatives`).
SELF_TOLERANCE: float = 1e-5


def bank_copies(keys: Tensor, bank: Tensor, sims: Tensor | None = None) -> Tensor:
    """(B, N) bool: which bank entries are copies of each image (cosine >= ``1 - SELF_TOLERANCE``).

    A bank embedded from the same dataset (``ContraCAM.embed`` over the training set) holds the batch's own
    images; a copy is never an image's negative. ``keys`` (B, D) and ``bank`` (N, D) are unit norm, on one
    device; ``sims`` may pass ``keys @ bank.T`` when it is already computed.
    """
    return (keys @ bank.T if sims is None else sims) >= 1.0 - SELF_TOLERANCE


def nearest_negatives(keys: Tensor, k: int, bank: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """The ``k`` hardest negatives of each image: its nearest neighbours in embedding space.

    The label-free form of the reference code's class-sorted CAM batches (method.md §1): contrasting
    an image with the images most similar to it (often the same kind of scene or background) leaves
    what is specific to it, usually the object. Neighbours are searched jointly among the other
    images of the batch and the bank, by cosine similarity (``keys`` and ``bank`` are unit norm).

    Args:
        keys: (B, D) unit-norm embeddings of the original images, any device.
        k: neighbours per image, >= 1; clipped to ``B - 1 + N`` (all candidates).
        bank: optional (N, D) unit-norm external embeddings on the same device. Entries whose cosine
            similarity to an image is at least ``1 - SELF_TOLERANCE`` are copies of it (a bank embedded
            from the same dataset, e.g. ``ContraCAM.embed`` over the training set) and never chosen for it.

    Returns:
        ``(batch_mask, bank_mask)``: (B, B) bool (False on the diagonal) and (B, N) bool (None without
        a bank); row i has ``min(k, c_i)`` True entries in the two together, ``c_i`` = its candidates
        (``B - 1 + N`` less the bank's copies of image i). Ties go to ``torch.topk``'s choice.
    """
    b = keys.shape[0]
    sims = keys @ keys.T
    sims = sims.masked_fill(torch.eye(b, dtype=torch.bool, device=keys.device), float("-inf"))
    if bank is not None:
        to_bank = keys @ bank.T
        sims = torch.cat([sims, to_bank.masked_fill(bank_copies(keys, bank, to_bank), float("-inf"))], dim=1)
    kk = max(1, min(int(k), sims.shape[1] - 1))  # never the diagonal: B - 1 + N candidates per row
    idx = sims.topk(kk, dim=1).indices
    # the diagonal and bank copies are -inf: never chosen, even when fewer than k candidates are left
    chosen = torch.zeros_like(sims, dtype=torch.bool).scatter_(1, idx, True) & (sims > float("-inf"))
    return chosen[:, :b], (chosen[:, b:] if bank is not None else None)


def box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean over a ``(2 * radius + 1)`` square window, reflect padding, by summed-area tables.

    O(1) per pixel whatever the radius (two cumulative sums and four lookups), where a convolution costs
    O(radius^2) (``kornia.filters.box_blur``: 1.1-1.4 s for 32 maps at 224 px and radius 11 on 2 CPU
    cores, against tens of milliseconds here). Accumulates in ``x``'s dtype: pass float32 or float64
    (:func:`edge_refine` does).

    Args:
        x: (B, C, H, W) floating tensor with H, W > ``radius``.
        radius: >= 1.

    Returns:
        (B, C, H, W) tensor of window means, same dtype as ``x``.
    """
    r = int(radius)
    k = 2 * r + 1
    b, c, h, w = x.shape
    # the summed-area table of the reflect-padded x, with a zero first row and column: the padding is
    # written into the table's buffer and summed in place (no padded copy, no second allocation)
    sat = x.new_empty((b, c, h + k, w + k))
    sat[..., 0, :] = 0
    sat[..., 1:, 0] = 0
    pad = sat[..., 1:, 1:]  # (B, C, H + 2r, W + 2r): F.pad(x, (r, r, r, r), mode="reflect")
    pad[..., r:r + h, r:r + w] = x
    pad[..., :r, r:r + w] = x[..., 1:r + 1, :].flip(-2)
    pad[..., r + h:, r:r + w] = x[..., h - 1 - r:h - 1, :].flip(-2)
    pad[..., :, :r] = pad[..., :, r + 1:2 * r + 1].flip(-1)
    pad[..., :, r + w:] = pad[..., :, w - 1:r + w - 1].flip(-1)
    pad.cumsum_(dim=2).cumsum_(dim=3)
    total = sat[..., k:k + h, k:k + w] - sat[..., :h, k:k + w]
    return total.sub_(sat[..., k:k + h, :w]).add_(sat[..., :h, :w]).div_(k * k)


def edge_refine(maps: Tensor, images: Tensor, *, radius: int, eps: float = 1e-2) -> Tensor:
    """Make maps follow the image's edges: a guided filter (He et al., 2010) with the image as guide.

    The guide is the per-image min-max normalised channel mean of ``images`` (grey, [0, 1]; so ``eps``
    means the same for normalised and [0, 1] inputs). Inside each ``(2 * radius + 1)`` window the output
    is an affine function of the guide, so a map that straddles an object edge is pulled towards the side
    it mostly covers, and flat regions are smoothed. The window means use :func:`box_mean` (summed-area
    tables, reflect padding: the same values as ``kornia.filters.guided_blur`` with a grey guide, at a
    fraction of its cost on large windows).

    Args:
        maps: (B, 1, H, W) floating maps (any range).
        images: (B, C, H, W) floating images of the same size, same device, any normalisation.
        radius: window radius in pixels, >= 1 (clipped to ``min(H, W) - 1``).
        eps: regulariser > 0 (larger = smoother, less edge-following), in units of the [0, 1] guide's
            variance.

    Returns:
        (B, 1, H, W) maps in the working dtype (float32, or float64 for float64 input), clamped >= 0;
        not normalised.
    """
    dtype = torch.promote_types(maps.dtype, torch.float32)
    guide = minmax_normalize(images.to(dtype).mean(dim=1, keepdim=True), eps=1e-12)
    p = maps.to(dtype)
    r = max(1, min(int(radius), min(p.shape[-2:]) - 1))
    mean_i = box_mean(guide, r)
    mean_p = box_mean(p, r)
    # in place only on fresh results whose old values no backward needs (autograd still works)
    cov = box_mean(guide * p, r).sub_(mean_i * mean_p)
    var = box_mean(guide * guide, r).sub_(mean_i * mean_i).add_(float(eps))
    a = cov / var
    b = mean_p - a * mean_i
    return (box_mean(a, r) * guide).add_(box_mean(b, r)).clamp_min(0)
