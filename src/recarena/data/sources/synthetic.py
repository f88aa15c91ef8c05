"""A seeded synthetic dataset with the shape of real interaction data: skewed popularity, clustered tastes, cold
users and items, timestamps and item text, at any size."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from recarena.data.sources.columns import (
    RawData,
)
from recarena.errors import DataError

log = logging.getLogger(__name__)

SYNTHETIC_T0 = 874_724_710  # timestamps look like MovieLens: seconds, starting in 1997
SYNTHETIC_SPAN = 3 * 365 * 86_400
OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive", "healthcare",
    "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer", "retired", "salesman",
    "scientist", "student", "technician", "writer",
)  # fmt: skip
SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ru",
    "te",
    "vo",
    "shi",
    "na",
    "pe",
    "zu",
    "bra",
    "quo",
    "fen",
    "dal",
    "gri",
    "mox",
)
WORDS_PER_CLUSTER = 20


@dataclass(frozen=True)
class _Pools:
    """Item pools to draw from (one per cluster, then the whole catalogue) with Zipf popularity.

    `log_rank[i]` = log(popularity rank of item i + 1); weight = (rank + 1) ** -exponent.
    """

    members: list[np.ndarray]
    log_rank: np.ndarray

    @property
    def anywhere(self) -> int:
        """Index of the whole-catalogue pool."""
        return len(self.members) - 1


def _check_synthetic(**args: float) -> None:
    """Reject sizes and fractions that cannot make a sensible dataset, naming the argument."""
    for name in ("n_users", "n_items", "n_interactions", "n_clusters"):
        value = args[name]
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise DataError(f"data.{name}={value!r}: must be a positive integer")
    if args["n_interactions"] < 5 * args["n_users"]:
        raise DataError(
            f"data.n_interactions={args['n_interactions']}: must be at least 5 * data.n_users = "
            f"{5 * int(args['n_users'])} (every user gets at least 5 interactions)"
        )
    for name in ("cold_items", "cluster_affinity"):
        if not 0.0 <= args[name] <= 1.0:
            raise DataError(f"data.{name}={args[name]!r}: must be a fraction in [0, 1]")
    links = args.get("trust_links", 0)
    if isinstance(links, bool) or int(links) != links or links < 0:
        raise DataError(f"data.trust_links={links!r}: must be a non-negative integer")
    if not 0.0 <= args["popularity_skew"] < math.inf:
        raise DataError(f"data.popularity_skew={args['popularity_skew']!r}: must be >= 0")


def _user_counts(rng: np.random.Generator, n_users: int, n_items: int, n_interactions: int) -> np.ndarray:
    """Long-tailed (lognormal) interactions per user, each >= 5, capped near half the catalogue; exact sum."""
    weights = rng.lognormal(0.0, 1.0, n_users)
    cap = max(n_items // 2, -(-n_interactions // n_users), 5) - 5  # extra interactions above the minimum of 5
    total = n_interactions - 5 * n_users
    alloc, free, remaining = np.zeros(n_users), np.ones(n_users, bool), float(total)
    for _ in range(100):  # water-filling: spread what the capped users cannot take over the others
        alloc[free] += remaining * weights[free] / weights[free].sum()
        over = alloc > cap
        remaining = float((alloc[over] - cap).sum())
        alloc[over], free = cap, free & ~over
        if remaining < 1e-6 or not free.any():
            break
    counts = np.floor(alloc).astype(np.int64)
    short = total - int(counts.sum())
    frac = np.where(counts < cap, alloc - counts, -1.0)
    counts[np.argsort(-frac, kind="stable")[:short]] += 1
    return counts + 5


def _make_pools(item_cluster: np.ndarray, rank: np.ndarray, n_clusters: int) -> _Pools:
    """Per-cluster and whole-catalogue item lists, sharing one popularity rank per item."""
    members = [np.flatnonzero(item_cluster == c) for c in range(n_clusters)] + [np.arange(len(rank))]
    return _Pools(members, np.log1p(rank.astype(np.float64)))


def _draw(rng: np.random.Generator, pools: _Pools, pool_id: np.ndarray, exponent: float) -> np.ndarray:
    """One item per row from the row's pool, with probability ∝ (popularity rank + 1) ** -exponent."""
    items = np.empty(len(pool_id), np.int64)
    order = np.argsort(pool_id, kind="stable")
    bounds = np.searchsorted(pool_id[order], np.arange(len(pools.members) + 1))
    for p, members in enumerate(pools.members):
        rows = order[bounds[p] : bounds[p + 1]]
        if not len(rows):
            continue
        cdf = np.cumsum(np.exp(-exponent * pools.log_rank[members]))
        pick = np.searchsorted(cdf, rng.random(len(rows)) * cdf[-1], side="right")
        items[rows] = members[np.minimum(pick, len(members) - 1)]
    return items


def _redraw_schedule(round_: int, skew: float) -> tuple[float, bool]:
    """(popularity exponent, draw from anywhere) for redraw round `round_`.

    Heavy users exhaust the popular items, so the exponent is tempered towards uniform (like sampling
    without replacement), and rows still stuck at the end are drawn uniformly from the whole catalogue.
    """
    if round_ < 24:
        return skew * 0.8 ** max(0, round_ - 4), False
    return 0.0, True


def _redraw_duplicates(
    rng: np.random.Generator,
    users: np.ndarray,
    items: np.ndarray,
    pool_id: np.ndarray,
    pools: _Pools,
    skew: float,
) -> None:
    """Redraw repeated (user, item) rows in place until none are left (or the user has too few items left).

    Sorted once; later rounds only test the redrawn rows against the sorted accepted keys.
    """
    n_items = len(pools.log_rank)
    keys = users * n_items + items
    order = np.argsort(keys)
    sorted_keys = keys[order]
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1]) + 1
    pending = np.sort(order[dup])
    accepted = np.delete(sorted_keys, dup)
    del keys, order, sorted_keys
    for round_ in range(64):
        if not len(pending):
            return
        exponent, anywhere = _redraw_schedule(round_, skew)
        pools_of_rows = np.full(len(pending), pools.anywhere) if anywhere else pool_id[pending]
        new = _draw(rng, pools, pools_of_rows, exponent)
        cand = users[pending] * n_items + new
        pos = np.minimum(np.searchsorted(accepted, cand), len(accepted) - 1)
        free = np.flatnonzero(accepted[pos] != cand)
        fresh, first = np.unique(cand[free], return_index=True)
        ok = free[first]
        items[pending[ok]] = new[ok]
        accepted = np.insert(accepted, np.searchsorted(accepted, fresh), fresh)
        pending = np.delete(pending, ok)


def _home_pools(
    rng: np.random.Generator,
    users: np.ndarray,
    counts: np.ndarray,
    home: np.ndarray,
    pools: _Pools,
    affinity: float,
) -> np.ndarray:
    """Each row's pool: the user's home cluster with probability `affinity`, else the whole catalogue.

    A heavy user's home share is capped at 90% of the home cluster, so the cluster cannot run out.
    """
    sizes = np.array([len(m) for m in pools.members[:-1]])
    p_home = np.minimum(affinity, 0.9 * sizes[home] / counts)
    return np.where(rng.random(len(users)) < p_home[users], home[users], pools.anywhere)


def _cold_last(users: np.ndarray, items: np.ndarray, is_cold: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Reorder each user's rows (stable) so interactions with cold items come last; returns the new items."""
    user_start = offsets[:-1][users]
    cold_before = np.cumsum(is_cold) - is_cold  # cold rows before each row, over the whole array
    cold_rank = cold_before - cold_before[offsets[:-1]][users]
    n_cold = np.add.reduceat(is_cold, offsets[:-1]) if len(users) else np.zeros(0, np.int64)
    n_warm = np.diff(offsets) - n_cold
    row_in_user = np.arange(len(users)) - user_start
    new_pos = user_start + np.where(is_cold, n_warm[users] + cold_rank, row_in_user - cold_rank)
    out = np.empty_like(items)
    out[new_pos] = items
    return out


def _cap_cold(users: np.ndarray, items: np.ndarray, cold: np.ndarray, offsets: np.ndarray, seed: int) -> np.ndarray:
    """Keep at most 2·max(1, floor(0.1·n)) cold rows per user (the default split's valid+test share), redrawing the
    rest among warm items, so that once cold rows come last they never reach train under `temporal_ratio`."""
    is_cold = cold[items].astype(np.int64)
    cold_before = np.cumsum(is_cold) - is_cold
    cold_rank = cold_before - cold_before[offsets[:-1]][users]
    n = np.diff(offsets)
    cap = np.where(n >= 3, 2 * np.maximum(1, n // 10), 0)
    over = (is_cold == 1) & (cold_rank >= cap[users])
    warm = np.flatnonzero(~cold)
    items = items.copy()
    if over.any() and warm.size:
        items[over] = np.random.default_rng([seed, 7]).choice(warm, int(over.sum()))
    return items


def _timestamps(rng: np.random.Generator, users: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Integer times strictly increasing per user; users start and stop at different points of one range.

    `users` is sorted (each user's rows together, in time order), with `counts[u]` rows for user u.
    """
    n_users = len(counts)
    first_row = np.cumsum(counts) - counts
    start = rng.uniform(0.0, 0.8, n_users) * SYNTHETIC_SPAN
    duration = rng.uniform(0.02, 1.0, n_users) * (SYNTHETIC_SPAN - start)
    mean_gap = duration / counts
    gaps = 1 + np.floor(rng.exponential(1.0, len(users)) * mean_gap[users]).astype(np.int64)
    elapsed = np.cumsum(gaps)
    before_user = elapsed[first_row] - gaps[first_row]
    return SYNTHETIC_T0 + start.astype(np.int64)[users] + elapsed - before_user[users]


def _ratings(
    rng: np.random.Generator, users: np.ndarray, items: np.ndarray, home: np.ndarray, item_cluster: np.ndarray
) -> np.ndarray:
    """Integer ratings 1..5: user and item biases plus a bonus for items of the user's home cluster."""
    user_bias = rng.normal(0.0, 0.5, len(home))
    item_bias = rng.normal(0.0, 0.5, len(item_cluster))
    in_home = item_cluster[items] == home[users]
    score = 3.0 + 1.0 * in_home - 0.3 + user_bias[users] + item_bias[items] + rng.normal(0.0, 0.8, len(users))
    return np.clip(np.rint(score), 1, 5)


def _cluster_vocabulary(n_clusters: int) -> np.ndarray:
    """(n_clusters, 20) made-up words, all distinct, so item text reveals the item's cluster."""
    size = n_clusters * WORDS_PER_CLUSTER
    base = len(SYLLABLES)
    n_syl = max(3, math.ceil(math.log(size, base)) if size > 1 else 1)
    code = (np.arange(size, dtype=np.int64) * 7919) % base**n_syl  # odd multiplier: a bijection, scrambled
    words = np.full(size, "", dtype=object)
    for digit in range(n_syl):
        words = words + np.asarray(SYLLABLES, dtype=object)[(code // base**digit) % base]
    return words.reshape(n_clusters, WORDS_PER_CLUSTER)


def _synthetic_items(rng: np.random.Generator, item_cluster: np.ndarray, n_clusters: int) -> pl.DataFrame:
    """Items: title "Item i", genres [cluster name], text of 5-8 words from the cluster's own vocabulary."""
    n_items = len(item_cluster)
    vocab = _cluster_vocabulary(n_clusters)
    picks = vocab[item_cluster[:, None], rng.integers(0, WORDS_PER_CLUSTER, (n_items, 8))]
    length = rng.integers(5, 9, n_items)
    words = pl.DataFrame({f"w{j}": picks[:, j].astype(str) for j in range(8)} | {"length": length})
    text = words.select(
        pl.concat_str(
            [pl.when(pl.col("length") > j).then(pl.col(f"w{j}")) for j in range(8)],
            separator=" ",
            ignore_nulls=True,
        )
    ).to_series()
    ids = pl.Series("item", np.arange(n_items, dtype=np.int64))
    cluster = pl.Series("cluster", item_cluster)
    return pl.DataFrame({"item": ids}).with_columns(
        pl.format("Item {}", pl.col("item")).alias("title"),
        pl.concat_list(pl.format("cluster{}", pl.lit(cluster))).alias("genres"),
        text.alias("text"),
    )


def _synthetic_users(rng: np.random.Generator, home: np.ndarray, n_clusters: int) -> pl.DataFrame:
    """Users: age, gender and an occupation that usually is the home cluster's favourite."""
    n_users = len(home)
    favourite = rng.permutation(np.resize(np.arange(len(OCCUPATIONS)), n_clusters))
    anyone = rng.integers(0, len(OCCUPATIONS), n_users)
    occupation = np.where(rng.random(n_users) < 0.7, favourite[home], anyone)
    return pl.DataFrame(
        {
            "user": np.arange(n_users, dtype=np.int64),
            "age": np.clip(np.rint(rng.normal(32.0, 11.0, n_users)), 13, 75).astype(np.int64),
            "gender": np.where(rng.random(n_users) < 0.7, "M", "F"),
            "occupation": np.asarray(OCCUPATIONS)[occupation],
        }
    )


def _cold_items(n_items: int, cold_items: float, seed: int) -> np.ndarray:
    """The "new" items of `make_synthetic` (own random stream, so tests and benchmarks can name them)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(7)[6])
    return np.sort(rng.choice(n_items, round(cold_items * n_items), replace=False))


def _trust_links(n_links: int, home: np.ndarray, seed: int) -> pl.DataFrame | None:
    """`n_links` distinct directed user → user links, 80% inside the truster's home cluster (own random stream)."""
    if n_links <= 0:
        return None
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(8)[7])
    n_users = len(home)
    truster = rng.integers(0, n_users, 2 * n_links)
    same = rng.random(2 * n_links) < 0.8
    members = np.argsort(home, kind="stable")  # users grouped by home cluster
    sizes = np.bincount(home, minlength=int(home.max()) + 1)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    cluster = home[truster]
    peers = members[starts[cluster] + (rng.random(2 * n_links) * sizes[cluster]).astype(np.int64)]
    trustee = np.where(same, peers, rng.integers(0, n_users, 2 * n_links))
    links = pl.DataFrame({"user": truster.astype(np.int64), "trustee": trustee.astype(np.int64)})
    links = links.filter(pl.col("user") != pl.col("trustee")).unique(maintain_order=True).head(n_links)
    return links.with_columns(weight=pl.lit(1.0))


def make_synthetic(
    n_users: int,
    n_items: int,
    n_interactions: int,
    seed: int = 0,
    n_clusters: int = 8,
    popularity_skew: float = 1.0,
    cold_items: float = 0.0,
    cluster_affinity: float = 0.8,
    trust_links: int = 0,
) -> RawData:
    """Seeded clustered interactions with popularity skew, per-user time order and cluster-worded item text.

    Fully vectorised (ML-20M size in seconds). Each user has a home cluster; each interaction comes from it
    with probability `cluster_affinity`, else from anywhere, Zipf-weighted (`popularity_skew`) in the pool.
    A `cold_items` share of items is "new": their interactions are each user's latest. With `trust_links` > 0,
    a social graph of that many directed links, mostly between users of one home cluster (`RawData.trust`).
    """
    _check_synthetic(
        n_users=n_users, n_items=n_items, n_interactions=n_interactions, n_clusters=n_clusters,
        popularity_skew=popularity_skew, cold_items=cold_items, cluster_affinity=cluster_affinity,
        trust_links=trust_links,
    )  # fmt: skip
    n_users, n_items, n_interactions = int(n_users), int(n_items), int(n_interactions)
    n_clusters = min(int(n_clusters), n_items)
    rng_items, rng_users, rng_rows, rng_time, rng_rate, rng_feat = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)
    )
    item_cluster = rng_items.permutation(np.arange(n_items) % n_clusters)
    rank = rng_items.permutation(n_items)  # popularity rank of each item
    cold = np.zeros(n_items, bool)
    cold[_cold_items(n_items, cold_items, seed)] = True
    home = rng_users.integers(0, n_clusters, n_users)
    counts = _user_counts(rng_users, n_users, n_items, n_interactions)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)

    pools = _make_pools(item_cluster, rank, n_clusters)
    pool_id = _home_pools(rng_rows, users, counts, home, pools, float(cluster_affinity))
    items = _draw(rng_rows, pools, pool_id, float(popularity_skew))
    _redraw_duplicates(rng_rows, users, items, pool_id, pools, float(popularity_skew))
    del pool_id
    if cold.any():
        items = _cap_cold(users, items, cold, offsets, seed)
        items = _cold_last(users, items, cold[items].astype(np.int64), offsets)
    inter = pl.DataFrame(
        {
            "user": users,
            "item": items,
            "rating": _ratings(rng_rate, users, items, home, item_cluster).astype(np.float64),
            "timestamp": _timestamps(rng_time, users, counts).astype(np.float64),
        }
    )
    origin = f"synthetic(n_users={n_users}, n_items={n_items}, n_interactions={n_interactions}, seed={seed})"
    items_table = _synthetic_items(rng_feat, item_cluster, n_clusters)
    users_table = _synthetic_users(rng_feat, home, n_clusters)
    trust = _trust_links(int(trust_links), home, seed)
    return RawData("synthetic", inter, items_table, users_table, origin, trust=trust)
