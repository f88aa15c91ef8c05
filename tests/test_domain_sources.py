"""The design's other domains, read from small files in the exact public formats: Amazon reviews (e-commerce; the
2014 5-core files with Python-literal metadata, and the 2023 JSON lines) and Last.fm HetRec 2011 (music)."""

from __future__ import annotations

import gzip
import json

import pytest

from recarena.data.sources import load_amazon, load_lastfm
from recarena.errors import ConfigError, DataError
from recarena.text.item_text import item_texts
from recarena.utils.instantiate import build
from tests.conftest import compose_config, saved_list_metrics

REVIEWS_2014 = [  # reviewerID, asin, overall, unixReviewTime (+ fields the loader ignores)
    {"reviewerID": "A1", "asin": "B01", "reviewerName": "Ann", "helpful": [0, 0], "reviewText": "great",
     "overall": 5.0, "summary": "ok", "unixReviewTime": 1252800000, "reviewTime": "09 13, 2009"},
    {"reviewerID": "A1", "asin": "B02", "overall": 3.0, "unixReviewTime": 1252900000},
    {"reviewerID": "A2", "asin": "B01", "overall": 4.0, "unixReviewTime": 1253000000},
]  # fmt: skip
META_2014 = [  # Python literals, as the 2014 metadata files are (single quotes: not JSON)
    "{'asin': 'B01', 'title': 'Rose Soap', 'brand': 'Acme', 'categories': [['Beauty', 'Bath'], ['Beauty', 'Soap']], "
    "'salesRank': {'Beauty': 12}}",
    "{'asin': 'B02', 'title': 'Loofah', 'categories': [['Beauty', 'Bath']], 'description': 'A sponge.'}",
]
REVIEWS_2023 = [  # user_id, parent_asin, rating, timestamp in milliseconds
    {"rating": 4.0, "title": "fine", "text": "works", "images": [], "asin": "X1a", "parent_asin": "X1",
     "user_id": "U9", "timestamp": 1588687728923, "helpful_vote": 0, "verified_purchase": True},
    {"rating": 2.0, "asin": "X2", "parent_asin": "X2", "user_id": "U9", "timestamp": 1588687729923},
]  # fmt: skip
META_2023 = [
    {"main_category": "All Beauty", "title": "Hair Oil", "store": "Oily", "categories": [],
     "description": ["Nourishes.", "Smells nice."], "parent_asin": "X1"},
]  # fmt: skip


def _write_gz(path, lines: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def test_amazon_2014_five_core_reviews_and_python_literal_metadata(tmp_path):
    reviews, meta = tmp_path / "reviews_Beauty_5.json.gz", tmp_path / "meta_Beauty.json.gz"
    _write_gz(reviews, [json.dumps(r) for r in REVIEWS_2014])
    _write_gz(meta, META_2014)
    raw = load_amazon(reviews, meta)
    assert raw.name == "reviews_Beauty_5" and raw.timestamps
    assert raw.interactions.to_dicts() == [
        {"user": "A1", "item": "B01", "rating": 5.0, "timestamp": 1252800000.0},
        {"user": "A1", "item": "B02", "rating": 3.0, "timestamp": 1252900000.0},
        {"user": "A2", "item": "B01", "rating": 4.0, "timestamp": 1253000000.0},
    ]
    items = raw.items.sort("item")
    assert items["title"].to_list() == ["Rose Soap", "Loofah"] and items["brand"].to_list() == ["Acme", None]
    assert items["categories"].to_list() == [["Beauty", "Bath", "Soap"], ["Beauty", "Bath"]]
    assert items["description"].to_list() == [None, "A sponge."]


def test_amazon_2023_json_lines_with_millisecond_times_and_item_text(tmp_path, run_train):
    reviews, meta = tmp_path / "All_Beauty.jsonl", tmp_path / "meta_All_Beauty.jsonl"
    reviews.write_text("".join(json.dumps(r) + "\n" for r in REVIEWS_2023))
    meta.write_text("".join(json.dumps(r) + "\n" for r in META_2023))
    raw = load_amazon(reviews, meta)
    assert raw.interactions["item"].to_list() == ["X1", "X2"]  # parent_asin: the 2023 product id
    assert raw.interactions["timestamp"].to_list() == [1588687728.923, 1588687729.923]  # ms → s
    (row,) = raw.items.to_dicts()
    assert row == {"item": "X1", "title": "Hair Oil", "brand": "Oily", "categories": ["All Beauty"],
                   "description": "Nourishes. Smells nice."}  # fmt: skip


@pytest.mark.parametrize(
    "content, message",
    [
        ([json.dumps(REVIEWS_2014[0]), '{"reviewerID": "A3", "asin": ', json.dumps(REVIEWS_2014[1])],
         r"reviews.json.gz:2: malformed JSON"),
        ([json.dumps(REVIEWS_2014[0]), json.dumps({"reviewerID": "A3", "asin": "B9", "unixReviewTime": 1})],
         r"reviews.json.gz:2: the review has no 'overall'"),
        ([json.dumps({**REVIEWS_2014[0], "overall": "five"})], r"reviews.json.gz:1: overall='five' is not a number"),
        ([json.dumps({"user": "x", "movie": "y"})], r"reviews.json.gz:1: not an Amazon review"),
    ],
)  # fmt: skip
def test_amazon_bad_lines_are_named_with_their_line(tmp_path, content, message):
    reviews = tmp_path / "reviews.json.gz"
    _write_gz(reviews, content)
    with pytest.raises(DataError, match=message):
        load_amazon(reviews)


def test_a_truncated_gzip_file_is_named(tmp_path):
    whole = tmp_path / "whole.json.gz"
    _write_gz(whole, [json.dumps(REVIEWS_2014[i % 3]) for i in range(2000)])
    cut = tmp_path / "reviews.json.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError, match=r"reviews.json.gz: the gzip stream is truncated or corrupt after line \d+"):
        load_amazon(cut)


def test_amazon_metadata_that_is_neither_json_nor_a_literal_is_named(tmp_path):
    reviews, meta = tmp_path / "r.json", tmp_path / "meta.json"
    reviews.write_text(json.dumps(REVIEWS_2014[0]) + "\n")
    meta.write_text(META_2014[0] + "\n{'asin': 'B02', 'title': \n")
    with pytest.raises(DataError, match=r"meta.json:2: neither JSON nor a Python literal"):
        load_amazon(reviews, meta)


# -- Last.fm HetRec 2011 ------------------------------------------------------------------------------------------
def write_lastfm(folder, plays: list[tuple[int, int, int]]) -> None:
    """The four HetRec files (tab-separated, header rows) for 4 artists; tags.dat in latin-1 as distributed."""
    folder.mkdir(exist_ok=True)
    (folder / "user_artists.dat").write_text(
        "userID\tartistID\tweight\n" + "".join(f"{u}\t{a}\t{w}\n" for u, a, w in plays)
    )
    (folder / "artists.dat").write_text(
        "id\tname\turl\tpictureURL\n1\tMALICE MIZER\thttp://x/1\t\n2\tDiary of Dreams\thttp://x/2\t\n"
        "3\tCarpathian Forest\thttp://x/3\t\n4\tMoi dix Mois\thttp://x/4\t\n"
    )
    (folder / "tags.dat").write_bytes("tagID\ttagValue\n1\tj-rock\n2\tgothic\n3\tmétal\n".encode("latin-1"))
    (folder / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n"
        "2\t1\t1\t1\t4\t2009\n3\t1\t1\t1\t4\t2009\n2\t1\t2\t1\t4\t2009\n2\t2\t2\t1\t4\t2009\n2\t3\t3\t1\t4\t2009\n"
    )


def test_lastfm_plays_are_implicit_weights_and_artists_carry_their_tags(tmp_path):
    write_lastfm(tmp_path / "lastfm", [(2, 1, 13883), (2, 2, 11690), (3, 1, 5), (3, 4, 7)])
    raw = load_lastfm(tmp_path / "lastfm")
    assert not raw.timestamps and raw.interactions["timestamp"].null_count() == 4
    assert raw.interactions.select("user", "item", "rating").rows() == [
        (2, 1, 13883.0), (2, 2, 11690.0), (3, 1, 5.0), (3, 4, 7.0),
    ]  # fmt: skip
    items = {row["item"]: row for row in raw.items.to_dicts()}
    assert items[1]["title"] == "MALICE MIZER" and items[1]["tags"] == ["j-rock", "gothic"]  # most used first
    assert items[3]["tags"] == ["métal"] and items[4]["tags"] is None  # latin-1 read; an untagged artist


def test_lastfm_refuses_time_based_splits_by_name_and_runs_on_a_random_split(tmp_path, run_train):
    plays = [(u, a, 10 * u + a) for u in range(1, 13) for a in range(1, 5)]
    write_lastfm(tmp_path / "lastfm", plays)
    common = ("data=lastfm", f"data.path={tmp_path / 'lastfm'}", "logger=none", "eval.ks=[1,2]", "model=itemcf")
    with pytest.raises(ConfigError, match=r"split=temporal_ratio: data=lastfm has no timestamps .* split=random_ratio"):
        run_train(*common)
    results, out = run_train(*common, "split=random_ratio")
    assert results["test"]["recall@2"] == pytest.approx(saved_list_metrics(out, "test", 2)["recall@2"], abs=1e-9)


def test_lastfm_named_errors(tmp_path):
    folder = tmp_path / "lastfm"
    write_lastfm(folder, [(2, 1, 3)])
    (folder / "user_artists.dat").write_text("userID\tartist\tweight\n2\t1\t3\n")
    with pytest.raises(DataError, match=r"user_artists.dat.*artistID"):
        load_lastfm(folder)
    (folder / "user_artists.dat").write_text("userID\tartistID\tweight\n2\t1\t3\n2\t7\tlots\n")
    with pytest.raises(DataError, match=r"user_artists.dat line 3: weight 'lots' is not a number"):
        load_lastfm(folder)
    with pytest.raises(DataError, match=r"no user_artists.dat"):
        load_lastfm(tmp_path)


def test_product_and_artist_text_through_the_item_templates(tmp_path):
    reviews, meta = tmp_path / "r.json", tmp_path / "m.json"
    reviews.write_text("".join(json.dumps(r) + "\n" for r in REVIEWS_2014))
    meta.write_text("\n".join(META_2014) + "\n")
    cfg = compose_config(["data=amazon", f"data.path={reviews}", f"data.meta_path={meta}", "split=random_ratio",
                          "split.min_interactions=1"], tmp_path)  # fmt: skip
    module = build(cfg.data, "data")
    module.setup()
    texts = dict(zip(module.data.item_ids.tolist(), item_texts(module.data), strict=True))
    assert texts == {"B01": "Rose Soap. Brand: Acme. Categories: Beauty, Bath, Soap",
                     "B02": "Loofah. Categories: Beauty, Bath"}  # fmt: skip


def test_amazon_2018_json_metadata_with_category_and_description_lists(tmp_path):
    reviews, meta = tmp_path / "Luxury_Beauty.json", tmp_path / "meta_Luxury_Beauty.json"
    reviews.write_text(json.dumps({"overall": 5.0, "verified": True, "reviewerID": "R1", "asin": "B03",
                                   "unixReviewTime": 1383350400, "style": {"Size:": " 3.4 oz"}}) + "\n")  # fmt: skip
    product = {"category": ["Luxury Beauty", "Skin Care"], "description": ["<p>Soft</p>", "cream."],
               "title": "Night Cream", "brand": "Lux", "asin": "B03", "price": "$30"}  # fmt: skip
    meta.write_text(json.dumps(product) + "\n")
    raw = load_amazon(reviews, meta)
    assert raw.interactions.rows() == [("R1", "B03", 5.0, 1383350400.0)]
    (row,) = raw.items.to_dicts()
    assert row["categories"] == ["Luxury Beauty", "Skin Care"] and row["description"] == "<p>Soft</p> cream."
    assert row["title"] == "Night Cream" and row["brand"] == "Lux"  # markup is cleaned when text is rendered


def test_all_digit_asins_keep_their_leading_zeros_in_reviews_and_metadata(tmp_path):
    """Books ASINs are ISBN-10s such as 0000013714: ids, not numbers, so metadata rows still join the reviews."""
    reviews, meta = tmp_path / "reviews_Books_5.json", tmp_path / "meta_Books.json"
    reviews.write_text("".join(json.dumps({"reviewerID": "A1", "asin": a, "overall": 4.0, "unixReviewTime": 1 + i})
                               + "\n" for i, a in enumerate(["0000013714", "0000031852"])))  # fmt: skip
    meta.write_text("{'asin': '0000013714', 'title': 'Hymns'}\n{'asin': '0000031852', 'title': 'Tutu'}\n")
    raw = load_amazon(reviews, meta)
    assert raw.interactions["item"].to_list() == ["0000013714", "0000031852"]
    assert dict(raw.items.select("item", "title").rows()) == {"0000013714": "Hymns", "0000031852": "Tutu"}
