"""Tests of the demo (``objaug demo --quick``) and of the NT-Xent loss it trains with."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from objaug.cli import main
from objaug.tools.losses import nt_xent


def _nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """Slow per-anchor reference of the SimCLR loss."""
    z = F.normalize(torch.cat([z1, z2]), dim=1).double()
    n = z.shape[0]
    b = n // 2
    total = 0.0
    for i in range(n):
        pos = (i + b) % n
        num = math.exp(float(z[i] @ z[pos]) / t)
        den = sum(math.exp(float(z[i] @ z[j]) / t) for j in range(n) if j != i)
        total += -math.log(num / den)
    return total / n


def test_nt_xent_matches_reference():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    assert float(nt_xent(z1, z2, temperature=0.3)) == pytest.approx(_nt_xent_reference(z1, z2, 0.3), rel=1e-5)
    # identical, well-separated views give a low loss
    e = torch.eye(4) * 10
    assert float(nt_xent(e, e, temperature=0.1)) < 1e-3
    with pytest.raises(ValueError):
        nt_xent(z1, z2[:3])
    with pytest.raises(ValueError):
        nt_xent(z1[:1], z2[:1])


def test_demo_quick_writes_its_files(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--quick", "--out", str(out), "--no-progress", "--threads", "1"])
    captured = capsys.readouterr().out
    assert code == 0
    assert "trained 3 steps" in captured and "centre-box prior" in captured and "ContraCAM" in captured
    assert (out / "demo_grid.png").is_file()
    doc = json.loads((out / "boxes.json").read_text())
    assert doc["steps"] == 3 and len(doc["images"]) == 16
    assert {"contracam_trained_T1", "contracam_trained_T2", "contracam_random_init_T1",
            "center_prior_0.5"} <= set(doc["mean_iou"])
    assert all(0.0 <= v <= 1.0 for v in doc["mean_iou"].values())
    metrics = json.loads((out / "metrics.json").read_text())
    keys = {"iou_t1", "iou_tref", "recall_t1", "recall_tref", "iou_center", "iou_random",
            "ref_iou_t1", "ref_iou_tref", "ref_recall_t1", "ref_recall_tref"}
    assert keys <= set(metrics) and all(0.0 <= metrics[k] <= 1.0 for k in keys)
    assert "reference code's settings" in captured
    rec = doc["images"][0]
    assert {"boxes", "valid", "fallback", "gt_boxes", "gt_valid", "iou_T1"} <= set(rec)
    # the saved weights work with `objaug cam`, as the demo's closing line suggests
    assert (out / "model.pt").is_file() and "objaug cam" in captured
    from PIL import Image

    from objaug.tools.synthetic import make_scenes

    imgs = (make_scenes(3, size=32, seed=9).images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(tmp_path / f"s{i}.png")
    code = main(["cam", *(str(tmp_path / f"s{i}.png") for i in range(3)), "--arch", "tiny_resnet_w8",
                 "--checkpoint", str(out / "model.pt"), "--projector", "32-16", "--image-size", "32",
                 "--iters", "2", "--out", str(tmp_path / "cam")])
    assert code == 0
    assert len(json.loads((tmp_path / "cam" / "boxes.json").read_text())["images"]) == 3


def test_demo_is_deterministic_for_a_seed(tmp_path):
    from objaug.tools.demo import DemoConfig, run_demo

    cfg = dict(steps=2, width=4, batch_size=4, eval_images=4, image_size=32, refined_iters=1, projector="8-8")
    before = torch.random.get_rng_state()
    a = run_demo(DemoConfig(**cfg), out_dir=None, progress=False, log=None)
    b = run_demo(DemoConfig(**cfg), out_dir=None, progress=False, log=None)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is left alone
    assert a.steps == b.steps == 2
    assert a.final_loss == pytest.approx(b.final_loss, rel=1e-4)
    assert a.iou == pytest.approx(b.iou, abs=1e-4)
