"""ContraCAM: a class activation map for a contrastive model, for a whole batch, on its device.

Implements method.md §1 (Mo et al., NeurIPS 2021) with objaug's decisions: the per-sample score
(not the reference code's batch-pooled positive), self terms excluded from the denominator, an
optional temperature and an optional external bank of negatives.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from objaug.encoder_head import EncoderHead
from objaug.functional.cam import (
    bank_copies,
    contrastive_score,
    edge_refine,
    fill_masked,
    gradcam_map,
    minmax_normalize,
    nearest_negatives,
    upsample_maps,
)
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
    check_map_size,
    check_model_input,
    check_negatives_left,
    check_optional_int,
    check_positive_float,
    check_source_options,
)

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
        check_finite: check the inputs for NaN/inf before any work (one host synchronisation) and, for a
            batch of one image, that ``negatives=`` holds a row that is not its own copy (one more, at the
            first iteration; otherwise its map would be all zero). Turn off in training loops that have
            their own checks.
        source: where each iteration's map comes from: ``"gradcam"`` (default, the contrastive
            Grad-CAM above) or ``"attention"`` (Vision Transformers recognised by ``split_model`` with a
            class token only: the last block's class-token self-attention over the patches, averaged
            over heads, as in DINO; no backward and no negatives needed, ``negatives=`` and the
            temperature are ignored). Refinement, edges and upsampling apply to both.

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
        source: Literal["gradcam", "attention"] = "gradcam",
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
        check_choice(source, "source", ("gradcam", "attention"))
        check_source_options(source, hard_negatives=hard_negatives, temperature=temperature, expand_res=expand_res)
        if model is not None:
            self.split = split_model(model, projector=projector)
        else:
            assert encoder is not None and head is not None
            self.split = EncoderHead(encoder, head if projector is None else nn.Sequential(head, projector))
        if source == "attention" and not isinstance(self.split, ViTEncoderHead):
            raise TypeError(f"source='attention' needs a Vision Transformer that objaug.split_model recognises "
                            f"(timm, torchvision or lightly ViT), got a {type(model or encoder).__name__}. Use "
                            "source='gradcam' (the default) for other models.")
        if expand_res and isinstance(self.split, ViTEncoderHead):
            self.split.last_stage_convs(torch.empty(0))  # raises: a ViT has no strided last stage
        self.source = source
        self.iters = iters
        self.temperature = float(temperature)
        self.expand_res = bool(expand_res)
        self.interpolation = interpolation
        self.check_finite = bool(check_finite)
        self.hard_negatives = hard_negatives
        self.edges = edges
        self.edge_radius = float(edge_radius)
        self.edge_eps = float(edge_eps)
        self.refine = refine
        self._warned_small = False

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
        if b < 2 and negatives is None and self.source == "gradcam":
            raise ValueError(
                "ContraCAM needs negatives: a batch of 1 image has no other image to contrast with, so its "
                "map would be meaningless. Pass at least 2 images, or external negatives=(N, D) embeddings "
                "(e.g. a MoCo queue)."
            )
        if torch.is_inference_mode_enabled():
            raise RuntimeError("ContraCAM differentiates the head and cannot run under torch.inference_mode(); "
                               "use torch.no_grad() or no context.")
        device = module_device(self.split)
        if device is not None and device != images.device:
            raise ValueError(f"images are on {images.device} but the model is on {device}; move one of them.")
        if negatives is not None and negatives.device != images.device:
            raise ValueError(f"negatives are on {negatives.device} but images on {images.device}.")
        check_model_input(images, self.split)  # dtype and channels, metadata only
        if self.check_finite:
            check_finite(images, "images")
            if negatives is not None:
                check_finite(negatives, "negatives")

        with ExitStack() as stack:
            stack.enter_context(preserve_model_state(self.split))
            stack.enter_context(torch.enable_grad())  # the head is differentiated even under no_grad
            if self.expand_res:
                convs = self.split.last_stage_convs(images)
                stack.enter_context(expanded_resolution(convs))
            return self._run(images, negatives, (h, w), return_steps)

    def _embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            feats = self.split.encoder(x)
        if feats.ndim != 4:
            raise TypeError(
                f"The encoder returned shape {tuple(feats.shape)}, not a spatial map (B, C, h, w). Pass an "
                "encoder that stops at the last spatial stage: ContraCAM(encoder=..., head=...)."
            )
        self._check_map_size(feats)
        feats = feats.detach().requires_grad_(True)
        z = self.split.head(feats)
        if z.ndim != 2:
            raise TypeError(f"The head returned shape {tuple(z.shape)}; it must return embeddings (B, D).")
        return feats, F.normalize(z.to(torch.promote_types(z.dtype, torch.float32)), dim=1)

    def _check_map_size(self, feats: Tensor) -> None:
        # raises on a 1x1 map; the fix differs for ViTs and CNNs
        warning = check_map_size(feats, self.split, expand_res=self.expand_res)
        if warning is not None and not self._warned_small:
            self._warned_small = True
            warnings.warn(warning, UserWarning, stacklevel=5)

    def _attention_map(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        assert isinstance(self.split, ViTEncoderHead)
        with torch.no_grad():
            grid = self.split.encoder(x)
            self._check_map_size(grid)
            attn = self.split.attention_maps(grid)
        return minmax_normalize(upsample_maps(attn, size, mode=self.interpolation))

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
        keys: Tensor | None = None
        in_batch: list[Tensor] = []
        union: Tensor | None = None
        steps: list[Tensor] = []
        batch_mask: Tensor | None = None
        bank_mask: Tensor | None = None
        area0: Tensor | None = None
        for _ in range(self.iters):
            if self.source == "attention":
                cam = self._attention_map(x, size)
            else:
                feats, z = self._embed(x)
                if bank is not None and bank.shape[1] != z.shape[1]:
                    hint = " (transposed? pass negatives.T)" if bank.shape[0] == z.shape[1] else ""
                    raise ValueError(f"negatives have dimension {bank.shape[1]} but the model's embeddings have "
                                     f"{z.shape[1]}{hint}.")
                if keys is None:
                    keys = z.detach()
                    if self.hard_negatives is not None:
                        batch_mask, bank_mask = nearest_negatives(keys, self.hard_negatives, bank)
                    elif bank is not None:  # a bank embedded from the same images holds each one's copy
                        bank_mask = ~bank_copies(keys, bank)
                    if self.check_finite:  # reads the mask of a batch of one only (its copies are not negatives)
                        check_negatives_left(bank_mask, batch=keys.shape[0])
                in_batch.append(z.detach())
                score = contrastive_score(z, keys, in_batch, bank=bank, temperature=self.temperature,
                                          batch_mask=batch_mask, bank_mask=bank_mask)
                (grads,) = torch.autograd.grad(score.sum(), feats)
                cam = minmax_normalize(upsample_maps(gradcam_map(feats.detach(), grads), size, mode=self.interpolation))
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
