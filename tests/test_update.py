"""Feedback → next iteration: events are cleaned by the data layer's rules, `update` writes a new run folder that
records its parent, changes nothing without new events and changes the lists of the users concerned."""

import json

import numpy as np
import polars as pl
import pytest

from recarena.data.events import EventKinds, fold_events, read_events
from recarena.data.interactions import Interactions
from recarena.data.splits import TEST, TRAIN, VALID
from recarena.errors import ConfigError, DataError
from recarena.recommend import recommend
from recarena.runs import evaluate, restore_run
from recarena.update import update
from tests.test_recommend import _cli, _train


def _data() -> Interactions:
    """Users 10, 20 and items 1, 2, 3: user 10 has seen 1 (train) and 2 (test), user 20 has seen 3 (valid)."""
    frame = pl.DataFrame(
        {"u": [0, 0, 1], "i": [0, 1, 2], "ts": [1.0, 5.0, 3.0], "pos": [0, 1, 2], "part": [TRAIN, TEST, VALID]},
        schema={"u": pl.Int32, "i": pl.Int32, "ts": pl.Float64, "pos": pl.UInt32, "part": pl.Int8},
    )
    return Interactions.build(frame, np.array([10, 20]), np.array([1, 2, 3]))


def test_events_are_cleaned_and_folded_into_train():
    events = pl.DataFrame(
        {
            "user": ["10", "10", "20", "20", "20", "30", "10", "10"],
            "item": ["3", "2", "1", "1", "9", "1", "3", "3"],
            "timestamp": ["7", "8", "6", "9", "6", "10", "-1", "7.5"],
        }
    )  # kept: 10→3 at 7, 20→1 at 6 (its repeat at 9 dropped), new user 30→1; 10→2 is in the data; item 9 unknown
    folded, counts, kept = fold_events(_data(), events, "clicks.csv")
    assert counts == {"events": 8, "dropped_unknown_kind": 0, "dropped_bad_timestamp": 2, "dropped_unknown_item": 1,
                      "dropped_already_in_data": 1, "dropped_duplicate": 1, "dropped_negative_of_unknown_user": 0,
                      "kept": 3, "negatives_kept": 0, "new_users": 1}  # fmt: skip
    assert folded.user_ids.tolist() == [10, 20, 30]  # known users keep their indices, the new one is appended
    assert folded.train.toarray().tolist() == [[1, 0, 1], [1, 0, 0], [1, 0, 0]]
    assert folded.valid.toarray().tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]  # other parts untouched
    assert folded.test.toarray().tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert folded.sequences("train")[1].tolist() == [0]  # user 20's train history: item 1 at time 6
    assert kept.rows() == [("20", "1", "click", 6), ("10", "3", "click", 7), ("30", "1", "click", 10)]


def test_negative_kinds_never_become_interactions_and_unknown_kinds_are_dropped():
    events = pl.DataFrame(
        {
            "user": ["10", "010", "20", "10", "30", "20"],
            "item": ["3", "03", "2", "2", "1", "1"],
            "kind": ["dislike", " SKIP", "Purchase", "teleport", "skip", "view"],
            "timestamp": ["7", "8", "6", "9", "6", "10"],
        }
    )  # "010"/"03" are user 10 / item 3 by the integer id rule; user 30 is unknown and has only a negative event
    folded, counts, kept = fold_events(_data(), events, "feedback")
    assert counts == {"events": 6, "dropped_unknown_kind": 1, "dropped_bad_timestamp": 0, "dropped_unknown_item": 0,
                      "dropped_already_in_data": 0, "dropped_duplicate": 0, "dropped_negative_of_unknown_user": 1,
                      "kept": 2, "negatives_kept": 2, "new_users": 0}  # fmt: skip
    assert folded.train.toarray().tolist() == [[1, 0, 0], [1, 1, 0]]  # the dislike and the skip are not interactions
    assert folded.blocked(0).tolist() == [2] and folded.blocked(1).tolist() == []  # user 10 never sees item 3
    assert kept.rows() == [("20", "2", "purchase", 6), ("10", "3", "dislike", 7), ("010", "03", "skip", 8),
                           ("20", "1", "view", 10)]  # fmt: skip
    with pytest.raises(ConfigError, match=r"events: kind 'like' is both positive and negative"):
        EventKinds(positive=("click", "like"), negative=("Like",))
    with pytest.raises(ConfigError, match=r"events.negatives: not a key of the kinds' vocabulary"):
        EventKinds.from_config({"negatives": ["skip"]})  # a typo is named, not ignored


def test_raw_ids_the_id_rule_makes_one_are_one_new_user():
    events = pl.DataFrame({"user": ["5000", "05000", "7"], "item": ["1", "2", "3"], "timestamp": ["6", "7", "8"]})
    folded, counts, _ = fold_events(_data(), events, "clicks")  # integer ids: "05000" is user 5000, like "5000"
    assert folded.user_ids.tolist() == [10, 20, 5000, 7] and counts["new_users"] == 2
    assert folded.train.toarray().tolist() == [[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert folded.user_index("05000") == 2 and folded.user_index(" 7") == 3


def test_a_bad_events_table_is_named(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("user,item,time\n1,2,3\n")
    with pytest.raises(DataError, match=r"clicks.csv: column 'timestamp' is missing"):
        read_events(path)
    (tmp_path / "clicks.json").write_text("{}")
    with pytest.raises(DataError, match=r"clicks.json: expected a .parquet, .csv or .tsv"):
        read_events(tmp_path / "clicks.json")


@pytest.fixture(scope="module")
def itemcf_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("itemcf"), "model=itemcf")


def _lists(run_dir, users, k=20):
    return {u: [r["item"] for r in recommend(run_dir, u, k)] for u in users}


def _unseen(run_dir, user: int, n: int) -> list[int]:
    """The first n items of the user's test list that the user has not interacted with in any part (raw ids)."""
    data = restore_run(run_dir).datamodule.data
    seen = set(data.item_ids[data.frame.filter(pl.col("u") == data.user_index(user))["i"].to_numpy()].tolist())
    frame = pl.read_parquet(run_dir / "recommendations.parquet")
    listed = frame.filter((pl.col("user") == user) & (pl.col("stage") == "test")).sort("rank")["item"].to_list()
    return [i for i in listed if i not in seen][:n]


def test_update_without_new_events_changes_nothing(itemcf_run, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("user,item,timestamp\n")
    out = update(itemcf_run, empty, tmp_path / "next")
    record = json.loads((out / "update.json").read_text())
    assert record["parent_run"] == str(itemcf_run.resolve()) and record["cleaning"]["kept"] == 0
    parent = json.loads((itemcf_run / "metrics.json").read_text())["test"]
    assert evaluate(out)["test"] == pytest.approx(parent, abs=1e-12)


def test_update_with_feedback_changes_the_lists_of_the_users_concerned(itemcf_run, tmp_path):
    clicked = _unseen(itemcf_run, 7, 3)
    table = tmp_path / "clicks.parquet"
    pl.DataFrame(
        {"user": ["7"] * 3, "item": [str(i) for i in clicked], "timestamp": [2_000_000_000] * 3}
    ).write_parquet(table)
    out = update(itemcf_run, table, tmp_path / "next")
    before, after = _lists(itemcf_run, [7]), _lists(out, [7])
    assert set(clicked) <= set(before[7]) and not set(clicked) & set(after[7])  # now history: never recommended again
    assert pl.read_parquet(out / "events.parquet")["item"].to_list() == [str(i) for i in clicked]
    # a second update chains: the events of both generations are folded in, the parent is the first update
    more = tmp_path / "more.csv"
    more.write_text(f"user,item,timestamp\n8,{_unseen(itemcf_run, 8, 1)[0]},2000000001\n")
    second = update(out, more, tmp_path / "third")
    assert json.loads((second / "update.json").read_text())["parent_run"] == str(out)
    assert pl.read_parquet(second / "events.parquet").height == 4
    assert _lists(second, [7])[7] == after[7]


def test_a_gradient_model_fine_tunes_from_its_weights(tmp_path):
    run = _train(
        tmp_path, "model=gpt_dgrs", "trainer.max_epochs=2", "model.n_embd=16", "model.n_layer=1", "model.n_head=1",
        "model.max_len=20", "callbacks.early_stopping=null",
    )  # fmt: skip
    empty = tmp_path / "empty.csv"
    empty.write_text("user,item,timestamp\n")
    same = update(run, empty, tmp_path / "same", steps=5)
    assert _lists(same, [7, 8]) == _lists(run, [7, 8])  # no events: the parent's weights, unchanged
    clicked = _unseen(run, 7, 2)
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("user,item,timestamp\n" + "".join(f"7,{i},{2_000_000_000 + n}\n" for n, i in enumerate(clicked)))
    shown = _cli("recarena.update", f"run_dir={run}", f"feedback={clicks}", f"out_dir={tmp_path / 'next'}", "steps=5",
                 cwd=tmp_path)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-3000:]
    record = json.loads((tmp_path / "next" / "update.json").read_text())
    assert record["how"] == "fine-tune" and record["steps"] == 5 and record["users_updated"] == 1
    after = _lists(tmp_path / "next", [7])[7]
    assert after != _lists(run, [7])[7] and not set(clicked) & set(after)


def test_bad_update_settings_and_sources_are_named(itemcf_run, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("user,item,timestamp\n")
    with pytest.raises(ConfigError, match=r"steps=-1: the fine-tune's optimiser steps"):
        update(itemcf_run, empty, tmp_path / "a", steps=-1)
    with pytest.raises(ConfigError, match=r"lr_scale=0: the fine-tune's share of model.lr"):
        update(itemcf_run, empty, tmp_path / "b", lr_scale=0)
    with pytest.raises(FileNotFoundError, match=r"feedback=.*nothing.sqlite: no such database or table"):
        update(itemcf_run, tmp_path / "nothing.sqlite", tmp_path / "c")
    with pytest.raises(ConfigError, match=r"feedback=nosuch://x: cannot open this feedback database"):
        update(itemcf_run, "nosuch://x", tmp_path / "d")
    with pytest.raises(FileExistsError, match=r"out_dir=.*: exists already"):
        update(itemcf_run, empty, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv"]  # nothing half-written


def test_new_users_with_string_ids_and_out_of_range_timestamps_fold_in(itemcf_run, tmp_path):
    """ml100k's user ids are integers: a new user "newbie" turns every user id into text (the one id rule) instead of
    crashing, and a timestamp past the end of year 9999 (here int64's largest) is dropped and counted."""
    clicked = _unseen(itemcf_run, 7, 2)
    table = tmp_path / "clicks.csv"
    table.write_text(f"user,item,timestamp\nnewbie,{clicked[0]},893286703\n7,{clicked[1]},9223372036854775807\n")
    out = update(itemcf_run, table, tmp_path / "next")
    cleaning = json.loads((out / "update.json").read_text())["cleaning"]
    assert (cleaning["dropped_bad_timestamp"], cleaning["new_users"], cleaning["kept"]) == (1, 1, 1)
    newbie = [r["item"] for r in recommend(out, "newbie", 10)]
    assert len(newbie) == 10 and clicked[0] not in newbie  # the new user's click is history now
    assert _lists(out, ["7"])["7"] == _lists(itemcf_run, [7])[7]  # user 7's dropped event changed nothing
