"""``objaug.log_maps``: solo-learn's callback logs ContraCAM maps of a fixed batch while training.

:func:`map_logger` turns the block's ``log_maps`` section into a
:class:`objaug.integrations.lightning_maps.CAMMapLogger` that reads solo-learn's batch
``[indexes, [X_1..X_n], targets]`` (the fixed batch: the first ``log_maps.num_images`` images of view
``online.view``, default ``views[0]``, of the first training batch, before objaug re-crops it) and explains
the method's ``online.model`` encoder (``momentum_backbone`` + ``momentum_projector`` or ``backbone`` +
``projector``) with ``objaug.online``'s CAM settings and ``objaug.boxes``' box settings (the run's own).
The callback (:mod:`._hooks`) forwards its batch hooks to it.
"""

from __future__ import annotations

from typing import Any

from .config import ObjaugConfig, ObjaugConfigError

__all__ = ["map_logger"]


def map_logger(config: ObjaugConfig, pl_module: Any) -> Any:
    """The map logger of ``config.log_maps``, or ``None`` when ``log_maps.every_n_steps`` is 0.

    Checks at set-up that the method has the encoder ``online.model`` names and that ``online.map_source``
    applies to it, so a mistake fails before the first step, naming the key.

    Raises:
        ObjaugConfigError: no such encoder, or ``attention`` on a backbone without class-token attention.
    """
    if config.log_maps.every_n_steps == 0:
        return None
    from objaug.integrations.lightning_maps import CAMMapLogger, find_cam_model

    which = config.online.model
    cam_config = config.online.cam
    try:
        backbone, head = find_cam_model(pl_module, which)
        cam_config.build(backbone, projector=head)
    except (TypeError, ValueError) as err:
        raise ObjaugConfigError(f"objaug.log_maps: objaug.online.model={which!r} / objaug.online.map_source="
                                f"{cam_config.map_source!r} do not fit {type(pl_module).__name__}: {err}") from None
    view = config.online.view if config.online.view is not None else config.views[0]

    class SoloMapLogger(CAMMapLogger):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            if self.images is None and isinstance(batch, list | tuple) and len(batch) > 1:
                views = batch[1]
                if isinstance(views, list | tuple) and len(views) > view:
                    batch = views[view]
            super().on_train_batch_start(trainer, pl_module, batch, batch_idx)

    return SoloMapLogger(config.log_maps.every_n_steps, num_images=config.log_maps.num_images, which=which,
                         cam_config=cam_config, box_config=config.boxes)
