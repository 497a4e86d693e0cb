"""The server fixtures are what they claim: MLflow on PostgreSQL, artifacts proxied to S3."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import mlflow
import sqlalchemy

from tests import servers


def test_mlflow_server_keeps_runs_in_postgres_and_artifacts_in_s3(
        mlflow_server, postgres_server, s3_server, tmp_path, monkeypatch):
    # The client holds no S3 endpoint nor keys: artifacts must go through the server.
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("MLFLOW_"):
            monkeypatch.delenv(name)
    # MLflow 3.5 resolves mlflow-artifacts:/ against the global tracking URI, not the client's.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    name = f"servers-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name)
    run = client.create_run(experiment_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    payload = tmp_path / "hello.txt"
    payload.write_text("through the proxy\n")
    client.log_artifact(run.info.run_id, str(payload), "notes")
    client.log_metric(run.info.run_id, "answer", 42.0)
    client.set_terminated(run.info.run_id)

    assert [a.path for a in client.list_artifacts(run.info.run_id, "notes")] == ["notes/hello.txt"]
    back = client.download_artifacts(run.info.run_id, "notes/hello.txt", str(tmp_path / "back"))
    assert Path(back).read_text() == "through the proxy\n"

    key = f"{servers.ARTIFACTS_PREFIX}/{experiment_id}/{run.info.run_id}/artifacts/notes/hello.txt"
    s3 = servers.s3_client(s3_server)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=servers.ARTIFACTS_BUCKET,
                                                 Prefix=f"{servers.ARTIFACTS_PREFIX}/"
                                                        f"{experiment_id}/")["Contents"]]
    assert key in keys
    body = s3.get_object(Bucket=servers.ARTIFACTS_BUCKET, Key=key)["Body"].read()
    assert body == b"through the proxy\n"

    engine = sqlalchemy.create_engine(postgres_server)
    try:
        with engine.connect() as connection:
            assert connection.dialect.name == "postgresql"
            row = connection.execute(
                sqlalchemy.text("SELECT experiment_id, artifact_location FROM experiments "
                                "WHERE name = :name"), {"name": name}).one()
            metric = connection.execute(
                sqlalchemy.text("SELECT value FROM latest_metrics "
                                "WHERE run_uuid = :run AND key = 'answer'"),
                {"run": run.info.run_id}).scalar_one()
    finally:
        engine.dispose()
    assert str(row.experiment_id) == experiment_id
    assert row.artifact_location == f"mlflow-artifacts:/{experiment_id}"
    assert metric == 42.0


def test_a_stopped_mlflow_server_comes_back_on_its_port_with_its_data(postgres_server,
                                                                       s3_server):
    """What the outage tests rely on: stop refuses connections, start serves the same store."""
    backend = servers.create_database(postgres_server, f"restart_{uuid.uuid4().hex[:8]}")
    server = servers.MlflowServer(backend, s3_server, artifacts_prefix="restart-test")
    try:
        server.start()
        client = mlflow.MlflowClient(tracking_uri=server.url)
        experiment_id = client.create_experiment("restart")
        server.stop()
        assert not server.running and not servers._healthy(server.url)
        server.start()
        assert client.get_experiment(experiment_id).name == "restart"
    finally:
        server.close()


def test_a_server_whose_port_was_taken_before_it_bound_moves_to_another(postgres_server,
                                                                        s3_server):
    """Another process that answers /health on the port free_port() gave (another worker's
    server, started in between) is not taken for this server: it moves to another port."""
    import http.server
    import threading

    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the handler's API)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    backend = servers.create_database(postgres_server, f"taken_{uuid.uuid4().hex[:8]}")
    server = servers.MlflowServer(backend, s3_server, artifacts_prefix="taken-test")
    taken = other.server_address[1]
    server.port, server.url = taken, f"http://127.0.0.1:{taken}"
    try:
        server.start()
        assert server.running and server.port != taken
        assert mlflow.MlflowClient(tracking_uri=server.url).search_experiments()
    finally:
        server.close()
        other.shutdown()
