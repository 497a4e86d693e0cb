"""Turn ``terraform output -json`` (read from stdin) into the platform's Secrets and Helm values.

Used by scripts/tf-outputs-to-k8s.sh; the Secret and namespace names come from
fraudops/core/platform.yaml, the values from the Terraform outputs.

    namespaces            print the namespaces the Secrets go to, one per line
    secrets DIR           write DIR/<namespace>/<secret>/<key> files (mode 0600) and print
                          "<namespace> <secret>" per Secret, for kubectl --from-file
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

SECRET_OUTPUTS = ("s3_access_key_id", "s3_secret_access_key", "mlflow_database_uri",
                  "airflow_database_uri")
VALUE_OUTPUTS = ("registry_id", "registry_url", "cluster_id", "buckets", "lake_root",
                 "s3_endpoint", "s3_region", "postgres_host", "postgres_port", "namespaces")


def output_values(terraform_json: dict[str, Any]) -> dict[str, Any]:
    """``{name: value}`` from the ``terraform output -json`` document; refuses missing outputs."""
    missing = [name for name in (*SECRET_OUTPUTS, *VALUE_OUTPUTS) if name not in terraform_json]
    if missing:
        raise SystemExit(
            f"terraform output lacks {', '.join(missing)}: run `make infra-apply` first"
        )
    return {name: entry["value"] for name, entry in terraform_json.items()}


def secrets(outputs: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """``(namespace, secret name, {key: value})`` for every Secret the platform reads."""
    names = platform()
    namespaces = names["namespaces"]
    s3_keys = {
        "AWS_ACCESS_KEY_ID": outputs["s3_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": outputs["s3_secret_access_key"],
    }
    return [
        (namespaces["platform"], names["secrets"]["s3"], s3_keys),
        (namespaces["jobs"], names["secrets"]["s3"], s3_keys),
        (namespaces["platform"], names["secrets"]["mlflow_db"],
         {"uri": outputs["mlflow_database_uri"]}),
        (namespaces["platform"], names["secrets"]["airflow_db"],
         {"connection": outputs["airflow_database_uri"]}),
    ]


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
    arity = {"namespaces": 1, "secrets": 2, "values": 2}
    if not argv or arity.get(argv[0]) != len(argv):
        print(__doc__, file=sys.stderr)
        return 2
    outputs = output_values(json.load(sys.stdin))
    command = argv[0]
    if command == "namespaces":
        lines = sorted({namespace for namespace, _, _ in secrets(outputs)})
    elif command == "secrets":
        lines = write_secret_files(Path(argv[1]), outputs)
    else:
        write_values_file(Path(argv[1]), outputs)
        lines = []
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
