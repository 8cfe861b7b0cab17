"""Tooling around the core: the demo, synthetic scenes, small architectures, checkpoint loading, pictures.

* :mod:`objaug.tools.demo`: the self-contained demo (``objaug demo``);
* :mod:`objaug.tools.synthetic`: generated multi-object scenes with ground-truth masks and boxes;
* :mod:`objaug.tools.archs`: small backbones and projectors for the demo, tests and benchmarks;
* :mod:`objaug.tools.checkpoint`: loading SSL checkpoints (Lightly, solo-learn, plain) into a backbone;
* :mod:`objaug.tools.viz`: pictures of CAMs, boxes and masks;
* :mod:`objaug.tools.losses`: the NT-Xent loss of the demo.

None of these is needed to use the core (ContraCAM, boxes, crop, mixup, the store); the command line
(:mod:`objaug.cli`) builds on them.
"""
