"""Object-aware background mixup as an ``nn.Module`` with a FIFO queue of backgrounds (method.md §4).

The kernels are in :mod:`objaug.functional.mixup`; this module adds the random draws (Kornia-style
``forward_parameters`` / ``params=`` replay) and the queue of recent backgrounds kept across calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from objaug.functional.backgrounds import check_source, needs_grad
from objaug.functional.mixup import MixupSource, object_rectangles
from objaug.functional.mixup_kernel import Workspace, mixup_kernel, uses_compact_path
from objaug.masks import otsu_thresholds
from objaug.validation import (
    check_batch_values,
    check_bool,
    check_choice,
    check_fallback_mass,
    check_image_batch,
    check_int,
    check_mask_batch,
    check_probability,
    check_same_device,
    check_threshold,
)
from objaug.validation_schedule import CheckSchedule

__all__ = ["BackgroundMixup"]

_PARAM_KEYS = ("apply", "perm", "queue_idx")


def _check_mixup_threshold(threshold: object) -> float | Literal["otsu"]:
    """``"otsu"`` (a threshold per mask) or a mask cut-off in (0, 1].

    Raises:
        TypeError: neither a string nor a number.
        ValueError: another string, or a number outside (0, 1].
    """
    if isinstance(threshold, str):
        check_choice(threshold, "threshold", ("otsu",))
        return "otsu"
    return check_threshold(threshold)


class BackgroundMixup(nn.Module):
    """Object-aware background mixup (Mo et al., NeurIPS 2021), vectorised over the batch.

    Per image i (method.md §4): H_i = ``masks_i >= threshold``; R_i = tight bounding rectangle of
    H_i (the whole image if H_i is empty). Where R_i covers the whole image although H_i is not empty
    (a diffuse map, or a few stray activations near the border), R_i becomes the rectangle holding
    ``fallback_mass`` of the soft mask's mass along each axis (:func:`objaug.functional.mixup.
    object_rectangles`); ``fallback_mass=None`` keeps the paper's rule. If R_i still covers the whole
    image, i is left unmixed. Else, with probability ``p``, a background-only image bg_i is *built*:

    * ``source="tiled-strip"`` (the paper): the largest of the four strips outside R_i (top, left,
      right, bottom; equal areas go to the first in that order) is tiled along its thin axis to fill
      the frame and pasted inside R_i (inclusive bounds); outside R_i the image is kept. See
      :func:`objaug.functional.mixup.tiled_strip_backgrounds`.
    * ``source="batch"``: bg_i is image i with its object pixels (H_i) filled by the per-channel
      mean colour of its own background pixels (outside H_i); the rest of the image is kept. See
      :func:`objaug.functional.mixup.mean_fill_backgrounds`.

    The partner of i is ``perm[i]`` for a random permutation ``perm`` of the batch. If bg_{perm[i]}
    was built, ``out_i = m_i * x_i + (1 - m_i) * bg_{perm[i]}`` with the soft mask m_i as the
    per-pixel ratio; otherwise a background drawn uniformly from the queue is used instead; if the
    queue is empty, x_i is left as is. Image i is mixed only if its own bg_i was built (as in the
    reference code). Unmixed images are returned bit for bit.

    Queue semantics (a deliberate, documented difference from the reference code, which pushes
    inside its per-image loop so later images may draw earlier images' backgrounds of the same
    batch): **draws within a call see only the queue as it was before the call**; after mixing, all
    backgrounds built in the call are pushed in batch order (image 0 first), first in first out, at
    most ``queue_size`` kept (if a call builds more than ``queue_size``, only its last
    ``queue_size`` remain). The queue is a non-persistent buffer: it follows ``.to(device)``, is not
    in ``state_dict``, and is created lazily on the first call with that call's (C, H, W), dtype and
    device. A later call with another (C, H, W) or dtype raises ``ValueError`` (call :meth:`reset`
    first, or use one module per resolution); images on another device than the queue raise too
    (move the module with ``.to(device)``).

    Random draws are tensor ops on the images' device (no host synchronisation), in a fixed order
    from an optional ``generator``: ``apply = rand(B) < p``, ``perm = randperm(B)``, then the queue
    positions. They are exposed as a params dict (:meth:`forward_parameters`, stored after each call
    in ``self._params``) that ``forward(..., params=...)`` replays exactly, like Kornia's
    augmentations. Kornia's ``same_on_batch`` has no meaning here (mixing pairs images of the batch
    and the rectangles come from each image's own mask), so there is no such option.

    The images may be normalised or in [0, 1]; nothing is clamped. Gradients flow to ``images``
    through the mix; the queue stores detached copies.

    Args:
        p: probability in [0, 1] that an eligible image builds a background (and so may be mixed).
        threshold: ``"otsu"`` (default): a per-image cut of the hard mask H from each mask's
            histogram (:func:`objaug.masks.otsu_thresholds`); or a fixed cut-off in (0, 1] (the
            paper's 0.2). The fixed 0.2 suits maps of a well-trained encoder; on diffuse maps (weak
            encoders, real photos) the rectangle of ``mask >= 0.2`` is the whole frame and nothing is
            mixed (measured on real photos: 2.6 % of views mixed at 0.2, 19 % with Otsu, at p=0.4;
            docs/how-it-works.md).
        fallback_mass: ``0.9`` (default): where the rectangle of H covers the whole frame, use the
            rectangle holding 90 % of the soft mask's mass along each axis (5 % trimmed at each side)
            instead, so the image can still be mixed; ``None``: the paper's rule (it stays unmixed); any
            share in (0, 1]. Chosen on the real-image benchmark's validation split (docs/how-it-works.md):
            with Otsu alone 39-44 % of trained maps left a strip (12-17 % of views mixed at p=0.4),
            with the fallback every map does (36 % mixed); 0.9 leaves strips of 4 px at 64 px (0.95: 2 px)
            while keeping 92-95 % of the object inside R.
        queue_size: capacity (>= 0) of the FIFO background queue; 0 disables the queue.
        source: ``"tiled-strip"`` (the paper) or ``"batch"``, how backgrounds are built.
        check_inputs: check that images are finite, masks lie in [0, 1] (and replayed ``perm`` in [0, B))
            before any work: one host read per checked call. On the CPU every call is checked; on an
            accelerator the calls of :attr:`check_schedule` (default: the first 10, then every 100th), so the
            read costs no stall on the others (:mod:`objaug.validation_schedule`). ``False`` checks nothing
            (and the module compiles whole).
        inplace: write the mixed batch into ``images`` itself and return it (saves allocating a
            (B, C, H, W) output). Only done when ``images`` is contiguous and autograd is not
            recording through it; otherwise a new tensor is returned as usual. Always use the
            returned tensor. :class:`objaug.ObjectAwareAugment` uses it on its own views.

    Raises:
        TypeError: an option of the wrong type.
        ValueError: ``p`` outside [0, 1], ``threshold`` or ``fallback_mass`` outside (0, 1],
            ``queue_size < 0``, unknown ``source``.

    Example:
        >>> mix = BackgroundMixup(p=0.4, threshold="otsu", queue_size=50)
        >>> twin = copy.deepcopy(mix)                   # same queue state
        >>> out, mixed = mix(images, masks)             # (B, C, H, W), (B,) bool
        >>> again, _ = twin(images, masks, params=mix._params)  # exact replay: again == out

    Performance: the forward is a sequence of batched kernels with no host sync (with
    ``check_inputs=False``): the backgrounds are built once (a gather of pixel rows or of columns, a
    blend) and serve both the mix and the queue. On an accelerator every image goes through every
    kernel (fixed shapes); on the CPU, where counting costs no synchronisation, only the images that
    build a background (about ``p`` of the batch) are processed and the others are left untouched.
    The queue lives in a reusable workspace kept by the module (``queue_size + 2 * B`` images on an
    accelerator, ``queue_size + 3 * B`` on the CPU: queue, backgrounds, scratch), so a call allocates
    no large temporary besides its output (none with ``inplace=True``).
    """

    _queue: Tensor | None
    _queue_pushed: Tensor

    def __init__(
        self,
        *,
        p: float = 0.4,
        threshold: float | Literal["otsu"] = "otsu",
        fallback_mass: float | None = 0.9,
        queue_size: int = 50,
        source: MixupSource = "tiled-strip",
        check_inputs: bool = True,
        inplace: bool = False,
    ) -> None:
        super().__init__()
        self.p = check_probability(p, "p")
        self.threshold: float | Literal["otsu"] = _check_mixup_threshold(threshold)
        self.fallback_mass = check_fallback_mass(fallback_mass)
        self.queue_size = check_int(queue_size, "queue_size", low=0, why=" (0 disables the queue)")
        self.source: MixupSource = check_source(source)
        self.check_inputs = check_bool(check_inputs, "check_inputs")
        self.inplace = check_bool(inplace, "inplace")
        #: which calls ``check_inputs`` checks on accelerators (:class:`~objaug.validation_schedule.CheckSchedule`)
        self.check_schedule = CheckSchedule()
        self._ws: Workspace | None = None
        self.register_buffer("_queue", None, persistent=False)
        self.register_buffer("_queue_pushed", torch.zeros((), dtype=torch.int64), persistent=False)
        self._params: dict[str, Tensor] | None = None

    def extra_repr(self) -> str:
        return (f"p={self.p}, threshold={self.threshold}, fallback_mass={self.fallback_mass}, "
                f"queue_size={self.queue_size}, source={self.source!r}, check_inputs={self.check_inputs}, "
                f"inplace={self.inplace}")

    # ------------------------------------------------------------------ queue
    def reset(self) -> None:
        """Empty the queue and forget its shape, dtype and device (the next call re-creates it)."""
        self._queue = None
        self._ws = None
        self._queue_pushed = torch.zeros((), dtype=torch.int64, device=self._queue_pushed.device)

    @property
    def queue_length(self) -> Tensor:
        """0-d int64 tensor on the queue's device: how many backgrounds the queue holds (no sync)."""
        return self._queue_pushed.clamp_max(self.queue_size)

    def queued_backgrounds(self) -> Tensor:
        """The queued backgrounds, oldest first, as a (n, C, H, W) copy (one host sync, for inspection).

        Returns an empty (0,) tensor before the first call.
        """
        if self._queue is None:
            return torch.empty(0, device=self._queue_pushed.device)
        q = self._queue.shape[0]
        n = int(self.queue_length)
        order = (self._queue_pushed - n + torch.arange(n, device=self._queue.device)) % max(q, 1)
        return self._queue[order].clone()

    def _ensure_queue(self, images: Tensor) -> Tensor:
        """Create the queue lazily, or check that ``images`` fit the existing one."""
        if self._queue is None:
            self._queue = torch.zeros(
                (self.queue_size, *images.shape[1:]), dtype=images.dtype, device=images.device
            )
            self._queue_pushed = torch.zeros((), dtype=torch.int64, device=images.device)
            return self._queue
        queue = self._queue
        if queue.shape[1:] != images.shape[1:] or queue.dtype != images.dtype:
            raise ValueError(
                f"images of shape (B, {', '.join(map(str, images.shape[1:]))}) and dtype {images.dtype} do "
                f"not fit the background queue, created for (C, H, W) = {tuple(queue.shape[1:])} and "
                f"{queue.dtype}. Call reset() to start a new queue, or use one BackgroundMixup per "
                "resolution."
            )
        if queue.device != images.device:
            raise ValueError(
                f"images are on {images.device} but the background queue is on {queue.device}; move the "
                f"module with .to({str(images.device)!r}) (or call reset())."
            )
        return queue

    def _workspace(self, images: Tensor) -> Workspace:
        """The reusable [queue; backgrounds] storage and scratch rows for a batch like ``images``.

        Re-created (copying the queue into it) when the batch is larger than before, or when the queue
        buffer is no longer the workspace's view of the storage's first rows (after ``.to()``, ``.half()``
        or a copy replaced the buffer). An identity test, not a data-pointer one: ``torch.compile`` traces it.
        """
        queue = self._queue
        assert queue is not None
        q, b = queue.shape[0], images.shape[0]
        ws = self._ws
        compacts = uses_compact_path(images)
        scratch = 2 * b if compacts else b  # the compacting path keeps two sets of rows
        if (ws is None or ws.storage.shape[0] < q + b or ws.scratch.shape[0] < scratch
                or ws.maps.shape[0] < (scratch if compacts else 0)
                or ws.storage.shape[1:] != images.shape[1:]
                or ws.storage.dtype != images.dtype or ws.storage.device != images.device
                or queue is not ws.queue):
            rows = max(b, ws.storage.shape[0] - ws.queue_rows if ws is not None else 0)
            storage = torch.empty((q + rows, *images.shape[1:]), dtype=images.dtype, device=images.device)
            storage[:q].copy_(queue)
            self._queue = storage[:q]
            h, w = images.shape[2:]
            maps = storage.new_empty((max(scratch, rows) if compacts else 0, 1, h, w))
            ws = Workspace(storage, self._queue, q, storage.new_empty((max(scratch, rows), *images.shape[1:])), maps)
            self._ws = ws
        return ws

    @torch.no_grad()
    def _push_compact(self, backgrounds: Tensor, ranks: Tensor) -> None:
        """Push k built backgrounds (k, C, H, W) whose batch-order ranks are ``ranks`` (the CPU path).

        The background of rank r goes to slot ``(pushed + r) % Q``; only ranks ``>= k - Q`` survive,
        so only those are copied (each slot once).
        """
        queue = self._queue
        if queue is None or queue.shape[0] == 0:
            return
        cap, k = queue.shape[0], backgrounds.shape[0]
        if 0 < k <= cap:  # every row survives: one scatter, in any row order
            queue.index_copy_(0, (self._queue_pushed + ranks) % cap, backgrounds)
        elif k > cap:
            where = torch.empty_like(ranks).index_copy_(0, ranks, torch.arange(k, device=ranks.device))
            keep = where[k - cap:]  # rows of the last `cap` ranks
            slot = (self._queue_pushed + ranks.index_select(0, keep)) % cap
            queue.index_copy_(0, slot, backgrounds.index_select(0, keep))
        self._queue_pushed.add_(k)

    @torch.no_grad()
    def _push(self, backgrounds: Tensor, built: Tensor, ws: Workspace | None) -> None:
        """Push the backgrounds of the ``built`` images, in batch order, into the FIFO ring buffer.

        No host sync, and only the at most ``min(B, Q)`` slots that can change are touched:
        candidate j in [0, min(B, Q)) is slot ``(pushed + j) % Q``; it receives the background of
        rank ``r_j = j + Q * floor((k - 1 - j) / Q)`` among the ``k`` built ones (the last one whose
        rank is ``j mod Q``), or keeps its content if ``r_j < 0``. ``backgrounds`` (B, C, H, W) are
        the batch's backgrounds (rows ``Q ..`` of the workspace storage when ``ws`` is given).
        """
        queue = self._queue
        if queue is None or queue.shape[0] == 0:
            return
        cap = queue.shape[0]
        b = built.shape[0]
        cand = min(b, cap)
        counts = built.cumsum(0)  # (B,) int64: rank + 1 of each built image
        k = counts[-1]
        j = torch.arange(cand, device=queue.device)
        slot = (self._queue_pushed + j) % cap
        rank = j + cap * torch.div(k - 1 - j, cap, rounding_mode="floor")
        written = rank >= 0
        src = torch.searchsorted(counts, rank + 1).clamp_max(b - 1)
        if ws is not None:  # one gather over [queue; backgrounds]: unwritten slots copy themselves
            index = torch.where(written, cap + src, slot)
            rows = torch.index_select(ws.storage, 0, index, out=ws.scratch[:cand])
        else:
            rows = torch.where(written.view(-1, 1, 1, 1), backgrounds.index_select(0, src),
                               queue.index_select(0, slot))
        queue.index_copy_(0, slot, rows)
        self._queue_pushed.add_(k)

    # ------------------------------------------------------------------ parameters
    def forward_parameters(
        self,
        batch_shape: Sequence[int],
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Draw the random parameters of one call (no host synchronisation).

        Args:
            batch_shape: the images' shape (B, C, H, W) (only B is used), e.g. ``images.shape``.
            device: where to draw (the images' device); default the queue's device.
            generator: optional ``torch.Generator`` on ``device``.

        Returns:
            Dict of (B,) tensors on ``device``:

            * ``"apply"``: bool, Bernoulli(p) draws (``rand(B) < p``).
            * ``"perm"``: int64, the partner of each image (a random permutation of ``range(B)``).
            * ``"queue_idx"``: int64, position in the queue *in FIFO order* (0 = oldest) of the
              background to use when the partner has none; uniform over the current queue length
              n (0 when the queue is empty). At forward time it is taken modulo n.

        Raises:
            ValueError: empty ``batch_shape`` or a non-positive batch size, generator on another
                device type.
        """
        if len(batch_shape) == 0 or int(batch_shape[0]) <= 0:
            raise ValueError(f"batch_shape must start with a positive batch size, got {tuple(batch_shape)}.")
        b = int(batch_shape[0])
        dev = torch.device(device) if device is not None else self._queue_pushed.device
        if generator is not None and generator.device.type != dev.type:
            raise ValueError(f"generator is on {generator.device} but the draws are made on {dev}; create it "
                             f"with torch.Generator(device={str(dev)!r}).")
        apply = torch.rand(b, device=dev, generator=generator) < self.p
        perm = torch.randperm(b, device=dev, generator=generator)
        n = self.queue_length.to(dev)
        u = torch.rand(b, device=dev, generator=generator, dtype=torch.float64)
        queue_idx = torch.minimum((u * n).floor().to(torch.int64), (n - 1).clamp_min(0))
        return {"apply": apply, "perm": perm, "queue_idx": queue_idx}

    def _check_params(self, params: object, images: Tensor) -> dict[str, Tensor]:
        if not isinstance(params, dict) or set(params) != set(_PARAM_KEYS):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"params must be a dict with keys {list(_PARAM_KEYS)} (from forward_parameters "
                             f"or a previous call's ._params), got {got}.")
        b = images.shape[0]
        for key, dtype in zip(_PARAM_KEYS, (torch.bool, torch.int64, torch.int64), strict=True):
            t = params[key]
            if not isinstance(t, Tensor) or t.shape != (b,) or t.dtype != dtype:
                got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"params[{key!r}] must be a {dtype} tensor of shape ({b},), got {got}.")
            if t.device != images.device:
                raise ValueError(f"params[{key!r}] is on {t.device} but the images are on {images.device}.")
        return params

    # ------------------------------------------------------------------ forward
    def _cuts(self, masks: Tensor) -> float | Tensor:
        """The hard-mask threshold of ``masks``: each mask's Otsu cut (B,), or the fixed one."""
        return otsu_thresholds(masks) if self.threshold == "otsu" else self.threshold

    def object_rectangles(self, masks: Tensor) -> Tensor:
        """The object rectangle R this module keeps for each mask (its ``threshold`` and ``fallback_mass``).

        An image can be mixed iff R leaves a strip (``objaug.functional.mixup.largest_strip(R, H, W)`` area
        > 0), e.g. to tell before training how much a set of masks will be mixed. No random draw, no state.

        Args:
            masks: floating (B, 1, H, W) soft masks in [0, 1], any device.

        Returns:
            (B, 4) int64 inclusive ``(y0, y1, x0, x1)`` on ``masks.device``
            (:func:`objaug.functional.mixup.object_rectangles`).
        """
        return object_rectangles(masks, self._cuts(masks), self.fallback_mass)

    def forward(
        self,
        images: Tensor,
        masks: Tensor,
        *,
        params: dict[str, Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Mix the backgrounds of a batch and update the queue.

        Args:
            images: floating (B, C, H, W) images (normalised or [0, 1]; any float dtype), any device.
            masks: floating (B, 1, H, W) soft object masks in [0, 1], aligned with ``images``, same
                device; used both for the rectangles (``>= threshold``) and as mixing ratio.
            params: optional dict from :meth:`forward_parameters` (or ``self._params`` of an earlier
                call) to replay; the result is identical given the same inputs and queue state.
            generator: optional ``torch.Generator`` on the images' device for the draws (ignored
                with ``params``).

        Returns:
            ``(mixed_images, mixed)``: (B, C, H, W) tensor, same dtype/device as ``images`` (unmixed
            rows equal the input exactly), and a (B,) bool tensor telling which images were mixed.

        Raises:
            TypeError: non-tensor or integer images, non-floating masks.
            ValueError: wrong mask shape, batch-size or device mismatch, masks outside [0, 1] (if
                ``check_inputs``), images that do not fit the queue, malformed ``params``.
        """
        check_image_batch(images)
        check_mask_batch(masks, "masks", like=images)
        check_same_device([("images", images), ("masks", masks)])
        if params is not None:
            params = self._check_params(params, images)
        if self.check_inputs and self.check_schedule.due(images):
            check_batch_values(images, image_range=None, masks=masks)  # finite images, masks in [0, 1]: one sync
            if params is not None:
                bad = (params["perm"] < 0) | (params["perm"] >= images.shape[0]) | (params["queue_idx"] < 0)
                if bool(bad.any()):
                    raise ValueError(f"params['perm'] must lie in [0, {images.shape[0]}) and "
                                     "params['queue_idx'] must be >= 0.")
        queue = self._ensure_queue(images)
        if params is None:
            params = self.forward_parameters(images.shape, device=images.device, generator=generator)
        self._params = params

        cap = queue.shape[0]
        n = self._queue_pushed.clamp_max(cap)
        slot = (self._queue_pushed - n + params["queue_idx"] % n.clamp_min(1)) % max(cap, 1)
        grad = needs_grad(images, masks)
        ws = None if grad else self._workspace(images)
        current = self._queue if cap > 0 else None  # the workspace may have moved the queue
        out, backgrounds, ranks = mixup_kernel(images, masks, params["apply"], params["perm"], self._cuts(masks),
                                         self.source, current, slot, n, workspace=ws,
                                         inplace=self.inplace and not grad, fallback_mass=self.fallback_mass)
        if ranks is not None:
            self._push_compact(backgrounds, ranks)
        else:
            self._push(backgrounds, out.built, ws)
        return out.images, out.mixed
