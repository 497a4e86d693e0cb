"""Turn ``terraform output -json`` (read from stdin) into what a yandex cluster needs before the
overlay: the Lockbox reader's key and a SecretStore in each namespace that takes Lockbox
secrets, the PostgreSQL CA's ConfigMap name, and the non-secret Helm values. The component
Secrets themselves come from Lockbox through External Secrets Operator
(k8s/overlays/yandex/external-secrets.yaml), never through this script.

Used by scripts/tf-outputs-to-k8s.sh; names come from fraudops/core/platform.yaml, values from the
Terraform outputs.

    namespaces            print the namespaces the Secrets go to, one per line
    secrets DIR           write DIR/<namespace>/<secret>/<key> files (mode 0600) and print
                          "<namespace> <secret>" per Secret, for kubectl --from-file
    stores                print the SecretStores (a JSON List, one per namespace) for kubectl apply
    ca                    print "<namespace> <configmap> <key> <url>" of the PostgreSQL CA
    values FILE           write the non-secret Helm values override (names, ids, hosts) to FILE
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from fraudops.core.platform import platform

SECRET_OUTPUTS = ("lockbox_authorized_key",)
VALUE_OUTPUTS = ("registry_id", "registry_url", "cluster_id", "buckets", "lake_root",
                 "s3_endpoint", "s3_region", "postgres_host", "postgres_port", "namespaces",
                 "folder_id")
# External Secrets Operator's API group and the version of its SecretStore.
SECRET_STORE_API = "external-secrets.io/v1"


def output_values(terraform_json: dict[str, Any]) -> dict[str, Any]:
    """``{name: value}`` from the ``terraform output -json`` document; refuses missing outputs."""
    missing = [name for name in (*SECRET_OUTPUTS, *VALUE_OUTPUTS) if name not in terraform_json]
    if missing:
        raise SystemExit(
            f"terraform output lacks {', '.join(missing)}: run `make infra-apply` first"
        )
    return {name: entry["value"] for name, entry in terraform_json.items()}


def store_namespaces() -> list[str]:
    """The namespaces whose pods read Secrets synced from Lockbox."""
    namespaces = platform()["namespaces"]
    return [namespaces["platform"], namespaces["jobs"]]


def secrets(outputs: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """``(namespace, secret name, {key: value})``: the Lockbox reader's key, once per store."""
    names = platform()
    key = {names["external_secrets"]["auth_key"]: outputs["lockbox_authorized_key"]}
    return [(namespace, names["secrets"]["lockbox_auth"], key) for namespace in store_namespaces()]


def secret_stores(outputs: dict[str, Any]) -> list[dict[str, Any]]:
    """One SecretStore per namespace: Lockbox secrets of the platform's folder, by name."""
    names = platform()
    return [{
        "apiVersion": SECRET_STORE_API,
        "kind": "SecretStore",
        "metadata": {"name": names["external_secrets"]["store"], "namespace": namespace},
        "spec": {"provider": {"yandexlockbox": {
            "auth": {"authorizedKeySecretRef": {
                "name": names["secrets"]["lockbox_auth"],
                "key": names["external_secrets"]["auth_key"]}},
            "fetching": {"byName": {"folderID": outputs["folder_id"]}},
        }}},
    } for namespace in store_namespaces()]


def ca_line() -> str:
    names = platform()
    postgres = names["postgres"]
    return " ".join((names["namespaces"]["platform"], postgres["ca_configmap"],
                     postgres["ca_file"], postgres["ca_url"]))


def helm_values(outputs: dict[str, Any]) -> dict[str, Any]:
    """The non-secret names and addresses ``make deploy`` needs; never a key or a password."""
    return {
        "registry": {"id": outputs["registry_id"], "url": outputs["registry_url"]},
        "cluster": {"id": outputs["cluster_id"]},
        "buckets": dict(outputs["buckets"]),
        "lake_root": outputs["lake_root"],
        "s3": {"endpoint": outputs["s3_endpoint"], "region": outputs["s3_region"]},
        "postgres": {"host": outputs["postgres_host"], "port": outputs["postgres_port"]},
        "namespaces": dict(outputs["namespaces"]),
    }


def write_secret_files(root: Path, outputs: dict[str, Any]) -> list[str]:
    lines = []
    for namespace, name, data in secrets(outputs):
        directory = root / namespace / name
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for key, value in data.items():
            path = directory / key
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(str(value))
        lines.append(f"{namespace} {name}")
    return lines


def write_values_file(path: Path, outputs: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Written by scripts/tf-outputs-to-k8s.sh from `terraform output`: names and "
              "addresses only, no secrets.\n# Regenerate instead of editing.\n")
    path.write_text(header + yaml.safe_dump(helm_values(outputs), sort_keys=False))


def main(argv: list[str]) -> int:
    arity = {"namespaces": 1, "secrets": 2, "stores": 1, "ca": 1, "values": 2}
    if not argv or arity.get(argv[0]) != len(argv):
        print(__doc__, file=sys.stderr)
        return 2
    outputs = output_values(json.load(sys.stdin))
    command = argv[0]
    if command == "namespaces":
        lines = sorted({namespace for namespace, _, _ in secrets(outputs)})
    elif command == "secrets":
        lines = write_secret_files(Path(argv[1]), outputs)
    elif command == "stores":
        lines = [json.dumps({"apiVersion": "v1", "kind": "List",
                             "items": secret_stores(outputs)})]
    elif command == "ca":
        lines = [ca_line()]
    else:
        write_values_file(Path(argv[1]), outputs)
        lines = []
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
