"""LLM-DGRS: a pretrained causal language model generates the recommended items directly.

Two ways to ground its output in the catalogue (`model.mode`):
- `item_tokens`: one new token per item, appended after the LM's vocabulary and initialised from the LM's own
  embeddings of the item's title (mean of its token rows); trained with cross-entropy over the item rows only and
  ranked by the next-token logits of every item (one forward pass per user).
- `titles`: the history as title lines; the model spells the next title, under a trie of every catalogue title
  (known items removed) when `constrained`, or freely, with outputs matched back to titles (`invalid_rate`).
  `finetune=false` evaluates the pretrained model zero-shot. `grounding=embedding` instead generates freely and maps
  the outputs to their nearest catalogue titles by sentence-embedding similarity (title_grounding.py). Every title
  generator also reports its raw outputs' error rates (repeats of an output or of the history, non-titles).
Any `AutoModelForCausalLM` backbone (see backbones.py), optionally cut to its first `backbone_layers` blocks and
tuned with LoRA (`lora.r > 0`) or fully. Two controls ask whether the language model's knowledge helps:
`backbone_init=random` keeps the architecture but starts every backbone weight from its own random initialiser, and
`item_init=random` starts the item rows from random vectors instead of the title embeddings. Checkpoints hold the
trainable tensors only (LoRA adapters, item rows); the frozen backbone is rebuilt from `model.backbone` (and
`backbone_init`, `seed`)."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from recarena.data.interactions import Interactions
from recarena.data.views import pad_batch
from recarena.errors import ConfigError
from recarena.models.generative.backbones import add_lora, keep_layers, load_backbone, random_like
from recarena.models.generative.generative_module import GenerativeModule
from recarena.models.generative.item_tokens import ItemTokens
from recarena.models.generative.llm_prompts import ItemTokenWindows, PromptBuilder, TitleExamples, TitleWindows
from recarena.models.generative.title_grounding import EmbeddingGrounding, normalise_title, output_errors
from recarena.models.generative.title_trie import TitleConstraint, TitleTrie
from recarena.models.masked_topk import rank_scores, top_k
from recarena.text.item_text import render
from recarena.topk import TopK, cat_topk

log = logging.getLogger(__name__)

MODES = ("item_tokens", "titles")
BACKBONE_INITS = ("pretrained", "random")
ITEM_INITS = ("title", "random")
GROUNDINGS = ("trie", "embedding")
TITLE_TRAININGS = ("targets", "windows")
SCORE_BYTES = 512 * 2**20  # title beam search: the step scores that generate keeps for one chunk of users
KEPT_GENERATIONS = 4096  # chunks of generated beams kept (a service answering title requests must not grow forever)
LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


class LLMDGRS(GenerativeModule):
    """A pretrained causal LM (any transformers checkpoint, GGUF included) that generates the next items."""

    def __init__(
        self,
        mode: str = "item_tokens",
        backbone: str = "smollm2",
        backbone_layers: int | None = None,
        backbone_init: str = "pretrained",
        item_init: str = "title",
        lora: dict | None = None,
        train_embeddings: bool = False,
        finetune: bool = True,
        gradient_checkpointing: bool = False,
        max_len: int = 20,
        history_text: bool = False,
        instruction: str = "A user's history, oldest first:\n",
        answer: str = "Recommended next:",
        title_template: list[str] | str | None = None,
        title_end: str = "\n",
        constrained: bool = True,
        num_beams: int | None = None,
        length_penalty: float = 1.0,
        examples_per_user: int = 2,
        title_training: str = "targets",
        grounding: str = "trie",
        grounding_encoder: str | None = "minilm",
        popularity_weight: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 16,
        eval_chunk: int = 32,
        data_dir: str = "data",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"model.mode={mode!r}: choose one of {', '.join(MODES)}")
        if backbone_init not in BACKBONE_INITS:
            raise ConfigError(f"model.backbone_init={backbone_init!r}: choose one of {', '.join(BACKBONE_INITS)}")
        if item_init not in ITEM_INITS:
            raise ConfigError(f"model.item_init={item_init!r}: choose one of {', '.join(ITEM_INITS)}")
        if title_training not in TITLE_TRAININGS:
            raise ConfigError(f"model.title_training={title_training!r}: choose one of {', '.join(TITLE_TRAININGS)}")
        if grounding not in GROUNDINGS:
            raise ConfigError(f"model.grounding={grounding!r}: choose one of {', '.join(GROUNDINGS)}")
        if grounding == "embedding":
            if mode != "titles":
                raise ConfigError("model.grounding=embedding: grounds generated titles (use mode=titles)")
            if constrained:
                raise ConfigError("model.grounding=embedding grounds free text: set model.constrained=false")
            if not grounding_encoder:
                raise ConfigError(
                    "model.grounding=embedding needs a sentence encoder: set model.grounding_encoder "
                    "(minilm, or a folder of a transformers encoder)"
                )
        if item_init == "random" and mode != "item_tokens":
            raise ConfigError("model.item_init=random: only item tokens have item rows (use mode=item_tokens)")
        lora = OmegaConf.to_container(lora, resolve=True) if isinstance(lora, DictConfig) else dict(lora or {})
        unknown = sorted(set(lora) - set(LORA_DEFAULTS))
        if unknown:
            raise ConfigError(f"model.lora has unknown key(s) {unknown}; it takes {sorted(LORA_DEFAULTS)}")
        lora = {**LORA_DEFAULTS, **lora}
        if int(lora["r"]) < 0:
            raise ConfigError(f"model.lora.r={lora['r']!r}: must be >= 0 (0 = full fine-tuning)")
        for key, value in (("max_len", max_len), ("batch_size", batch_size), ("eval_chunk", eval_chunk)):
            if int(value) < 1:
                raise ConfigError(f"model.{key}={value!r}: must be >= 1")
        if mode == "item_tokens" and not finetune:
            raise ConfigError("model.finetune=false: item tokens are new to the LM and must be trained (mode=titles)")
        if backbone_layers is not None and (isinstance(backbone_layers, bool) or int(backbone_layers) < 1):
            raise ConfigError(f"model.backbone_layers={backbone_layers!r}: must be >= 1 (or null for every block)")
        self.save_hyperparameters()
        self.lora_options = lora
        self.llm: nn.Module | None = None
        self.item_in: nn.Parameter | None = None
        self.item_out: nn.Parameter | None = None
        self.strict_loading = False  # checkpoints hold the trainable tensors only; see load_state_dict
        self.generations: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # see _beams: cleared when weights change

    @property
    def trains(self) -> bool:
        return bool(self.hparams.finetune)

    # -- building ----------------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.llm is not None

    def build(self, data: Interactions) -> None:
        """Load the backbone (cut, LoRA), the title tokens of every item and, in item-token mode, the item rows."""
        hp = self.hparams
        model, tokenizer = load_backbone(hp.backbone, hp.data_dir)
        model = keep_layers(model, None if hp.backbone_layers is None else int(hp.backbone_layers))
        self.tokens = ItemTokens.atomic(data.n_items)
        self.prompts = self._prompt_builder(data, tokenizer, int(model.get_input_embeddings().weight.shape[0]))
        self.tokenizer = tokenizer
        if hp.mode == "titles":
            self.trie = TitleTrie([self.prompts.target(i) for i in range(data.n_items)])
        if hp.grounding == "embedding":
            encoder = grounding_encoder(str(hp.grounding_encoder), hp.data_dir)
            weight = float(hp.popularity_weight)
            self.grounding = EmbeddingGrounding(encoder, self.title_texts, data.popularity(), weight)
        # item rows start from the *pretrained* title embeddings whatever the backbone's start, so the two backbone
        # starts differ in the backbone weights only
        rows = self._item_rows(model) if hp.mode == "item_tokens" else None
        if hp.backbone_init == "random":
            model = random_like(model, int(hp.seed))
        lora = int(self.lora_options["r"]) > 0 and bool(hp.finetune)  # zero-shot: the pretrained model as it is
        model.requires_grad_(not lora and bool(hp.finetune))
        if lora:
            o = self.lora_options
            model = add_lora(model, o["r"], o["alpha"], o["dropout"], list(o["target_modules"]))
        self.llm = model.train()  # from_pretrained returns eval mode; Lightning switches modes from here on
        if hp.train_embeddings:
            self.hf.get_input_embeddings().weight.requires_grad_(True)
            self.hf.get_output_embeddings().weight.requires_grad_(True)
        if hp.gradient_checkpointing:
            if hasattr(self.hf, "activation_checkpointing_enable"):  # transformers >= 5.2x's name
                self.hf.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                self.hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if rows is not None:
            self.item_in = nn.Parameter(rows[0])
            self.item_out = self.item_in if rows[1] is None else nn.Parameter(rows[1])

    @property
    def hf(self) -> nn.Module:
        """The transformers model (inside the peft wrapper when LoRA is on; LoRA layers are injected in place)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def _prompt_builder(self, data: Interactions, tokenizer, vocab: int) -> PromptBuilder:
        hp = self.hparams
        titles = self.title_texts = item_titles(data, hp.title_template, hp.mode)  # one rendering per build

        def encode(text: str) -> list[int]:
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])

        end = encode(hp.title_end)
        if len(end) != 1:
            raise ConfigError(f"model.title_end={hp.title_end!r}: must be one token of the backbone's tokenizer")
        windows = hp.mode == "titles" and hp.title_training == "windows"  # trained on lists: a bullet asks for the next
        return PromptBuilder(
            instruction=list(tokenizer(hp.instruction)["input_ids"]),  # with the tokenizer's BOS, if it adds one
            answer=encode("-") if windows else encode(hp.answer),
            bullet=encode("-"),
            titles=[encode(" " + t) for t in titles],
            end=end[0],
            vocab=vocab,
            history_text=bool(hp.history_text),
        )

    def _item_rows(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The item rows' start (input, and output when the LM's are untied, else None): `item_init=title`, the mean
        of the LM's embedding rows of the item's title tokens; `random`, seeded normal vectors of the same scale."""
        word_in = model.get_input_embeddings().weight
        word_out = model.get_output_embeddings().weight
        tied = word_out.data_ptr() == word_in.data_ptr()
        if self.hparams.item_init == "title":
            return self.title_means(word_in), None if tied else self.title_means(word_out)
        generator = torch.Generator().manual_seed(int(self.hparams.seed))
        shape = (len(self.prompts.titles), word_in.shape[1])

        def draw(table: torch.Tensor) -> torch.Tensor:
            return (torch.randn(shape, generator=generator) * float(table.detach().float().std())).to(table.dtype)

        return draw(word_in), None if tied else draw(word_out)

    def title_means(self, table: torch.Tensor, items: np.ndarray | None = None) -> torch.Tensor:
        """(items, width): the mean of `table`'s rows over each item's title tokens (every item when None)."""
        titles = self.prompts.titles if items is None else [self.prompts.titles[int(i)] for i in items]
        return torch.stack([table[torch.tensor(ids)].mean(0) for ids in titles]).detach().clone()

    def train_view(self, data: Interactions) -> Dataset:
        hp = self.hparams
        sequences = data.sequences("train")
        rows = [sequences[u] for u in range(data.n_users) if len(sequences[u]) > 0]
        if hp.mode == "item_tokens":
            return ItemTokenWindows(rows, self.prompts, int(hp.max_len), int(hp.batch_size))
        if hp.title_training == "windows":
            return TitleWindows(rows, self.prompts, int(hp.max_len), int(hp.batch_size))
        per_user, seed = int(hp.examples_per_user), int(hp.seed)
        return TitleExamples(rows, self.prompts, int(hp.max_len), int(hp.batch_size), per_user, seed)

    # -- the network -------------------------------------------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings: the LM's rows for words, the item rows for ids >= vocab."""
        vocab = self.prompts.vocab
        words = self.hf.get_input_embeddings()(ids.clamp(max=vocab - 1))
        if self.item_in is None:
            return words
        is_item = ids >= vocab
        items = F.embedding((ids - vocab).clamp(min=0), self.item_in)
        return torch.where(is_item[..., None], items.to(words.dtype), words)

    def hidden(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (after the final norm): the LM head is applied only where a loss or score needs it."""
        return self.hf.get_decoder()(inputs_embeds=self.embed(ids), attention_mask=mask).last_hidden_state

    def item_logits_of(self, states: torch.Tensor) -> torch.Tensor:
        """Scores of every item token: the item rows of the (extended) output embedding, and nothing else."""
        return states @ self.item_out.to(states.dtype).T

    def word_logits_of(self, states: torch.Tensor) -> torch.Tensor:
        return self.hf.get_output_embeddings()(states)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.generations.clear()  # the weights are about to change
        states = self.hidden(batch["input_ids"], batch["attention_mask"])
        if self.hparams.mode == "item_tokens":
            picked = states[batch["rows"], batch["positions"]]
            loss = F.cross_entropy(self.item_logits_of(picked).float(), batch["targets"])
        else:
            labels = batch["labels"][:, 1:]
            picked = states[:, :-1][labels != -100]
            loss = F.cross_entropy(self.word_logits_of(picked).float(), labels[labels != -100])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    # -- recommending ------------------------------------------------------------------------------------
    @torch.no_grad()
    def recommend(
        self, users: torch.Tensor, history: sp.csr_matrix, k: int, sequences: list[np.ndarray] | None = None
    ) -> TopK:
        chunk = int(self.hparams.eval_chunk)
        if self.hparams.mode == "titles":  # generate keeps every step's (users × beams, vocab) scores: bound them
            beams = self._num_beams(k)
            vocab = int(self.hf.get_output_embeddings().weight.shape[0])
            per_user = beams * vocab * 4 * (max(len(t) for t in self.prompts.titles) + 1)
            chunk = max(1, min(chunk, SCORE_BYTES // per_user))
        parts = []
        progress = tqdm(total=len(sequences), unit="user", desc="LLM-DGRS generation", leave=False,
                        disable=self.hparams.mode == "item_tokens")  # fmt: skip
        for start in range(0, len(sequences), chunk):
            rows = slice(start, min(start + chunk, len(sequences)))
            if self.hparams.mode == "item_tokens":
                parts.append(self._rank_items(history[rows], k, sequences[rows]))
            else:
                parts.append(self._generate_titles(history[rows], k, sequences[rows]))
            progress.update(rows.stop - rows.start)
        progress.close()
        return cat_topk(parts)

    def item_logits(self, sequences: list[np.ndarray]) -> torch.Tensor:
        """(users, n_items) next-item scores after each user's last `max_len` items."""
        return self._last_states(sequences) @ self.item_out.float().T

    def _last_states(self, sequences: list[np.ndarray]) -> torch.Tensor:
        encoded = [self.prompts.item_tokens(seq[-int(self.hparams.max_len) :])[0] for seq in sequences]
        ids = pad_batch(encoded, 0).to(self.device)
        mask = pad_batch([np.ones(len(e)) for e in encoded], 0).to(self.device)
        states = self.hidden(ids, mask)
        return states[torch.arange(len(ids), device=ids.device), mask.sum(1) - 1].float()

    def _rank_items(self, history: sp.csr_matrix, k: int, sequences: list[np.ndarray]) -> TopK:
        states = self._last_states(sequences)
        items = states @ self.item_out.float().T
        if self.hparams.constrained:
            return self.all_valid(rank_scores(items.cpu(), history, k))
        scores = torch.cat([self.word_logits_of(states).float(), items], dim=1).cpu()  # the whole extended vocabulary
        top = top_k(scores, k)
        return self.validated_items(top.items - self.prompts.vocab, top.scores, history)

    def _num_beams(self, k: int) -> int:
        """Generated titles per user: `num_beams` (null: K); trie grounding needs one per list slot, at least K."""
        beams = int(self.hparams.num_beams or k)
        return beams if self.hparams.grounding == "embedding" else max(k, beams)

    def _generate_titles(self, history: sp.csr_matrix, k: int, sequences: list[np.ndarray]) -> TopK:
        """Beam search over titles, then grounding: each finished beam → the unknown items with that title, best beams
        first (trie), or the nearest unknown titles to all beams (embedding). The raw beams' error rates ride along."""
        hp = self.hparams
        num_beams = self._num_beams(k)
        prompts = [self.prompts.title_prompt(seq[-int(hp.max_len) :]) for seq in sequences]
        width = max(len(p) for p in prompts)
        pad = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.prompts.end)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        processors = LogitsProcessorList()
        if hp.constrained:
            processors.append(TitleConstraint(self.trie, history, width, num_beams, pad))
        generated, scores = self._beams(ids, mask, num_beams, processors, pad, history)
        knowns = [set(history.indices[history.indptr[u] : history.indptr[u + 1]].tolist()) for u in range(len(prompts))]
        texts = [[self._output_text(generated[b]) for b in range(u * num_beams, (u + 1) * num_beams)]
                 for u in range(len(prompts))]  # fmt: skip
        errors = np.stack([output_errors(t, self.title_index, kn) for t, kn in zip(texts, knowns, strict=True)])
        errors = torch.from_numpy(errors)
        if hp.grounding == "embedding":
            top = self.grounding.rank(texts, history, k)
            return TopK(*(t.to(self.device) for t in top[:3]), errors=errors.to(self.device))
        items = np.full((len(prompts), k), -1, dtype=np.int64)
        values = np.full((len(prompts), k), float("-inf"), dtype=np.float32)
        for user, known in enumerate(knowns):
            picked: list[int] = []
            for beam in range(user * num_beams, (user + 1) * num_beams):
                for item in self._beam_items(generated[beam], known):
                    if (item < 0 or item not in picked) and len(picked) < k:  # each invalid beam fills its slot
                        values[user, len(picked)] = scores[beam]
                        picked.append(item)
            items[user, : len(picked)] = picked
        top = self.validated_items(torch.from_numpy(items), torch.from_numpy(values), history)
        return top._replace(errors=errors.to(self.device))

    def _beams(
        self, ids: torch.Tensor, mask: torch.Tensor, num_beams: int, processors: LogitsProcessorList, pad: int,
        history: sp.csr_matrix,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Generated title tokens (users × beams rows, after the prompt) and beam scores of one chunk. Kept while the
        weights are unchanged (cleared by a training step or a checkpoint load), keyed by everything generation
        reads, so re-grounding the same users (e.g. several `popularity_weight`s) generates once."""
        hp = self.hparams
        known = (history.indptr.tobytes(), history.indices.tobytes()) if hp.constrained else None
        key = (ids.cpu().numpy().tobytes(), ids.shape, num_beams, bool(hp.constrained), float(hp.length_penalty), known)
        if key not in self.generations:
            if len(self.generations) >= KEPT_GENERATIONS:
                self.generations.clear()
            out = self.hf.generate(
                input_ids=ids, attention_mask=mask, **self._prompt_cache(ids, mask, num_beams),
                num_beams=num_beams, num_return_sequences=num_beams,
                max_new_tokens=max(len(t) for t in self.prompts.titles) + 1, do_sample=False, early_stopping=True,
                length_penalty=float(hp.length_penalty), logits_processor=processors, eos_token_id=self.prompts.end,
                pad_token_id=pad, return_dict_in_generate=True, output_scores=True,
            )  # fmt: skip
            width = ids.shape[1]
            self.generations[key] = (out.sequences[:, width:].cpu().numpy(), out.sequences_scores.float().cpu().numpy())
        return self.generations[key]

    def _prompt_cache(self, ids: torch.Tensor, mask: torch.Tensor, num_beams: int) -> dict:
        """The prompts' key/value cache, computed once per user and repeated for each beam: beam search would
        otherwise run every prompt through the LM once per beam. The last prompt token is left to `generate`.
        Positions follow `generate`'s own rule for left-padded prompts (cumulative mask - 1)."""
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        out = self.hf(
            input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True
        )
        name = "cache" if "cache" in inspect.signature(self.hf.forward).parameters else "past_key_values"
        cache = getattr(out, name)
        cache.batch_repeat_interleave(num_beams)
        return {name: cache}

    def _beam_items(self, tokens: np.ndarray, known: set[int]) -> list[int]:
        """Unknown items named by a generated sequence: exact trie leaf when constrained, else the decoded text."""
        tokens = tokens.tolist()
        if self.prompts.end in tokens:
            tokens = tokens[: tokens.index(self.prompts.end) + 1]
        if self.hparams.constrained:
            found = self.trie.items(tokens)
        else:
            found = self.title_index.get(self._output_text(np.asarray(tokens)), [])
        unknown = [i for i in found if i not in known]
        return unknown or [-1]  # no title, or only items the user has: one invalid output

    def _output_text(self, tokens: np.ndarray) -> str:
        """A generated sequence as normalised text: up to its terminator, padding and special tokens dropped."""
        tokens = tokens.tolist()
        if self.prompts.end in tokens:
            tokens = tokens[: tokens.index(self.prompts.end)]
        return normalise_title(self.tokenizer.decode(tokens, skip_special_tokens=True))

    @property
    def title_index(self) -> dict[str, list[int]]:
        """Normalised title text → items (generated text is matched back to the catalogue through this)."""
        if getattr(self, "_title_index", None) is None:
            index: dict[str, list[int]] = {}
            for item, ids in enumerate(self.prompts.titles):
                index.setdefault(normalise_title(self.tokenizer.decode(ids, skip_special_tokens=True)), []).append(item)
            self._title_index = index
        return self._title_index

    # -- explanations, checkpoints, export -----------------------------------------------------------------
    def item_embeddings(self, items: np.ndarray) -> torch.Tensor:
        """Vectors of `items` for explanations: their learned item rows, or the mean LM embedding of their titles."""
        if self.item_in is not None:
            return self.item_in.detach()[torch.from_numpy(np.asarray(items))]
        return self.title_means(self.hf.get_input_embeddings().weight, items)

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """Only what training changes (LoRA adapters, item rows, or every weight under full fine-tuning)."""
        full = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        trainable = {prefix + name for name, p in self.named_parameters() if p.requires_grad}
        for name in [n for n in full if n not in trainable]:
            del full[name]
        return full

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a trainable-only checkpoint into the rebuilt model; a tensor it lacks or does not know is an error."""
        self.generations.clear()
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        known = {name for name, _ in self.named_parameters()}
        missing, unexpected = sorted(trainable - set(state_dict)), sorted(set(state_dict) - known)
        if missing or unexpected:
            raise RuntimeError(
                f"LLM-DGRS checkpoint does not match model.backbone/mode/lora: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        return super().load_state_dict(state_dict, strict=False, assign=assign)

    def export(self, directory: Path) -> None:
        """The LoRA adapter (or full weights), the item rows, and the prompt template with raw item ids."""
        directory.mkdir(parents=True, exist_ok=True)
        self.llm.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        if self.item_in is not None:
            from safetensors.torch import save_file

            rows = {"item_in": self.item_in.detach().contiguous()}
            if self.item_out is not self.item_in:
                rows["item_out"] = self.item_out.detach().contiguous()
            save_file(rows, str(directory / "item_rows.safetensors"))
        data = self.trainer.datamodule.data
        template = {
            "mode": self.hparams.mode,
            "backbone": str(self.hparams.backbone),
            "backbone_layers": self.hparams.backbone_layers,
            "item_token_offset": self.prompts.vocab,
            "instruction": self.hparams.instruction,
            "answer": self.hparams.answer,
            "title_end": self.hparams.title_end,
            "history_text": bool(self.hparams.history_text),
            "items": [str(i) for i in data.item_ids.tolist()],
            "titles": self.title_texts,
        }
        (directory / "llm_dgrs.json").write_text(json.dumps(template, indent=1))


def grounding_encoder(name: str, data_dir: str):
    """The sentence encoder of embedding grounding: `minilm` (all-MiniLM-L6-v2, offline package) or a folder of a
    transformers encoder (mean pooling). Title embeddings are cached under the data folder."""
    from recarena.text.encoders import HFEncoder, MiniLMEncoder

    cache = Path(data_dir) / "cache" / "embeddings"
    if name == "minilm":
        return MiniLMEncoder(cache_dir=cache, show_progress=False)
    if not Path(name).is_dir():
        raise ConfigError(f"model.grounding_encoder={name!r}: neither 'minilm' nor a folder of a transformers encoder")
    return HFEncoder(name, "mean", cache_dir=cache, show_progress=False)


def item_titles(data: Interactions, template, mode: str) -> list[str]:
    """One title per item: `{title} ({year})` when the data has titles, else its `text` column, else an error. An
    item whose title is empty is an error in title mode (it could never be generated); item tokens start it from
    "item <raw id>"."""
    key = "model.title_template"
    if template is None:
        columns = data.items.columns if data.items is not None else []
        template = ["{title}", " ({year})"] if "title" in columns else ["{text}"] if "text" in columns else None
        if template is None:
            raise ConfigError(
                f"model.mode={mode}: the items have no title text (item columns: {list(columns)}); "
                f"set {key} to a template over those columns, e.g. ['{{name}}']"
            )
    titles = [normalise_title(t) for t in render(data.items, template, key, "item")]
    empty = [i for i, t in enumerate(titles) if not t]
    if empty and mode == "item_tokens":  # the title only initialises the item's token: its raw id will do
        log.warning("%d items have no title text (e.g. raw id %r): their tokens start from 'item <raw id>'",
                    len(empty), str(data.item_ids[empty[0]]))  # fmt: skip
        for i in empty:
            titles[i] = f"item {data.item_ids[i]}"
    elif empty:
        raise ConfigError(
            f"{key}: {len(empty)} items have no title text (e.g. raw id {str(data.item_ids[empty[0]])!r}); every item "
            "must be nameable for the LLM to generate it"
        )
    return titles
