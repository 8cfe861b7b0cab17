"""The model of the ``cam`` and ``precompute`` subcommands: ``--arch``, ``--projector``, ``--checkpoint``, ``--device``.

The flags are declared once, in :func:`objaug.cli.options.add_model_arguments`.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torch import nn

from objaug.tools.archs import backbone_dim, build_backbone, build_projector
from objaug.tools.checkpoint import CheckpointError, load_weights

__all__ = ["ModelSetupError", "build_model", "resolve_device"]


class ModelSetupError(ValueError):
    """The model named on the command line cannot be built or loaded (the message says why)."""


def resolve_device(name: str) -> torch.device:
    """The torch device of ``--device``, tried once (an empty tensor is made on it).

    Args:
        name: a torch device string, or ``"auto"``: ``cuda:LOCAL_RANK`` (torchrun's local rank, default 0) when
            CUDA is available, else ``cpu``.

    Raises:
        ModelSetupError: torch cannot use that device.
    """
    try:
        if name == "auto":
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
        else:
            device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, ValueError) as e:
        raise ModelSetupError(f"cannot use --device {name!r}: {e}") from e
    return device


def build_model(args: argparse.Namespace, *, probe_size: int, device: torch.device | str, command: str,
                what: str) -> tuple[nn.Module, nn.Module | None]:
    """Build ``--arch`` (+ ``--projector``), load ``--checkpoint`` into both, move to ``device``, eval mode.

    Args:
        args: parsed arguments with ``arch``, ``projector``, ``checkpoint``, ``key_prefix``,
            ``projector_prefix`` and ``trust_checkpoint``.
        probe_size: image size of the dummy forward that measures the backbone's output width.
        device: where the model goes.
        command: the subcommand's name, for messages.
        what: what random weights make meaningless ("maps", "boxes"), for the ``--random-init`` warning.

    Returns:
        ``(backbone, projector)``; ``projector`` is ``None`` without ``--projector``.

    Raises:
        ModelSetupError: unknown architecture, bad projector spec, unreadable or mismatching checkpoint.
    """
    try:
        backbone = build_backbone(args.arch)
        projector = None
        if args.projector:
            projector = build_projector(args.projector, backbone_dim(backbone, image_size=probe_size))
    except (ValueError, ImportError, RuntimeError) as e:
        raise ModelSetupError(str(e)) from e
    if args.checkpoint is not None:
        try:
            rep = load_weights(backbone, args.checkpoint, key_prefix=args.key_prefix, trusted=args.trust_checkpoint)
            print(f"backbone: {rep.summary()}", file=sys.stderr)
            if projector is not None:
                prep = load_weights(projector, args.checkpoint, key_prefix=args.projector_prefix,
                                    trusted=args.trust_checkpoint)
                if prep.prefix == rep.prefix and args.projector_prefix is None:
                    raise CheckpointError(
                        f"the projector's keys were found under the backbone's prefix {rep.prefix!r}; "
                        "pass --projector-prefix (e.g. projector.).")
                print(f"projector: {prep.summary()}", file=sys.stderr)
        except (CheckpointError, FileNotFoundError) as e:
            raise ModelSetupError(str(e)) from e
    else:
        print(f"objaug {command}: warning: --random-init: random weights, the {what} mean nothing.", file=sys.stderr)
    backbone.to(device).eval()
    if projector is not None:
        projector.to(device).eval()
    return backbone, projector
