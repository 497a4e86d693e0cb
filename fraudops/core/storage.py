"""Small file operations on the lake root, local or S3, for the driver and for Airflow.

Spark reads and writes the datasets itself; this module is for the few small things around
them: listing raw files, the manifest and run summaries. It uses pyarrow.fs, which both the
Spark and the Airflow images have, so both sides read the lake the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from pyarrow import fs as pafs

from fraudops.core import config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileEntry:
    path: str  # as the lake names it (s3a://... or a local path)
    size: int
    mtime_ns: int


@cache
def _s3() -> pafs.S3FileSystem:
    endpoint = config.s3_endpoint()
    return pafs.S3FileSystem(
        endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
        scheme=endpoint.split("://", 1)[0] if endpoint and "://" in endpoint else "https",
        region=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "ru-central1")),
    )


def _resolve(path: str) -> tuple[pafs.FileSystem, str, str]:
    """(filesystem, path for that filesystem, prefix to rebuild the lake's own name)."""
    for scheme in ("s3a://", "s3://"):
        if path.startswith(scheme):
            return _s3(), path[len(scheme):], scheme
    if path.startswith("file://"):
        return pafs.LocalFileSystem(), path[len("file://"):], "file://"
    return pafs.LocalFileSystem(), os.path.abspath(path), ""


def is_object_store(path: str) -> bool:
    """Whether ``path`` is on S3 (no rename, no exclusive create through pyarrow)."""
    return path.startswith(("s3a://", "s3://"))


class FolderNotFound(FileNotFoundError):
    """A folder the caller needs is not there (a wrong root, a missing mount or bucket)."""


def list_files(prefix: str, suffix: str = "", must_exist: bool = False) -> list[FileEntry]:
    """Files directly below ``prefix`` whose names end with ``suffix``, sorted by path.

    With ``must_exist`` a missing ``prefix`` is an error naming it; otherwise it lists nothing.
    On S3 a prefix exists once an object lies below it (or its folder marker does).
    """
    filesystem, base, scheme = _resolve(prefix)
    if must_exist and filesystem.get_file_info(base).type != pafs.FileType.Directory:
        raise FolderNotFound(f"{prefix} is not there (no such folder)")
    selector = pafs.FileSelector(base, allow_not_found=not must_exist, recursive=False)
    entries = [
        FileEntry(scheme + info.path, info.size or 0, info.mtime_ns or 0)
        for info in filesystem.get_file_info(selector)
        if info.type == pafs.FileType.File and info.base_name.endswith(suffix)
    ]
    return sorted(entries, key=lambda e: e.path)


def exists(path: str) -> bool:
    filesystem, base, _ = _resolve(path)
    return filesystem.get_file_info(base).type != pafs.FileType.NotFound


def read_bytes(path: str) -> bytes:
    filesystem, base, _ = _resolve(path)
    with filesystem.open_input_stream(base) as stream:
        return stream.read()


def md5(path: str, chunk: int = 1 << 20) -> str:
    filesystem, base, _ = _resolve(path)
    digest = hashlib.md5(usedforsecurity=False)
    with filesystem.open_input_stream(base) as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_bytes(path: str, data: bytes) -> None:
    """Write a small file; locally through a temporary name so readers never see half of it."""
    filesystem, base, _ = _resolve(path)
    parent = base.rsplit("/", 1)[0]
    filesystem.create_dir(parent, recursive=True)
    if isinstance(filesystem, pafs.LocalFileSystem):
        tmp = f"{base}.tmp-{os.getpid()}"
        with filesystem.open_output_stream(tmp) as out:
            out.write(data)
        os.replace(tmp, base)
    else:  # an S3 PUT is atomic already
        with filesystem.open_output_stream(base) as out:
            out.write(data)


def create_exclusive(path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data`` only if nothing is there; False if something is.

    Locally an O_CREAT|O_EXCL open (written under a temporary name and hard-linked, so that a
    reader never sees half of it). On S3 a PUT with ``If-None-Match: *``, which Yandex Object
    Storage documents for PutObject (as do AWS S3 and MinIO); it needs boto3.
    """
    filesystem, base, _ = _resolve(path)
    if not isinstance(filesystem, pafs.LocalFileSystem):
        return _s3_create_exclusive(path, data)
    os.makedirs(os.path.dirname(base), exist_ok=True)
    tmp = f"{base}.new-{os.getpid()}-{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.link(tmp, base)  # fails if ``base`` exists: the exclusive step
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _s3_create_exclusive(path: str, data: bytes) -> bool:
    try:
        import boto3  # only where the lake is on S3
        from botocore.exceptions import ClientError
    except ImportError:  # an image without boto3: check, then write (not exclusive)
        log.warning("boto3 is not installed: %s is created without If-None-Match, so two "
                    "writers at the same instant could both get it", path)
        if exists(path):
            return False
        write_bytes(path, data)
        return True

    bucket, _, key = path.split("://", 1)[1].partition("/")
    client = boto3.client("s3", endpoint_url=config.s3_endpoint(),
                          region_name=os.environ.get("AWS_REGION", "ru-central1"))
    try:
        client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed",
                                                         "ConditionalRequestConflict"):
            return False
        raise


def delete_file(path: str) -> None:
    filesystem, base, _ = _resolve(path)
    try:
        filesystem.delete_file(base)
    except FileNotFoundError:
        pass


def read_json(path: str, default: Any = None) -> Any:
    if not exists(path):
        return default
    return json.loads(read_bytes(path))


def write_json(path: str, value: Any) -> None:
    write_bytes(path, (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode())


def delete_dir(path: str) -> None:
    filesystem, base, _ = _resolve(path)
    if filesystem.get_file_info(base).type != pafs.FileType.NotFound:
        filesystem.delete_dir(base)
