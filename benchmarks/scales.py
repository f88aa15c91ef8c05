"""The benchmark scales as Hydra overrides: real data (MovieLens-100k and -1M, Book-Crossing's large catalogue) and
synthetic data at MovieLens-1M/20M sizes. Real datasets run with their per-dataset settings (conf/tuned/)."""

from __future__ import annotations

SCALES: dict[str, list[str]] = {
    "ml100k": ["data=ml100k"],
    "ml1m": ["data=synthetic", "data.n_users=6040", "data.n_items=3706", "data.n_interactions=1000209"],
    "ml20m": ["data=synthetic", "data.n_users=138493", "data.n_items=26744", "data.n_interactions=20000263"],
    "movielens-1m": ["data=ml1m", "split=leave_one_out"],  # the real ML-1M, 5-core: 6,040 users, 3,416 items
    "book-crossing": ["data=bookcrossing", "split=random_ratio"],  # 6,758 users, 13,674 items
}
MODELS = ("pop", "itemcf", "usercf", "mf")
DIRECT = ("itemcf", "mf")  # families with an `implicit` counterpart to measure framework overhead against


def overrides(scale: str, model: str, threads: int) -> list[str]:
    """Hydra overrides of one benchmark run (no logger; MF's implicit model gets the thread count explicitly)."""
    if scale not in SCALES:
        raise ValueError(f"--scale {scale!r}: choose one of {sorted(SCALES)}")
    extra = [f"+model.recommender.model.num_threads={threads}"] if model in ("mf", "mf_bpr") else []
    return [f"model={model}", *SCALES[scale], "logger=none", *extra]
