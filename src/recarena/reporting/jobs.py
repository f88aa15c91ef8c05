"""The jobs of a sweep folder: each job's config, dataset, split, seed, test metrics or error line, and its leaderboard
label (the model plus the overrides that vary between the jobs of its dataset and split)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from recarena.utils import resolvers  # noqa: F401  (job configs interpolate ${monitor_k:...})

_ERROR_LINE = re.compile(r"(Error|Exception)\b|\[ERROR\]")
_LOG_PREFIX = re.compile(r"^\[[^\]]*\]\[[^\]]*\]\[[A-Z]+\] - ")
_NOT_JOBS = {"wandb"}


@dataclass
class Job:
    """One job folder of a sweep: its config, test metrics (None when it failed) and error line."""

    path: Path
    model: str
    split: str = ""  # hydra.runtime.choices.split ("" when the job folder does not say)
    data: str = ""  # hydra.runtime.choices.data, else the config's data.name ("" when the job folder does not say)
    seed: int | None = None
    overrides: list[str] = field(default_factory=list)
    config: DictConfig | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None
    label: str = ""
    sampled: tuple[int, int] | None = None  # (evaluated, all) test users of an eval.max_users run

    @property
    def ok(self) -> bool:
        return self.metrics is not None


def collect_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job folder directly under `sweep_dir` (one with .hydra/, metrics.json or a log), in job order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such sweep folder")
    folders = [
        p
        for p in sweep_dir.iterdir()
        if p.is_dir()
        and not p.name.startswith((".", "_"))
        and p.name not in _NOT_JOBS
        and ((p / ".hydra").is_dir() or (p / "metrics.json").exists() or any(p.glob("*.log")))
    ]
    if not folders:
        single = (sweep_dir / "metrics.json").exists()
        hint = " (a single run's folder: pass the sweep folder above it)" if single else ""
        raise FileNotFoundError(f"{sweep_dir}: no job folders (sub-folders with .hydra/ or metrics.json){hint}")
    jobs = [read_job(p) for p in sorted(folders, key=_job_order)]
    for attribute in ("split", "data"):
        named = {getattr(j, attribute) for j in jobs if getattr(j, attribute)}
        if len(named) == 1:  # a folder without a Hydra record (a job that died early) belongs to the only split/data
            for job in jobs:
                setattr(job, attribute, getattr(job, attribute) or next(iter(named)))
    for members in by_data_split(jobs).values():
        assign_labels(members)
    return jobs


def by_data_split(jobs: list[Job]) -> dict[tuple[str, str], list[Job]]:
    """Jobs grouped by (dataset, split), in the order the groups first appear: one leaderboard each."""
    groups: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.data, job.split), []).append(job)
    return groups


def datasets_of(jobs: list[Job]) -> list[str]:
    """The datasets the jobs name, in the order they first appear ("" for jobs that do not say excepted)."""
    return list(dict.fromkeys(j.data for j in jobs if j.data))


def read_job(path: Path) -> Job:
    """Read one job folder; a job without test metrics is failed, with the last error line of its logs."""
    hydra_dir = path / ".hydra"
    config = OmegaConf.load(hydra_dir / "config.yaml") if (hydra_dir / "config.yaml").exists() else None
    model, split = _choice(path, "model"), _choice(path, "split")
    overrides = [str(o) for o in OmegaConf.load(o_path)] if (o_path := hydra_dir / "overrides.yaml").exists() else []
    seed = config.get("seed") if config is not None else None
    seed = int(seed) if isinstance(seed, int) else None
    data = _choice(path, "data") or _config_data_name(config)
    job = Job(path, model or _folder_model(path), split=split or "", data=data, seed=seed, overrides=overrides)
    job.config = config
    metrics_file = path / "metrics.json"
    saved = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    if "test" in saved:
        timing = saved.get("timing", {})
        job.metrics = {**saved["test"], **_times(timing)}
        sampling = saved.get("sampling") or {}
        if sampling.get("eval_max_users") is not None:
            job.sampled = (int(sampling["eval_users"]["test"]), int(sampling["all_eval_users"]["test"]))
    else:
        reason = "metrics.json has no test stage" if saved else "no metrics.json"
        job.error = last_error_line(path) or f"{reason} (unfinished, or no error line in its logs)"
    return job


def last_error_line(path: Path, tail_bytes: int = 1 << 20) -> str | None:
    """The last line mentioning an Error/Exception in the job's `*.log` files (log prefix stripped)."""
    found = None
    for log_file in sorted(path.glob("*.log")):
        with open(log_file, "rb") as handle:
            handle.seek(max(0, log_file.stat().st_size - tail_bytes))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
        for line in lines:
            if _ERROR_LINE.search(line):
                found = _LOG_PREFIX.sub("", line.strip())
    return found[:500] if found else None


# overrides that change how a run looks, never what it computes: not a reason to tell two runs apart
PRESENTATION_KEYS = ("trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps")


def assign_labels(jobs: list[Job]) -> None:
    """Label = model name plus the overrides that vary between jobs (seed excepted), e.g. `itemcf (k=50)`.

    An override varies when the jobs ran with different values for it: a key that one sweep set on its command line
    and another through its experiment's config, to the same value, is not a difference (see `_ran_with`). The label
    shows a varying key as the job's override wrote it; a job that did not override it shows nothing for it."""
    parsed = [dict(_split_override(o) for o in job.overrides) for job in jobs]
    known = [(job, p) for job, p in zip(jobs, parsed, strict=True) if job.config is not None]  # with a .hydra record
    keys = sorted({k for _, p in known for k in p})
    varying = [
        k
        for k in keys
        if k not in ("seed", "model", "split", "data", *PRESENTATION_KEYS)
        and not k.startswith("hydra")
        and len({_ran_with(job, p, k) for job, p in known}) > 1
    ]
    for job, values in zip(jobs, parsed, strict=True):
        extra = ", ".join(f"{_short(k)}={values[k]}" for k in varying if k in values)
        job.label = f"{job.model} ({extra})" if extra else job.model


def _ran_with(job: Job, overrides: dict[str, str], key: str) -> str | None:
    """The value a job ran with for an override key: the config's leaf at that path when there is one (whether the
    command line or an experiment set it), else the override as written (a config group choice), else None."""
    value = OmegaConf.select(job.config, key, default=None, throw_on_resolution_failure=False)
    if value is not None and not OmegaConf.is_config(value):
        return str(value)
    return overrides.get(key)


def _choice(path: Path, group: str) -> str | None:
    """hydra.runtime.choices.<group> from the job's .hydra/hydra.yaml (None when absent)."""
    hydra_yaml = path / ".hydra" / "hydra.yaml"
    if not hydra_yaml.exists():
        return None
    choice = OmegaConf.select(OmegaConf.load(hydra_yaml), f"hydra.runtime.choices.{group}")
    return str(choice) if choice else None


def _config_data_name(config: DictConfig | None) -> str:
    """The job config's data.name ("" without a config or a name), for a job whose hydra.yaml names no data choice."""
    if config is None:
        return ""
    name = OmegaConf.select(config, "data.name", default=None, throw_on_resolution_failure=False)
    return str(name) if isinstance(name, str) and name else ""


def _folder_model(path: Path) -> str:
    """The model part of a `<num>-<model>` job folder name (for a folder without a Hydra record)."""
    match = re.fullmatch(r"\d+-(.+)", path.name)
    return match.group(1) if match else path.name


def _times(timing: dict[str, float]) -> dict[str, float]:
    """fit_s: fitting (fit-once) or training time; eval_s: test evaluation time; peak_mib: the run's peak RSS."""
    fit = timing.get("fit_seconds", timing.get("train_seconds"))
    return {
        "fit_s": float(fit) if fit is not None else math.nan,
        "eval_s": float(timing.get("test_seconds", math.nan)),
        "peak_mib": float(timing.get("peak_rss_mib", math.nan)),
    }


def _split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def _short(key: str) -> str:
    for prefix in ("model.recommender.", "model."):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _job_order(path: Path) -> tuple:
    head = re.match(r"(\d+)", path.name)
    return (0, int(head.group(1)), path.name) if head else (1, 0, path.name)
