"""objaug for Lightly: object-aware transforms for Lightly pipelines and a device step for training loops."""
