"""`python -m recarena.serve run_dir=<run> port=8000`: serve a finished run's recommendations and collect feedback.

GET /recommend?user=<raw id>&k=10, POST /recommend {"history": [...]}, POST /feedback {"events": [...]},
GET /health, OpenAPI docs at /docs. Bound to 127.0.0.1 unless `host=` says otherwise."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from recarena.errors import ConfigError, RecArenaError
from recarena.eval import quiet_lightning
from recarena.utils.compose import CONFIG_DIR


def build_app(cfg: DictConfig):
    """The FastAPI app for `cfg` (engine loaded, feedback database opened)."""
    from recarena.serving.app import create_app
    from recarena.serving.engine import Engine
    from recarena.serving.feedback import FeedbackStore

    token = write_token(cfg)
    engine = Engine(cfg.run_dir, cfg.data_dir, cfg.accelerator)
    store = FeedbackStore(cfg.serve.feedback_db or Path(cfg.run_dir) / "feedback.sqlite")
    return create_app(engine, store, token)


def write_token(cfg: DictConfig) -> str | None:
    """The token POST /feedback needs (from the `serve.token_env` variable), or None for open writes, which are
    allowed on a loopback address, or elsewhere only with `serve.allow_open_writes=true` (with a warning). A token
    variable that is set but empty is an error: it would otherwise turn authentication off silently."""
    name = cfg.serve.token_env
    token = os.environ.get(name) if name else None
    if token is not None and not token.strip():
        raise ConfigError(f"{name} is set but empty: give it a token, or unset it to serve without one")
    if token is None and not is_loopback(str(cfg.host)):
        if not cfg.serve.get("allow_open_writes", False):
            raise ConfigError(
                f"host={cfg.host}: serving beyond this machine with no write token lets anyone write feedback; set "
                f"{name or 'serve.token_env'} to a token, or serve.allow_open_writes=true to accept that"
            )
        print(f"serve: WARNING: open writes on host={cfg.host}: anyone who can reach it can POST /feedback",
              file=sys.stderr, flush=True)  # fmt: skip
    return token


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="serve")
def main(cfg: DictConfig) -> None:
    import uvicorn

    quiet_lightning()
    try:
        app = build_app(cfg)
    except (RecArenaError, ValueError, FileNotFoundError) as error:
        print(f"serve: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"serving {cfg.run_dir} on http://{cfg.host}:{cfg.port} (docs: /docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=cfg.host, port=int(cfg.port), log_level=cfg.serve.log_level, access_log=cfg.serve.access_log)


if __name__ == "__main__":
    main()
