"""bgbench: a Background-Challenge-style benchmark built from real photo cut-outs (issue 7).

Real cut-outs (Tux Paint stamps with exact alpha masks) are pasted on crops of real background photos
(Tux Paint templates, MATE nature wallpapers), both fetched from Debian's archive at build time. Each class
has a "home" background group in the training split, so the background is a spurious cue; the test splits
``original``/``mixed_same``/``mixed_rand``/``only_fg`` (as ImageNet-9's Background Challenge) use held-out
objects and held-out background regions. Multi-object scenes (2-4 cut-outs) give a COCO-like setting.

Modules: :mod:`.fetch` (download and extract the Debian packages), :mod:`.sources` (which stamps and photos,
their classes and background groups; a generated stand-in for CI), :mod:`.build` (compositing, the CLI) and
:mod:`.data` (loading). The on-disk format is ``benchmarks/bgbench/FORMAT.md``.

Build from the repository root::

    .venv/bin/python -m benchmarks.bgbench.build --source debian --seed 0 --size 64
"""
