"""Lightning glue for :class:`~objaug.integrations.lightly.device_step.ObjectAwareStep`.

Two ways to plug the device step into Lightly's PyTorch Lightning examples (both leave
``training_step`` unchanged: ``x0, x1 = batch[0]`` receives the views):

* a LightningModule hook, five lines in the module (see ``docs/lightly.md``)::

      self.objaug = ObjectAwareStep.from_model(self, moco_v2_views(32))   # in __init__

      def on_after_batch_transfer(self, batch, dataloader_idx):
          if self.trainer.training:
              batch = self.objaug.transform_batch(batch)
          return batch

* or, without touching the module, ``Trainer(callbacks=[ObjectAwareCallback(moco_v2_views(32))])``.

The callback subclasses ``lightning.pytorch.Callback`` (or ``pytorch_lightning.Callback`` when only that
package is installed); Lightning 2.x trainers of either package accept it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from objaug.augment.pipeline import ViewConfig
from objaug.stats import log_stats
from objaug.validation import check_bool

from .device_step import ObjectAwareStep

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - only pytorch_lightning installed
    from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef,assignment]

__all__ = ["ObjectAwareCallback"]


class ObjectAwareCallback(Callback):  # type: ignore[misc]
    """Replace each training batch's base images by object-aware views, on the device.

    Runs in ``on_train_batch_start``: the batch (a list ``[images, target, ...]`` after the default
    collate, already on the device) is modified in place, and ``training_step`` receives the views at
    ``batch[image_index]``. The dataset must yield base images in [0, 1] (e.g. ``transform=T.ToTensor()``
    or :class:`~objaug.integrations.lightly.dataset.ObjectAwareDataset`).

    Args:
        step: an :class:`ObjectAwareStep`; or a factory ``step(pl_module) -> ObjectAwareStep`` called once
            at setup; or view configurations (e.g. ``moco_v2_views(32)``), for
            ``ObjectAwareStep.from_model(pl_module, views)`` (the module's momentum encoder, else its
            backbone, and its ``criterion``'s memory bank).
        image_index: position of the images in the batch.
        index_position: position of the dataset indexes in the batch, if any.
        log_stats: log, per step and as epoch means with ``pl_module.log``, what objaug did (``objaug/boxed``:
            share of the views cropped in a found box, ``objaug/whole_frame``: fallen back to the whole frame,
            ``objaug/mixed``, ``objaug/boxes_per_image``, ``objaug/cam_refreshes``, each as ``<name>_step`` and
            ``<name>_epoch``; :mod:`objaug.stats`, device tensors read
            only at Lightning's logging interval). The step warns once when the boxed or mixed share stays
            near zero.

    Raises:
        TypeError: the batch is a tuple (cannot be modified in place): use the
            ``on_after_batch_transfer`` hook instead, which returns a new batch.
    """

    def __init__(
        self,
        step: ObjectAwareStep | Callable[[Any], ObjectAwareStep] | Sequence[ViewConfig],
        *,
        image_index: int = 0,
        index_position: int | None = None,
        log_stats: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(step, Sequence) and step and all(isinstance(v, ViewConfig) for v in step):
            views = list(step)

            def from_views(pl_module: Any) -> ObjectAwareStep:
                return ObjectAwareStep.from_model(pl_module, views)

            step = from_views
        if not isinstance(step, ObjectAwareStep) and not callable(step):
            raise TypeError(f"step must be an ObjectAwareStep, a factory pl_module -> ObjectAwareStep or a list of "
                            f"ViewConfig, got {type(step).__name__}.")
        self._factory: Callable[[Any], ObjectAwareStep] | None = None if isinstance(step, ObjectAwareStep) else step
        self.step: ObjectAwareStep | None = step if isinstance(step, ObjectAwareStep) else None
        self.image_index = image_index
        self.index_position = index_position
        self.log_stats = check_bool(log_stats, "log_stats")

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.step is None:
            assert self._factory is not None
            step = self._factory(pl_module)
            if not isinstance(step, ObjectAwareStep):
                raise TypeError(f"The step factory must return an ObjectAwareStep, got {type(step).__name__}.")
            self.step = step
        self.step.to(pl_module.device)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.step is None:
            self.setup(trainer, pl_module, "fit")
        assert self.step is not None
        if not isinstance(batch, list):
            raise TypeError(f"ObjectAwareCallback modifies the batch in place, so it must be a list, got "
                            f"{type(batch).__name__}; use the on_after_batch_transfer hook "
                            "(batch = step.transform_batch(batch)) instead.")
        new = self.step.transform_batch(batch, image_index=self.image_index, index_position=self.index_position)
        batch[:] = new
        if self.log_stats:
            log_stats(pl_module.log, self.step.stats, batch_size=int(new[self.image_index][0].shape[0]),
                      sync_dist=int(getattr(trainer, "world_size", 1) or 1) > 1)
