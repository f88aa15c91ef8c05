"""recarena's overhead over a plain PyTorch loop for the generative families (GPT-DGRS by default).

Same work on both sides, checked: one seeded data set (synthetic ML-1M size by default), one model built from the
same seed (so the same initial weights), the same batches (the model's train view, EpochSeededSampler), AdamW and
the model's learning-rate schedule over the same number of steps, the dropout RNG reseeded at the first step.
- recarena: `Trainer.fit(max_steps=N)` with the run's trainer and callbacks (no logger, no validation), then
  `Trainer.test` through RecEvalCallback (top-K, metrics, per-user and recommendation files), as `recarena.train`;
- plain: a `for batch in loader` loop calling the HF transformer and the loss function directly (the same arithmetic
  as recarena's: `chunked_cross_entropy` at the labelled positions), then a loop over the
  same user chunks: transformer → last position's hidden state × the item rows of the head → known items to -inf →
  `torch.topk` (GPT-DGRS; the same arithmetic as recarena's item_logits).
The loss trajectories must agree (max |Δ| printed) and the top-K lists must match (share of identical rows printed).
Times are medians of `--repeats` runs, each on a fresh model; one torch thread unless OMP_NUM_THREADS says otherwise.

With `--compile` the plain loops run through torch.compile: whether compiling would pay on this CPU.

Usage: python -m benchmarks.generative_overhead [--scale ml1m] [--model gpt_dgrs] [--steps 200] [--repeats 3]
       [--compile]"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from transformers import get_scheduler

from benchmarks.scales import SCALES
from recarena.data.datamodule import EpochSeededSampler
from recarena.data.views import EvalUsers
from recarena.models.generative.item_tokens import N_SPECIAL
from recarena.models.generative.losses import chunked_cross_entropy
from recarena.models.masked_topk import mask_known
from recarena.utils.compose import compose_train_config
from recarena.utils.console import quiet_lightning
from recarena.utils.instantiate import build, build_all

ROOT = Path(__file__).resolve().parents[1]


class Record(pl.Callback):
    """Each training step's loss, and the TopK of every test batch."""

    def __init__(self, seed: int) -> None:
        self.seed, self.losses, self.tops = seed, [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == 0:  # the loader's iterator exists (it draws a seed): dropout masks from here on
            torch.manual_seed(self.seed)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.tops.append(outputs.items.cpu())


def fresh_model(cfg, data):
    pl.seed_everything(cfg.seed, verbose=False)
    model = build(cfg.model, "model")
    model.build(data)
    return model


def recarena_run(cfg, datamodule, steps: int, out: str) -> tuple[float, float, list[float], torch.Tensor]:
    """Seconds in fit and in test through Lightning with the run's callbacks; the losses and the top-K lists."""
    model = fresh_model(cfg, datamodule.data)
    record = Record(int(cfg.seed))
    callbacks = [*build_all(cfg.get("callbacks"), "callbacks"), record]
    trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=False, max_steps=steps, min_epochs=0,
                    limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False,
                    default_root_dir=out)  # fmt: skip
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    trainer.test(model, datamodule=datamodule, verbose=False)
    test = time.perf_counter() - start
    return fit, test, record.losses, torch.cat(record.tops)


def plain_run(cfg, datamodule, steps: int, compile: bool = False) -> tuple[float, float, list[float], torch.Tensor]:
    """The same training and top-K scoring written as plain loops over the HF backbone (`compile`: through
    torch.compile(dynamic=True) modules, compilation time included)."""
    data, seed = datamodule.data, int(cfg.seed)
    model = fresh_model(cfg, data)
    backbone, hp = model.backbone, model.hparams
    transformer = torch.compile(backbone.transformer, dynamic=True) if compile else backbone.transformer
    start = time.perf_counter()
    view = model.train_view(data)
    sampler = EpochSeededSampler(view, seed)
    loader = DataLoader(view, batch_size=view.batch_size, sampler=sampler, collate_fn=view.collate)
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    schedule = get_scheduler(hp.lr_schedule, optimizer, num_warmup_steps=round(hp.warmup * steps),
                             num_training_steps=steps)  # fmt: skip
    head, chunk_bytes = backbone.lm_head, int(hp.loss_chunk_bytes)
    backbone.train()
    losses, epoch = [], 0
    while len(losses) < steps:
        sampler.set_epoch(epoch)
        for batch in loader:
            if not losses:
                torch.manual_seed(seed)  # as the recarena side: after the loader's iterator drew its seed
            hidden = transformer(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
            keep = batch["labels"] != -100
            loss = chunked_cross_entropy(hidden[keep], batch["labels"][keep], head.weight, head.bias, chunk_bytes)
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss))
            if len(losses) == steps:
                break
        epoch += 1
    fit = time.perf_counter() - start
    backbone.eval()
    start = time.perf_counter()
    users = EvalUsers(data, "test")
    k, first = max(int(c) for c in cfg.eval.ks), model.token_offset + N_SPECIAL
    tops = []
    with torch.inference_mode():
        size = datamodule.eval_batch_size
        for chunk in (users.users[i : i + size] for i in range(0, len(users.users), size)):
            rows = [model.encode(s[-int(hp.max_len) :]) for s in users.sequences.rows(chunk)]
            ids = torch.zeros((len(rows), max(len(r) for r in rows)), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for b, row in enumerate(rows):
                ids[b, : len(row)], mask[b, : len(row)] = torch.from_numpy(row), 1
            hidden = transformer(input_ids=ids, attention_mask=mask)[0]
            last = (
                hidden[torch.arange(len(rows)), mask.sum(1) - 1]
                @ backbone.lm_head.weight[first : first + data.n_items].T
            )
            tops.append(torch.topk(mask_known(last.contiguous(), users.known[chunk]), k, dim=1).indices)
    test = time.perf_counter() - start
    return fit, test, losses, torch.cat(tops)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generative_overhead", description=__doc__)
    parser.add_argument("--scale", default="ml1m", choices=sorted(SCALES))
    parser.add_argument("--model", default="gpt_dgrs")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides")
    parser.add_argument("--compile", action="store_true", help="the plain loops through torch.compile")
    args = parser.parse_args(argv)
    quiet_lightning()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"model={args.model}", *SCALES[args.scale], "logger=none", "trainer.enable_progress_bar=false",
                     "callbacks.early_stopping=null", *args.extra]  # fmt: skip
        cfg = compose_train_config(overrides, Path(tmp), ROOT / "data")
        datamodule = build(cfg.data, "data")
        datamodule.prepare_data()
        datamodule.setup("fit")
        times: dict[str, list[float]] = {"recarena fit": [], "plain fit": [], "recarena test": [], "plain test": []}
        for repeat in range(args.repeats):
            fit, test, losses, top = recarena_run(cfg, datamodule, args.steps, f"{tmp}/run{repeat}")
            plain_fit, plain_test, plain_losses, plain_top = plain_run(cfg, datamodule, args.steps, args.compile)
            times["recarena fit"].append(fit)
            times["plain fit"].append(plain_fit)
            times["recarena test"].append(test)
            times["plain test"].append(plain_test)
            same_loss = float(np.max(np.abs(np.subtract(losses, plain_losses))))
            ours = top[:, : plain_top.shape[1]]
            same_top = float((ours == plain_top).all(dim=1).float().mean())
            same_set = float((ours.sort(dim=1).values == plain_top.sort(dim=1).values).all(dim=1).float().mean())
            print(f"repeat {repeat}: fit {fit:.1f} s vs {plain_fit:.1f} s, test {test:.1f} s vs {plain_test:.1f} s; "
                  f"{len(losses)} steps, max |Δ loss| {same_loss:.2e}, identical top-{plain_top.shape[1]} rows "
                  f"{same_top:.4f}, identical top-{plain_top.shape[1]} sets {same_set:.4f} of {len(top)} users",
                  flush=True)  # fmt: skip
    median = {name: statistics.median(values) for name, values in times.items()}
    compiled = " (plain loops through torch.compile)" if args.compile else ""
    print(f"\n{args.model} at {args.scale} size, {args.steps} steps, median of {args.repeats}{compiled}:")
    print("| stage | recarena s | plain loop s | ratio | goal |")
    print("|---|---|---|---|---|")
    for stage, goal in (("fit", 1.1), ("test", 1.2)):
        ours, plain = median[f"recarena {stage}"], median[f"plain {stage}"]
        print(f"| {stage} | {ours:.2f} | {plain:.2f} | {ours / plain:.3f} | ≤ {goal} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
