"""Two-process CPU DDP (gloo, 127.0.0.1) with the entry-point callback: each rank computes its own CAMs,
all-gathers the negatives and shares its cache updates. Runs a small script in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("lightning")
pytest.importorskip("omegaconf")

HERE = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {here!r})
    import torch
    torch.set_num_threads(1)
    import lightning.pytorch as L
    from test_solo_learn_support import BlobDataset, ContractMethod, make_cfg, objaug_callbacks

    calls = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            eng = objaug_callbacks(trainer)[-1].engine
            written = (eng.cache_masks.flatten(1).amax(1) > 0).sum()  # cache slots holding a mask
            calls.append({{"cam": eng.last_info["cam"], "object": eng.last_info["object"].tolist(),
                           "mixed": {{str(k): v.tolist() for k, v in eng.last_info["mixed"].items()}},
                           "cached": int(written)}})

    block = {{"enabled": True, "source": "online",
              "online": {{"model": "momentum", "every_n_steps": 2, "all_gather_negatives": True}},
              "boxes": {{"map_size": 16, "threshold": 0.3}}, "mixup": {{"enabled": True, "views": [0]}}}}
    module = ContractMethod(make_cfg(block), momentum=True, record=True)
    L.seed_everything(0)
    loader = torch.utils.data.DataLoader(BlobDataset(8), batch_size=2, shuffle=False, drop_last=True)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Spy()])
    trainer.fit(module, loader)
    cb = objaug_callbacks(trainer)[-1]
    out = {{"rank": trainer.global_rank, "world": trainer.world_size, "active": cb.active, "calls": calls,
            "indexes": [s["indexes"].tolist() for s in module.seen],
            "changed": [bool((s["X"][0] != BlobDataset(8)[int(s["indexes"][0])][1][0]).any()) for s in module.seen]}}
    with open(os.path.join({out!r}, f"rank{{trainer.global_rank}}.json"), "w") as f:
        json.dump(out, f)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_process_ddp_online_cam(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT.format(here=str(HERE), out=str(tmp_path)))
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), PL_DISABLE_FORK="1",
               OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
               OBJAUG_SOLO_LEARN="1")
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = sorted((json.loads(p.read_text()) for p in tmp_path.glob("rank*.json")), key=lambda r: r["rank"])
    assert [r["rank"] for r in results] == [0, 1] and all(r["world"] == 2 for r in results)
    for r in results:
        assert r["active"]
        assert [c["cam"] for c in r["calls"]] == [True, False]  # CAM on step 0, cache read on step 1
        # step 0's boxes were shared: each rank's cache holds both ranks' 2 images (4 slots written)
        assert r["calls"][0]["cached"] == 4
        assert all(r["changed"])
    seen0 = {i for step in results[0]["indexes"] for i in step}
    seen1 = {i for step in results[1]["indexes"] for i in step}
    assert seen0.isdisjoint(seen1)  # the ranks trained on different images
