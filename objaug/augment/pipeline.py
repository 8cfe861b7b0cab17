"""Batched multi-view augmentation on the device: object-aware crop, flip, colour, normalise, mixup.

Replaces lightly's per-image ``MultiViewTransform`` (PIL/torchvision in DataLoader workers) by one
batched pass over full frames on the training device, with the object-aware crop of Mo et al.
(method.md section 3) and background mixup (section 4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast, overload

import kornia.augmentation as K
import torch
from kornia.augmentation._2d.intensity.base import _clamp_unit_range
from torch import Tensor, nn

from objaug._paths import fixed_shape_path
from objaug.augment.views import ViewConfig, simclr_views
from objaug.config import BoxConfig, CamConfig
from objaug.constants import IMAGENET_NORMALIZE
from objaug.engine import crop_view
from objaug.functional.crop import default_valid, full_image_boxes, sample_regions
from objaug.objects import Objects, boxes_of_maps
from objaug.provider import ObjectProvider
from objaug.validation import (
    check_antialias,
    check_batch_values,
    check_bool,
    check_box_layout,
    check_box_sampling,
    check_boxes,
    check_image_batch,
    check_int,
    check_mask_batch,
    check_optional_bool,
    check_optional_int,
    check_positive_float,
    check_probability,
    check_same_device,
    check_views,
)
from objaug.validation_schedule import CheckSchedule

__all__ = ["IMAGENET_NORMALIZE", "ObjectAwareAugment", "ViewConfig"]



def _adjust_hue_turns(images: Tensor, factor: Tensor) -> Tensor:
    """torchvision's ``adjust_hue`` (HSV hue shift by ``factor`` turns) for a batch with per-image factors.

    The same formula as torchvision's ``_rgb2hsv`` / ``_hsv2rgb`` (value and saturation kept, hue rotated),
    written as ``out_n = max - (max - min) * clamp(min(k_n, 4 - k_n), 0, 1)`` with
    ``k_n = (n + 6 h) mod 6`` for ``n = 5, 3, 1`` (R, G, B), which avoids the full HSV round trip, and
    with in-place steps on its own temporaries unless gradients are needed: about 4x faster than
    ``kornia.enhance.adjust_hue`` on the CPU, equal to torchvision to float precision.

    Args:
        images: ``(B, 3, H, W)`` RGB in [0, 1].
        factor: ``(B,)`` hue shifts in turns (``[-0.5, 0.5]``), any device.
    """
    f6 = 6 * factor.to(device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    # 6 * hue = numerator / delta, the numerator chosen by the max channel (R first, then G, as torchvision).
    num = torch.where(maxc == g, b - r + 2 * delta, r - g + 4 * delta)
    num = torch.where(maxc == r, g - b, num)
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    n = torch.arange(5.0, 0.0, -2.0, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)  # 5, 3, 1
    if images.requires_grad and torch.is_grad_enabled():
        k = torch.remainder(num / safe + f6 + n, 6.0)
        return maxc - delta * torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    k = num.div_(safe).add_(f6).add(n).remainder_(6.0)
    return torch.minimum(k, 4 - k).clamp_(0, 1).mul_(delta).neg_().add_(maxc)


#: kornia's ``ColorJitter`` parameters of the four adjustments, in its step order (brightness, contrast,
#: saturation, hue), and the factor of each that leaves an image unchanged.
_JITTER_KEYS = ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")
_JITTER_NEUTRAL = (1.0, 1.0, 1.0, 0.0)


def _jitter_in_drawn_order(images: Tensor, params: Mapping[str, Tensor],
                           steps: Sequence[Callable[[Tensor, Tensor], Tensor] | None]) -> Tensor:
    """kornia ``ColorJitter``'s four adjustments in the drawn random order, without reading the order on the host.

    kornia applies ``steps[i]`` for ``i`` in ``params["order"].tolist()`` and skips a step whose factors all
    equal its neutral value (Python branches: one host read each, graph breaks under ``torch.compile``).
    Here position ``k`` of the order computes every step on the current images and keeps, with
    ``torch.where``, the one the order names there (if it is not skipped): the same steps on the same
    inputs, so the same values, with fixed shapes and no host read. It costs up to 16 adjustments
    instead of 4 (elementwise passes that ``torch.compile`` fuses into one kernel per position).

    Args:
        images: ``(B, 3, H, W)`` in [0, 1], any device.
        params: kornia's parameters of the call: ``(B,)`` factors under :data:`_JITTER_KEYS` and the
            ``(4,)`` int64 ``order`` (any device; moved without waiting).
        steps: the four adjustments ``step(images, factor) -> images``; ``None`` for a step that can never
            apply (its factor range is the neutral value).

    Returns:
        ``(B, 3, H, W)``, the images' dtype and device.
    """
    dev = images.device
    order = params["order"].to(dev, non_blocking=True)
    factors = [params[key].to(dev, non_blocking=True) for key in _JITTER_KEYS]
    live = [(i, step, (factors[i] != _JITTER_NEUTRAL[i]).any()) for i, step in enumerate(steps) if step is not None]
    x = images
    for k in range(len(_JITTER_KEYS)):
        out = x
        for i, step, applies in live:
            out = torch.where((order[k] == i) & applies, step(x, factors[i]), out)
        x = out
    return x


class _ColorJitter(K.ColorJitter):
    """kornia's ``ColorJitter`` (torchvision formulas) with a faster, equivalent hue step and a fixed-shape path.

    Overrides kornia's private ``ColorJitter._adjust_hue_turns``: kornia has no public hook for one step of
    its jitter (its public ``kornia.enhance.adjust_hue`` is the slower formula this replaces), so the
    override stays; ``tests/test_pipeline.py::test_kornia_private_hooks_still_exist`` fails if kornia
    renames it (the hue step would then silently fall back to kornia's own, equal but slower).

    Under ``torch.compile`` the random order is applied by :func:`_jitter_in_drawn_order` instead of
    kornia's Python loop over ``order.tolist()`` (a graph break per read): the same values from the same
    draws, one graph. In eager mode kornia's loop stays, on accelerators too: what it reads on the host are
    its own CPU-side random draws (the order and the factors), never a value computed from the batch, so
    nothing waits for the device, and it computes 4 adjustments where the branch-free form computes up to
    16 (5x the time of the jitter on the CPU in eager mode).
    """

    def _adjust_hue_turns(self, input: Tensor, factor: Tensor) -> Tensor:
        return _adjust_hue_turns(input, factor)

    def apply_transform(self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any],
                        transform: Tensor | None = None) -> Tensor:
        if not torch.compiler.is_compiling() or input.shape[-3] != 3 or self._fixed_order is not None:
            return super().apply_transform(input, params, flags, transform)
        strengths = (self.brightness, self.contrast, self.saturation, self.hue)
        steps = (self._brightness_fn, self._contrast_fn, self._saturation_fn, self._adjust_hue_turns)
        live: list[Callable[[Tensor, Tensor], Tensor] | None] = []
        for step, strength in zip(steps, strengths, strict=True):
            never = isinstance(strength, int | float) and strength == 0  # a (1, 1) range: never applied
            live.append(None if never else cast(Callable[[Tensor, Tensor], Tensor], step))
        return _clamp_unit_range(_jitter_in_drawn_order(_clamp_unit_range(input), params, live))


class _ViewOps(nn.Module):
    """The photometric part of one view (kornia modules), built once."""

    mean: Tensor
    std: Tensor

    def __init__(self, cfg: ViewConfig) -> None:
        super().__init__()
        s = cfg.cj_strength
        ops: list[nn.Module] = []
        if cfg.cj_prob > 0 and s * max(cfg.cj_bright, cfg.cj_contrast, cfg.cj_sat, cfg.cj_hue) > 0:
            ops.append(_ColorJitter(brightness=s * cfg.cj_bright, contrast=s * cfg.cj_contrast,
                                     saturation=s * cfg.cj_sat, hue=s * cfg.cj_hue, p=cfg.cj_prob))
        if cfg.random_gray_scale > 0:
            ops.append(K.RandomGrayscale(p=cfg.random_gray_scale))
        if cfg.gaussian_blur > 0:
            k = cfg.blur_kernel_size
            sigma = (float(cfg.sigmas[0]), float(cfg.sigmas[1]))
            ops.append(K.RandomGaussianBlur((k, k), sigma=sigma, border_type="replicate", p=cfg.gaussian_blur))
        if cfg.solarization_prob > 0:
            ops.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=cfg.solarization_prob))
        self.ops = nn.ModuleList(ops)
        norm = cfg.normalize
        self.normalizes = norm is not None
        mean = norm["mean"] if norm is not None else (0.0, 0.0, 0.0)
        std = norm["std"] if norm is not None else (1.0, 1.0, 1.0)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def _photometric(self, x: Tensor) -> Tensor:
        for op in self.ops:
            x = op(x)
        if self.normalizes:
            scale = 1.0 / self.std.to(x.dtype)
            x = torch.addcmul(-self.mean.to(x.dtype) * scale, x, scale)
        return x

    def forward(self, x: Tensor, cpu_chunk_size: int | None = None) -> Tensor:
        if cpu_chunk_size is None or fixed_shape_path(x) or x.shape[0] <= cpu_chunk_size:
            return self._photometric(x)
        out = torch.empty_like(x)
        for start in range(0, x.shape[0], cpu_chunk_size):
            out[start:start + cpu_chunk_size] = self._photometric(x[start:start + cpu_chunk_size])
        return out


def _resolve_cam(cam: Any, cam_config: CamConfig | None, provider: ObjectProvider) -> Any:
    """The CAM of ``ObjectAwareAugment(cam=...)``: built from a model with ``cam_config``, or a ready callable."""
    if cam is None:
        return None
    if isinstance(cam, nn.Module):
        return provider.build_cam(cam)
    return provider.adopt_cam(cam, config_given=cam_config is not None)


def _unpack(objects: Objects, boxes: Tensor | None, valid: Tensor | None, masks: Tensor | None, *,
            size: tuple[int, int], dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor | None]:
    """``objects=``'s boxes, valid and masks (resized to ``size``); refuses loose tensors given as well."""
    if not isinstance(objects, Objects):
        raise TypeError(f"objects must be an objaug.objects.Objects, got {type(objects).__name__}.")
    if boxes is not None or valid is not None or masks is not None:
        raise ValueError("Pass the batch's objects either as objects= or as boxes=/valid=/masks=, not both.")
    return objects.boxes, objects.valid, objects.masks_at(size, dtype)


class ObjectAwareAugment(nn.Module):
    """Produce N augmented views of a batch of full frames on its device, object-aware.

    Per image, one box is chosen (uniformly among the usable boxes, or ``"area"``-weighted) with
    probability ``p`` and shared by all views (as the reference code: "both views come from the same
    box"); images without a usable box use the whole frame. Then, per view (:class:`ViewConfig`):
    a RandomResizedCrop inside that box (scale relative to the box), a horizontal flip folded into the
    same resampling, kornia colour jitter / grayscale / Gaussian blur / solarisation, normalisation, and
    optionally background mixup (:class:`objaug.augment.mixup.BackgroundMixup`) with the view's soft mask,
    which was cropped and flipped together with the view.

    Objects: pass ``objects=`` (an :class:`objaug.objects.Objects`), or ``boxes``/``valid`` (normalised xyxy,
    e.g. precomputed CAM boxes) and/or soft ``masks`` ``(B, 1, H, W)`` in [0, 1]. With ``cam``, what is missing
    is found by :func:`objaug.objects.find_objects` on the images normalised with ``cam_normalize``: boxes of
    every refinement iteration's own map, masks = ContraCAM's output map (of the first ``cam_config.mask_iters``
    iterations: the paper's T=10 boxes and T=1 masks from one call). Without ``cam``, boxes missing are read
    off the masks (:func:`objaug.objects.boxes_of_maps` with ``box_config``). With neither objects nor cam,
    every view is a plain whole-image crop (a batched lightly transform).

    Differences to lightly's per-image torchvision/PIL pipeline, all documented where they occur:
    crops are sub-pixel and, when shrunk by more than 1.25x, antialiased with an area filter
    (:func:`objaug.functional.crop.crop_and_resize`);
    kornia's ``ColorJitter`` uses torchvision's formulas and ranges but draws one random order of the
    four adjustments per call (shared by the batch) instead of one per image; the Gaussian blur is a
    truncated (+-3 sigma) kernel with replicated borders instead of PIL's box-blur approximation;
    solarisation uses the threshold 0.5 where PIL uses 128/255 (identical on 8-bit data).

    Randomness comes from torch's global generators (``torch.manual_seed`` makes a call reproducible;
    kornia draws its parameters on the CPU generator, objaug on the images' device).

    Args:
        views: one :class:`ViewConfig` per view (default: :func:`objaug.augment.views.simclr_views`).
        box_p: probability of cropping inside a box for an image that has one.
        box_sampling: ``"uniform"`` or ``"area"``.
        center_suppressed, alpha: ContrastiveCrop's Beta(alpha, alpha) crop placement inside the box.
        antialias: ``True``, ``False`` or ``"auto"``: area-filter downscaled crops (see
            :class:`objaug.augment.crop.ObjectAwareRandomResizedCrop`); images and masks alike.
        cam: the model whose ContraCAM finds the objects (an ``nn.Module``, split by
            :func:`objaug.split_model`; the CAM is built with ``cam_config``), a ready
            :class:`objaug.ContraCAM`, or any callable ``cam(normalized_images, negatives=None) -> (B, 1, H, W)``.
        cam_config: the CAM settings (:class:`objaug.config.CamConfig`) for ``cam=model``; with a ready CAM only
            its ``mask_iters`` may differ from the defaults (the other settings are the CAM's own).
        cam_normalize: normalisation applied to the images before ``cam``.
        box_config: how boxes are read off the maps (:class:`objaug.config.BoxConfig`).
        mixup: the background-mixup module used by views with ``mixup=True`` (default: a new
            ``BackgroundMixup(check_inputs=False, inplace=True)``, mixing the module's own view
            tensors in place; its queue persists across calls).
        attempts: RandomResizedCrop candidates per image.
        cpu_chunk_size: on the CPU only, run the photometric ops on chunks of this many images: the
            temporaries stay in cache and below the allocator's mmap threshold (whole-batch temporaries of
            tens of MB are page-faulted in on every op), 2-3x faster; the colour-jitter order is then
            drawn per chunk. Ignored on accelerators (one batched pass); ``None`` disables.
        check_inputs: check the values of images (finite, in [0, 1]: refuses [0, 255] and already normalised
            images, naming the fix), masks and boxes before any work: one fused pass and one host read per
            checked call (:func:`objaug.validation.check_batch_values`, well under 1 % of a call). On the CPU
            every call is checked; on an accelerator the calls of ``check_schedule`` (default: the first 10,
            then every 100th: :mod:`objaug.validation_schedule`), so the others cost no stall. ``False``
            opts out (and the module compiles whole).

    Example:
        >>> aug = ObjectAwareAugment(simclr_views()).to("cuda")
        >>> v1, v2 = aug(images, boxes, valid)   # images (B, 3, H, W) in [0, 1]
    """

    cam: Any

    def __init__(
        self,
        views: Sequence[ViewConfig] | None = None,
        *,
        box_p: float = 1.0,
        box_sampling: Literal["uniform", "area"] = "uniform",
        center_suppressed: bool = False,
        alpha: float = 0.6,
        antialias: bool | Literal["auto"] = "auto",
        cam: Any = None,
        cam_config: CamConfig | None = None,
        cam_normalize: Mapping[str, Sequence[float]] | None = None,
        box_config: BoxConfig | None = None,
        mixup: nn.Module | None = None,
        attempts: int = 10,
        cpu_chunk_size: int | None = 8,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        if views is None:
            views = simclr_views()
        views = list(check_views(views))  # type: ignore[call-overload]
        if not views or not all(isinstance(v, ViewConfig) for v in views):
            raise TypeError("views must be a non-empty sequence of ViewConfig (e.g. objaug.augment.views."
                            f"simclr_views()), got {views!r}.")
        check_box_sampling(box_sampling)
        check_positive_float(alpha, "alpha")
        check_int(attempts, "attempts", low=1)
        check_optional_int(cpu_chunk_size, "cpu_chunk_size", low=1, none="the whole batch at once")
        check_bool(center_suppressed, "center_suppressed")
        check_bool(check_inputs, "check_inputs")
        check_antialias(antialias)
        self.provider = ObjectProvider(cam_config, box_config,
                                       normalize=cam_normalize if cam_normalize is not None else IMAGENET_NORMALIZE)
        cam = _resolve_cam(cam, cam_config, self.provider)
        self.views = views
        self.box_p = check_probability(box_p, "box_p")
        self.box_sampling = box_sampling
        self.center_suppressed = bool(center_suppressed)
        self.alpha = float(alpha)
        self.antialias: bool | str = antialias
        self.attempts = attempts
        self.cpu_chunk_size = cpu_chunk_size
        self.check_inputs = bool(check_inputs)
        #: which calls ``check_inputs`` checks on accelerators (:class:`~objaug.validation_schedule.CheckSchedule`)
        self.check_schedule = CheckSchedule()
        # The CAM (and its model) is not a submodule: .to()/state_dict of the augmenter leave it alone.
        object.__setattr__(self, "cam", cam)
        self.ops = nn.ModuleList(_ViewOps(v) for v in views)
        if mixup is None and any(v.mixup for v in views):
            from objaug.augment.mixup import BackgroundMixup

            # In place: the views are this module's own tensors (saves a (B, C, H, W) allocation). Unchecked:
            # its inputs are cut from the images and masks this module checks.
            mixup = BackgroundMixup(check_inputs=False, inplace=True)
        self.mixup = mixup
        self._params: list[dict[str, Tensor]] = []

    def extra_repr(self) -> str:
        return (f"views={len(self.views)}, box_p={self.box_p}, box_sampling={self.box_sampling!r}, "
                f"center_suppressed={self.center_suppressed}, antialias={self.antialias}, "
                f"cam={type(self.cam).__name__ if self.cam is not None else None}")

    @property
    def box_config(self) -> BoxConfig:
        """How boxes are read off the maps (:class:`objaug.config.BoxConfig`)."""
        return self.provider.box_config

    def find_objects(self, images: Tensor, negatives: Tensor | None = None) -> Objects:
        """The objects ``cam`` finds in ``images`` ((B, 3, H, W) in [0, 1]), masks at the images' size and dtype."""
        if self.cam is None:
            raise ValueError("This ObjectAwareAugment has no cam: build it with cam=model (or a ContraCAM).")
        found = self.provider.compute(self.cam, images, negatives=negatives)
        masks = found.masks
        if masks is not None:
            masks = found.masks_at((int(images.shape[-2]), int(images.shape[-1])), images.dtype)
            check_mask_batch(masks, "cam(images) output", like=images)
        return found.with_masks(masks)

    @overload
    def forward(self, images: Tensor, boxes: Tensor | None = ..., valid: Tensor | None = ...,
                masks: Tensor | None = ..., *, objects: Objects | None = ..., negatives: Tensor | None = ...,
                return_params: Literal[False] = ..., check: bool | None = ..., mix: bool = ...) -> list[Tensor]: ...

    @overload
    def forward(self, images: Tensor, boxes: Tensor | None = ..., valid: Tensor | None = ...,
                masks: Tensor | None = ..., *, objects: Objects | None = ..., negatives: Tensor | None = ...,
                return_params: Literal[True], check: bool | None = ...,
                mix: bool = ...) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
        ...

    def forward(
        self,
        images: Tensor,
        boxes: Tensor | None = None,
        valid: Tensor | None = None,
        masks: Tensor | None = None,
        *,
        objects: Objects | None = None,
        negatives: Tensor | None = None,
        return_params: bool = False,
        check: bool | None = None,
        mix: bool = True,
    ) -> list[Tensor] | tuple[list[Tensor], list[dict[str, Tensor]]]:
        """Augment a batch into ``len(views)`` views.

        Args:
            images: ``(B, 3, H, W)`` float in [0, 1], full frames, on the training device.
            boxes: ``(B, K, 4)`` normalised xyxy object boxes (optional, see the class docs).
            valid: ``(B, K)`` bool (default: all boxes valid).
            masks: ``(B, 1, H, W)`` float soft object masks in [0, 1] (optional).
            objects: the batch's :class:`objaug.objects.Objects` instead of ``boxes``/``valid``/``masks`` (its
                masks are resized to the images).
            negatives: extra CAM negatives ``(N, D)`` (e.g. a MoCo queue as rows), passed to ``cam`` when
                it runs (only with ``cam=``).
            return_params: also return one dict per view: ``crop_boxes`` ``(B, 4)``, ``flip`` ``(B,)``,
                ``box_index``, ``object``, ``fallback``, ``regions``, and where available ``masks``
                (the view's cropped+flipped masks, ``(B, 1, h, w)``) and ``mixed`` ``(B,)`` bool.
            check: this call's value checks (``None``: ``check_inputs`` on the calls of ``check_schedule``;
                ``True``: check this call whatever the schedule); a caller that has checked the batch already
                (:class:`~objaug.integrations.lightly.device_step.ObjectAwareStep`) passes False.
            mix: apply the background mixup of the views with ``mixup=True`` (default). ``False`` leaves those
                views unmixed this call (their params have no ``mixed``, so :class:`objaug.stats.AugmentStats`
                counts no mixup views) and needs no masks: the adapters' mixup start step
                (``ObjectAwareStep(mixup_start_step=)``, solo-learn's ``mixup.start_step``).

        Returns:
            The list of views, each ``(B, 3, h, w)`` with the images' dtype, normalised per its config
            (and the params list if ``return_params``).
        """
        check_image_batch(images, "images", channels=3)
        check_bool(return_params, "return_params")
        check_optional_bool(check, "check", none="the augmenter's check_inputs")
        check_bool(mix, "mix")
        b, _, h, w = images.shape
        device = images.device
        if objects is not None:
            boxes, valid, masks = _unpack(objects, boxes, valid, masks, size=(h, w), dtype=images.dtype)
        if negatives is not None and self.cam is None:
            raise ValueError("negatives= are CAM negatives, but this ObjectAwareAugment has no cam; build it with "
                             "cam=ContraCAM(model) or drop negatives=.")
        if masks is not None:
            check_mask_batch(masks, "masks", like=images)
            check_same_device([("images", images), ("masks", masks)])
        if boxes is not None:
            check_box_layout(boxes)
            boxes, valid = check_boxes(boxes, default_valid(boxes, valid), batch=b)
            check_same_device([("images", images), ("boxes", boxes), ("valid", valid)])
        elif valid is not None:
            raise ValueError("valid was given without boxes; pass boxes=(B, K, 4) too.")
        if check is None:
            check = self.check_inputs and self.check_schedule.due(images)
        if check:
            check_batch_values(images, masks=masks, boxes=boxes, valid=valid)  # one fused pass, one sync

        need_masks = mix and any(v.mixup for v in self.views)
        if masks is None and self.cam is not None and (boxes is None or need_masks):
            found = self.find_objects(images, negatives)
            masks = found.masks
            if boxes is None:
                boxes, valid = found.boxes, found.valid
        if need_masks and masks is None:
            raise ValueError("A view has mixup=True, which needs soft object masks: pass masks=(B, 1, H, W) "
                             "or build ObjectAwareAugment(..., cam=model).")
        if boxes is None or valid is None:
            if masks is not None:
                boxes, valid = boxes_of_maps(masks, self.box_config)  # masks checked above
            else:
                empty = Objects.none(b, device)
                boxes, valid = empty.boxes.to(images.dtype), empty.valid

        object_regions, box_index, use = sample_regions(boxes, valid, mode=self.box_sampling, p=self.box_p)
        full = full_image_boxes(b, device=device)

        outputs: list[Tensor] = []
        all_params: list[dict[str, Tensor]] = []
        for cfg, ops in zip(self.views, self.ops, strict=True):
            regions = object_regions if cfg.object_crop else full
            cut = crop_view(images, regions, cfg.size, scale=(cfg.min_scale, cfg.max_scale), ratio=cfg.ratio,
                            flip_prob=cfg.hf_prob, masks=masks, attempts=self.attempts,
                            center_suppressed=self.center_suppressed, alpha=self.alpha, antialias=self.antialias,
                            min_box_pixels=cfg.min_box_pixels if cfg.object_crop else 0)
            view_masks, fallback = cut.masks, cut.fallback
            x = ops(cut.image, self.cpu_chunk_size)
            params: dict[str, Tensor] = {
                "crop_boxes": cut.crop_boxes,
                "flip": cut.flip,
                "box_index": box_index if cfg.object_crop else torch.full_like(box_index, -1),
                "object": use if cfg.object_crop else torch.zeros_like(use),
                "fallback": fallback,
                "regions": regions,
            }
            if cfg.mixup and mix:
                assert self.mixup is not None and view_masks is not None
                x, mixed = self.mixup(x, view_masks)
                params["mixed"] = mixed
            if view_masks is not None:
                params["masks"] = view_masks
            outputs.append(x)
            all_params.append(params)
        self._params = all_params
        if return_params:
            return outputs, all_params
        return outputs
