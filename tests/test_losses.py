"""Losses for large catalogues: the chunked cross-entropy equals the full one (value and gradients); sampled softmax
with every item as a negative equals the full softmax over items; bad settings are named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recarena.errors import ConfigError
from recarena.models.generative.losses import chunked_cross_entropy, draw_negatives, sampled_cross_entropy
from tests.test_bert_dgrs import bert_overrides
from tests.test_gpt_dgrs import rule_overrides, write_rule_table


@pytest.mark.parametrize("with_bias", [True, False])
def test_chunked_cross_entropy_equals_the_full_loss_and_its_gradients(with_bias):
    torch.manual_seed(0)
    vocab, dim = 50, 8
    head = torch.nn.Linear(dim, vocab, bias=with_bias)
    hidden = torch.randn(4, 9, dim, requires_grad=True)
    labels = torch.randint(vocab, (4, 9))
    labels[0, :3] = labels[2, 5:] = -100  # padding
    params = [hidden, head.weight] + ([head.bias] if with_bias else [])
    full = F.cross_entropy(head(hidden).reshape(-1, vocab), labels.reshape(-1), ignore_index=-100)
    full_grads = torch.autograd.grad(full, params)
    keep = labels != -100
    for positions in (1, 5, 36):  # 36 = every kept position in one chunk
        chunked = chunked_cross_entropy(hidden[keep], labels[keep], head.weight, head.bias, 4 * vocab * positions)
        chunked_grads = torch.autograd.grad(chunked, params)
        assert chunked.item() == pytest.approx(full.item(), abs=1e-6)
        for a, b in zip(full_grads, chunked_grads, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    with torch.no_grad():  # no gradients asked for: the value alone
        value = chunked_cross_entropy(hidden[keep], labels[keep], head.weight, head.bias, 4 * vocab * 5)
    assert value.item() == pytest.approx(full.item(), abs=1e-6)


def test_sampled_softmax_with_every_item_as_negative_is_the_full_softmax_over_items():
    torch.manual_seed(1)
    n_items, dim = 30, 6
    weight, bias = torch.randn(n_items, dim, requires_grad=True), torch.randn(n_items)
    hidden, items = torch.randn(12, dim), torch.randint(n_items, (12,))
    negatives = draw_negatives(n_items, n_items, None, torch.Generator().manual_seed(0))
    assert torch.equal(negatives, torch.arange(n_items))  # asking for the whole catalogue takes every item once
    uniform = torch.full((n_items,), -torch.log(torch.tensor(float(n_items))))
    sampled = sampled_cross_entropy(hidden, items, weight, bias, negatives, uniform)
    full = F.cross_entropy(hidden @ weight.T + bias, items)
    assert sampled.item() == pytest.approx(full.item(), abs=1e-6)
    torch.testing.assert_close(torch.autograd.grad(sampled, weight)[0], torch.autograd.grad(full, weight)[0])
    skewed = sampled_cross_entropy(hidden, items, weight, bias, negatives, torch.log_softmax(torch.randn(n_items), 0))
    assert skewed.item() != pytest.approx(full.item(), abs=1e-3)  # a non-uniform q changes the logits (logQ)


@pytest.fixture
def rule_table(tmp_path):
    path = tmp_path / "walk.csv"
    write_rule_table(path)
    return path


def test_gpt_dgrs_learns_the_rule_with_sampled_softmax_and_with_a_chunked_loss(run_train, rule_table):
    sampled, _ = run_train(*rule_overrides(rule_table, "model.loss=sampled", "model.negatives=10",
                                           "model.sampler=popularity"))  # fmt: skip
    chunked, _ = run_train(*rule_overrides(rule_table, "model.loss_chunk_bytes=2000"))  # ~15 positions a chunk
    assert sampled["test"]["recall@1"] > 0.8 and chunked["test"]["recall@1"] > 0.8  # chance is 1/30


def test_bert_dgrs_learns_the_rule_with_sampled_softmax_and_with_a_chunked_loss(run_train, rule_table):
    # 10 of 30 items as negatives learns the rule more slowly than the full softmax: after the 40 epochs of the
    # other BERT tests test recall@1 was 0.68-0.80 over seeds 0-2 (torch 2.13, transformers 5.24), after 80: 0.88-0.93
    sampled, _ = run_train(*bert_overrides(rule_table, "model.loss=sampled", "model.negatives=10",
                                           "trainer.max_epochs=80"))  # fmt: skip
    chunked, _ = run_train(*bert_overrides(rule_table, "model.loss_chunk_bytes=2000"))
    assert sampled["test"]["recall@1"] > 0.8 and chunked["test"]["recall@1"] > 0.8  # chance is 1/30


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.loss=sampled model.negatives=500", r"model.negatives=500: more than the \d+ items"),
        ("model.loss_chunk_bytes=0", r"model.loss_chunk_bytes=0: the logits budget"),
        ("model.loss=hinge", r"model.loss='hinge': choose one of full, sampled"),
        ("model.loss=sampled model.item_ids=semantic model.decode=beam", r"model.loss=sampled .*model.item_ids=atomic"),
    ],
)
def test_bad_loss_settings_are_named(run_train, rule_table, override, message):
    with pytest.raises(ConfigError, match=message):
        run_train(*rule_overrides(rule_table, *override.split()))
