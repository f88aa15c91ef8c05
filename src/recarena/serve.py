"""`python -m recarena.serve run_dir=<run> port=8000`: serve a finished run's recommendations and collect feedback.

GET /recommend?user=<raw id>&k=10, POST /recommend {"history": [...]}, POST /feedback {"events": [...]},
GET /health, OpenAPI docs at /docs. Bound to 127.0.0.1 unless `host=` says otherwise."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from recarena.errors import ConfigError, RecArenaError
from recarena.utils.compose import CONFIG_DIR
from recarena.utils.console import quiet_lightning


def build_app(cfg: DictConfig):
    """The FastAPI app for `cfg` (engine loaded, feedback database opened, limits, kinds and batching set)."""
    from recarena.data.events import EventKinds
    from recarena.data.feedback import FeedbackStore
    from recarena.serving.app import Limits, create_app
    from recarena.serving.batcher import Batcher, check_batch
    from recarena.serving.engine import Engine

    token = write_token(cfg)
    limits = Limits(**settings(cfg.serve.get("limits"), "serve.limits", Limits.__dataclass_fields__))
    kinds = EventKinds.from_config(cfg.get("events"))
    batch = settings(cfg.serve.get("batch"), "serve.batch", ("max_size", "window_ms", "thread"))
    check_batch(batch.get("max_size", 32), batch.get("window_ms", 2.0))  # every setting checked before the run loads
    engine = Engine(cfg.run_dir, cfg.data_dir, cfg.accelerator)
    batcher = Batcher(engine, batch.get("max_size", 32), float(batch.get("window_ms", 2.0)),
                      bool(batch.get("thread", False)))  # fmt: skip
    store = FeedbackStore(cfg.serve.feedback_db or Path(cfg.run_dir) / "feedback.sqlite")
    return create_app(engine, store, token, limits, kinds, batcher)


def settings(node, key: str, allowed) -> dict:
    """A config node as a plain dict; a key it does not take (a typo) is a ConfigError naming `key.<it>`."""
    values = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: no such setting (it takes {', '.join(sorted(allowed))})")
    return values


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


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts, so a taken port is a one-line error."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as error:
        sock.close()
        raise ConfigError(f"host={host} port={port}: cannot listen there ({error.strerror or error})") from error
    return sock


def run_server(app, cfg: DictConfig, sock: socket.socket) -> None:
    """uvicorn on the bound socket, printing "serving …" once it is listening (not before)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                print(f"serving {cfg.run_dir} on http://{cfg.host}:{cfg.port} (docs: /docs)", file=sys.stderr,
                      flush=True)  # fmt: skip

    config = uvicorn.Config(app, log_level=cfg.serve.log_level, access_log=cfg.serve.access_log)
    Server(config).run(sockets=[sock])


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="serve")
def main(cfg: DictConfig) -> None:
    quiet_lightning()
    try:
        app = build_app(cfg)
        sock = bind(str(cfg.host), int(cfg.port))
    except (RecArenaError, ValueError, FileNotFoundError) as error:
        print(f"serve: {error}", file=sys.stderr)
        sys.exit(2)
    run_server(app, cfg, sock)


if __name__ == "__main__":
    main()
