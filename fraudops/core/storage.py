"""Small file operations on the lake root, local or S3, for the driver and for Airflow.

Spark reads and writes the datasets itself; this module is for the few small things around
them: listing raw files, the manifest and run summaries. It uses pyarrow.fs, which both the
Spark and the Airflow images have, so both sides read the lake the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
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


def file_entry(path: str) -> FileEntry | None:
    """The size and time of one file, or None where there is none."""
    filesystem, base, scheme = _resolve(path)
    info = filesystem.get_file_info(base)
    if info.type != pafs.FileType.File:
        return None
    return FileEntry(scheme + info.path, info.size or 0, info.mtime_ns or 0)


def exists(path: str) -> bool:
    filesystem, base, _ = _resolve(path)
    return filesystem.get_file_info(base).type != pafs.FileType.NotFound


def read_bytes(path: str) -> bytes:
    filesystem, base, _ = _resolve(path)
    with filesystem.open_input_stream(base) as stream:
        return stream.read()


def read_chunks(path: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A file's bytes in blocks of ``chunk``: a large file never sits whole in memory."""
    filesystem, base, _ = _resolve(path)
    with filesystem.open_input_stream(base) as stream:
        while block := stream.read(chunk):
            yield block


def md5(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for block in read_chunks(path, chunk):
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


# Compare-and-swap on small files: the lease and the lake's state ------------------------------

def read_versioned(path: str) -> tuple[bytes | None, str | None]:
    """A small file's bytes and its version (None, None where there is none).

    On S3 the version is the object's ETag, read in the same GET as the bytes; locally it is
    the MD5 of the bytes. write_if takes it back.
    """
    filesystem, base, _ = _resolve(path)
    if isinstance(filesystem, pafs.LocalFileSystem):
        try:
            with open(base, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None, None
        return data, hashlib.md5(data, usedforsecurity=False).hexdigest()
    from botocore.exceptions import ClientError

    bucket, key = _bucket_key(path)
    try:
        response = _boto3().get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None, None
        raise
    return response["Body"].read(), response["ETag"]


class VersionConflict(RuntimeError):
    """A conditional write found another version than the one it was based on."""


def write_if(path: str, data: bytes, version: str | None) -> str:
    """Write ``data`` only if the file is still at ``version`` (None: only if there is none);
    returns the new version, or raises VersionConflict.

    On S3 one conditional PUT: ``If-Match: <ETag>``, or ``If-None-Match: *`` for a file that
    must not exist (AWS S3 documents both for PutObject; moto, which the tests run, and MinIO
    implement them). Locally the compare and the replace run under an exclusive lock on a
    lock file beside ``path``: every writer of these files takes it, so no write falls between
    the two.
    """
    filesystem, base, _ = _resolve(path)
    if isinstance(filesystem, pafs.LocalFileSystem):
        return _local_write_if(base, data, version)
    from botocore.exceptions import ClientError

    bucket, key = _bucket_key(path)
    condition = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}
    try:
        response = _boto3().put_object(Bucket=bucket, Key=key, Body=data, **condition)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412",
                    "409", "404"):
            raise VersionConflict(f"{path} is no longer at version {version}") from exc
        raise
    return response["ETag"]


def _local_write_if(base: str, data: bytes, version: str | None) -> str:
    import fcntl

    folder, name = os.path.split(base)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f".{name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            with open(base, "rb") as handle:
                current = hashlib.md5(handle.read(), usedforsecurity=False).hexdigest()
        except FileNotFoundError:
            current = None
        if current != version:
            raise VersionConflict(f"{base} is at version {current}, not {version}")
        tmp = f"{base}.tmp-{os.getpid()}-{uuid.uuid4().hex}"
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, base)
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _bucket_key(path: str) -> tuple[str, str]:
    bucket, _, key = path.split("://", 1)[1].partition("/")
    return bucket, key


@cache
def _boto3():
    import boto3  # only where the lake is on S3

    return boto3.client("s3", endpoint_url=config.s3_endpoint(),
                        region_name=os.environ.get("AWS_REGION", "ru-central1"))


def delete_file(path: str) -> None:
    filesystem, base, _ = _resolve(path)
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_file(base)


def read_json(path: str, default: Any = None) -> Any:
    if not exists(path):
        return default
    return json.loads(read_bytes(path))


def json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()


def write_json(path: str, value: Any) -> None:
    write_bytes(path, json_bytes(value))


def list_children(prefix: str) -> tuple[list[str], list[str]]:
    """(folders, files) directly below ``prefix``, by name, sorted; nothing where it is not."""
    filesystem, base, _ = _resolve(prefix)
    selector = pafs.FileSelector(base, allow_not_found=True, recursive=False)
    folders, files = [], []
    for info in filesystem.get_file_info(selector):
        if info.type == pafs.FileType.Directory:
            folders.append(info.base_name)
        elif info.type == pafs.FileType.File:
            files.append(info.base_name)
    return sorted(folders), sorted(files)


def move_dir(source: str, target: str) -> None:
    """Move a folder to a new name (whose parent may not exist yet).

    Locally one rename. S3 has no rename: each object is copied, then deleted (the cost of
    writing the data twice, paid by a run's writes only, never by readers).
    """
    filesystem, src, _ = _resolve(source)
    _, dst, _ = _resolve(target)
    filesystem.create_dir(dst.rsplit("/", 1)[0], recursive=True)
    if isinstance(filesystem, pafs.LocalFileSystem):
        os.rename(src, dst)
        return
    selector = pafs.FileSelector(src, recursive=True)
    for info in filesystem.get_file_info(selector):
        if info.type == pafs.FileType.File:
            filesystem.copy_file(info.path, dst + info.path[len(src):])
    filesystem.delete_dir(src)


def delete_dir(path: str) -> None:
    filesystem, base, _ = _resolve(path)
    if filesystem.get_file_info(base).type != pafs.FileType.NotFound:
        filesystem.delete_dir(base)
