"""`python -m recarena.serve run_dir=<run> port=8000`: serve a finished run's recommendations and collect feedback.

GET /recommend?user=<raw id>&k=10, POST /recommend {"history": [...]}, POST /feedback {"events": [...]},
GET /health, OpenAPI docs at /docs. Bound to 127.0.0.1 unless `host=` says otherwise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from recarena.errors import RecArenaError
from recarena.eval import quiet_lightning
from recarena.utils.compose import CONFIG_DIR


def build_app(cfg: DictConfig):
    """The FastAPI app for `cfg` (engine loaded, feedback database opened)."""
    from recarena.serving.app import create_app
    from recarena.serving.engine import Engine
    from recarena.serving.feedback import FeedbackStore

    engine = Engine(cfg.run_dir, cfg.data_dir, cfg.accelerator)
    store = FeedbackStore(cfg.serve.feedback_db or Path(cfg.run_dir) / "feedback.sqlite")
    token = os.environ.get(cfg.serve.token_env) if cfg.serve.token_env else None
    return create_app(engine, store, token or None)


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
