"""The options ``objaug cam`` and ``objaug precompute`` share, each declared once with one default.

* The CAM and box flags are generated from the fields of :class:`objaug.config.CamConfig` and
  :class:`objaug.config.BoxConfig` (:func:`add_config_arguments`): a field ``hard_negatives`` is the flag
  ``--hard-negatives``, its help is the field's ``metadata["help"]``, its choices the field's ``Literal``,
  its default the config's; a ``bool`` field is a ``--name/--no-name`` pair. :func:`configs_from_args`
  builds the configs back from the parsed arguments (the configs check the values).
* The model and data flags (``--arch``, ``--checkpoint``, ``--image-size``, ``--batch-size``, ``--device``,
  ``--mean``/``--std``, ...) are declared by :func:`add_model_arguments`.
* :func:`to_flags` rewrites a library error (``CamConfig.iters must be ...``, ``batch_size must be ...``) in
  the command line's terms (``--iters must be ...``), so the commands translate the library's checks
  instead of repeating them.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from objaug.config import BoxConfig, CamConfig
from objaug.constants import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["CONFIG_CLASSES", "CONFIG_FIELDS", "FLAGS", "add_config_arguments", "add_model_arguments", "config_flag",
           "configs_from_args", "mean_std", "to_flags"]

#: The configs whose fields are command-line flags, with the title of their help section.
CONFIG_CLASSES: tuple[tuple[type, str], ...] = (
    (CamConfig, "ContraCAM (objaug.config.CamConfig)"),
    (BoxConfig, "boxes (objaug.config.BoxConfig)"),
)

#: The names of the config fields, in flag order (``args.<name>`` after parsing).
CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for cls, _ in CONFIG_CLASSES for f in dataclasses.fields(cls))


def config_flag(name: str) -> str:
    """The flag of a config field: ``hard_negatives`` -> ``--hard-negatives``."""
    return "--" + name.replace("_", "-")


# ---------------------------------------------------------------------- config flags
def _plain_help(field: dataclasses.Field[Any]) -> str:
    """The field's help as argparse shows it (no Markdown backticks; ``%`` escaped for argparse's formatting)."""
    return str(field.metadata.get("help", "")).replace("`", "").replace("%", "%%")


def _argument_spec(field: dataclasses.Field[Any], annotation: Any) -> dict[str, Any]:
    """``add_argument`` keywords of one config field (no help), from its type annotation and default."""
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(arguments) == 1
    base = arguments[0] if optional else annotation
    spec: dict[str, Any] = {"default": field.default}
    if base is bool:
        spec.update(action=argparse.BooleanOptionalAction)
    elif typing.get_origin(base) is Literal:
        spec.update(choices=typing.get_args(base), type=str)
    elif base in (int, float):
        spec.update(type=base)
    else:
        raise TypeError(f"{field.name}: no command-line form for a field of type {annotation!r}.")
    return spec


def _default_text(field: dataclasses.Field[Any]) -> str:
    """How a field's default is shown in the help."""
    if field.default is None:
        return "unset"
    if isinstance(field.default, bool):
        return config_flag(field.name) if field.default else "--no-" + config_flag(field.name)[2:]
    return "%(default)s"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per field of :class:`~objaug.config.CamConfig` and :class:`~objaug.config.BoxConfig`.

    Each flag stores into ``args.<field name>``, with the config's default; see the module docstring.
    """
    for cls, title in CONFIG_CLASSES:
        group = parser.add_argument_group(title)
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            action = group.add_argument(config_flag(field.name), dest=field.name,
                                        **_argument_spec(field, hints[field.name]))
            # set after construction: some Pythons' BooleanOptionalAction append their own default text
            action.help = f"{_plain_help(field)} (default: {_default_text(field)})"


def configs_from_args(args: argparse.Namespace) -> tuple[CamConfig, BoxConfig]:
    """The :class:`~objaug.config.CamConfig` and :class:`~objaug.config.BoxConfig` of the parsed flags.

    Raises:
        TypeError / ValueError: the configs' own checks (naming ``CamConfig.<field>``; see :func:`to_flags`).
    """
    cam = CamConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(CamConfig)})
    box = BoxConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BoxConfig)})
    return cam, box


# ---------------------------------------------------------------------- model and data flags
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model and input flags of ``cam`` and ``precompute`` (one declaration, one default each)."""
    group = parser.add_argument_group("model and input")
    group.add_argument("--arch", default="resnet50",
                       help="resnet18, resnet50, tiny_resnet or a timm model name (default: %(default)s)")
    group.add_argument("--checkpoint",
                       help="weights: a state dict, Lightning/solo-learn or lightly checkpoint")
    group.add_argument("--random-init", action="store_true",
                       help="run without a checkpoint (random weights: for smoke tests only)")
    group.add_argument("--seed", type=int, default=0,
                       help="seed of the random initialisation with --random-init (the same on every process; "
                            "default: %(default)s)")
    group.add_argument("--key-prefix", default=None,
                       help="prefix of the backbone keys in the checkpoint, e.g. 'backbone.' (default: detect)")
    group.add_argument("--projector", default=None,
                       help="projector MLP spec, e.g. 2048-128, bn:4096-256 or bn,nobias,bnlast:2048-128 (see "
                            "objaug.tools.archs.build_projector; loaded from the checkpoint's projector keys); "
                            "default: none (ContraCAM on the pooled features)")
    group.add_argument("--projector-prefix", default=None,
                       help="prefix of the projector keys (default: detect, e.g. 'projector.')")
    group.add_argument("--trust-checkpoint", action="store_true",
                       help="allow torch.load(weights_only=False) for checkpoints that pickle Python objects")
    group.add_argument("--image-size", type=int, default=224,
                       help="images are resized to this size squared, the network's input (default: %(default)s)")
    group.add_argument("--batch-size", type=int, default=64,
                       help="images per ContraCAM batch, >= 2: each image is contrasted with the others of its "
                            "batch (default: %(default)s)")
    group.add_argument("--mean", type=float, nargs=3, default=None,
                       help="normalisation mean of the [0, 1] images (default: ImageNet's)")
    group.add_argument("--std", type=float, nargs=3, default=None,
                       help="normalisation std of the [0, 1] images (default: ImageNet's)")
    group.add_argument("--device", default="auto",
                       help="torch device (default: auto, cuda:LOCAL_RANK if CUDA is available, else cpu)")


def mean_std(args: argparse.Namespace) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of ``--mean``/``--std`` (ImageNet's when not given)."""
    mean = tuple(args.mean) if args.mean is not None else tuple(IMAGENET_MEAN)
    std = tuple(args.std) if args.std is not None else tuple(IMAGENET_STD)
    return mean, std


def _model_flags() -> dict[str, str]:
    """Library argument name -> flag, for the flags of :func:`add_model_arguments`."""
    parser = argparse.ArgumentParser(add_help=False)
    add_model_arguments(parser)
    return {action.dest: action.option_strings[0] for action in parser._actions if action.option_strings}


#: Library argument name -> flag: every config field, every model/input option, and ContraCAM's name of
#: the map source (``ContraCAM(source=...)`` is ``CamConfig.map_source``).
FLAGS: dict[str, str] = {
    **{name: config_flag(name) for name in CONFIG_FIELDS},
    **_model_flags(),
    "source": config_flag("map_source"),
}


# ---------------------------------------------------------------------- errors in the command line's terms
_CONFIG_FIELD = re.compile(r"\b(?:" + "|".join(cls.__name__ for cls, _ in CONFIG_CLASSES) + r")\.(\w+)")
_NOT_AFTER = r"(?<![\w./\-'\"])"  # not part of a longer name, a path, a flag or a quoted value
_SNAKE_NAME = re.compile(_NOT_AFTER + r"([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b")
_ASSIGNED_NAME = re.compile(_NOT_AFTER + r"([a-z]\w*)(?==)")
_LEADING_NAME = re.compile(r"^([a-z]\w*)(?= must\b)")
_CONFIG_NAME = re.compile(_NOT_AFTER + r"(" + "|".join(CONFIG_FIELDS) + r")\b")


def to_flags(message: str, names: Mapping[str, str] | None = None, *, patterns: Sequence[tuple[str, str]] = ()) -> str:
    """A library error message in the command line's terms.

    Rewritten: ``CamConfig.<field>`` / ``BoxConfig.<field>``; names with an underscore (``hard_negatives``);
    a name assigned a value (``iters=3``); a name the message starts with (``batch_size must be ...``); in
    a config's own error (one that starts with ``CamConfig.`` or ``BoxConfig.``), every config field name
    (``Drop bank, temperature``). Only names in :data:`FLAGS` or ``names`` are rewritten, to their flags
    (``--hard-negatives``).

    Args:
        message: the error's text.
        names: extra library name -> flag pairs of one command (e.g. ``{"num_workers": "--workers"}``).
        patterns: extra ``(regular expression, replacement)`` pairs applied first (wording the rules above
            cannot see, e.g. ``("^root: ", "--data: ")``).

    Returns:
        The message with those names replaced by their flags.
    """
    table = {**FLAGS, **(names or {})}

    def flag(match: re.Match[str]) -> str:
        return table.get(match.group(1), match.group(0))

    for pattern, replacement in patterns:
        message = re.sub(pattern, replacement, message)
    rules = [_CONFIG_FIELD, _SNAKE_NAME, _ASSIGNED_NAME, _LEADING_NAME]
    if _CONFIG_FIELD.match(message):  # a config's message is about its fields: bare names are fields too
        rules.append(_CONFIG_NAME)
    for rule in rules:
        message = rule.sub(flag, message)
    return message
