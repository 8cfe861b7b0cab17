"""See the maps while training: a Lightning callback that logs ContraCAM (or attention) maps of a fixed batch.

:class:`LogCAMMaps` works with any LightningModule (Lightly's examples, solo-learn methods, a plain module):
every ``every_n_steps`` optimizer steps it computes the maps of a fixed batch with the module's current
weights (:class:`objaug.ContraCAM`, in eval mode, the model left exactly as found), finds the boxes
(:func:`objaug.boxes.boxes_from_cam`) and logs one picture (top row: the images with their boxes; bottom row:
the maps over the images, with the boxes; drawn with :mod:`objaug.tools.viz`) to every logger of the Trainer:

* TensorBoard (a logger whose ``experiment`` has ``add_image``): ``add_image(tag, picture, global_step)``;
* Weights & Biases (``WandbLogger``, when ``wandb`` is installed): ``experiment.log({tag: wandb.Image(...)})``;
* any other logger (CSV, ...) or none: a PNG ``<log_dir>/objaug_maps/step_<step>.png``.

Between its steps it costs one integer comparison per batch: no hook is installed on the model.
:class:`CAMMapLogger` is the same logic without the Lightning base class (solo-learn's callback calls it for
``objaug.log_maps``). Importing this module needs neither Lightly nor solo-learn; the callback's base is
``lightning.pytorch``'s ``Callback`` (or ``pytorch_lightning``'s when only that is installed).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from objaug.config import BoxConfig, CamConfig
from objaug.constants import IMAGENET_NORMALIZE
from objaug.provider import ObjectProvider
from objaug.validation import check_int

try:
    from lightning.pytorch.callbacks import Callback as _Callback
except ImportError:  # pragma: no cover - only pytorch_lightning installed, or no Lightning at all
    try:
        from pytorch_lightning.callbacks import Callback as _Callback  # type: ignore[assignment]
    except ImportError:
        _Callback = object  # type: ignore[assignment,misc]

__all__ = ["CAMMapLogger", "LogCAMMaps", "cam_picture", "find_cam_model", "first_images"]

#: (backbone, projection head) attribute pairs, momentum branch first: Lightly's examples, solo-learn, DINO.
_MOMENTUM_PAIRS = (("backbone_momentum", "projection_head_momentum"), ("momentum_backbone", "momentum_projector"),
                   ("teacher_backbone", "teacher_head"))
_ONLINE_PAIRS = (("backbone", "projection_head"), ("backbone", "projector"), ("student_backbone", "student_head"))

ModelGetter = Callable[[Any], "nn.Module | tuple[nn.Module, nn.Module | None]"]


def find_cam_model(module: Any, which: str = "auto") -> tuple[nn.Module, nn.Module | None]:
    """The (backbone, projection head) of a module, by the attribute names of Lightly, solo-learn and DINO.

    Args:
        module: the LightningModule (or any object with the attributes).
        which: ``"momentum"`` (``backbone_momentum`` + ``projection_head_momentum``, solo-learn's
            ``momentum_backbone`` + ``momentum_projector``, DINO's ``teacher_backbone`` + ``teacher_head``),
            ``"online"`` (``backbone`` + ``projection_head`` or ``projector``, ``student_backbone`` +
            ``student_head``), or ``"auto"``: momentum when the module has it, else online (as
            ``ObjectAwareStep.from_model``).

    Returns:
        ``(backbone, head)``; ``head`` is ``None`` when the module has a backbone but no head.

    Raises:
        ValueError: an unknown ``which``.
        TypeError: no such backbone on the module (pass ``model=`` to the callback).
    """
    if which not in ("auto", "online", "momentum"):
        raise ValueError(f"which must be 'auto', 'online' or 'momentum', got {which!r}.")
    pairs = {"momentum": _MOMENTUM_PAIRS, "online": _ONLINE_PAIRS, "auto": _MOMENTUM_PAIRS + _ONLINE_PAIRS}[which]
    headless: nn.Module | None = None
    for backbone, head in pairs:
        encoder, projector = getattr(module, backbone, None), getattr(module, head, None)
        if isinstance(encoder, nn.Module) and isinstance(projector, nn.Module):
            return encoder, projector
        if isinstance(encoder, nn.Module) and headless is None:
            headless = encoder
    if headless is not None:
        return headless, None
    names = ", ".join(b for b, _ in pairs)
    raise TypeError(f"{type(module).__name__} has none of {names} (which={which!r}): pass the model explicitly, "
                    "LogCAMMaps(model=lambda module: (module.encoder, module.head)).")


def first_images(batch: Any) -> Tensor | None:
    """The first ``(B, 3, H, W)`` floating tensor in a batch (depth first through lists, tuples and dicts).

    Lightly's pipeline batches ``[[x0, x1], targets, ...]`` give ``x0``, solo-learn's
    ``[indexes, [X_1, ...], targets]`` give ``X_1``, a batch of base images gives itself.
    """
    if isinstance(batch, Tensor):
        return batch if batch.ndim == 4 and batch.shape[1] == 3 and batch.is_floating_point() else None
    items = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, list | tuple) else ()
    for item in items:
        found = first_images(item)
        if found is not None:
            return found
    return None


def cam_picture(images: Tensor, maps: Tensor, boxes: Tensor, valid: Tensor, *, alpha: float = 0.5) -> Tensor:
    """One picture of a batch's maps: the images with their boxes over the maps overlaid, with the boxes.

    Args:
        images: ``(B, 3, H, W)`` float in ``[0, 1]`` (de-normalised) or uint8.
        maps: ``(B, 1, h, w)`` float in ``[0, 1]``.
        boxes: ``(B, K, 4)`` normalised xyxy; ``valid``: ``(B, K)`` bool.
        alpha: weight of the colour map in the overlay.

    Returns:
        ``(3, H', W')`` uint8 on the CPU: two rows of ``B`` tiles.
    """
    from objaug.tools.viz import draw_boxes, make_grid, overlay_cam

    top = draw_boxes(images.cpu(), boxes.cpu(), valid.cpu())
    bottom = draw_boxes(overlay_cam(images.cpu(), maps.cpu(), alpha=alpha), boxes.cpu(), valid.cpu())
    return make_grid(torch.cat([top, bottom]), nrow=images.shape[0])


class CAMMapLogger:
    """The logic of :class:`LogCAMMaps`, without a Lightning base class (see the module docs).

    Args:
        every_n_steps: log at every N-th optimizer step (``trainer.global_step``), ``>= 1``.
        images: the fixed batch ``(B, 3, H, W)`` (float; as the model takes them, or in ``[0, 1]``); ``None``:
            the first ``num_images`` images of the first training batch (:func:`first_images`), captured in
            ``on_train_batch_start`` (place this callback before ``ObjectAwareCallback`` to see the frames
            before objaug re-crops them).
        num_images: images of the first training batch kept (>= 2: ContraCAM contrasts them).
        model: ``module -> backbone`` or ``module -> (backbone, head)``, or an ``nn.Module``; ``None``: found
            by attribute names (:func:`find_cam_model` with ``which``).
        which: ``"auto"``, ``"online"`` or ``"momentum"`` (for ``model=None``).
        cam_config: the CAM settings (:class:`objaug.config.CamConfig`: ``map_source`` ``"gradcam"`` or
            ``"attention"``, ``iters``, ...), as every other entry point takes them.
        normalize: ``{"mean", "std"}`` the model's inputs are normalised with (ImageNet by default; ``None``:
            none). A fixed batch with all values in ``[0, 1]`` is taken to be un-normalised and normalised for
            the model; otherwise it is fed as is and de-normalised for the picture.
        box_config: how boxes are read off the maps (:class:`objaug.config.BoxConfig`); the objects are found by
            :func:`objaug.objects.find_objects`, the definition every entry point shares.
        tag: the image's name in the loggers (PNG files go under ``objaug_maps/``).
        png_dir: write PNGs here for every logger (and without one); ``None``: only for loggers without
            images, under their ``log_dir`` (or the Trainer's ``default_root_dir``).

    Raises:
        ValueError / TypeError: bad settings, at construction.
    """

    def __init__(
        self,
        every_n_steps: int = 500,
        *,
        images: Tensor | None = None,
        num_images: int = 8,
        model: nn.Module | ModelGetter | None = None,
        which: str = "auto",
        cam_config: CamConfig | None = None,
        normalize: Mapping[str, Sequence[float]] | None = IMAGENET_NORMALIZE,
        box_config: BoxConfig | None = None,
        tag: str = "objaug/cam_maps",
        png_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.every_n_steps = check_int(every_n_steps, "every_n_steps", low=1)
        # the CAM and box settings and the model's normalisation: checked and applied by the provider of objects
        self.provider = ObjectProvider(cam_config, box_config, normalize=normalize)
        self.cam_config, self.box_config = self.provider.cam_config, self.provider.box_config
        source = self.cam_config.map_source
        self.num_images = check_int(num_images, "num_images", low=2 if source == "gradcam" else 1,
                                    why=" (ContraCAM contrasts the images with each other)")
        if which not in ("auto", "online", "momentum"):
            raise ValueError(f"which must be 'auto', 'online' or 'momentum', got {which!r}.")
        if model is not None and not callable(model):
            raise TypeError(f"model must be an nn.Module or a callable module -> backbone / (backbone, head), got "
                            f"{type(model).__name__}.")
        if images is not None:
            from objaug.validation import check_image_batch

            images = check_image_batch(images, "images", channels=3)
            if images.shape[0] < 2 and source == "gradcam":
                raise ValueError("images must hold at least 2 images: ContraCAM contrasts them with each other.")
            images = images.detach().cpu().clone()
        self.images: Tensor | None = images
        self.model = model
        self.which = which
        self.source = source
        self.tag = tag
        self.png_dir = None if png_dir is None else os.fspath(png_dir)
        self.logged_steps: list[int] = []
        self._wandb_warned = False

    # ------------------------------------------------------------------ hooks (also called by solo-learn's callback)
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.images is not None:
            return
        found = first_images(batch)
        if found is None:
            raise TypeError("LogCAMMaps found no (B, 3, H, W) float images in the training batch: pass the fixed "
                            "batch, LogCAMMaps(images=...).")
        if found.shape[0] < 2 and self.source == "gradcam":
            raise ValueError("LogCAMMaps needs at least 2 images in the first training batch (ContraCAM contrasts "
                             "them), or a fixed batch: LogCAMMaps(images=...).")
        self.images = found[: self.num_images].detach().float().cpu().clone()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(trainer.global_step)
        if step % self.every_n_steps or step in self.logged_steps[-1:]:
            return
        self.logged_steps.append(step)
        if not getattr(trainer, "is_global_zero", True):
            return
        self.write_maps(trainer, pl_module, step)

    # ------------------------------------------------------------------ work
    def _cam_model(self, pl_module: Any) -> tuple[nn.Module, nn.Module | None]:
        if self.model is None:
            return find_cam_model(pl_module, self.which)
        got = self.model if isinstance(self.model, nn.Module) else self.model(pl_module)
        if isinstance(got, nn.Module):
            return got, None
        backbone, head = got
        return backbone, head

    def _model_input(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """(what the model takes, the picture's images in [0, 1]), on ``device``."""
        assert self.images is not None
        x = self.images.to(device)
        provider = self.provider
        if not provider.normalizes:
            return x, x.clamp(0.0, 1.0)
        if bool(((x >= 0) & (x <= 1)).all()):
            return provider.cam_input(x), x
        return x, (x * provider.cam_std.to(x) + provider.cam_mean.to(x)).clamp(0.0, 1.0)

    def compute(self, pl_module: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The fixed batch's ``(images in [0, 1], maps (B, 1, H, W), boxes (B, K, 4), valid (B, K))`` with the
        module's current weights (eval mode, the model left as found), on the model's device."""
        from objaug.model_state import module_device
        from objaug.objects import find_objects

        if self.images is None:
            raise RuntimeError("LogCAMMaps has no fixed batch yet: pass images=... or log after a training batch.")
        backbone, head = self._cam_model(pl_module)
        device = module_device(backbone) or torch.device("cpu")
        x, shown = self._model_input(device)
        cam = self.provider.build_cam(backbone, projector=head)
        with torch.autocast(device_type=device.type, enabled=False):  # not provider.compute: no bank for a picture
            objects = find_objects(cam, x.to(next(backbone.parameters()).dtype), self.box_config,
                                   mask_iters=self.cam_config.mask_iters)
        assert objects.masks is not None
        return shown, objects.masks.float(), objects.boxes, objects.valid

    def write_maps(self, trainer: Any, pl_module: Any, step: int) -> Tensor:
        """Compute the picture now and write it to the Trainer's loggers; returns it (``(3, H', W')`` uint8)."""
        picture = cam_picture(*self.compute(pl_module))
        loggers = list(getattr(trainer, "loggers", None) or [])
        pngs = [] if self.png_dir is None else [self.png_dir]
        for logger in loggers:
            experiment: Any = getattr(logger, "experiment", None)
            if type(logger).__name__ == "WandbLogger":
                self._log_wandb(experiment, picture, step)
            elif callable(getattr(experiment, "add_image", None)):
                experiment.add_image(self.tag, picture, global_step=step, dataformats="CHW")
            elif self.png_dir is None:
                pngs.append(os.path.join(getattr(logger, "log_dir", None) or trainer.default_root_dir, "objaug_maps"))
        if not loggers and self.png_dir is None:
            pngs.append(os.path.join(trainer.default_root_dir, "objaug_maps"))
        from objaug.tools.viz import save_png

        for folder in dict.fromkeys(pngs):
            save_png(picture, os.path.join(folder, f"step_{step:07d}.png"))
        return picture

    def _log_wandb(self, experiment: Any, picture: Tensor, step: int) -> None:
        try:
            import wandb
        except ImportError:  # pragma: no cover - WandbLogger needs wandb
            if not self._wandb_warned:
                self._wandb_warned = True
                warnings.warn("LogCAMMaps: wandb is not installed; maps are not sent to W&B.", stacklevel=2)
            return
        experiment.log({self.tag: wandb.Image(picture.permute(1, 2, 0).numpy()), "trainer/global_step": step})


class LogCAMMaps(CAMMapLogger, _Callback):  # type: ignore[misc,valid-type]
    """Lightning callback: log ContraCAM / attention maps of a fixed batch every N steps (see the module docs).

    Example:
        >>> trainer = Trainer(callbacks=[LogCAMMaps(every_n_steps=200)], logger=TensorBoardLogger("logs"))

    Args: those of :class:`CAMMapLogger`.
    """

    def __init__(self, every_n_steps: int = 500, **kwargs: Any) -> None:
        if _Callback is object:
            raise ImportError("LogCAMMaps needs Lightning: pip install lightning (or pytorch_lightning).")
        _Callback.__init__(self)
        CAMMapLogger.__init__(self, every_n_steps, **kwargs)
