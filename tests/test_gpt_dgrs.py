"""GPT-DGRS: constrained generation never yields a non-item or a known item; the model learns sequences."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList

from recarena.errors import ConfigError
from recarena.models.generative.decoding import ItemConstraint
from recarena.models.generative.gpt_dgrs import GPTDGRS
from recarena.models.generative.item_tokens import BOS, PAD, ItemTokens
from tests.conftest import saved_list_metrics


def random_codes(rng: np.random.Generator, n_items: int, sizes: list[int]) -> np.ndarray:
    """Unique random code tuples (a random trie)."""
    space = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
    return space[rng.choice(len(space), n_items, replace=False)]


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(4, 30))
def test_constrained_beam_never_yields_a_non_item_or_a_known_item(seed, width, n_items):
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(2, 6)) for _ in range(width)]
    n_items = min(n_items, int(np.prod(sizes)))
    tokens = ItemTokens.from_levels(random_codes(rng, n_items, sizes), sizes)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=tokens.vocab_size, n_positions=32, n_embd=16, n_layer=1, n_head=2,
                   bos_token_id=BOS, eos_token_id=PAD, pad_token_id=PAD)
    ).eval()  # fmt: skip
    users = 3
    history = sp.random(users, n_items, density=0.4, format="csr", random_state=seed)
    k = min(3, int((history.toarray() == 0).sum(axis=1).min()))
    if k == 0:
        return
    prompt = torch.full((users, 4), BOS, dtype=torch.long)
    prompt[:, 1:] = torch.from_numpy(rng.integers(3, tokens.vocab_size, (users, 3)))
    constraint = ItemConstraint(tokens, history, prompt.shape[1], num_beams=k + 1)
    out = model.generate(
        input_ids=prompt, attention_mask=torch.ones_like(prompt), num_beams=k + 1, num_return_sequences=k,
        max_new_tokens=width, min_new_tokens=width, do_sample=False, logits_processor=LogitsProcessorList([constraint]),
        pad_token_id=PAD, eos_token_id=None,
    )  # fmt: skip
    generated = out[:, prompt.shape[1] :].numpy()
    known = history.toarray() > 0
    for row, code in enumerate(generated):
        item = tokens.decode(code)
        assert item >= 0, f"generated {code}, which is no item"
        assert not known[row // k, item], "generated a known item"


def test_semantic_codes_map_back_to_their_item():
    rng = np.random.default_rng(0)
    tokens = ItemTokens.from_levels(random_codes(rng, 20, [4, 4, 3]), [4, 4, 3])
    assert len({tuple(c) for c in tokens.codes}) == 20
    for item in range(20):
        assert tokens.decode(tokens.codes[item]) == item


def write_rule_table(path, n_users=120, n_items=30, length=12, seed=0):
    """Every user walks the catalogue: the next item is always (previous + 1) mod n_items."""
    rng = np.random.default_rng(seed)
    rows = ["user,item,ts"]
    for u in range(n_users):
        start = int(rng.integers(n_items))
        rows += [f"{u},{(start + t) % n_items},{t}" for t in range(length)]
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def rule_table(tmp_path):
    path = tmp_path / "walk.csv"
    write_rule_table(path)
    return path


def rule_overrides(path, *extra):
    return (
        "model=gpt_dgrs", "data=table", f"data.path={path}", "data.user_col=user", "data.item_col=item",
        "data.time_col=ts", "split=leave_one_out", "logger=none", "eval.ks=[1,5]",
        "optimized_metric=val/ndcg@5", "trainer.max_epochs=25",
        "model.lr=0.01", "model.batch_size=32", "model.dropout=0.0", "callbacks.early_stopping=null", *extra,
    )  # fmt: skip


def test_learns_an_obvious_next_item_rule_and_beam_agrees(run_train, rule_table):
    results, out = run_train(*rule_overrides(rule_table))
    assert results["test"]["recall@1"] > 0.8  # chance is 1/30
    beam, _ = run_train(*rule_overrides(rule_table, "model.decode=beam"))
    assert beam["test"]["recall@5"] == pytest.approx(results["test"]["recall@5"])
    assert (out / "model" / "model.safetensors").exists() and (out / "model" / "item_tokens.npz").exists()


def test_unconstrained_generation_reports_invalid_outputs(run_train, rule_table):
    results, out = run_train(*rule_overrides(rule_table, "model.constrained=false", "trainer.max_epochs=1"))
    derived = saved_list_metrics(out, "test", 5)
    assert derived["empty_share"] > 0  # one epoch in, the unconstrained decoder still names known or non-items
    assert results["test"]["invalid_rate"] == pytest.approx(derived["empty_share"], abs=1e-6)  # a float32 mean
    assert results["test"]["recall@5"] == pytest.approx(derived["recall@5"], abs=1e-9)
    assert results["val"]["invalid_rate"] == pytest.approx(saved_list_metrics(out, "val", 5)["empty_share"], abs=1e-6)


def test_pretrained_gpt2_round_trip(run_train, rule_table, tmp_path):
    tiny = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=16, n_layer=1, n_head=2))
    tiny.save_pretrained(tmp_path / "tiny-gpt2")
    results, out = run_train(*rule_overrides(rule_table, f"model.pretrained={tmp_path / 'tiny-gpt2'}",
                                             "trainer.max_epochs=1"))  # fmt: skip
    reloaded = GPT2LMHeadModel.from_pretrained(out / "model")
    assert reloaded.config.vocab_size == 50 + 30 + 3  # pretrained vocabulary + specials + 30 items
    assert results["test"]["recall@5"] == pytest.approx(saved_list_metrics(out, "test", 5)["recall@5"], abs=1e-9)


def test_bad_generative_config_is_named_before_training(tmp_path):
    with pytest.raises(ConfigError, match="model.max_len"):
        GPTDGRS(max_len=0)
    with pytest.raises(ConfigError, match="model.pretrained"):
        GPTDGRS(pretrained=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="model.decode"):
        GPTDGRS(decode="sample")


def test_semantic_ids_are_unique_and_collisions_need_dedup():
    from recarena.data.datamodule import RecDataModule
    from recarena.data.splits import temporal_ratio
    from recarena.models.generative.semantic_ids import semantic_tokens

    dm = RecDataModule(source="synthetic", split=temporal_ratio, n_users=100, n_items=60, n_interactions=1500)
    dm.setup()
    tokens, report = semantic_tokens(dm.data, [4, 4], source="cf", seed=0)
    assert len({tuple(c) for c in tokens.codes}) == dm.data.n_items
    assert report.used[0] <= 4 and tokens.vocab_size == 3 + sum(report.sizes)
    with pytest.raises(ConfigError, match="model.semantic"):
        semantic_tokens(dm.data, [2, 2], source="random", dedup=False)  # 4 codes cannot name 60 items


def test_semantic_ids_generate_real_items_end_to_end(run_train, rule_table):
    results, out = run_train(
        *rule_overrides(rule_table, "model.item_ids=semantic", "model.decode=beam", "model.semantic.source=cf",
                        "model.semantic.levels=[4,4]", "trainer.max_epochs=2")
    )  # fmt: skip
    assert results["test"]["invalid_rate"] == 0.0  # the trie constraint only allows real, unknown items
    assert results["test"]["recall@5"] == pytest.approx(saved_list_metrics(out, "test", 5)["recall@5"], abs=1e-9)


def test_cosine_schedule_warms_up_to_the_learning_rate_and_decays_to_zero_over_max_epochs(run_train, rule_table):
    """model.lr_schedule=cosine steps per batch over trainer.max_epochs (read back with Lightning's lr monitor)."""
    import polars as pl

    _, out = run_train(*rule_overrides(
        rule_table, "trainer.max_epochs=4", "model.lr_schedule=cosine", "model.warmup=0.25", "logger=csv",
        "trainer.log_every_n_steps=1", "+callbacks.lr._target_=pytorch_lightning.callbacks.LearningRateMonitor",
        "+callbacks.lr.logging_interval=step",
    ))  # fmt: skip
    (metrics,) = out.glob("csv/version_*/metrics.csv")
    lrs = pl.read_csv(metrics).filter(pl.col("lr-AdamW").is_not_null())["lr-AdamW"].to_numpy()
    peak = int(np.argmax(lrs))
    assert lrs[0] == 0.0 and lrs[peak] == pytest.approx(0.01, rel=0.05)  # linear warm-up from 0 to model.lr
    assert peak == pytest.approx(0.25 * len(lrs), abs=1.5)  # after a quarter of the steps
    assert np.all(np.diff(lrs[peak:]) <= 1e-12) and lrs[-1] < 0.01 * 0.05  # then down (cosine) to ~0 at the end


@pytest.mark.parametrize(
    "override, message",
    [("model.lr_schedule=cyclic", "model.lr_schedule='cyclic'"), ("model.warmup=1.0", "model.warmup=1.0")],
)
def test_bad_schedule_is_named(run_train, rule_table, override, message):
    with pytest.raises(ConfigError, match=message):
        run_train(*rule_overrides(rule_table, override))
