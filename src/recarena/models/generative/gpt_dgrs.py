"""GPT-DGRS: a decoder-only transformer (transformers' GPT-2) that generates the recommended items directly."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList

from recarena.data.interactions import Interactions
from recarena.data.views import CausalWindows, pad_batch
from recarena.errors import ConfigError
from recarena.models.generative.decoding import ItemConstraint
from recarena.models.generative.generative_module import GenerativeModule, SequenceHParams
from recarena.models.generative.item_tokens import BOS, N_SPECIAL, PAD, ItemTokens
from recarena.models.generative.pretrained import load_pretrained
from recarena.models.generative.semantic_ids import item_vectors
from recarena.models.masked_topk import rank_scores
from recarena.topk import TopK, cat_topk

DECODERS = ("next_token", "beam")
INITS = ("random", "text")


class GPTDGRS(GenerativeModule):
    """Items are tokens; a causal transformer learns users' interaction sequences and generates the next items.

    Trained with full-softmax cross-entropy at every position. `decode=next_token` ranks all items by the
    last position's logits (exact for atomic ids); `decode=beam` runs transformers' beam search under an
    item constraint. With `constrained=False` the model may emit non-items or known items; those slots are
    left empty and counted in `invalid_rate`."""

    def __init__(
        self, decode: str = "next_token", init: str = "random", **shared: Any
    ) -> None:
        """`decode` (next_token | beam), `init` (random | text: item embeddings from projected MiniLM vectors),
        and the shared `SequenceHParams`."""
        super().__init__()
        shared = SequenceHParams.resolved(shared)  # read by save_hyperparameters below, with every default
        self.check_hparams({**shared, "init": init}, INITS)
        if decode not in DECODERS:
            raise ConfigError(f"model.decode={decode!r}: choose one of {', '.join(DECODERS)}")
        if shared["item_ids"] == "semantic" and decode == "next_token":
            raise ConfigError(
                "model.decode=next_token ranks single tokens: with model.item_ids=semantic use decode=beam"
            )
        if init == "text" and shared["item_ids"] != "atomic":
            raise ConfigError("model.init=text sets one embedding per item: it needs model.item_ids=atomic")
        self.save_hyperparameters()
        self.tokens: ItemTokens | None = None
        self.backbone: GPT2LMHeadModel | None = None
        self.token_offset = 0  # > 0 when item tokens are appended to a pretrained vocabulary

    # -- building ----------------------------------------------------------------------------------------
    def build(self, data: Interactions) -> None:
        """Create the item vocabulary and the backbone for this dataset (or extend a pretrained GPT-2)."""
        hp = self.hparams
        self.tokens = self.item_tokens(data)
        if hp.pretrained:
            self.backbone = load_pretrained(GPT2LMHeadModel, hp.pretrained)
            self.token_offset = self.backbone.config.vocab_size
            self.backbone.resize_token_embeddings(self.token_offset + self.tokens.vocab_size)
        else:
            config = GPT2Config(
                vocab_size=int(self.tokens.vocab_size),
                n_positions=(int(hp.max_len) + 1) * self.tokens.width + 1,  # history + the generated item
                n_embd=int(hp.n_embd),
                n_layer=int(hp.n_layer),
                n_head=int(hp.n_head),
                resid_pdrop=float(hp.dropout),
                embd_pdrop=float(hp.dropout),
                attn_pdrop=float(hp.dropout),
                bos_token_id=BOS,
                eos_token_id=PAD,
                pad_token_id=PAD,
            )
            self.backbone = GPT2LMHeadModel(config)
        if hp.init == "text":
            self._init_item_embeddings_from_text(data)
        if hp.loss == "sampled":
            self.init_sampler(data)

    def _init_item_embeddings_from_text(self, data: Interactions) -> None:
        """Item token embeddings := MiniLM text vectors projected to the model width (PCA), at the init scale."""
        vectors = item_vectors(data, "text", 0, int(self.hparams.seed), self._text_encoder())
        centred = vectors - vectors.mean(axis=0)
        width = self.backbone.get_input_embeddings().weight.shape[1]
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projected = centred @ vt[: min(width, vt.shape[0])].T
        projected = np.pad(projected, ((0, 0), (0, width - projected.shape[1])))
        projected *= self.backbone.config.initializer_range / max(projected.std(), 1e-12)
        rows = torch.from_numpy(self.tokens.codes[:, 0] + self.token_offset)
        with torch.no_grad():
            self.backbone.get_input_embeddings().weight[rows] = torch.from_numpy(projected).float()

    def train_view(self, data: Interactions) -> Dataset:
        sequences = data.sequences("train")
        encoded = [self.encode(sequences[u]) for u in range(data.n_users) if len(sequences[u]) > 0]
        return CausalWindows(encoded, self.context_tokens, batch_size=int(self.hparams.batch_size))

    @property
    def context_tokens(self) -> int:
        return int(self.hparams.max_len) * self.tokens.width

    def encode(self, items: np.ndarray) -> np.ndarray:
        """[BOS] + the items' code tokens, shifted into the backbone's vocabulary."""
        tokens = self.tokens.encode(items)
        return tokens + self.token_offset

    # -- training ----------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Next-token cross-entropy at the labelled positions only (`model.loss=full`, in chunks once their logits
        would exceed `model.loss_chunk_bytes`), or sampled softmax over the targets and shared negatives
        (`model.loss=sampled`)."""
        hidden = self.backbone.transformer(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
        return self.token_loss(hidden, batch["labels"], torch.nn.Identity(), self.backbone.lm_head)

    # -- generation --------------------------------------------------------------------------------------
    def prompts(self, sequences: list[np.ndarray], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Token prompts of the most recent `max_len` items, padded left (for generate) or right."""
        rows = [self.encode(seq[-int(self.hparams.max_len) :]) for seq in sequences]
        if left:
            rows = [r[::-1].copy() for r in rows]
        ids = pad_batch(rows, PAD + self.token_offset)
        mask = pad_batch([np.ones(len(r)) for r in rows], 0).long()
        if left:
            ids, mask = ids.flip(1), mask.flip(1)
        return ids.to(self.device), mask.to(self.device)

    def item_logits(self, sequences: list[np.ndarray]) -> torch.Tensor:
        """Next-token logits of every item token at each user's last position: (users, n_items)."""
        ids, mask = self.prompts(sequences, left=False)
        hidden = self.backbone.transformer(input_ids=ids, attention_mask=mask)[0]
        last = hidden[torch.arange(len(ids), device=ids.device), mask.sum(1) - 1]
        first = self.token_offset + N_SPECIAL
        head = self.backbone.lm_head  # only the last position's item rows: the head was most of the scoring time
        bias = head.bias[first : first + self.tokens.n_items] if head.bias is not None else None
        return F.linear(last, head.weight[first : first + self.tokens.n_items], bias).float()

    @torch.no_grad()
    def recommend(
        self, users: torch.Tensor, history: sp.csr_matrix, k: int, sequences: list[np.ndarray] | None = None
    ) -> TopK:
        if self.hparams.decode == "beam":
            return self.beam_search(history, k, sequences)
        if self.hparams.constrained:
            return self.all_valid(rank_scores(self.item_logits(sequences), history, k))
        return self.unconstrained_next_token(history, k, sequences)

    def unconstrained_next_token(self, history: sp.csr_matrix, k: int, sequences: list[np.ndarray]) -> TopK:
        """Top-k over the whole vocabulary: specials and known items are generated, then counted invalid."""
        ids, mask = self.prompts(sequences, left=False)
        logits = self.backbone(input_ids=ids, attention_mask=mask).logits
        last = logits[torch.arange(len(ids), device=ids.device), mask.sum(1) - 1].float()
        top = torch.topk(last, k, dim=1)
        return self.validated(top.indices, top.values, history)

    def beam_search(self, history: sp.csr_matrix, k: int, sequences: list[np.ndarray]) -> TopK:
        """transformers' beam search, in user chunks of bounded memory; the item constraint (when on) keeps
        every beam on a real unknown item."""
        num_beams = max(k, int(self.hparams.num_beams or k))
        tokens = min(max(len(s) for s in sequences), int(self.hparams.max_len)) * self.tokens.width + 1
        parts = [
            self._beam_search(history[chunk], k, sequences[chunk], num_beams)
            for chunk in self.user_chunks(len(sequences), num_beams, tokens + self.tokens.width)
        ]
        return cat_topk(parts)

    def _beam_search(self, history: sp.csr_matrix, k: int, sequences: list[np.ndarray], num_beams: int) -> TopK:
        ids, mask = self.prompts(sequences, left=True)
        processors = LogitsProcessorList()
        if self.hparams.constrained:
            processors.append(
                _Shifted(ItemConstraint(self.tokens, history, ids.shape[1], num_beams), self.token_offset)
            )
        out = self.backbone.generate(
            input_ids=ids,
            attention_mask=mask,
            num_beams=num_beams,
            num_return_sequences=k,
            max_new_tokens=self.tokens.width,
            min_new_tokens=self.tokens.width,
            do_sample=False,
            early_stopping=True,
            logits_processor=processors,
            pad_token_id=PAD + self.token_offset,
            eos_token_id=None,
            return_dict_in_generate=True,
            output_scores=True,
        )
        generated = out.sequences[:, ids.shape[1] :].cpu().numpy() - self.token_offset
        items = self.tokens.decode_rows(generated)
        scores = out.sequences_scores.float().cpu()
        return self.validated_items(torch.from_numpy(items).view(-1, k), scores.view(-1, k), history)


class _Shifted(ItemConstraint):
    """Applies an ItemConstraint to a vocabulary where our tokens start at `offset` (pretrained GPT-2)."""

    def __init__(self, inner: ItemConstraint, offset: int) -> None:
        self.inner, self.offset = inner, offset

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.offset == 0:
            return self.inner(input_ids, scores)
        ours = self.inner(input_ids - self.offset, scores[:, self.offset :])
        out = torch.full_like(scores, float("-inf"))
        out[:, self.offset :] = ours
        return out
