"""MLflow basic auth bootstrap: the platform's experiment and registered model, and the accounts
of its clients with exactly their grants. The chart's auth-bootstrap Job runs it after every
install and upgrade, as the admin of the server's basic_auth.ini.

Idempotent: what exists is kept, a password is reset to the Secret's (rotation), a grant is set
to the configured permission, an account that became admin is demoted. No password is printed
or passed on a command line: the admin's comes from the ini file, each client's from its file.

Environment:
  MLFLOW_TRACKING_URI       the server, through its Service
  MLFLOW_AUTH_CONFIG_PATH   the server's basic_auth.ini (admin_username, admin_password)
  BOOTSTRAP_EXPERIMENT      the experiment the clients log to
  BOOTSTRAP_MODEL           the registered model they version and alias
  BOOTSTRAP_USERS           JSON list of {username, passwordFile, permission}
  BOOTSTRAP_WAIT_SECONDS    how long to wait for the server's /health (default 300)
"""

import configparser
import json
import os
import sys
import time
import urllib.error
import urllib.request

DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"


def wait_until_healthy(uri, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"MLflow at {uri} did not answer /health within {seconds}s")
        time.sleep(2)


def main():
    uri = os.environ["MLFLOW_TRACKING_URI"]
    config = configparser.ConfigParser()
    if not config.read(os.environ["MLFLOW_AUTH_CONFIG_PATH"]):
        sys.exit("cannot read MLFLOW_AUTH_CONFIG_PATH")
    # The admin's credentials reach the MLflow client through this process's environment only.
    os.environ["MLFLOW_TRACKING_USERNAME"] = config["mlflow"]["admin_username"]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = config["mlflow"]["admin_password"]
    experiment_name = os.environ["BOOTSTRAP_EXPERIMENT"]
    model_name = os.environ["BOOTSTRAP_MODEL"]
    users = json.loads(os.environ["BOOTSTRAP_USERS"])

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    def absent(exc):
        return isinstance(exc, MlflowException) and exc.error_code == DOES_NOT_EXIST

    wait_until_healthy(uri, int(os.environ.get("BOOTSTRAP_WAIT_SECONDS", "300")))
    client = MlflowClient(tracking_uri=uri)
    auth = get_app_client("basic-auth", tracking_uri=uri)

    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        experiment_id = client.create_experiment(experiment_name)
        print(f"experiment {experiment_name}: created ({experiment_id})")
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
            print(f"experiment {experiment_name}: restored ({experiment_id})")
    try:
        client.get_registered_model(model_name)
    except MlflowException as exc:
        if not absent(exc):
            raise
        client.create_registered_model(model_name)
        print(f"registered model {model_name}: created")

    for user in users:
        username, permission = user["username"], user["permission"]
        with open(user["passwordFile"], encoding="utf-8") as handle:
            password = handle.read()
        if not password:
            sys.exit(f"the password file of {username} is empty")
        try:
            existing = auth.get_user(username)
        except MlflowException as exc:
            if not absent(exc):
                raise
            auth.create_user(username, password)
            print(f"user {username}: created")
        else:
            auth.update_user_password(username, password)
            if existing.is_admin:
                auth.update_user_admin(username, False)
                print(f"user {username}: no longer admin")
            print(f"user {username}: password set from its Secret")

        for kind, resource in (("experiment", experiment_id), ("registered_model", model_name)):
            get, create, update = (getattr(auth, f"{verb}_{kind}_permission")
                                   for verb in ("get", "create", "update"))
            try:
                current = get(resource, username).permission
            except MlflowException as exc:
                if not absent(exc):
                    raise
                create(resource, username, permission)
            else:
                if current != permission:
                    update(resource, username, permission)
        print(f"user {username}: {permission} on experiment {experiment_name} ({experiment_id}) "
              f"and registered model {model_name}")


if __name__ == "__main__":
    main()
