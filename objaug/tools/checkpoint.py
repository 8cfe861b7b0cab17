"""Load self-supervised checkpoints into a backbone (or projector), whatever library wrote them.

:func:`load_weights` understands

* a plain ``state_dict`` (``torch.save(model.state_dict())``);
* containers: a Lightning checkpoint (``{"state_dict": ...}``, which includes solo-learn's), and
  ``{"model": ...}`` / ``{"model_state_dict": ...}`` / ``{"module": ...}`` / ``{"teacher": ...}``;
* prefixes: the keys for the model may sit under any prefix (``backbone.``, ``model.backbone.``,
  ``encoder.``, ``module.``, ``module.encoder_q.``, ``momentum_backbone.``...). With
  ``key_prefix=None`` the prefix is found automatically: every prefix under which some model key
  appears is scored by how many model tensors it supplies with the right shape, and the best wins
  (ties go to the common prefixes, in the order of :data:`COMMON_PREFIXES`);
* lightly's ``nn.Sequential(*list(resnet.children())[:-1])`` backbones, whose keys use child indices
  (``backbone.0.weight`` = ``conv1.weight``, ``backbone.4.0.conv1.weight`` =
  ``layer1.0.conv1.weight``): the first key component is mapped through the model's own list of
  children, so this works for any model whose children come in the same order (torchvision ResNets).

Files are read with ``torch.load(weights_only=True)``; a checkpoint that pickles other objects (a
solo-learn ``hyper_parameters`` OmegaConf config, for instance) is refused unless ``trusted=True``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["COMMON_PREFIXES", "CheckpointError", "LoadReport", "extract_state_dict", "load_weights",
           "read_checkpoint"]

#: Prefixes tried first (in this order of preference on ties) when ``key_prefix`` is None.
COMMON_PREFIXES: tuple[str, ...] = (
    "", "backbone.", "model.backbone.", "encoder.", "model.encoder.", "model.", "module.",
    "module.backbone.", "module.encoder_q.", "encoder_q.", "module.base_encoder.", "base_encoder.",
    "net.", "student.backbone.", "teacher.backbone.", "momentum_backbone.", "backbone_momentum.",
    "projector.", "projection_head.", "head.",
)

#: Container keys under which a state dict may be nested (checked in this order).
CONTAINER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model", "module", "net", "teacher",
                                   "student")

_MAX_LISTED = 12


class CheckpointError(ValueError):
    """The checkpoint could not be read or does not fit the model (the message says why and how)."""


@dataclass
class LoadReport:
    """What :func:`load_weights` did.

    Attributes:
        source: ``"plain"`` or the container key the state dict was found under (``"state_dict"``
            for Lightning / solo-learn checkpoints).
        prefix: the key prefix used.
        index_mapped: True if numeric child indices (lightly ``nn.Sequential`` layout) were mapped to
            the model's child names.
        loaded: names of the model tensors loaded.
        missing: model tensors not found in the checkpoint (only non-empty when ``strict=False``).
        mismatched: ``(name, checkpoint shape, model shape)`` of tensors found with the wrong shape.
        unexpected: checkpoint keys under the prefix that match no model tensor (e.g. a classifier
            ``fc.weight`` when the model's ``fc`` is an ``Identity``); ignored.
    """

    source: str
    prefix: str
    index_mapped: bool
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A one-line human-readable summary."""
        layout = " (lightly nn.Sequential indices mapped)" if self.index_mapped else ""
        s = (f"loaded {len(self.loaded)} tensors from {self.source!r} with prefix {self.prefix!r}{layout}")
        if self.unexpected:
            s += f"; ignored {len(self.unexpected)} unused keys under the prefix ({_listing(self.unexpected, 4)})"
        if self.missing:
            s += f"; {len(self.missing)} model tensors NOT loaded ({_listing(self.missing, 4)})"
        return s


def _listing(names: Sequence[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def read_checkpoint(path: str | os.PathLike[str], *, trusted: bool = False) -> Any:
    """``torch.load`` a file on the CPU, with ``weights_only=True`` unless ``trusted``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is not a torch checkpoint, or pickles objects other than tensors and
            containers (the message suggests ``trusted=True`` / ``--trust-checkpoint`` for files from a
            trusted source).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file not found: {path!r}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as e:  # noqa: BLE001 - torch raises several types (UnpicklingError, RuntimeError...)
        text = str(e)
        if not trusted and "Unsupported global" in text:
            what = next((ln.strip() for ln in text.splitlines() if "Unsupported global" in ln), "")
            what = what.split(" was not an allowed global")[0].replace("WeightsUnpickler error: ", "")
            raise CheckpointError(
                f"{path!r} holds Python objects other than tensors (e.g. a pickled config in "
                f"'hyper_parameters'), so torch.load(weights_only=True) refused it ({what}). If you trust "
                f"the file, load it with trusted=True (CLI: --trust-checkpoint), or re-save only its "
                f"state_dict."
            ) from e
        first = next((ln.strip() for ln in text.splitlines() if "error" in ln.lower()), text.splitlines()[0]
                     if text else type(e).__name__)
        raise CheckpointError(f"Could not read {path!r} as a torch checkpoint ({type(e).__name__}: "
                              f"{first[:300]}).") from e


def extract_state_dict(obj: Any) -> tuple[dict[str, Tensor], str]:
    """Find the flat ``{name: tensor}`` state dict inside a loaded checkpoint object.

    Returns:
        ``(state_dict, source)`` where source is ``"plain"`` or the container key.

    Raises:
        CheckpointError: no state dict found.
    """
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict()), "module"
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"Expected a state dict (a mapping of names to tensors), got {type(obj).__name__}.")
    if obj and all(isinstance(v, Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}, "plain"
    for key in CONTAINER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, nn.Module):
            return dict(inner.state_dict()), key
        if isinstance(inner, Mapping) and inner and any(isinstance(v, Tensor) for v in inner.values()):
            return {str(k): v for k, v in inner.items() if isinstance(v, Tensor)}, key
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if tensors:
        return tensors, "plain"
    raise CheckpointError(
        f"No state dict found in the checkpoint: its top-level keys are {_listing([str(k) for k in obj])}; "
        f"expected tensors, or one of the containers {CONTAINER_KEYS}."
    )


def _model_keys(model: nn.Module) -> dict[str, Tensor]:
    return dict(model.state_dict())


def _index_names(model: nn.Module) -> dict[str, str]:
    """Map child names to their position: {"conv1": "0", "bn1": "1", ...}."""
    return {name: str(i) for i, (name, _) in enumerate(model.named_children())}


def _to_index_key(key: str, index_of: Mapping[str, str]) -> str | None:
    head, _, rest = key.partition(".")
    idx = index_of.get(head)
    if idx is None:
        return None
    return f"{idx}.{rest}" if rest else idx


def _candidates(state: Mapping[str, Tensor], targets: Mapping[str, str]) -> list[str]:
    """Prefixes p such that p + target is a checkpoint key for some target name (suffix discovery)."""
    found: set[str] = set()
    target_set = set(targets)
    for k in state:
        parts = k.split(".")
        for i in range(len(parts)):
            suffix = ".".join(parts[i:])
            if suffix in target_set:
                found.add(".".join(parts[:i]) + ("." if i else ""))
    return sorted(found, key=lambda p: (len(p), p))


def _match(state: Mapping[str, Tensor], model_sd: Mapping[str, Tensor], prefix: str,
           rename: Mapping[str, str]) -> tuple[dict[str, Tensor], list[str], list[tuple[str, tuple[int, ...],
                                                                                      tuple[int, ...]]]]:
    """Tensors for model keys under ``prefix`` (``rename``: model key -> checkpoint key suffix)."""
    loaded: dict[str, Tensor] = {}
    missing: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    for name, ref in model_sd.items():
        key = prefix + rename.get(name, name)
        t = state.get(key)
        if t is None:
            missing.append(name)
        elif tuple(t.shape) != tuple(ref.shape):
            mismatched.append((name, tuple(t.shape), tuple(ref.shape)))
        else:
            loaded[name] = t
    return loaded, missing, mismatched


def _optional(name: str) -> bool:
    """Buffers that older checkpoints may lack without harm."""
    return name.endswith("num_batches_tracked")


def load_weights(
    model: nn.Module,
    path_or_state: str | os.PathLike[str] | Mapping[str, Any],
    *,
    key_prefix: str | None = None,
    strict: bool = True,
    trusted: bool = False,
) -> LoadReport:
    """Load a checkpoint's weights into ``model`` (in place), detecting the layout.

    Args:
        model: the module to fill (a backbone such as ``build_backbone("resnet50")``, or a projector).
        path_or_state: a file path, or an already loaded checkpoint object / state dict.
        key_prefix: the prefix of the model's keys in the checkpoint (``"backbone."``, ``""``...).
            ``None`` (default) detects it (see the module docstring). A prefix without a trailing dot
            gets one.
        strict: if True (default), every model tensor must be found with the right shape
            (``num_batches_tracked`` buffers may be absent), else a :class:`CheckpointError` lists the
            keys missing on each side and suggests ``key_prefix``. If False, whatever matches is loaded
            and the rest is reported (still an error if nothing matches).
        trusted: allow ``torch.load(weights_only=False)`` for files that pickle non-tensor objects.

    Returns:
        A :class:`LoadReport`.

    Raises:
        FileNotFoundError: the path does not exist.
        CheckpointError: unreadable file, no state dict, or a mismatch (see ``strict``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}.")
    if isinstance(path_or_state, (str, os.PathLike)):
        obj = read_checkpoint(path_or_state, trusted=trusted)
    else:
        obj = path_or_state
    state, source = extract_state_dict(obj)
    model_sd = _model_keys(model)
    if not model_sd:
        raise CheckpointError(f"The {type(model).__name__} has no parameters or buffers to load.")

    index_of = _index_names(model)
    index_rename = {n: k for n in model_sd if (k := _to_index_key(n, index_of)) is not None}
    renames: list[tuple[bool, dict[str, str]]] = [(False, {})]
    if index_rename and index_rename != {n: n for n in index_rename}:
        renames.append((True, index_rename))

    if key_prefix is not None:
        prefixes = [key_prefix if key_prefix == "" or key_prefix.endswith(".") else key_prefix + "."]
    else:
        prefixes = list(COMMON_PREFIXES)
        for _, rename in renames:
            targets = {rename.get(n, n): n for n in model_sd}
            prefixes += [p for p in _candidates(state, targets) if p not in prefixes]

    best: tuple[int, int, str, bool, dict[str, Tensor], list[str], list[Any]] | None = None
    for rank, prefix in enumerate(prefixes):
        for mapped, rename in renames:
            loaded, missing, mismatched = _match(state, model_sd, prefix, rename)
            score = len(loaded)
            # more tensors loaded wins; on ties the earlier (common) prefix and the plain names win
            if best is None or score > best[0]:
                best = (score, rank, prefix, mapped, loaded, missing, mismatched)

    assert best is not None
    score, _, prefix, mapped, loaded, missing, mismatched = best
    rename = dict(renames[1][1]) if mapped else {}
    used = {prefix + rename.get(n, n) for n in model_sd}
    heads = set(index_of) | set(index_of.values())
    unexpected = [k for k in state if k.startswith(prefix) and k not in used
                  and (prefix or k.split(".")[0] in heads)]
    report = LoadReport(source=source, prefix=prefix, index_mapped=mapped, loaded=sorted(loaded),
                        missing=[n for n in missing], mismatched=mismatched, unexpected=unexpected)

    hard_missing = [n for n in missing if not _optional(n)]
    if score == 0 or (strict and (hard_missing or mismatched)):
        near = [k for k in state if k.startswith(prefix)] if prefix else list(state)
        near_unused = [k for k in near if k not in used]
        common = sorted({k.split(".")[0] + "." for k in state if "." in k})
        msg = [f"The checkpoint does not fit the {type(model).__name__} "
               f"({score} of {len(model_sd)} tensors match with prefix {prefix!r}"
               f"{', lightly child indices mapped' if mapped else ''})."]
        if hard_missing:
            msg.append(f"Model tensors not found in the checkpoint: {_listing(hard_missing)}.")
        if mismatched:
            shown = [f"{n} (checkpoint {a} vs model {b})" for n, a, b in mismatched]
            msg.append(f"Shape mismatches (a different architecture or width?): {_listing(shown)}.")
        if near_unused:
            msg.append(f"Checkpoint keys{' under ' + repr(prefix) if prefix else ''} that match nothing: "
                       f"{_listing(near_unused)}.")
        msg.append(f"Top-level key groups in the checkpoint: {_listing(common)}. Pass the right prefix "
                   f"with key_prefix= (CLI: --key-prefix, e.g. --key-prefix backbone.), check --arch, "
                   f"or use strict=False to load what matches.")
        raise CheckpointError(" ".join(msg))

    with torch.no_grad():
        for name, t in loaded.items():
            model_sd[name].copy_(t.to(dtype=model_sd[name].dtype))
    return report
