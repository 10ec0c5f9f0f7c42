"""The official Metaflow UI bundle (a React build released as `metaflow-ui-<version>.zip` on
Netflix/metaflow-ui's GitHub releases): downloaded once, checked and unpacked into a cache
folder, `~/.metaflow-serverless/ui/<version>/`; or taken from a local zip (--bundle /
$MFS_UI_BUNDLE) on offline machines.

An entry that would land outside the folder (absolute path, `..`, a drive, a symlink) refuses
the whole zip: nothing of it is unpacked."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

UI_VERSION = "v1.3.14"
RELEASE_URL = "https://github.com/Netflix/metaflow-ui/releases/download/{v}/metaflow-ui-{v}.zip"
# sha256 of the published release asset. Unknown here (this project is built offline): until it
# is pinned, a download is trusted on first use and its sha256 printed; MFS_UI_BUNDLE_SHA256
# (or --bundle-sha256) makes the check strict.
RELEASE_SHA256: Optional[str] = None
MAX_BUNDLE_BYTES = 64 * 1024 * 1024


class BundleError(RuntimeError):
    """The bundle cannot be used: one line saying why and what to do."""


def cache_root() -> Path:
    return Path(os.environ.get("MFS_UI_CACHE") or "~/.metaflow-serverless/ui").expanduser()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _safe_name(name: str) -> Optional[PurePosixPath]:
    """The entry's relative path, or None when it would escape the folder."""
    if "\\" in name or "\0" in name:
        return None
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return None
    if p.parts and ":" in p.parts[0]:  # a Windows drive ("C:")
        return None
    return p


def check_zip(zf: zipfile.ZipFile) -> None:
    total = 0
    for info in zf.infolist():
        if _safe_name(info.filename) is None:
            raise BundleError(
                f"refusing the UI bundle: entry {info.filename!r} would be written outside its folder"
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BundleError(f"refusing the UI bundle: entry {info.filename!r} is a symbolic link")
        total += info.file_size
    if total > MAX_BUNDLE_BYTES:
        raise BundleError(
            f"refusing the UI bundle: it unpacks to {total} bytes (more than {MAX_BUNDLE_BYTES})"
        )
    if "index.html" not in zf.namelist():
        raise BundleError("this zip is not a Metaflow UI build: it has no index.html at its top level")


def unpack(zip_path: Path, dest: Path) -> Path:
    """Checks and unpacks zip_path into dest (atomically: dest appears complete or not at all)."""
    if (dest / "index.html").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BundleError(f"{zip_path} is not a readable zip ({e})") from None
    with zf:
        check_zip(zf)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            for info in zf.infolist():
                target = tmp / _safe_name(info.filename)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
            os.chmod(tmp, 0o755)
            try:
                tmp.rename(dest)
            except OSError:
                if not (dest / "index.html").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def download(url: str, dest: Path, progress: Callable[[str], None] = print, timeout: float = 60) -> None:
    progress(f"downloading the Metaflow UI from {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
            got = 0
            while chunk := resp.read(1 << 16):
                got += len(chunk)
                if got > MAX_BUNDLE_BYTES:
                    raise BundleError(f"the UI bundle at {url} is larger than {MAX_BUNDLE_BYTES} bytes")
                out.write(chunk)
    except (OSError, ValueError) as e:
        raise BundleError(
            f"cannot download the Metaflow UI from {url} ({e}); on an offline machine "
            f"give a local zip with --bundle or MFS_UI_BUNDLE"
        ) from None


def ensure(
    bundle_zip: Optional[str] = None,
    *,
    version: str = UI_VERSION,
    url: Optional[str] = None,
    sha256: Optional[str] = None,
    root: Optional[Path] = None,
    progress: Callable[[str], None] = print,
) -> Path:
    """The folder of the unpacked UI: from bundle_zip (or $MFS_UI_BUNDLE) when given, else the
    cached release, downloaded on first use from url (default: the pinned release)."""
    root = root or cache_root()
    bundle_zip = bundle_zip or os.environ.get("MFS_UI_BUNDLE") or None
    sha256 = (sha256 or os.environ.get("MFS_UI_BUNDLE_SHA256") or RELEASE_SHA256 or "").lower() or None
    if bundle_zip:
        path = Path(bundle_zip).expanduser()
        if not path.is_file():
            raise BundleError(f"UI bundle {path} does not exist")
        digest = sha256_of(path)
        if sha256 and digest != sha256:
            raise BundleError(f"UI bundle {path} has sha256 {digest}, expected {sha256}")
        return unpack(path, root / f"local-{digest[:16]}")
    dest = root / version
    if (dest / "index.html").exists():
        return dest
    url = url or os.environ.get("MFS_UI_BUNDLE_URL") or RELEASE_URL.format(v=version)
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".zip", dir=root)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        download(url, tmp, progress)
        digest = sha256_of(tmp)
        if sha256 and digest != sha256:
            raise BundleError(
                f"the UI bundle downloaded from {url} has sha256 {digest}, expected {sha256}: "
                f"not used (a changed or corrupted release)"
            )
        if not sha256:
            progress(
                f"UI bundle sha256 {digest} (no checksum pinned: set MFS_UI_BUNDLE_SHA256 to require one)"
            )
        return unpack(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
