"""BERT-DGRS: a bidirectional masked model (transformers' BertForMaskedLM) that generates the item behind [MASK]."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from transformers import BertConfig, BertForMaskedLM, BertModel

from recarena.data.interactions import Interactions
from recarena.data.views import MaskedSequences, pad_batch
from recarena.errors import ConfigError
from recarena.models.generative.decoding import ItemConstraint
from recarena.models.generative.generative_module import GenerativeModule, SequenceHParams
from recarena.models.generative.item_tokens import MASK, N_SPECIAL, PAD
from recarena.models.generative.pretrained import load_pretrained
from recarena.models.masked_topk import rank_scores
from recarena.topk import TopK, cat_topk

INITS = ("random", "minilm")


class BERTDGRS(GenerativeModule):
    """BERT4Rec-style cloze model: items are tokens, random items are masked in training, and at inference a
    [MASK] appended to the history is filled with the top-K unknown items (full-softmax over item tokens).
    With semantic ids an item is several tokens: its masks are filled left to right by a beam over the code
    trie, re-reading the sequence after each fill.

    `init=minilm` (or `pretrained=<BERT dir>`) starts the encoder from a pretrained BERT and feeds each item as
    its projected text embedding plus a learned id embedding (`inputs_embeds`); `train_layers` limits training
    to the top encoder layers."""

    def __init__(
        self,
        mask_prob: float = 0.2,
        last_prob: float = 0.1,
        init: str = "random",
        train_layers: int | None = None,
        item_template: list[str] | str | None = None,
        **shared: Any,
    ) -> None:
        """`mask_prob` (training masks), `last_prob` (share of windows that mask only the last item), `init`
        (random | minilm), `train_layers` (top encoder layers trained from a pretrained start), `item_template`
        (item text for a pretrained start), and the shared `SequenceHParams`."""
        super().__init__()
        shared = SequenceHParams.resolved(shared)  # read by save_hyperparameters below, with every default
        self.check_hparams({**shared, "init": init}, INITS, min_len=2)
        if not 0.0 < float(mask_prob) < 1.0:
            raise ConfigError(f"model.mask_prob={mask_prob!r}: must be strictly between 0 and 1")
        if shared["item_ids"] != "atomic" and (init != "random" or shared["pretrained"]):
            raise ConfigError(
                "model.init=minilm / model.pretrained feed one text vector per item token: use model.item_ids=atomic"
            )
        self.save_hyperparameters()
        self.backbone: BertForMaskedLM | None = None
        self.text_proj: nn.Linear | None = None

    # -- building ----------------------------------------------------------------------------------------
    @property
    def pretrained_path(self) -> str | None:
        """The BERT checkpoint to start from: `pretrained`, else MiniLM for `init=minilm`, else None."""
        if self.hparams.pretrained:
            return str(self.hparams.pretrained)
        if self.hparams.init == "minilm":
            from recarena.text.encoders import minilm_path

            return str(minilm_path())
        return None

    def build(self, data: Interactions) -> None:
        """Item vocabulary and backbone; a pretrained start copies the encoder and adds text item inputs."""
        self.tokens = self.item_tokens(data)
        hp = self.hparams
        if hp.loss == "sampled":
            self.init_sampler(data)
        source = self.pretrained_path
        if source is None:
            config = BertConfig(
                vocab_size=int(self.tokens.vocab_size),
                hidden_size=int(hp.n_embd),
                num_hidden_layers=int(hp.n_layer),
                num_attention_heads=int(hp.n_head),
                intermediate_size=4 * int(hp.n_embd),
                max_position_embeddings=int(hp.max_len) * self.tokens.width,
                hidden_dropout_prob=float(hp.dropout),
                attention_probs_dropout_prob=float(hp.dropout),
                pad_token_id=PAD,
            )
            self.backbone = BertForMaskedLM(config)
            return
        encoder = load_pretrained(BertModel, source)
        config = encoder.config
        config.vocab_size = int(self.tokens.vocab_size)
        config.pad_token_id = PAD
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = float(hp.dropout)
        self.backbone = BertForMaskedLM(config)
        state = {k: v for k, v in encoder.state_dict().items() if not k.startswith(("embeddings.word_", "pooler."))}
        self.backbone.bert.load_state_dict(state, strict=False)
        texts = self._item_text_vectors(data, source)
        self.register_buffer("text_vectors", torch.zeros(self.tokens.vocab_size, texts.shape[1]), persistent=True)
        self.text_vectors[N_SPECIAL : N_SPECIAL + data.n_items] = torch.from_numpy(texts)
        self.text_proj = nn.Linear(texts.shape[1], config.hidden_size)
        self._freeze_lower_layers(hp.train_layers)

    def _item_text_vectors(self, data: Interactions, source: str) -> np.ndarray:
        """Sentence embeddings of the items' text from the same pretrained encoder (cached on disk)."""
        from recarena.text.encoders import HFEncoder
        from recarena.text.item_text import item_texts

        texts = item_texts(data, self.hparams.item_template, key="model.item_template")
        encoder = HFEncoder(path=source, cache_dir=self.hparams.text_cache_dir, show_progress=False)
        return np.asarray(encoder.encode(texts), dtype=np.float32)

    def _freeze_lower_layers(self, train_layers: int | None) -> None:
        """Train only the top `train_layers` encoder layers (None: all); item inputs and the head always train."""
        if train_layers is None:
            return
        layers = self.backbone.bert.encoder.layer
        if not 0 <= int(train_layers) <= len(layers):
            raise ConfigError(f"model.train_layers={train_layers!r}: the encoder has {len(layers)} layers")
        for layer in layers[: len(layers) - int(train_layers)]:
            layer.requires_grad_(False)
        self.backbone.bert.embeddings.position_embeddings.requires_grad_(False)

    def train_view(self, data: Interactions) -> Dataset:
        sequences = data.sequences("train")
        hp = self.hparams
        return MaskedSequences(
            [sequences[u] for u in range(data.n_users) if len(sequences[u]) > 1],
            self.tokens.codes,
            MASK,
            int(hp.max_len),
            mask_prob=float(hp.mask_prob),
            last_prob=float(hp.last_prob),
            batch_size=int(hp.batch_size),
            seed=int(hp.seed),
        )

    # -- forward and training ------------------------------------------------------------------------------
    def inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder's inputs; with a pretrained start items enter as id embedding + projected text embedding."""
        if self.text_proj is None:
            return {"input_ids": input_ids, "attention_mask": attention_mask}
        embeds = self.backbone.get_input_embeddings()(input_ids) + self.text_proj(self.text_vectors[input_ids])
        return {"inputs_embeds": embeds, "attention_mask": attention_mask}

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token logits at every position."""
        return self.backbone(**self.inputs(input_ids, attention_mask)).logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy at the masked positions only (`model.loss=full`, in chunks once their logits would exceed
        `model.loss_chunk_bytes`), or sampled softmax over the targets and shared negatives (`model.loss=sampled`)."""
        hidden = self.backbone.bert(**self.inputs(batch["input_ids"], batch["attention_mask"]))[0]
        head = self.backbone.cls.predictions
        return self.token_loss(hidden, batch["labels"], head.transform, head.decoder)

    # -- generation --------------------------------------------------------------------------------------
    def mask_logits(self, sequences: list[np.ndarray]) -> torch.Tensor:
        """Logits at the [MASK] appended to each user's most recent `max_len - 1` items: (users, vocab)."""
        keep = int(self.hparams.max_len) - 1
        rows = [np.concatenate([self.tokens.codes[seq[-keep:]].reshape(-1), [MASK]]) for seq in sequences]
        ids = pad_batch(rows, PAD).to(self.device)
        mask = pad_batch([np.ones(len(r)) for r in rows], 0).long().to(self.device)
        hidden = self.backbone.bert(**self.inputs(ids, mask))[0]
        last = hidden[torch.arange(len(rows), device=self.device), mask.sum(1) - 1]
        return self.backbone.cls(last).float()  # the prediction head on the [MASK] positions only

    @torch.no_grad()
    def recommend(
        self, users: torch.Tensor, history: sp.csr_matrix, k: int, sequences: list[np.ndarray] | None = None
    ) -> TopK:
        if self.tokens.width > 1:
            return self.fill_masks(sequences, history, k)
        logits = self.mask_logits(sequences)
        if self.hparams.constrained:
            return self.all_valid(rank_scores(logits[:, N_SPECIAL : N_SPECIAL + self.tokens.n_items], history, k))
        top = torch.topk(logits, k, dim=1)
        return self.validated(top.indices, top.values, history)

    def fill_masks(self, sequences: list[np.ndarray], history: sp.csr_matrix, k: int) -> TopK:
        """Multi-token ids: append one [MASK] per code and fill them left to right, keeping the `num_beams`
        best prefixes (sum of log-probabilities); the trie constraint (when on) admits only unknown items."""
        beams = max(k, int(self.hparams.num_beams or k))
        tokens = min(max(len(s) for s in sequences) + 1, int(self.hparams.max_len)) * self.tokens.width
        chunks = self.user_chunks(len(sequences), beams, tokens)
        return cat_topk([self._fill_masks(sequences[c], history[c], k, beams) for c in chunks])

    def _fill_masks(self, sequences: list[np.ndarray], history: sp.csr_matrix, k: int, beams: int) -> TopK:
        width, n = self.tokens.width, len(sequences)
        keep = int(self.hparams.max_len) - 1
        prompts = [self.tokens.codes[seq[-keep:]].reshape(-1) for seq in sequences]
        constraint = ItemConstraint(self.tokens, history, 0, beams) if self.hparams.constrained else None
        prefix = torch.zeros((n, beams, 0), dtype=torch.long)
        total = torch.full((n, beams), float("-inf"))
        total[:, 0] = 0.0  # one live beam per user before the first code
        for step in range(width):
            live = 1 if step == 0 else beams
            rows = [
                np.concatenate([prompts[u], prefix[u, b].numpy(), np.full(width - step, MASK)])
                for u in range(n)
                for b in range(live)
            ]
            ids = pad_batch(rows, PAD).to(self.device)
            attention = pad_batch([np.ones(len(r)) for r in rows], 0).long().to(self.device)
            at = torch.tensor([len(prompts[u]) + step for u in range(n) for _ in range(live)], device=self.device)
            logp = F.log_softmax(
                self.logits(ids, attention)[torch.arange(len(rows), device=self.device), at].float(), -1
            )
            logp = logp.cpu().repeat_interleave(beams // live, dim=0)
            if constraint is not None:
                logp = constraint(prefix.reshape(n * beams, step), logp)
            vocab = logp.shape[1]
            best = torch.topk((total[..., None] + logp.view(n, beams, vocab)).view(n, -1), beams, dim=1)
            origin = torch.div(best.indices, vocab, rounding_mode="floor")
            kept = torch.gather(prefix, 1, origin[..., None].expand(-1, -1, step))
            prefix = torch.cat([kept, (best.indices % vocab)[..., None]], dim=2)
            total = best.values
        items = torch.from_numpy(self.tokens.decode_rows(prefix.reshape(n * beams, width).numpy())).view(n, beams)
        items = torch.where(torch.isfinite(total), items, torch.full_like(items, -1))
        return self.validated_items(items[:, :k], total[:, :k], history)
