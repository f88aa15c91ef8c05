"""The service under hostile and careless clients, over real HTTP on 127.0.0.1: bodies too large or too slow, writes
without a token, damaged run folders, a taken port, requests generated from the service's own OpenAPI schema, and
concurrent requests batched into one model call yet answered exactly as one at a time."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from recarena.serving.engine import Engine
from tests.test_recommend import gpt_run  # noqa: F401  (the module fixture, shared)
from tests.test_serve import TOKEN, _free_port, _items, itemcf_run, serving  # noqa: F401

LIMIT = 262_144  # serve.limits.max_body_bytes in these tests (256 KiB)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _raw(port: int, head: bytes, body: bytes = b"", timeout: float = 30) -> bytes:
    """Send a request's head and (part of) a body on a raw socket; the server's whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def _port(client: httpx.Client) -> int:
    return int(str(client.base_url).rstrip("/").rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def guarded(itemcf_run, tmp_path_factory):  # noqa: F811
    database = tmp_path_factory.mktemp("guarded") / "feedback.sqlite"
    limits = [f"serve.limits.max_body_bytes={LIMIT}", "serve.limits.body_timeout_s=2", "serve.limits.max_history=50",
              "serve.limits.max_events=20"]  # fmt: skip
    overrides = (f"serve.feedback_db={database}", *limits)
    with serving(itemcf_run, *overrides, token=TOKEN) as (client, process):
        yield client, process


def test_oversized_bodies_are_refused_before_parsing_and_memory_does_not_grow(guarded):
    client, process = guarded
    port = _port(client)
    before = _rss_mib(process.pid)
    head = (b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n\r\n")  # fmt: skip
    for _ in range(5):  # a declared 50 MB body: refused by its Content-Length, its bytes never read
        answer = _raw(port, head, b'{"history": [' + b'"1",' * 16_000)
        assert answer.startswith(b"HTTP/1.1 413") and b"serve.limits.max_body_bytes" in answer
    chunked = client.post("/recommend", content=(b"x" * 16_384 for _ in range(64)),  # 1 MiB with no Content-Length
                          headers={"content-type": "application/json"})  # fmt: skip
    assert chunked.status_code == 413
    assert _rss_mib(process.pid) - before < 20  # nothing was buffered past the limit
    assert client.get("/health").status_code == 200


def test_the_write_token_is_checked_before_the_body_is_read(guarded):
    client, _ = guarded
    huge = b'{"events": [' + b"0" * (4 * LIMIT) + b"]}"  # over the limit too: the 401/403 comes first
    assert client.post("/feedback", content=huge, headers={"content-type": "application/json"}).status_code == 401
    wrong = {"content-type": "application/json", "Authorization": "Bearer nope"}
    assert client.post("/feedback", content=huge, headers=wrong).status_code == 403
    right = {"content-type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    assert client.post("/feedback", content=huge, headers=right).status_code == 413


def test_history_and_events_per_request_are_bounded_by_name(guarded):
    client, _ = guarded
    long = client.post("/recommend", json={"history": ["1"] * 51, "k": 3})
    assert long.status_code == 422 and long.json()["detail"][0]["loc"] == ["body", "history"]
    assert "at most 50 (serve.limits.max_history)" in long.json()["detail"][0]["msg"]
    event = {"user": "7", "item": "1", "kind": "click", "timestamp": 881250949}
    many = client.post("/feedback", json={"events": [event] * 21}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert many.status_code == 422 and many.json()["detail"][0]["loc"] == ["body", "events"]
    assert client.post("/recommend", json={"history": ["1"] * 50, "k": 3}).status_code == 200


def test_a_half_sent_body_times_out_without_holding_anyone_else(guarded):
    client, _ = guarded
    head = b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    with ThreadPoolExecutor(1) as pool:
        start = time.perf_counter()
        pending = pool.submit(_raw, _port(client), head, b'{"history"')  # 10 of 100 bytes, then silence
        time.sleep(0.3)
        assert client.get("/health").status_code == 200 and not pending.done()  # others are served meanwhile
        answer = pending.result(timeout=30)
    assert answer.startswith(b"HTTP/1.1 408") and b"serve.limits.body_timeout_s" in answer
    assert 2 <= time.perf_counter() - start < 10


def test_the_docs_load_without_the_internet(guarded):
    client, _ = guarded
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "<html" in html.lower() and not re.findall(r"(?:https?:)?//[\w.-]+\.\w+/", html), page
        assets = re.findall(r"""["'](/static-offline-docs/[\w./-]+)["']""", html)
        assert assets and all(client.get(asset).status_code == 200 for asset in assets)


def _serve(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RECARENA_WRITE_TOKEN"}
    return subprocess.run([sys.executable, "-m", "recarena.serve", f"run_dir={run_dir}", *overrides], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_a_damaged_run_or_a_taken_port_ends_in_one_line_and_status_2(gpt_run, itemcf_run, tmp_path):  # noqa: F811
    broken = shutil.copytree(gpt_run, tmp_path / "gpt", ignore=shutil.ignore_patterns("wandb"))
    for checkpoint in (broken / "checkpoints").glob("*.ckpt"):
        checkpoint.write_bytes(b"PK\x03\x04 not a checkpoint")
    done = _serve(broken)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
    assert done.stderr.startswith("serve: ") and ".ckpt: unreadable checkpoint" in done.stderr
    garbled = shutil.copytree(itemcf_run, tmp_path / "itemcf", ignore=shutil.ignore_patterns("wandb"))
    (garbled / ".hydra" / "config.yaml").write_text("model: [unclosed\n")
    done = _serve(garbled)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
    assert done.stderr.startswith("serve: ") and "config.yaml: unreadable run config" in done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(itemcf_run, f"port={port}")
    assert done.returncode == 2 and done.stderr.strip() == (
        f"serve: host=127.0.0.1 port={port}: cannot listen there (Address already in use)")
    assert "serving" not in done.stdout + done.stderr


def test_serving_is_announced_once_the_port_listens(itemcf_run):  # noqa: F811
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RECARENA_WRITE_TOKEN"}
    process = subprocess.Popen([sys.executable, "-m", "recarena.serve", f"run_dir={itemcf_run}", f"port={port}"],
                               env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = process.stderr.readline()
        assert line.startswith(f"serving {itemcf_run} on http://127.0.0.1:{port}"), line
        with socket.create_connection(("127.0.0.1", port), timeout=1):  # listening already, no retry needed
            pass
    finally:
        process.terminate()
        process.wait(30)


@pytest.mark.parametrize("thread", [False, True], ids=["on-the-loop", "worker-thread"])
def test_batched_answers_equal_one_at_a_time_and_waits_are_bounded(gpt_run, thread):  # noqa: F811
    engine = Engine(gpt_run)
    users = [str(u) for u in engine.data.user_ids[:40].tolist()]
    alone = {u: engine.for_user(u, 5) for u in users}
    histories = [[str(engine.data.item_ids[i]) for i in engine.sequences[n][-6:]] for n in range(10)]
    sessions = [engine.for_history(h, 5) for h in histories]
    window = 20
    settings = ("serve.batch.max_size=16", f"serve.batch.window_ms={window}", f"serve.batch.thread={thread}")
    with serving(gpt_run, *settings) as (client, _):
        base = str(client.base_url)
        clients = [httpx.Client(base_url=base, timeout=60) for _ in range(8)]

        def ask(n: int) -> dict:
            if n < len(users):
                return clients[n % 8].get("/recommend", params={"user": users[n], "k": 5}).json()
            return clients[n % 8].post("/recommend", json={"history": histories[n - len(users)], "k": 5}).json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(len(users) + len(histories))))
        stats = client.get("/health").json()["batches"]
    for answer, expected in zip(answers, [alone[u] for u in users] + sessions, strict=True):
        assert _items(answer) == [row["item"] for row in expected.items]
        assert [r["score"] for r in answer["items"]] == pytest.approx([r["score"] for r in expected.items], rel=1e-5)
        assert [r["explanation"] for r in answer["items"]] == [r["explanation"] for r in expected.items]
    assert stats["requests"] == len(answers) and stats["calls"] < len(answers)  # some requests shared a call
    assert max(int(size) for size in stats["sizes"]) > 1
    # no request waits longer than the window plus the call ahead of it (plus the event loop's scheduling, 25 ms)
    assert stats["max_wait_ms"] <= window + stats["max_call_ms"] + 25, stats


@pytest.fixture(scope="module")
def fuzzed(itemcf_run, tmp_path_factory):  # noqa: F811
    database = tmp_path_factory.mktemp("fuzzed") / "feedback.sqlite"
    with serving(itemcf_run, f"serve.feedback_db={database}", token=TOKEN) as (client, _):
        yield client


def test_generated_requests_never_get_a_server_error_or_hang(fuzzed):
    """Requests generated by schemathesis from the service's own OpenAPI schema (valid and invalid values, with the
    write token), a bounded number per operation: every answer comes within 15 s and none is a 5xx."""
    schema = schemathesis.openapi.from_url(str(fuzzed.base_url).rstrip("/") + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    names = {f"{operation.method.upper()} {operation.path}" for operation in operations}
    assert names == {"GET /health", "GET /recommend", "POST /recommend", "POST /feedback"}
    statuses: list[int] = []
    for operation in operations:
        for mode in schemathesis.GenerationMode:  # values the schema allows, then values it forbids
            if mode is schemathesis.GenerationMode.NEGATIVE and not (len(operation.query) or len(operation.body)):
                continue  # GET /health takes nothing that could be wrong

            @given(case=operation.as_strategy(mode))
            @settings(max_examples=40, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def answers(case) -> None:
                response = case.call(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=15)
                assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:300]}"
                statuses.append(response.status_code)

            answers()
    assert len(statuses) >= 200 and {200, 422} <= set(statuses)  # accepted and refused requests were both sent


def test_bad_serve_settings_end_in_one_line_naming_the_key(itemcf_run):  # noqa: F811
    for override, message in [
        ("+serve.limits.max_body=5", "serve: serve.limits.max_body: no such setting (it takes body_timeout_s, "),
        ("serve.batch.max_size=0", "serve: serve.batch.max_size=0: must be a positive integer"),
        ("events.negative=[click]", "serve: events: kind 'click' is both positive and negative"),
    ]:
        done = _serve(itemcf_run, override)
        assert done.returncode == 2 and done.stderr.startswith(message), (override, done.stderr[-500:])
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
