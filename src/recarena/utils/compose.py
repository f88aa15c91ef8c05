"""Compose conf/train.yaml in-process exactly as `python -m recarena.train <overrides>` would (tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

# the Hydra configs inside the package (recarena/conf: a link to the project's conf/ in a checkout, the files
# themselves in an installed wheel), so every entry point finds them however recarena was installed
CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def compose_train_config(overrides: list[str], output_dir: Path, data_dir: Path | None = None) -> DictConfig:
    """The composed config with its Hydra section set as for a single run writing into `output_dir`."""
    prefix = [f"paths.data_dir={data_dir}"] if data_dir is not None else []
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*prefix, *overrides], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg
