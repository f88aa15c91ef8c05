"""What GPT-DGRS and BERT-DGRS share: their common hyper-parameters and checks, item tokens, validation of generated
ids, explanations, saving."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from transformers import get_scheduler

from recarena.data.interactions import Interactions
from recarena.errors import ConfigError
from recarena.models.generative.item_tokens import N_SPECIAL, ItemTokens
from recarena.models.generative.losses import (
    check_loss,
    chunked_cross_entropy,
    draw_negatives,
    sampled_cross_entropy,
)
from recarena.models.generative.pretrained import check_pretrained
from recarena.models.generative.semantic_ids import CodebookReport, semantic_tokens
from recarena.models.rec_module import RecModule
from recarena.topk import TopK

ITEM_IDS = ("atomic", "semantic")
ATTENTION_BYTES = 64 * 2**20  # one decoding chunk's attention scores
SEMANTIC_DEFAULTS = {"levels": [32, 32, 32], "source": "text", "dedup": True}
LR_SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine")


def check_schedule(lr_schedule: str, warmup: float) -> None:
    """A named ConfigError for an unknown `model.lr_schedule` or a `model.warmup` share outside [0, 1)."""
    if lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"model.lr_schedule={lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
    if not 0.0 <= float(warmup) < 1.0:
        raise ConfigError(f"model.warmup={warmup!r}: the share of training steps spent warming up, in [0, 1)")


@dataclass(frozen=True)
class SequenceHParams:
    """The hyper-parameters every item-sequence generator (GPT-DGRS, BERT-DGRS) takes, with their defaults: the
    window, the transformer's size, the optimiser and its schedule, decoding, item ids and the loss. A family's
    `__init__` names only its own and passes the rest here (`model.<key>` in the config)."""

    max_len: int = 50  # items of history in one window
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 0.01
    lr_schedule: str = "constant"  # one of LR_SCHEDULES, per step over trainer.max_epochs
    warmup: float = 0.0  # share of the training steps spent warming the learning rate up
    batch_size: int = 128
    constrained: bool = True  # generated ids restricted to unknown catalogue items
    num_beams: int | None = None
    pretrained: str | None = None  # a local folder or hub name of the family's backbone
    item_ids: str = "atomic"  # atomic (one token per item) | semantic (code tuples)
    semantic: dict | None = None  # semantic ids: levels, source, dedup (SEMANTIC_DEFAULTS)
    text_cache_dir: str | None = None  # MiniLM item embeddings' cache
    loss: str = "full"  # full softmax | sampled (shared negatives, logQ-corrected)
    loss_chunk_bytes: int = 64 * 2**20
    negatives: int = 256
    sampler: str = "uniform"  # sampled loss: uniform | popularity
    seed: int = 0

    @classmethod
    def resolved(cls, given: dict) -> dict:
        """The defaults updated with `given`; a key that is no hyper-parameter is a ConfigError naming it."""
        unknown = sorted(set(given) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"model.{unknown[0]}: not a hyper-parameter of this family")
        return asdict(cls(**given))


class GenerativeModule(RecModule):
    """A RecModule whose backbone generates item tokens; subclasses build `backbone` and `tokens` in `build`."""

    tokens: ItemTokens | None = None
    log_q: torch.Tensor | None = None  # loss=sampled: log sampling probability of each item
    item_probabilities: torch.Tensor | None = None  # sampler=popularity (None: uniform)
    codebook: CodebookReport | None = None
    token_offset: int = 0  # > 0 when item tokens are appended to a pretrained vocabulary

    def check_hparams(self, hp: dict, inits: tuple[str, ...], min_len: int = 1) -> None:
        """The checks every sequence generator makes on `SequenceHParams` (and its `init` among `inits`), each a
        ConfigError naming the key; sets the sampled loss's seeded negative generator."""
        check_schedule(hp["lr_schedule"], hp["warmup"])
        check_loss(hp["loss"], hp["loss_chunk_bytes"], hp["negatives"], hp["sampler"], hp["item_ids"])
        if int(hp["max_len"]) < min_len:
            raise ConfigError(f"model.max_len={hp['max_len']!r}: must be >= {min_len}")
        if hp["item_ids"] not in ITEM_IDS:
            raise ConfigError(f"model.item_ids={hp['item_ids']!r}: choose one of {', '.join(ITEM_IDS)}")
        if hp["init"] not in inits:
            raise ConfigError(f"model.init={hp['init']!r}: choose one of {', '.join(inits)}")
        check_pretrained(hp["pretrained"])
        self.negative_generator = torch.Generator().manual_seed(int(hp["seed"]))  # loss=sampled

    @property
    def built(self) -> bool:
        """Whether `build` has made the backbone (a restored or updated model may be built before any Trainer)."""
        return getattr(self, "backbone", None) is not None

    def setup(self, stage: str) -> None:
        if not self.built:
            self.build(self.trainer.datamodule.data)

    def build(self, data) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def item_tokens(self, data) -> ItemTokens:
        """The item vocabulary of `model.item_ids`: atomic, or semantic code tuples (codebook usage kept)."""
        hp = self.hparams
        if hp.item_ids != "semantic":
            return ItemTokens.atomic(data.n_items)
        options = {**SEMANTIC_DEFAULTS, **(hp.semantic or {})}
        tokens, self.codebook = semantic_tokens(
            data, list(options["levels"]), options["source"], bool(options["dedup"]), int(hp.seed),
            text_encoder=self._text_encoder() if options["source"] == "text" else None,
        )  # fmt: skip
        return tokens

    def _text_encoder(self):
        """MiniLM for item text, with its on-disk embedding cache."""
        from recarena.text.encoders import MiniLMEncoder

        return MiniLMEncoder(cache_dir=self.hparams.text_cache_dir, show_progress=False)

    def on_fit_start(self) -> None:
        """Report codebook usage of semantic ids so a collapse is visible in the logger."""
        if self.codebook is not None and self.logger is not None:
            self.logger.log_metrics(self.codebook.as_metrics(), step=0)

    def init_sampler(self, data: Interactions) -> None:
        """Negative sampling probabilities q over items: uniform, or train popularity (+1 smoothing)."""
        n_items, negatives = data.n_items, int(self.hparams.negatives)
        if negatives > n_items:
            raise ConfigError(f"model.negatives={negatives}: more than the {n_items} items of the catalogue")
        if self.hparams.sampler == "popularity" and negatives < n_items:
            counts = torch.from_numpy(np.asarray(data.train.sum(axis=0)).ravel()).double() + 1.0
            self.item_probabilities = (counts / counts.sum()).float()
            self.log_q = self.item_probabilities.log()
        else:
            self.log_q = torch.full((n_items,), -float(np.log(n_items)))

    def token_loss(
        self, hidden: torch.Tensor, labels: torch.Tensor, transform: Callable, decoder: torch.nn.Linear
    ) -> torch.Tensor:
        """The loss of `model.loss` from the backbone's last hidden states: `decoder(transform(hidden))` are the token
        logits. full: cross-entropy in chunks of positions bounded by `model.loss_chunk_bytes`; sampled: softmax
        over each target item and the batch's shared negatives (logQ-corrected; atomic item tokens)."""
        hp = self.hparams
        keep = labels != -100
        states = transform(hidden[keep])
        if hp.loss == "full":
            return chunked_cross_entropy(states, labels[keep], decoder.weight, decoder.bias, int(hp.loss_chunk_bytes))
        first, n_items = self.token_offset + N_SPECIAL, self.tokens.n_items
        rows = slice(first, first + n_items)
        bias = decoder.bias[rows] if decoder.bias is not None else None
        negatives = draw_negatives(n_items, int(hp.negatives), self.item_probabilities, self.negative_generator)
        return sampled_cross_entropy(states, labels[keep] - first, decoder.weight[rows], bias,
                                     negatives.to(hidden.device), self.log_q.to(hidden.device))  # fmt: skip

    def configure_optimizers(self) -> dict:
        """AdamW on the trainable weights; `lr_schedule` (transformers' schedulers: constant, linear, cosine, ...)
        steps per batch over the whole run (trainer.max_epochs), after `warmup` (a share of those steps)."""
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        name = str(self.hparams.get("lr_schedule", "constant"))
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            if name != "constant":
                raise ConfigError(f"model.lr_schedule={name}: decays over trainer.max_epochs, which is unbounded")
            total = 1
        total = int(total)
        scheduler = get_scheduler(
            name, optimizer, num_warmup_steps=round(float(self.hparams.get("warmup", 0.0)) * total),
            num_training_steps=total,
        )  # fmt: skip
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def user_chunks(self, n_users: int, rows_per_user: int, tokens: int) -> list[slice]:
        """Slices of users whose (user × beam) rows keep one attention map within ATTENTION_BYTES: beam decoding
        on all users at once allocates rows × heads × tokens² floats and thrashes memory."""
        heads = int(self.backbone.config.num_attention_heads)
        per_user = max(1, rows_per_user * heads * tokens * tokens * 4)
        step = max(1, ATTENTION_BYTES // per_user)
        return [slice(start, min(start + step, n_users)) for start in range(0, n_users, step)]

    def all_valid(self, top: TopK) -> TopK:
        """Top-K ranked over item tokens only, known items masked: nothing generated is invalid (rate 0)."""
        return top._replace(invalid=torch.zeros(top.items.shape[0], device=top.items.device))

    def validated(self, tokens: torch.Tensor, scores: torch.Tensor, history: sp.csr_matrix) -> TopK:
        """Generated token ids → item slots; non-items and known items become empty (-1) and count as invalid."""
        items = tokens.cpu() - self.token_offset - N_SPECIAL
        return self.validated_items(items, scores, history)

    def validated_items(self, items: torch.Tensor, scores: torch.Tensor, history: sp.csr_matrix) -> TopK:
        """Item indices (any int, -1 = no item) → TopK with known/out-of-range slots emptied and `invalid` set."""
        items = items.cpu().long()
        items = torch.where((items >= 0) & (items < self.tokens.n_items), items, torch.full_like(items, -1))
        known = torch.from_numpy(history.toarray()).bool()
        is_known = torch.gather(known, 1, items.clamp(min=0)) & (items >= 0)
        items = torch.where(is_known, torch.full_like(items, -1), items)
        invalid = (items < 0).float().mean(dim=1)
        return TopK(items=items.to(self.device), scores=scores.float().to(self.device), invalid=invalid.to(self.device))

    def item_embeddings(self, items: np.ndarray) -> torch.Tensor:
        """The learned input embedding of each of `items`' first code token (for explanations)."""
        table = self.backbone.get_input_embeddings().weight.detach()
        return table[torch.from_numpy(self.tokens.codes[np.asarray(items), 0] + self.token_offset)]

    def explain(self, user: int, item: int, history: sp.csr_matrix, sequence: np.ndarray | None = None) -> str:
        """Embedding similarity: the history item whose learned item embedding is closest to the generated one."""
        return self.explain_items(user, np.array([item]), history, sequence)[0]

    def explain_items(
        self, user: int, items: np.ndarray, history: sp.csr_matrix, sequence: np.ndarray | None = None
    ) -> list[str]:
        liked = np.asarray(sequence if sequence is not None else history.indices)[-int(self.hparams.max_len) :]
        if liked.size == 0:
            return ["generated from the model's prior (empty history)"] * len(items)
        # only the rows this list needs (a request's explanation must not touch the whole catalogue)
        vectors = F.normalize(self.item_embeddings(np.concatenate([liked, np.asarray(items)])), dim=1)
        closest = torch.argmax(vectors[: len(liked)] @ vectors[len(liked) :].T, dim=0)
        label = self.trainer.datamodule.data.item_label
        return [f"generated after your history; closest item you had: {label(int(liked[int(c)]))}" for c in closest]

    def on_test_end(self) -> None:
        """Save the tested weights with save_pretrained, plus the item-id mapping, into the run folder."""
        if self.trainer.is_global_zero:
            self.export(Path(self.trainer.default_root_dir) / "model")

    def export(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(directory)
        np.savez(
            directory / "item_tokens.npz",
            codes=self.tokens.codes,
            vocab_size=self.tokens.vocab_size,
            token_offset=self.token_offset,
        )
