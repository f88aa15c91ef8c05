"""A tiny Llama with its own byte-level BPE tokenizer, saved as a transformers folder, and a catalogue with an obvious
next-item rule: the real LLM-DGRS code paths at test speed (the real SmolLM2 runs in the `slow` tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

WORDS = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliet", "Kilo", "Lima"]
PROMPT_TEXT = "A user's history, oldest first:\nRecommended next:\n-"


def catalogue_titles(n_items: int) -> list[str]:
    """Distinct titles of shared words (so titles share trie prefixes), items 0 and 1 with one title."""
    titles = [f"{WORDS[i % len(WORDS)]} {WORDS[(i // len(WORDS)) % len(WORDS)]} Story" for i in range(n_items)]
    titles[1] = titles[0]  # two items with one title: both must stay reachable
    return titles


def save_tiny_llama(folder: Path, texts: list[str], layers: int = 2, seed: int = 0) -> Path:
    """A 2-block Llama (width 32, tied embeddings) and a BPE tokenizer trained on `texts`, saved like a hub model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([*texts, PROMPT_TEXT], trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=True,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_rule_data(
    folder: Path, n_items: int = 12, n_users: int = 40, length: int = 8, seed: int = 0
) -> tuple[Path, Path]:
    """Users walk the catalogue in steps of +1 (mod n) from a random start: the next item is always 'previous + 1'."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start = int(rng.integers(n_items))
        rows += [(user, (start + t) % n_items, 1000 * user + t) for t in range(length)]
    inter = pl.DataFrame(rows, schema=["user_id", "item_id", "ts"], orient="row")
    items = pl.DataFrame({"item_id": list(range(n_items)), "title": catalogue_titles(n_items)})
    inter.write_csv(folder / "inter.csv")
    items.write_csv(folder / "items.csv")
    return folder / "inter.csv", folder / "items.csv"


def table_overrides(inter: Path, items: Path) -> list[str]:
    return [
        "data=table", f"data.path={inter}", f"data.items_path={items}", "data.time_col=ts", "split=leave_one_out",
    ]  # fmt: skip
