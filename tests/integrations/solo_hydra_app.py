"""A Hydra app shaped like solo-learn's ``main_pretrain.py`` (not solo-learn's code), run as a subprocess by
``test_solo_learn_stock.py``: Lightning is imported at module level (before Hydra configures logging, as
``main_pretrain.py`` imports ``solo``), ``@hydra.main`` composes a config that sets solo-learn's
``hydra/job_logging: disabled``, and a 1-step Trainer fits :class:`ContractMethod` on solo-learn's data-pipeline
layout with the entry-point callback (``OBJAUG_SOLO_LEARN=1``).

Usage: ``python solo_hydra_app.py --config-path DIR --config-name simclr [overrides]``. It also calls Lightning's
``rank_zero_info`` with a control line, which this logging configuration must swallow.
"""

from __future__ import annotations

from typing import Any

import hydra
import lightning.pytorch as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from omegaconf import OmegaConf
from test_solo_learn_stock import SoloDataset, solo_transform
from test_solo_learn_support import ContractMethod

CONTROL = "control: rank_zero_info reached the screen"


@hydra.main(version_base="1.2", config_path=None, config_name=None)
def main(cfg: Any) -> None:
    OmegaConf.set_struct(cfg, False)
    torch.set_num_threads(1)
    rank_zero_info(CONTROL)
    loader = torch.utils.data.DataLoader(SoloDataset(solo_transform(cfg)), batch_size=4, drop_last=True)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(ContractMethod(cfg, record=False), loader)


if __name__ == "__main__":
    main()
