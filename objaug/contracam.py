"""ContraCAM: a class activation map for a contrastive model, for a whole batch, on its device.

Implements method.md §1 (Mo et al., NeurIPS 2021) with objaug's decisions: the per-sample score
(not the reference code's batch-pooled positive), self terms excluded from the denominator, an
optional temperature and an optional external bank of negatives.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from objaug.cam_sources import MapSource, check_unused_options, map_source_class
from objaug.encoder_head import EncoderHead
from objaug.functional.cam import edge_refine, fill_masked, minmax_normalize, upsample_maps
from objaug.model_state import expanded_resolution, module_device, preserve_model_state
from objaug.split import split_model
from objaug.split_vit import ViTEncoderHead
from objaug.validation import (
    check_bool,
    check_choice,
    check_finite,
    check_float,
    check_image_batch,
    check_int,
    check_model_input,
    check_optional_int,
    check_positive_float,
)
from objaug.validation_schedule import CheckSchedule

__all__ = ["ContraCAM"]


class ContraCAM:
    """Contrastive class activation maps, batched, with iterative refinement.

    For each image, the map highlights what makes its embedding closer to itself than to the other
    images of the batch (and to an optional external bank of negatives). With ``iters > 1`` the found
    regions are painted with the batch's mean colour and the model is asked again, so further objects
    and whole shapes are found; the maps of all iterations are merged by a pixel-wise max.

    Cost per iteration: one forward of the encoder without autograd and one backward through the head
    only (no weight gradients). No host synchronisation except the optional finiteness check.

    Args:
        model: the contrastive model; split into encoder and head by :func:`objaug.split_model`
            (torchvision ResNets, lightly ``nn.Sequential`` backbones, timm models, Vision Transformers
            (timm, torchvision, lightly's masked-ViT wrappers; cut at the tokens entering the last block),
            Swin, objects with a ``backbone`` (+ ``projector``) such as solo-learn methods). Leave
            ``None`` when passing ``encoder`` and ``head``.
        encoder: explicit encoder, images (B, C, H, W) -> feature map (B, C', h, w).
        head: explicit head, feature map -> embedding (B, D) (pooling, projector; L2 normalisation is
            applied by ContraCAM).
        projector: a projector appended to the head found in ``model`` (e.g. solo-learn's
            ``method.projector`` with ``model=method.backbone``).
        iters: number of refinement iterations T >= 1 (the reference uses 10 for boxes, 1 for the
            background-mixup masks).
        temperature: softmax temperature of the contrastive score (> 0; the reference uses 1).
        expand_res: run the last spatial stage with stride 1 (14x14 instead of 7x7 maps at 224 px for a
            ResNet); the strides are restored afterwards.
        interpolation: upsampling mode of the maps to the image size ("bicubic" like the reference,
            "bilinear", "nearest").
        check_finite: check the inputs for NaN/inf before any work (one host read per checked call: every
            call on the CPU, on an accelerator the calls of ``check_schedule``, default the first 10 then
            every 100th; :mod:`objaug.validation_schedule`) and, for a batch of one image, that
            ``negatives=`` holds a row that is not its own copy (one more read, at the first iteration;
            otherwise its map would be all zero). Turn off in training loops that have their own checks (the
            map computation then compiles whole).
        source: where each iteration's map comes from, a name registered in
            :data:`objaug.cam_sources.MAP_SOURCES`: ``"gradcam"`` (default, the contrastive Grad-CAM above,
            :class:`~objaug.cam_sources.ContrastiveGradCAM`) or ``"attention"`` (Vision Transformers
            recognised by ``split_model`` with a class token only: the last block's class-token
            self-attention over the patches, averaged over heads, as in DINO;
            :class:`~objaug.cam_sources.ClassTokenAttention`). Refinement, edges and upsampling apply to
            every source. Options a source ignores are refused: ``temperature`` or ``hard_negatives`` with
            ``"attention"`` raise ``ValueError`` here; ``negatives=`` passed at the call are ignored with a
            ``UserWarning`` naming both (adapters pass a memory bank whatever the source).

    Example:
        >>> cam = ContraCAM(model, iters=10)
        >>> maps = cam(images)                 # (B, 1, H, W) float32 in [0, 1]
        >>> boxes, valid = objaug.boxes_from_cam(maps)

    The model is put in eval mode for the call (BatchNorm uses its running statistics and is not
    updated) and left exactly as found afterwards: train/eval mode of every module, ``requires_grad``,
    strides and hooks, also when an exception is raised.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        encoder: nn.Module | None = None,
        head: nn.Module | None = None,
        projector: nn.Module | None = None,
        iters: int = 1,
        temperature: float = 1.0,
        expand_res: bool = False,
        interpolation: str = "bicubic",
        check_finite: bool = True,
        hard_negatives: int | None = None,
        edges: bool = True,
        edge_radius: float = 0.05,
        edge_eps: float = 0.01,
        refine: Literal["weighted", "union"] = "weighted",
        source: str = "gradcam",
    ) -> None:
        if model is None and (encoder is None or head is None):
            raise TypeError("ContraCAM needs a model, or both encoder= and head=.")
        if model is not None and (encoder is not None or head is not None):
            raise TypeError("Pass either model or encoder=/head=, not both.")
        check_int(iters, "iters", low=1)
        check_positive_float(temperature, "temperature")
        check_bool(expand_res, "expand_res")
        check_choice(interpolation, "interpolation", ("bicubic", "bilinear", "nearest"))
        check_bool(check_finite, "check_finite")
        check_optional_int(hard_negatives, "hard_negatives", low=1, none="all negatives",
                           why=" (nearest neighbours per image)")
        check_bool(edges, "edges")
        check_float(edge_radius, "edge_radius", low=0.0, high=0.5, low_open=True,
                    why=" (a fraction of the image's short side)")
        check_positive_float(edge_eps, "edge_eps")
        check_choice(refine, "refine", ("weighted", "union"))
        source_class = map_source_class(source)
        defaults = inspect.signature(ContraCAM.__init__).parameters
        check_unused_options(source_class, {"temperature": (temperature, defaults["temperature"].default),
                                            "hard_negatives": (hard_negatives, defaults["hard_negatives"].default)})
        if model is not None:
            self.split = split_model(model, projector=projector)
        else:
            assert encoder is not None and head is not None
            self.split = EncoderHead(encoder, head if projector is None else nn.Sequential(head, projector))
        source_class.check_model(self.split, model or encoder)
        if expand_res and isinstance(self.split, ViTEncoderHead):
            self.split.last_stage_convs(torch.empty(0))  # raises: a ViT has no strided last stage
        self.source = source
        self.iters = iters
        self.temperature = float(temperature)
        self.expand_res = bool(expand_res)
        self.interpolation = interpolation
        self.check_finite = bool(check_finite)
        self.check_schedule = CheckSchedule()
        self.hard_negatives = hard_negatives
        self.edges = edges
        self.edge_radius = float(edge_radius)
        self.edge_eps = float(edge_eps)
        self.refine = refine
        #: the :class:`~objaug.cam_sources.MapSource` computing each iteration's raw map
        self.map_source: MapSource = source_class(self.split, temperature=self.temperature,
                                                  hard_negatives=hard_negatives, expand_res=self.expand_res)

    def __repr__(self) -> str:
        return (f"ContraCAM(iters={self.iters}, temperature={self.temperature}, expand_res={self.expand_res}, "
                f"interpolation={self.interpolation!r}, hard_negatives={self.hard_negatives}, edges={self.edges}, "
                f"refine={self.refine!r}, source={self.source!r})")

    def embed(self, images: Tensor) -> Tensor:
        """Unit-norm embeddings of a batch by the model ContraCAM explains, e.g. to use as ``negatives=``.

        One forward of encoder and head without autograd, in eval mode; the model is left exactly as found.

        Args:
            images: (B, C, H, W) floating images, normalised as the model expects, on the model's device.

        Returns:
            (B, D) unit-norm embeddings on the images' device, float32 (float64 for a float64 model).

        Raises:
            TypeError / ValueError: ``images`` not a floating 4-D batch.
        """
        images = check_image_batch(images)
        check_model_input(images, self.split)
        with preserve_model_state(self.split), torch.no_grad():
            z = self.split(images)
        return F.normalize(z.to(torch.promote_types(z.dtype, torch.float32)), dim=1)

    @overload
    def __call__(self, images: Tensor, negatives: Tensor | None = ...,
                 *, return_steps: Literal[False] = ...) -> Tensor: ...

    @overload
    def __call__(self, images: Tensor, negatives: Tensor | None = ...,
                 *, return_steps: Literal[True]) -> tuple[Tensor, list[Tensor]]: ...

    def __call__(
        self, images: Tensor, negatives: Tensor | None = None, *, return_steps: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Compute the maps of a batch.

        Args:
            images: (B, C, H, W) floating images, normalised as the model expects, on the model's
                device. Any memory format (channels_last works). May be called under
                ``torch.autocast`` (bf16/fp16) and under ``torch.no_grad``.
            negatives: optional (N, D) external negatives (a MoCo queue, a lightly memory bank, or a
                bank of a dataset's embeddings from :meth:`embed`, e.g. the training set, whose nearest
                entries ``hard_negatives`` picks; re-normalised here), on the same device. An entry that is
                a copy of an image (cosine >= 1 - 1e-5, as when the bank holds the batch's own images) is
                never that image's negative. Required when B == 1.
            return_steps: also return the list of the T per-iteration maps (each min-max normalised).

        Returns:
            (B, 1, H, W) float32 maps in [0, 1] on the images' device (the union over iterations);
            with ``return_steps`` a tuple ``(maps, steps)``.

        Raises:
            TypeError / ValueError: bad input (not 4-D, not floating point, B < 2 without negatives,
                non-finite values, negatives of the wrong shape, a device mismatch, inference mode).
        """
        images = check_image_batch(images)
        check_bool(return_steps, "return_steps")
        b, _, h, w = images.shape
        if negatives is not None:
            if not isinstance(negatives, Tensor):
                raise TypeError("negatives must be a floating (N, D) tensor of embeddings, got "
                                f"{type(negatives).__name__}.")
            if negatives.ndim != 2 or not negatives.is_floating_point():
                raise ValueError("negatives must be a floating (N, D) tensor of embeddings, got "
                                 f"{getattr(negatives, 'shape', type(negatives).__name__)}.")
            if negatives.shape[0] == 0:
                negatives = None
        uses_negatives = self.map_source.uses_negatives
        if negatives is not None and not uses_negatives:  # a warning: adapters pass a bank whatever the source
            warnings.warn(f"ContraCAM: negatives= have no effect with source={self.source!r} (its maps contrast "
                          "nothing) and are ignored; drop negatives= or use source='gradcam'.", UserWarning,
                          stacklevel=2)
            negatives = None
        if b < 2 and negatives is None and uses_negatives:
            raise ValueError(
                "ContraCAM needs negatives: a batch of 1 image has no other image to contrast with, so its "
                "map would be meaningless. Pass at least 2 images, or external negatives=(N, D) embeddings "
                "(e.g. a MoCo queue)."
            )
        if not torch.compiler.is_compiling() and torch.is_inference_mode_enabled():  # (not traceable)
            raise RuntimeError("ContraCAM differentiates the head and cannot run under torch.inference_mode(); "
                               "use torch.no_grad() or no context.")
        device = module_device(self.split)
        if device is not None and device != images.device:
            raise ValueError(f"images are on {images.device} but the model is on {device}; move one of them.")
        if negatives is not None and negatives.device != images.device:
            raise ValueError(f"negatives are on {negatives.device} but images on {images.device}.")
        check_model_input(images, self.split)  # dtype and channels, metadata only
        if self.check_finite and self.check_schedule.due(images):
            check_finite(images, "images")
            if negatives is not None:
                check_finite(negatives, "negatives")

        # no autograd graph outside the map sources: ContrastiveGradCAM differentiates the head with
        # torch.func, which a surrounding no_grad does not stop (and no weight gradient is recorded).
        # Plain `with` blocks, not an ExitStack: torch.compile traces these.
        with preserve_model_state(self.split), torch.no_grad():
            if not self.expand_res:
                return self._run(images, negatives, (h, w), return_steps)
            with expanded_resolution(self.split.last_stage_convs(images)):
                return self._run(images, negatives, (h, w), return_steps)

    def _merge(self, cam: Tensor, union: Tensor | None, area0: Tensor | None,
               steps: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        """Record one iteration's map in ``steps`` and merge it into the union (``refine`` rule)."""
        steps.append(cam)
        if self.refine == "weighted":
            # a later iteration whose high region (>= 0.5) is larger than the first one's is diffuse, not
            # a further object: scale it by the area ratio (<= 1), so it cannot outgrow the first map
            area = (cam >= 0.5).flatten(1).float().mean(dim=1).view(-1, 1, 1, 1)
            if area0 is None:
                area0 = area
            else:
                cam = cam * (area0 / area.clamp_min(1e-12)).clamp(max=1.0)
        return (cam if union is None else torch.maximum(union, cam)), area0

    def _run(
        self, images: Tensor, negatives: Tensor | None, size: tuple[int, int], return_steps: bool
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        work = torch.promote_types(images.dtype, torch.float32)
        bank = None if negatives is None else F.normalize(negatives.detach().to(work), dim=1)
        # the fill colour of refinement (not needed for a single pass)
        mean_colour = images.mean(dim=(0, 2, 3), keepdim=True) if self.iters > 1 else None
        x = images
        # with check_finite, a batch of one image whose every negative is its own copy is refused (one read)
        state = self.map_source.start(bank, check_negatives=self.check_finite)
        union: Tensor | None = None
        steps: list[Tensor] = []
        area0: Tensor | None = None
        for _ in range(self.iters):
            raw = self.map_source.maps(x, state)
            cam = minmax_normalize(upsample_maps(raw, size, mode=self.interpolation))
            union, area0 = self._merge(cam, union, area0, steps)
            if mean_colour is not None and len(steps) < self.iters:
                x = fill_masked(images, union, mean_colour)
        assert union is not None
        union = self._finish(union, images)
        return (union, [s.float() for s in steps]) if return_steps else union

    def _finish(self, union: Tensor, images: Tensor) -> Tensor:
        """The output map of a merged union: edge refinement (``edges``), then clamped float32."""
        if self.edges:
            radius = max(1, round(self.edge_radius * min(images.shape[-2:])))
            union = minmax_normalize(edge_refine(union, images, radius=radius, eps=self.edge_eps))
        return union.clamp(0.0, 1.0).float()

    def output_of_steps(self, steps: list[Tensor], images: Tensor) -> Tensor:
        """The output map of the first ``k = len(steps)`` iterations of a call: ``ContraCAM(iters=k)``'s output.

        Iteration t only depends on the iterations before it, so the first k per-iteration maps of a call with
        ``iters >= k`` (``return_steps=True``) merged by ``refine`` and edge-refined are exactly the output of
        the same call with ``iters=k``.

        Args:
            steps: the first k per-iteration maps, each ``(B, 1, H, W)`` float32 in [0, 1].
            images: ``(B, C, H, W)`` the call's (normalised) images.

        Returns:
            ``(B, 1, H, W)`` float32 in [0, 1].
        """
        if not steps:
            raise ValueError("output_of_steps needs at least one per-iteration map.")
        union: Tensor | None = None
        area0: Tensor | None = None
        merged: list[Tensor] = []
        for step in steps:
            union, area0 = self._merge(step, union, area0, merged)
        assert union is not None
        with torch.no_grad():
            return self._finish(union, images)
