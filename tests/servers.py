"""Throwaway servers for tests: PostgreSQL, S3 (moto) and an MLflow tracking server on both.

tests/conftest.py registers these as session fixtures:

- ``postgres_server``: a PostgreSQL cluster in a temporary folder on 127.0.0.1 (trust auth) with
  a database ``mlflow``; yields its SQLAlchemy URI. Run as the ``postgres`` user when the tests
  run as root, since initdb refuses root. Skipped when the PostgreSQL binaries are absent.
- ``s3_server``: moto's S3 in a thread, with the MLflow artifacts bucket; yields the endpoint.
- ``mlflow_server``: ``mlflow server`` with the PostgreSQL backend, proxying artifacts to
  ``s3://<bucket>/artifacts`` on moto; yields the tracking URI. Only the server holds the S3
  settings and keys: clients upload and download through it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudops.core.platform import platform

ARTIFACTS_BUCKET = platform()["buckets"]["mlflow_artifacts"]
ARTIFACTS_PREFIX = "artifacts"
S3_REGION = "us-east-1"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
POSTGRES_BINDIR_FALLBACK = Path("/usr/lib/postgresql/15/bin")
MLFLOW_START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=S3_REGION,
                        aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


# PostgreSQL ----------------------------------------------------------------------------------

def postgres_bindir() -> Path | None:
    """The folder of initdb and pg_ctl: pg_config's, the Debian PostgreSQL 15 one, or PATH's."""
    candidates = []
    if shutil.which("pg_config"):
        result = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    candidates.append(POSTGRES_BINDIR_FALLBACK)
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


class PostgresCluster:
    """A cluster in ``root`` (data, socket, log), owned by the user that runs the binaries."""

    def __init__(self, bindir: Path, root: Path, port: int, run_as: str | None):
        self.bindir, self.root, self.port, self.run_as = bindir, root, port, run_as
        self.data, self.log = root / "data", root / "postgres.log"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, cwd=self.root, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}\n{_tail(self.log)}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-locale", "--no-sync")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n")
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", "60", "start")
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                      dbname="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE mlflow")
        finally:
            connection.close()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def uri(self, database: str = "mlflow") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"


def postgres_server() -> Iterator[str]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install "
                    "postgresql-15 or put its bin folder on PATH")
    run_as = None
    root = Path(tempfile.mkdtemp(prefix="fraudops-pg-"))
    if os.geteuid() == 0:
        # initdb refuses root: the cluster belongs to the postgres system user.
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
        if shutil.which("runuser") is None:
            shutil.rmtree(root)
            pytest.skip("running as root and runuser is missing: cannot run initdb as postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = "postgres"
    root.chmod(0o700)
    cluster = PostgresCluster(bindir, root, free_port(), run_as)
    try:
        cluster.start()
        yield cluster.uri()
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


# S3 ------------------------------------------------------------------------------------------

def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3_client(endpoint).create_bucket(Bucket=ARTIFACTS_BUCKET)
        yield endpoint
    finally:
        server.stop()


# MLflow --------------------------------------------------------------------------------------

def mlflow_executable() -> str:
    beside = Path(sys.executable).with_name("mlflow")
    return str(beside) if beside.exists() else (shutil.which("mlflow") or "mlflow")


def server_env(s3_endpoint: str) -> dict[str, str]:
    """This environment without AWS or MLflow settings, plus the S3 ones the server needs."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MLFLOW_"))}
    return {**env, **S3_KEYS, "AWS_DEFAULT_REGION": S3_REGION,
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop_group(process: subprocess.Popen) -> None:
    """Stop the server and the uvicorn workers it started (its own process group)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class MlflowServer:
    """``mlflow server`` on PostgreSQL with artifacts proxied to S3, which a test may stop and
    start again on the same port (an outage of the tracking server, then its return)."""

    def __init__(self, backend_uri: str, s3_endpoint: str,
                 artifacts_prefix: str = ARTIFACTS_PREFIX, app_name: str | None = None,
                 env: dict[str, str] | None = None):
        self.backend_uri, self.s3_endpoint = backend_uri, s3_endpoint
        # ``app_name="basic-auth"``: MLflow's basic auth, configured through ``env``
        # (MLFLOW_AUTH_CONFIG_PATH, MLFLOW_FLASK_SERVER_SECRET_KEY).
        self.app_name, self.env = app_name, dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = f"s3://{ARTIFACTS_BUCKET}/{artifacts_prefix}"
        self.workdir = Path(tempfile.mkdtemp(prefix="fraudops-mlflow-server-"))
        self.log = self.workdir / "server.log"
        self.process: subprocess.Popen | None = None
        self.started = False  # once: later starts are restarts on the same port

    def start(self) -> None:
        """Start the server and wait until it serves on its port. A first start whose port
        another process took meanwhile (between free_port() and the bind, say a server another
        pytest-xdist worker starts) moves to another free port; a restart keeps its port, which
        the outage tests' clients know."""
        for _ in range(3):
            if self._launch():
                self.started = True
                return
            if self.started or "address already in use" not in _tail(self.log).lower():
                break
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
        pytest.fail(f"mlflow server exited with {self.process.returncode}:\n{_tail(self.log)}")

    def _launch(self) -> bool:
        """Run the server; True once it serves, False if it exited first."""
        command = [
            mlflow_executable(), "server",
            "--backend-store-uri", self.backend_uri,
            "--artifacts-destination", self.artifacts,
            "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1",
            "--allowed-hosts", f"127.0.0.1:{self.port},localhost:{self.port}",
            *(["--app-name", self.app_name] if self.app_name else []),
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=self.workdir,
                                            env={**server_env(self.s3_endpoint), **self.env},
                                            stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + MLFLOW_START_TIMEOUT
        # Healthy and ours: another process on the port would answer /health for ours.
        while not (_healthy(self.url) and self._listens()):
            if self.process.poll() is not None:
                return False
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {MLFLOW_START_TIMEOUT:.0f}s:\n"
                            f"{_tail(self.log)}")
            time.sleep(0.5)
        return True

    def stop(self) -> None:
        """Stop the server and wait until nothing answers on its port any more: the parent
        process can exit before the uvicorn worker it started has closed the socket."""
        if self.process is None:
            return
        _stop_group(self.process)
        for signal_after in (signal.SIGKILL, None):
            deadline = time.monotonic() + 30
            while _listening(self.port) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not _listening(self.port):
                break
            if signal_after is None:
                pytest.fail(f"something still listens on {self.url} after the server stopped")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal_after)
        self.process = None

    def _listens(self) -> bool:
        """Whether this server's own processes (the server, its uvicorn workers) listen on its
        port."""
        import psutil

        try:
            ours = {self.process.pid, *(child.pid for child in psutil.Process(
                self.process.pid).children(recursive=True))}
        except psutil.NoSuchProcess:
            return False
        return any(c.pid in ours and c.laddr.port == self.port and c.status == psutil.CONN_LISTEN
                   for c in psutil.net_connections("tcp"))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        try:
            if self.process is not None and self.process.poll() is not None:
                # It died under the tests that used it: keep its log for whoever reads why.
                kept = Path(tempfile.gettempdir()) / f"fraudops-mlflow-server-{self.port}.log"
                shutil.copyfile(self.log, kept)
                sys.stderr.write(f"mlflow server on {self.url} had exited with "
                                 f"{self.process.returncode}; its log: {kept}\n")
            self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def mlflow_server(backend_uri: str, s3_endpoint: str) -> Iterator[str]:
    server = MlflowServer(backend_uri, s3_endpoint)
    try:
        server.start()
        yield server.url
    finally:
        server.close()


def create_database(backend_uri: str, name: str) -> str:
    """A new database on the cluster of ``backend_uri``; returns its SQLAlchemy URI."""
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(backend_uri)
    connection = psycopg2.connect(host=url.host, port=url.port, user=url.username,
                                  dbname="postgres")
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()
    return url.set(database=name).render_as_string(hide_password=False)
