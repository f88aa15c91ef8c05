"""Loading a pretrained transformers checkpoint (a local folder or a hub name) with errors that name the key."""

from __future__ import annotations

from pathlib import Path

from recarena.errors import ConfigError


def looks_local(name: str) -> bool:
    """A filesystem path rather than a hub id like `gpt2` or `org/model`."""
    return name.startswith(("/", ".", "~")) or Path(name).expanduser().exists()


def check_pretrained(name: str | None, key: str = "model.pretrained") -> None:
    """Fail before training when a local checkpoint path is missing or is not a model folder."""
    if not name:
        return
    path = Path(str(name)).expanduser()
    if looks_local(str(name)):
        if not path.is_dir():
            raise ConfigError(f"{key}={name!r}: no such directory")
        if not (path / "config.json").is_file():
            raise ConfigError(f"{key}={name!r}: not a model directory (no config.json)")


def load_pretrained(model_class, name: str, key: str = "model.pretrained"):
    """`model_class.from_pretrained(name)`; a hub name that cannot be fetched becomes a ConfigError."""
    check_pretrained(name, key)
    try:
        return model_class.from_pretrained(str(Path(name).expanduser()) if looks_local(name) else name)
    except OSError as error:
        raise ConfigError(f"{key}={name!r}: could not load a checkpoint ({error})") from error
