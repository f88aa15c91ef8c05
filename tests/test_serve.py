"""The recommendation service, over real HTTP on 127.0.0.1 with a real SQLite feedback database: it answers what
`recommend` answers, names the field at fault, guards writes with a token, and loses no acknowledged feedback."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import polars as pl
import pytest

from recarena.data.feedback import FeedbackStore
from recarena.recommend import recommend
from recarena.serving.engine import Engine
from tests.test_recommend import _train, gpt_run  # noqa: F401  (gpt_run: the module fixture, shared)

TOKEN = "s3cret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(run_dir: Path, *overrides: str, token: str | None = None):
    """`python -m recarena.serve run_dir=… port=…` as a child process; yields (client, process) once /health answers."""
    port = _free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("RECARENA_WRITE_TOKEN", None)
    if token:
        env["RECARENA_WRITE_TOKEN"] = token
    command = [sys.executable, "-m", "recarena.serve", f"run_dir={run_dir}", f"port={port}", *overrides]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.time() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {process.stdout.read()[-3000:]}")
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "the server did not come up in 120 s"
            time.sleep(0.2)
        yield client, process
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            process.wait(30)


@pytest.fixture(scope="module")
def itemcf_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("itemcf"), "model=itemcf")


@pytest.fixture(scope="module")
def itemcf_mmr_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("itemcf_mmr"), "model=itemcf", "rerank=mmr", "rerank.lam=0.3")


@pytest.fixture(scope="module")
def itemcf_server(itemcf_run):
    with serving(itemcf_run, token=TOKEN) as (client, _):
        yield client


def _items(body: dict) -> list[str]:
    return [row["item"] for row in body["items"]]


@pytest.mark.parametrize("run", ["itemcf_run", "gpt_run", "itemcf_mmr_run"])  # the last re-ranks its lists
def test_a_known_users_list_is_the_one_recommend_gives(run, request):
    run_dir = request.getfixturevalue(run)
    with serving(run_dir) as (client, _):
        users = pl.read_parquet(run_dir / "recommendations.parquet")["user"].unique(maintain_order=True)[:3]
        for user in users.to_list():
            body = client.get("/recommend", params={"user": str(user), "k": 5}).json()
            expected = recommend(run_dir, user, 5)
            assert body["fallback"] is None and body["user"] == str(user)
            assert _items(body) == [str(r["item"]) for r in expected]
            assert [row["score"] for row in body["items"]] == pytest.approx([r["score"] for r in expected], rel=1e-5)
            assert [row["explanation"] for row in body["items"]] == [r["explanation"] for r in expected]


def test_a_session_with_a_users_history_gets_that_users_list(itemcf_run, itemcf_server):
    engine = Engine(itemcf_run)
    history = [str(engine.data.item_ids[i]) for i in engine.sequences[7]]
    session = itemcf_server.post("/recommend", json={"history": history, "k": 5}).json()
    user = itemcf_server.get("/recommend", params={"user": "7", "k": 5}).json()
    assert session["fallback"] is None and _items(session) == _items(user)


def test_unknown_user_and_empty_or_unscorable_histories_get_a_flagged_popularity_list(itemcf_server, tmp_path):
    body = itemcf_server.get("/recommend", params={"user": "nobody", "k": 3}).json()
    assert body["fallback"] == "popularity" and "not in the run's data" in body["reason"] and len(body["items"]) == 3
    counts = [row["score"] for row in body["items"]]
    assert counts == sorted(counts, reverse=True) and body["items"][0]["explanation"].startswith("popular: ")
    empty = itemcf_server.post("/recommend", json={"history": [], "k": 3}).json()
    assert empty["fallback"] == "popularity" and _items(empty) == _items(body)
    mf = Engine(_train(tmp_path, "model=mf"))  # user factors: a new history cannot be scored without an update
    seen = [str(mf.data.item_ids[i]) for i in (0, 1)]
    answer = mf.for_history(seen, 4)
    assert answer.fallback == "popularity" and "update" in answer.reason
    assert not set(seen) & {row["item"] for row in answer.items}


def test_bad_requests_are_4xx_naming_the_field(itemcf_server):
    def detail(response: httpx.Response) -> list:
        assert response.status_code == 422, response.text
        return response.json()["detail"]

    assert detail(itemcf_server.get("/recommend", params={"user": "7", "k": 0}))[0]["loc"] == ["query", "k"]
    too_many = detail(itemcf_server.get("/recommend", params={"user": "7", "k": 10**6}))[0]
    assert too_many["loc"] == ["query", "k"] and "catalogue" in too_many["msg"]
    assert detail(itemcf_server.get("/recommend", params={"k": 3}))[0]["loc"] == ["query", "user"]
    bad_json = itemcf_server.post(
        "/recommend", content=b'{"history": [1,', headers={"content-type": "application/json"}
    )
    assert detail(bad_json)[0]["type"] == "json_invalid"
    unknown = detail(itemcf_server.post("/recommend", json={"history": ["0", "no-such-item"], "k": 3}))[0]
    assert unknown["loc"] == ["body", "history", 1] and "no-such-item" in unknown["msg"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    event = {"user": "7", "item": "no-such-item", "kind": "click", "timestamp": 881250949}
    unknown = detail(itemcf_server.post("/feedback", json={"events": [event]}, headers=headers))[0]
    assert unknown["loc"] == ["body", "events", 0, "item"]
    event = {"user": "7", "item": "0", "timestamp": -5}
    assert detail(itemcf_server.post("/feedback", json={"events": [event]}, headers=headers))[0]["loc"] == [
        "body", "events", 0, "timestamp"]  # fmt: skip
    assert detail(itemcf_server.post("/feedback", json={"events": []}, headers=headers))[0]["loc"] == ["body", "events"]
    # strict types: JSON true is neither the item "1" nor k=1
    assert detail(itemcf_server.post("/recommend", json={"history": [True], "k": 3}))[0]["loc"][:3] == [
        "body", "history", 0]  # fmt: skip
    assert detail(itemcf_server.post("/recommend", json={"history": ["1"], "k": True}))[0]["loc"] == ["body", "k"]
    # a timestamp past the end of year 9999 (int64's largest here, and one above it) is refused, not stored
    for too_late in (2**63 - 1, 2**63):
        event = {"user": "7", "item": "1", "timestamp": too_late}
        assert detail(itemcf_server.post("/feedback", json={"events": [event]}, headers=headers))[0]["loc"] == [
            "body", "events", 0, "timestamp"]  # fmt: skip


def test_writes_need_the_token_when_one_is_set(itemcf_server, itemcf_run):
    events = {"events": [{"user": 7, "item": 0, "kind": "click", "timestamp": 881250949}]}
    assert itemcf_server.post("/feedback", json=events).status_code == 401
    assert itemcf_server.post("/feedback", json=events, headers={"Authorization": "Bearer nope"}).status_code == 403
    before = FeedbackStore(itemcf_run / "feedback.sqlite").count()
    ok = itemcf_server.post("/feedback", json=events, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json() == {"stored": 1}
    frame = FeedbackStore(itemcf_run / "feedback.sqlite").frame()
    assert frame.height == before + 1 and frame.row(-1, named=True)["user"] == "7"  # ids stored as strings
    assert itemcf_server.get("/openapi.json").json()["paths"].keys() >= {"/recommend", "/feedback", "/health"}


def test_acknowledged_feedback_survives_sigkill_and_concurrent_clients(itemcf_run, tmp_path):
    database = tmp_path / "feedback.sqlite"

    def post(client: httpx.Client, n: int) -> int:
        event = {"user": str(n % 50), "item": str(n % 30), "kind": "click", "timestamp": 881250949 + n}
        response = client.post("/feedback", json={"events": [event, {**event, "kind": "view"}]})
        assert response.status_code == 200, response.text
        return response.json()["stored"]

    with serving(itemcf_run, f"serve.feedback_db=sqlite:///{database}") as (client, process):  # a database URL
        acknowledged = sum(post(client, n) for n in range(40))
        base = str(client.base_url)
        with ThreadPoolExecutor(8) as pool:  # 8 clients, each with its own connection
            clients = [httpx.Client(base_url=base, timeout=60) for _ in range(8)]
            acknowledged += sum(pool.map(lambda n: post(clients[n % 8], n), range(40, 200)))
        process.send_signal(signal.SIGKILL)  # no shutdown, no flush: only what was committed remains
        process.wait(30)
    assert acknowledged == 400
    store = FeedbackStore(database)
    assert store.count() == 400
    assert store.frame()["kind"].value_counts().sort("kind")["count"].to_list() == [200, 200]


def test_open_writes_beyond_loopback_and_empty_tokens_are_refused(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from recarena.errors import ConfigError
    from recarena.serve import write_token

    def cfg(host: str, allow: bool = False):
        return OmegaConf.create(
            {"host": host, "serve": {"token_env": "RECARENA_WRITE_TOKEN", "allow_open_writes": allow}}
        )

    monkeypatch.delenv("RECARENA_WRITE_TOKEN", raising=False)
    assert write_token(cfg("127.0.0.1")) is None and write_token(cfg("::1")) is None  # loopback: open is fine
    with pytest.raises(ConfigError, match=r"host=0.0.0.0: serving beyond this machine with no write token"):
        write_token(cfg("0.0.0.0"))
    assert write_token(cfg("0.0.0.0", allow=True)) is None  # said explicitly (a warning is printed)
    monkeypatch.setenv("RECARENA_WRITE_TOKEN", "")
    with pytest.raises(ConfigError, match=r"RECARENA_WRITE_TOKEN is set but empty"):
        write_token(cfg("127.0.0.1"))
    monkeypatch.setenv("RECARENA_WRITE_TOKEN", TOKEN)
    assert write_token(cfg("0.0.0.0")) == TOKEN
    # the command line ends with the one-line message and status 2, before any run is read
    env = {k: v for k, v in os.environ.items() if k != "RECARENA_WRITE_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "recarena.serve", f"run_dir={tmp_path}", "host=0.0.0.0"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("serve: host=0.0.0.0: serving beyond this machine")


def test_a_foreign_database_is_never_written_and_passwords_are_not_printed(itemcf_run, tmp_path):
    import hashlib
    import sqlite3

    from recarena.data.feedback import redacted
    from recarena.errors import ConfigError
    from recarena.update import update

    foreign = tmp_path / "shop.sqlite"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, sku TEXT)")
        connection.execute("INSERT INTO orders (sku) VALUES ('a1')")
    before = hashlib.sha256(foreign.read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match=r"shop.sqlite: not a recarena feedback database \(no 'feedback' table; "
                                          r"its tables: \['orders'\]\); nothing was written"):  # fmt: skip
        update(itemcf_run, foreign, tmp_path / "next")
    assert hashlib.sha256(foreign.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.sqlite"]  # no journal, no run folder
    assert redacted("postgresql://alice:hunter2@db.example/feedback") == "postgresql://alice:***@db.example/feedback"
    with pytest.raises(ConfigError) as error:
        FeedbackStore("postgresql+nosuchdriver://alice:hunter2@127.0.0.1/feedback")
    assert "hunter2" not in str(error.value) and "alice:***@" in str(error.value)


def test_negative_feedback_keeps_items_out_of_lists_and_never_becomes_history(itemcf_run, tmp_path):
    """server → update → serve: a dislike and a skip are stored, never folded in as interactions, and their items
    leave that user's served and printed lists; an unknown kind is refused by name; "008" is user 8 everywhere."""
    from recarena.update import update

    database = tmp_path / "feedback.sqlite"
    with serving(itemcf_run, f"serve.feedback_db={database}") as (client, _):
        before = _items(client.get("/recommend", params={"user": "8", "k": 6}).json())
        assert _items(client.get("/recommend", params={"user": "008", "k": 6}).json()) == before  # one id rule
        events = [{"user": "8", "item": before[0], "kind": "dislike", "timestamp": 893286703},
                  {"user": 8, "item": before[2], "kind": "skip", "timestamp": 893286704}]  # fmt: skip
        assert client.post("/feedback", json={"events": events}).json() == {"stored": 2}
        odd = client.post("/feedback", json={"events": [{**events[0], "kind": "teleport"}]})
        assert odd.status_code == 422 and odd.json()["detail"][0]["loc"] == ["body", "events", 0, "kind"]
        assert "'teleport' is not a known kind" in odd.json()["detail"][0]["msg"]
    out = update(itemcf_run, database, tmp_path / "next")
    cleaning = json.loads((out / "update.json").read_text())["cleaning"]
    assert (cleaning["kept"], cleaning["negatives_kept"]) == (0, 2)
    parent, updated = Engine(itemcf_run), Engine(out)
    assert (updated.known != parent.known).nnz == 0  # no interaction was added: negatives are not history
    expected = [item for item in before if item not in (before[0], before[2])]
    with serving(out) as (client, _):
        served = _items(client.get("/recommend", params={"user": "8", "k": 4}).json())
    assert served == expected
    assert [str(r["item"]) for r in recommend(out, "008", 4)] == expected
    assert [r["rank"] for r in recommend(out, 8, 4)] == [1, 2, 3, 4]
