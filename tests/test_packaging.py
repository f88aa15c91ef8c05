"""A non-editable install carries its configs: the project installed with `pip install --target` (a copy of the
checkout, so the build leaves nothing behind), then `python -m recarena.train` run from an unrelated folder with
only the installed copy on the path."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import saved_list_metrics

ROOT = Path(__file__).resolve().parents[1]


def test_an_installed_package_runs_train_from_any_folder(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "conf", source / "conf", ignore=shutil.ignore_patterns("local"))
    skip = shutil.ignore_patterns("*.egg-info", "__pycache__")
    shutil.copytree(ROOT / "src", source / "src", symlinks=True, ignore=skip)
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
               "--target", str(target), str(source)]  # fmt: skip
    done = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    packaged = target / "recarena" / "conf"
    assert (packaged / "train.yaml").is_file() and not packaged.is_symlink()  # the files themselves, not a link
    assert (packaged / "model" / "gpt_dgrs.yaml").is_file() and (packaged / "events" / "default.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "WANDB_MODE": "offline"}
    found = subprocess.run([sys.executable, "-c", "import recarena; print(recarena.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert found.stdout.strip() == str(target / "recarena" / "__init__.py")  # not the checkout's editable copy
    run = elsewhere / "run"
    train = [sys.executable, "-m", "recarena.train", "model=pop", "data=synthetic", "logger=none",
             f"hydra.run.dir={run}"]  # fmt: skip
    done = subprocess.run(train, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    reported = json.loads((run / "metrics.json").read_text())["test"]["recall@10"]
    assert reported == pytest.approx(saved_list_metrics(run, "test", 10)["recall@10"], abs=1e-9)  # a real run's numbers
