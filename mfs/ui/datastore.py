"""Reads from Metaflow's datastore for the UI: artifact values, task logs and cards, local or S3.

Nothing here writes, moves or deletes (the official UI backend's log cache moves local log files
away on first read; these reads leave them). Every read stays inside its root: a local path is
resolved and must be under the datastore root; pathspec components cannot hold '/' or be '.'/'..';
an artifact location must be under the flow's data folder of the configured root."""

from __future__ import annotations

import asyncio
import gzip
import io
import pickle
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional

from .config import UiConfig

LOG_SOURCES = ("runtime", "task")
MFLOG = re.compile(rb"^(\[!)?\[MFLOG\|0\|(.+?)Z\|(.+?)\|(.+?)\](.*)$")


class DatastoreError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _component(v: str) -> str:
    v = str(v)
    if not v or v in (".", "..") or "/" in v or "\\" in v or "\0" in v:
        raise DatastoreError(400, f"invalid pathspec component {v!r}")
    return v


class _SafeUnpickler(pickle.Unpickler):
    """Only plain data: an artifact of any other class is not shown (unpickling runs code)."""

    ALLOWED = {
        ("builtins", n)
        for n in (
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "str",
            "bytes",
            "bytearray",
            "int",
            "float",
            "bool",
            "complex",
            "slice",
        )
    } | {
        ("collections", "OrderedDict"),
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


def safe_loads(blob: bytes):
    return _SafeUnpickler(io.BytesIO(blob)).load()


class Datastore:
    def __init__(self, config: UiConfig):
        self.config = config
        self._s3 = None

    # -- raw reads -------------------------------------------------------------------------
    def _local_path(self, root: Optional[Path], *parts: str) -> Path:
        if root is None:
            raise DatastoreError(404, "no local datastore configured (METAFLOW_DATASTORE_SYSROOT_LOCAL)")
        base = root.resolve()
        path = base.joinpath(*parts).resolve()
        if path != base and base not in path.parents:
            raise DatastoreError(400, "path outside the datastore")
        return path

    def _s3_client(self):
        if self._s3 is None:
            import boto3  # only S3 datastores need it

            self._s3 = boto3.client("s3", endpoint_url=self.config.s3_endpoint_url)
        return self._s3

    def _s3_read(self, url: str) -> Optional[bytes]:
        bucket, _, key = url[len("s3://") :].partition("/")
        try:
            return self._s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as e:  # botocore's NoSuchKey and friends; a missing object reads as None
            if "NoSuchKey" in type(e).__name__ or "404" in str(e) or "NoSuchKey" in str(e):
                return None
            raise DatastoreError(502, f"S3 read failed ({type(e).__name__})") from None

    def _s3_list(self, prefix_url: str) -> list[str]:
        bucket, _, prefix = prefix_url[len("s3://") :].partition("/")
        out = []
        for page in self._s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", [])]
        return out

    def _read_task_file(self, pathspec: Iterable[str], name: str) -> Optional[bytes]:
        parts = [_component(p) for p in pathspec] + [_component(name)]
        if self.config.datastore == "s3":
            if not self.config.s3_root:
                raise DatastoreError(404, "no S3 datastore root configured (METAFLOW_DATASTORE_SYSROOT_S3)")
            return self._s3_read(self.config.s3_root + "/" + "/".join(parts))
        path = self._local_path(self.config.local_root, *parts)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    # -- artifacts -------------------------------------------------------------------------
    def _artifact_bytes(self, flow_id: str, location: str, sha: Optional[str]) -> Optional[bytes]:
        """The blob of an artifact from the configured datastore. Metaflow records a local
        artifact as ":root:<datastore root>" (the blob is <root>/<flow>/data/<sha[:2]>/<sha>) and an
        S3 one by its URL; either way the read stays under the configured root's flow data."""
        flow_id = _component(flow_id)
        if location.startswith(":root:") or not location.startswith("s3://"):
            if not sha or not re.fullmatch(r"[0-9a-f]{40,64}", sha):
                raise DatastoreError(400, "artifact without a valid sha")
            if self.config.datastore == "s3" and self.config.s3_root:
                raw = self._s3_read(f"{self.config.s3_root}/{flow_id}/data/{sha[:2]}/{sha}")
            else:
                path = self._local_path(self.config.local_root, flow_id, "data", sha[:2], sha)
                raw = path.read_bytes() if path.is_file() else None
        else:
            root = self.config.s3_root
            if not root or not location.startswith(f"{root}/{flow_id}/data/") or "/../" in location:
                raise DatastoreError(400, "artifact location outside the datastore")
            raw = self._s3_read(location)
        return None if raw is None else gzip.decompress(raw)

    def artifact_value(self, flow_id: str, location: str, sha: Optional[str] = None):
        """(value, None) for plain-data artifacts, (None, reason) otherwise."""
        try:
            blob = self._artifact_bytes(flow_id, location, sha)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            return None, f"unreadable ({type(e).__name__})"
        if blob is None:
            return None, "not found in the datastore"
        try:
            return safe_loads(blob), None
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as e:
            return None, f"not plain data ({e})"

    async def artifact_value_async(self, flow_id: str, location: str, sha: Optional[str] = None):
        return await asyncio.to_thread(self.artifact_value, flow_id, location, sha)

    # -- logs ------------------------------------------------------------------------------
    def log_lines(self, pathspec: list[str], attempt: int, stream: str) -> list[tuple[Optional[int], str]]:
        """[(epoch ms or None, line)] of one attempt's stdout/stderr: Metaflow's runtime and task
        log files merged by time (legacy single files as they are). Empty when not written yet."""
        if stream not in ("stdout", "stderr"):
            raise DatastoreError(400, f"unknown log stream {stream}")
        sources = []
        for src in LOG_SOURCES:
            data = self._read_task_file(pathspec, f"{int(attempt)}.{src}_{stream}.log")
            if data:
                sources.append(list(_parse_mflog(data)))
        if not sources:
            legacy = self._read_task_file(pathspec, f"{int(attempt)}.{stream}.log")
            return [(None, line) for line in legacy.decode("utf-8", "replace").split("\n")] if legacy else []
        merged = sorted((item for src in sources for item in src), key=lambda x: (x[0] is None, x[0] or 0))
        return [(ts, line) for ts, line, _ in merged]

    async def log_lines_async(self, pathspec, attempt, stream):
        return await asyncio.to_thread(self.log_lines, pathspec, attempt, stream)

    # -- cards -----------------------------------------------------------------------------
    def card_files(self, pathspec: list[str]) -> list[str]:
        """Names of a task's card files (<type>-<index>-<uuid>-<hash>.html)."""
        return self._card_folder_names(pathspec, "cards", ".html")

    def card_data_files(self, pathspec: list[str]) -> list[str]:
        """Names of a task's card data files (<type>-[<id>-]<hash>.data.json, Metaflow writes
        them for cards that update while the task runs)."""
        return self._card_folder_names(pathspec, "runtime", ".data.json")

    def _card_folder_names(self, pathspec: list[str], folder: str, suffix: str) -> list[str]:
        """Names ending in `suffix` in a folder of the task's card tree ("cards" or "runtime")."""
        flow, run, step, task = [_component(p) for p in pathspec]
        rel = [flow, "runs", run, "steps", step, "tasks", task, folder]
        if self.config.datastore == "s3":
            if not self.config.card_s3_root:
                return []
            return [
                u.rsplit("/", 1)[1]
                for u in self._s3_list(self.config.card_s3_root + "/" + "/".join(rel) + "/")
                if u.endswith(suffix)
            ]
        try:
            path = self._local_path(self.config.card_local_root, *rel)
        except DatastoreError:
            return []
        return sorted(p.name for p in path.glob("*" + suffix)) if path.is_dir() else []

    def card_file(self, pathspec: list[str], name: str, folder: str = "cards") -> Optional[bytes]:
        """A file of the task's card folder: "cards" (the HTML) or "runtime" (the data JSON)."""
        flow, run, step, task = [_component(p) for p in pathspec]
        rel = [flow, "runs", run, "steps", step, "tasks", task, folder, _component(name)]
        if self.config.datastore == "s3":
            return (
                self._s3_read(self.config.card_s3_root + "/" + "/".join(rel))
                if self.config.card_s3_root
                else None
            )
        path = self._local_path(self.config.card_local_root, *rel)
        return path.read_bytes() if path.is_file() else None


def _parse_mflog(data: bytes):
    """(ts ms, line, order) per line of an MFLog file; lines without a header keep the previous
    line's time (continuations)."""
    last_ts = None
    for n, raw in enumerate(data.split(b"\n")):
        if not raw and n == data.count(b"\n"):
            break  # the empty string after the final newline
        m = MFLOG.match(raw)
        if m:
            try:
                dt = datetime.strptime(m.group(2).decode(), "%Y-%m-%dT%H:%M:%S.%f").replace(
                    tzinfo=timezone.utc
                )
                last_ts = int(dt.timestamp() * 1000)
            except ValueError:
                pass
            raw = m.group(5)
        yield last_ts, raw.decode("utf-8", "replace"), n
