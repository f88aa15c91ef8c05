"""Read an offline W&B run back from its `.wandb` record log (config, history, summary, run info).

W&B 0.31 writes no wandb-summary.json offline; the `.wandb` file is a LevelDB-style log (32 KiB blocks,
7-byte record headers) of `wandb_internal_pb2.Record` messages. Tests and the report read it here."""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

_FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version
_RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What one offline run recorded."""

    path: Path
    run_id: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _payloads(data: bytes):
    """Yield each record's bytes, joining FIRST/MIDDLE/LAST fragments across blocks."""
    magic, _, _ = _FILE_HEADER.unpack_from(data, 0)
    if magic != b":W&B":
        raise ValueError("not a W&B record log")
    offset, pending = _FILE_HEADER.size, b""
    while offset + _RECORD_HEADER.size <= len(data):
        space = _BLOCK - offset % _BLOCK
        if space < _RECORD_HEADER.size:
            offset += space
            continue
        _, length, kind = _RECORD_HEADER.unpack_from(data, offset)
        offset += _RECORD_HEADER.size
        if offset + length > len(data):  # a record still being written
            return
        chunk = data[offset : offset + length]
        offset += length
        if kind == 0 and length == 0:
            continue
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def _value(item) -> Any:
    key = item.key or "/".join(item.nested_key)
    return key, json.loads(item.value_json)


def read_offline_run(path: str | Path, settle: float = 10.0) -> OfflineRun:
    """Parse a `run-*.wandb` file, or the single one inside an offline-run folder.

    W&B's service can still be writing the log when wandb.finish() has returned (a short run's file may hold only
    its 7-byte header then), so a log without its closing `exit` record that was modified less than `settle`
    seconds ago is read again until the record arrives or the file goes quiet; older logs (crashed runs) are
    returned as they are."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.wandb"))
        if len(files) != 1:
            raise FileNotFoundError(f"{path}: expected one .wandb file, found {len(files)}")
        path = files[0]
    deadline = time.monotonic() + settle
    while True:
        run, complete = _parse(path)
        if complete or time.time() - path.stat().st_mtime > settle or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def _parse(path: Path) -> tuple[OfflineRun, bool]:
    """The run recorded in the log so far, and whether the log is complete (ends with the `exit` record)."""
    run, complete = OfflineRun(path=path), False
    for payload in _payloads(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            # a run may be recorded more than once (later records are partial updates): keep what is set
            run.run_id = record.run.run_id or run.run_id
            run.group = record.run.run_group or run.group
            run.job_type = record.run.job_type or run.job_type
            run.tags = list(record.run.tags) or run.tags
            run.config.update(dict(_value(i) for i in record.run.config.update))
        elif kind == "config":
            run.config.update(dict(_value(i) for i in record.config.update))
        elif kind == "history":
            run.history.append(dict(_value(i) for i in record.history.item))
        elif kind == "summary":
            run.summary.update(dict(_value(i) for i in record.summary.update))
        elif kind == "exit":
            complete = True
    return run, complete


def offline_runs(root: str | Path) -> list[OfflineRun]:
    """Every offline run under `root` (searched recursively), oldest first."""
    return [read_offline_run(p) for p in sorted(Path(root).rglob("offline-run-*/run-*.wandb"))]
