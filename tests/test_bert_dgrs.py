"""BERT-DGRS: whole-item cloze masking, learning a sequence rule, and the MiniLM start."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from transformers import BertConfig, BertForMaskedLM, BertModel

from recarena.data.views import MaskedSequences
from recarena.errors import ConfigError
from recarena.models.generative.bert_dgrs import BERTDGRS
from recarena.models.generative.item_tokens import MASK, ItemTokens
from recarena.text.encoders import minilm_path
from tests.conftest import saved_list_metrics
from tests.test_gpt_dgrs import write_rule_table


def test_masking_hides_whole_items_never_padding_and_labels_exactly_the_masks():
    tokens = ItemTokens.from_levels(np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0]]), [3, 2])
    sequences = [np.array([0, 1, 2, 3, 4, 0, 1]), np.array([2, 3]), np.array([4, 1, 0])]
    view = MaskedSequences(sequences, tokens.codes, MASK, max_len=5, mask_prob=0.4, last_prob=0.5, seed=1)
    for _ in range(20):
        batch = view.collate([view[i] for i in range(len(view))])
        ids, labels, attention = batch["input_ids"], batch["labels"], batch["attention_mask"]
        masked = ids == MASK
        assert torch.equal(masked, labels != -100), "labels must sit exactly on the masked positions"
        assert not (masked & (attention == 0)).any(), "padding is never masked"
        assert masked.any(dim=1).all(), "every window has at least one masked item"
        pairs = masked.view(len(ids), -1, 2)  # width-2 items: both tokens of an item masked together
        assert torch.equal(pairs[..., 0], pairs[..., 1])
        real = labels[masked].numpy()
        assert np.isin(real, tokens.codes).all()


def bert_overrides(path, *extra):
    return (
        "model=bert_dgrs", "data=table", f"data.path={path}", "data.user_col=user", "data.item_col=item",
        "data.time_col=ts", "split=leave_one_out", "logger=none", "eval.ks=[1,5]", "optimized_metric=val/ndcg@5",
        "trainer.max_epochs=40", "model.lr=0.003", "model.batch_size=32", "model.dropout=0.0",
        "model.max_len=6", "model.mask_prob=0.3", "model.last_prob=0.5", "callbacks.early_stopping=null", *extra,
    )  # fmt: skip


def test_learns_an_obvious_rule(run_train, tmp_path):
    table = tmp_path / "walk.csv"
    write_rule_table(table)
    results, out = run_train(*bert_overrides(table))
    assert results["test"]["recall@1"] > 0.8  # chance is 1/30
    assert (out / "model" / "model.safetensors").exists()


def test_semantic_ids_fill_the_masks_under_the_trie_and_learn_the_rule(run_train, tmp_path):
    table = tmp_path / "walk.csv"
    write_rule_table(table)
    overrides = bert_overrides(table, "model.item_ids=semantic", "model.semantic.source=random",
                               "model.semantic.levels=[6,6]")  # fmt: skip
    results, out = run_train(*overrides)
    assert results["test"]["invalid_rate"] == 0.0  # only real, unknown items come out of the trie beam
    assert results["test"]["recall@1"] > 0.5  # chance is 1/30: the rule is learned through two-token items


def test_unconstrained_semantic_fill_can_name_non_items_and_counts_them():
    module = BERTDGRS(max_len=4, item_ids="semantic", constrained=False, n_embd=16, n_layer=1)
    module.tokens = ItemTokens.from_levels(np.array([[0, 0], [0, 1], [1, 0], [2, 2]]), [3, 3])
    module.backbone = BertForMaskedLM(
        BertConfig(vocab_size=module.tokens.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=32, max_position_embeddings=8)
    ).eval()  # fmt: skip
    history = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 1]]))
    top = module.recommend(None, history, 3, [np.array([0]), np.array([3])])
    assert top.items.shape == (2, 3) and ((top.items >= -1) & (top.items < 4)).all()
    assert np.isclose(float(top.invalid.mean()), float((top.items < 0).float().mean()))
    module.hparams.constrained = True
    top = module.recommend(None, history, 3, [np.array([0]), np.array([3])])
    known = torch.from_numpy(history.toarray() > 0)
    assert (top.items >= 0).all() and not known.gather(1, top.items).any()


def test_minilm_start_loads_the_package_weights(run_train, tmp_path):
    table = tmp_path / "walk.csv"
    write_rule_table(table, n_users=20, n_items=10, length=6)
    items = tmp_path / "items.csv"
    items.write_text("item,title\n" + "\n".join(f"{i},Film number {i}" for i in range(10)) + "\n")
    module = BERTDGRS(init="minilm", max_len=6, item_template=["{title}"], text_cache_dir=str(tmp_path / "cache"))
    from recarena.data.datamodule import RecDataModule
    from recarena.data.splits import leave_one_out

    dm = RecDataModule(source="table", split=leave_one_out, path=str(table), user_col="user", item_col="item",
                       time_col="ts", items_path=str(items))  # fmt: skip
    dm.setup()
    module.build(dm.data)
    reference = BertModel.from_pretrained(minilm_path())
    ours = module.backbone.bert.encoder.layer[3].attention.self.query.weight
    assert torch.equal(ours, reference.encoder.layer[3].attention.self.query.weight)
    assert module.backbone.config.num_hidden_layers == 6
    assert module.text_vectors.shape == (10 + 3, 384)
    extra = ("model.init=minilm", "trainer.max_epochs=1", "model.train_layers=1", f"data.items_path={items}",
             "model.item_template=['{title}']")  # fmt: skip
    results, out = run_train(*bert_overrides(table, *extra))
    assert results["test"]["recall@5"] == pytest.approx(saved_list_metrics(out, "test", 5)["recall@5"], abs=1e-9)


def test_bad_bert_config_is_named():
    with pytest.raises(ConfigError, match="model.max_len"):
        BERTDGRS(max_len=1)
    with pytest.raises(ConfigError, match="model.mask_prob"):
        BERTDGRS(mask_prob=0.0)
    with pytest.raises(ConfigError, match="model.init"):
        BERTDGRS(init="glove")
