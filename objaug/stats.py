"""What objaug did during training: shares of views cropped in a found box, whole-frame fallbacks, mixups.

:class:`AugmentStats` keeps running counts as one small int64 tensor on the training device: updating
it is a few reductions and an in-place add, with **no host synchronisation**; the numbers are read
only when they are logged (Lightning converts logged tensors at its logging interval) or when
:meth:`AugmentStats.check` looks at them (once every ``check_every`` steps). Both Lightning callbacks
(Lightly's :class:`~objaug.integrations.lightly.lightning.ObjectAwareCallback` and solo-learn's
``ObjaugSoloCallback``) log them through :func:`log_stats`; ``ObjectAwareStep.stats`` is one.

The numbers (:meth:`AugmentStats.shares`):

* ``boxed``: share of the object-aware views cropped inside a found object box;
* ``whole_frame``: share that fell back to the whole frame (no box found, none drawn with probability
  ``1 - p``, or a box covering >= 90 % of the frame: :func:`objaug.boxes.frame_boxes`);
* ``mixed``: share of the mixup views that were mixed (nan without mixup views);
* ``boxes_per_image``: found (not whole-frame) valid boxes per image;
* ``cam_refreshes``: batches on which the CAM ran, so far (a count, not a share).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from objaug.boxes import frame_boxes

__all__ = ["AugmentStats", "log_stats"]

# positions in the counter tensor
_VIEWS, _BOXED, _MIX_VIEWS, _MIXED, _IMAGES, _BOXES = range(6)
_COVERAGE = 0.9  # a region covering this share of the frame counts as the whole frame


@dataclass
class AugmentStats:
    """Running counts of one training run's object-aware views, on the device (see the module docs).

    Args:
        check_every: look at the running shares every this many steps (one host synchronisation
            then) and warn once when they stay near zero; 0 never looks.
        low: the share below which :meth:`check` warns.

    Attributes:
        steps: batches counted (a host int).
        cam_refreshes: batches on which the CAM ran (a host int).
        total: (6,) int64 running counts (object views, boxed views, mixup views, mixed views, images,
            found boxes), on the device of the last update.
        last: the same counts of the last batch only.
    """

    check_every: int = 200
    low: float = 0.01
    steps: int = 0
    cam_refreshes: int = 0
    total: Tensor | None = None
    last: Tensor | None = None
    _warned: set[str] = field(default_factory=set)
    _since: int = 0
    _base: Tensor | None = None
    _last_mix: bool = False  # host flags: the last / any batch had mixup views
    _any_mix: bool = False

    def update(self, *, used: Tensor, regions: Tensor, object_views: int, mixed: Sequence[Tensor] = (),
               boxes: Tensor | None = None, valid: Tensor | None = None, cam: bool = False) -> None:
        """Count one batch, on its device, without a host synchronisation.

        Args:
            used: (B,) bool, the images cropped inside one of their boxes.
            regions: (B, 4) normalised xyxy region each image's object-aware views were cropped in.
            object_views: the number of object-aware views per image.
            mixed: one (B,) bool per mixup view: the images that view mixed.
            boxes, valid: the batch's (B, K, 4) boxes and (B, K) validity (for boxes per image).
            cam: the CAM ran on this batch.
        """
        area = (regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1])
        boxed = (used & (area < _COVERAGE)).sum() * object_views
        zero = used.new_zeros((), dtype=torch.int64)
        found = zero
        if boxes is not None and valid is not None and boxes.shape[1] > 0:
            found = (valid & ~frame_boxes(boxes, valid, coverage=_COVERAGE)).sum()
        n_mixed = torch.stack([m.sum() for m in mixed]).sum() if mixed else zero
        b = used.shape[0]
        counts = torch.stack([zero + b * object_views, boxed.long(), zero + b * len(mixed), n_mixed.long(),
                              zero + b, found.long()])
        self.last = counts
        self.total = counts.clone() if self.total is None else self.total.to(counts.device) + counts
        self._last_mix = bool(mixed)
        self._any_mix |= self._last_mix
        self.steps += 1
        self.cam_refreshes += int(cam)
        self._since += 1
        if self.check_every and self._since >= self.check_every:
            self.check()

    def shares(self, *, last: bool = False) -> dict[str, Tensor]:
        """The numbers of the module docs as 0-d float32 tensors on the device (no synchronisation).

        Args:
            last: the last batch's shares instead of the running ones.
        """
        c = self.last if last else self.total
        if c is None:
            return {}
        f = c.float()
        boxed = f[_BOXED] / f[_VIEWS].clamp_min(1)
        return {
            "boxed": boxed,
            "whole_frame": 1.0 - boxed,
            "mixed": f[_MIXED] / f[_MIX_VIEWS] if (self._last_mix if last else self._any_mix) else f.new_tensor(
                float("nan")),
            "boxes_per_image": f[_BOXES] / f[_IMAGES].clamp_min(1),
            "cam_refreshes": f.new_tensor(float(self.cam_refreshes)),
        }

    def check(self) -> None:
        """Warn once per kind when the shares since the last check stay below ``low`` (one synchronisation)."""
        if self.total is None:
            return
        window = self.total - (self._base.to(self.total.device) if self._base is not None else 0)
        self._base, steps, self._since = self.total.clone(), self._since, 0
        views, boxed, mix_views, mixed = window[:4].tolist()
        checks = (("boxed", boxed, views, _LOW_BOXED), ("mixed", mixed, mix_views, _LOW_MIXED))
        for kind, done, total, message in checks:
            if kind not in self._warned and total > 0 and done / total < self.low:
                self._warned.add(kind)
                warnings.warn(message.format(steps=steps, share=100 * done / total), UserWarning, stacklevel=3)


_LOW_BOXED = (
    "objaug: over the last {steps} steps only {share:.1f} % of the object-aware views were cropped inside a found "
    "object box; the rest fell back to the whole frame (plain random crops). Likely cause: the CAM finds no object "
    "(diffuse maps from a barely trained encoder, or boxes as large as the frame), or the crop probability p is 0. "
    "Options: a lower box threshold (box_config=BoxConfig(threshold=0.3); solo-learn: objaug.boxes.threshold), finer "
    "maps (cam_size, expand_res), or CAMs from a better-trained model (a store); look at the boxes with `objaug cam`.")
_LOW_MIXED = (
    "objaug: over the last {steps} steps only {share:.1f} % of the mixup views were mixed. Likely cause: each "
    "mask's rectangle above the threshold covers the whole frame (coarse or diffuse maps), so there is no "
    "background to replace, or p is near 0. Options: BackgroundMixup(threshold='otsu', fallback_mass=0.9), the "
    "defaults (solo-learn: objaug.mixup.threshold: otsu, objaug.mixup.fallback_mass: 0.9), or finer maps.")


def log_stats(log: Callable[..., object], stats: AugmentStats, *, batch_size: int, prefix: str = "objaug/",
              sync_dist: bool = False) -> None:
    """Log the last batch's :meth:`AugmentStats.shares` with a LightningModule's ``log``, per step and per epoch.

    Every number is logged with ``on_step=True, on_epoch=True``, the way solo-learn logs its own metrics:
    Lightning writes ``objaug/boxed_step`` every ``log_every_n_steps`` batches and ``objaug/boxed_epoch`` at
    every epoch's end, so a run shorter than the logging interval (solo-learn's default is 50) still records
    the epoch values. The epoch value of a share is its mean over the epoch's batches weighted by
    ``batch_size``; ``cam_refreshes``, a running count, is reduced with ``max`` (the count at the epoch's end).
    Logging adds no host synchronisation (Lightning accumulates the tensors on the device).

    Args:
        log: ``pl_module.log`` (or any ``log(name, value, **kwargs)``).
        stats: the stats to log.
        batch_size: the batch's size (so Lightning does not try to infer it).
        prefix: the metric names' prefix.
        sync_dist: reduce the numbers across processes (pass ``trainer.world_size > 1``; without it a DDP run
            logs rank 0's numbers and Lightning warns about epoch-level metrics).
    """
    for name, value in stats.shares(last=True).items():
        if name == "mixed" and not stats._last_mix:
            continue  # no mixup views: nothing to log
        log(prefix + name, value, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=sync_dist,
            reduce_fx="max" if name == "cam_refreshes" else "mean")
