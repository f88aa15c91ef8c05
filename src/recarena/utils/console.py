"""Console output of the command lines: Lightning's banners and bars quietened so a result is readable."""

from __future__ import annotations

import logging
import os
import sys
import warnings


def quiet_lightning() -> None:
    """Warnings only, and not the expected ones: Lightning's banners and progress bars would drown the result."""
    import pytorch_lightning  # noqa: F401  (its import sets its logger to INFO: quiet it after, not before)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("pytorch_lightning", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # save_pretrained at a generative model's test end
    if "transformers" in sys.modules:  # already imported (text encoders): its bar setting is read at import
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=r".*isinstance.treespec, LeafSpec.*")
