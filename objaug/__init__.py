"""objaug: object-aware self-supervised learning (ContraCAM, object-aware crop, background mixup)."""

__version__ = "0.1.0.dev0"
