#!/usr/bin/env bash
# Terraform outputs -> what the yandex overlay needs before it is applied (kubectl apply,
# idempotent): the Lockbox reader's key and a SecretStore in each namespace whose pods read
# secrets, the PostgreSQL server CA as a ConfigMap, and a non-secret Helm values override for
# `make deploy`. The component Secrets (S3 keys, database URIs) are not made here: External
# Secrets Operator syncs them from Lockbox (k8s/overlays/yandex/external-secrets.yaml).
#
#   scripts/tf-outputs-to-k8s.sh            (or: make infra-secrets)
#
# Secret values travel only through a private temporary directory (removed on exit) and
# kubectl --from-file, never through command lines or files in the repository. Names come from
# fraudops/core/platform.yaml through scripts/tf_outputs_to_k8s.py.
#
# Environment: TF_DIR (default terraform/), VALUES_FILE (default .deploy/terraform-values.yaml),
# PYTHON (default .venv/bin/python), TERRAFORM, KUBECTL, CURL (default: from PATH).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tf_dir="${TF_DIR:-$repo_root/terraform}"
values_file="${VALUES_FILE:-$repo_root/.deploy/terraform-values.yaml}"
python="${PYTHON:-$repo_root/.venv/bin/python}"
terraform="${TERRAFORM:-terraform}"
kubectl="${KUBECTL:-kubectl}"
curl="${CURL:-curl}"

helper() {
  PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}" "$python" "$repo_root/scripts/tf_outputs_to_k8s.py" "$@" <"$outputs"
}

umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
outputs="$work/outputs.json"

"$terraform" -chdir="$tf_dir" output -json >"$outputs"

namespaces="$(helper namespaces)"
for namespace in $namespaces; do
  "$kubectl" create namespace "$namespace" --dry-run=client -o yaml | "$kubectl" apply -f -
done

secret_list="$(helper secrets "$work/secrets")"
while read -r namespace name; do
  from_files=()
  for file in "$work/secrets/$namespace/$name"/*; do
    from_files+=("--from-file=$(basename "$file")=$file")
  done
  "$kubectl" create secret generic "$name" --namespace "$namespace" "${from_files[@]}" \
    --dry-run=client -o yaml | "$kubectl" apply -f -
done <<<"$secret_list"

helper stores | "$kubectl" apply -f -

# The CA that signs Managed PostgreSQL's certificates (sslmode=verify-full), over HTTPS.
read -r ca_namespace ca_configmap ca_key ca_url <<<"$(helper ca)"
mkdir -p "$work/ca"
"$curl" --fail --silent --show-error --location --proto '=https' --output "$work/ca/$ca_key" "$ca_url"
grep -q -- "-----BEGIN CERTIFICATE-----" "$work/ca/$ca_key" || {
  echo "$ca_url did not return a PEM certificate" >&2
  exit 1
}
"$kubectl" create configmap "$ca_configmap" --namespace "$ca_namespace" \
  --from-file="$ca_key=$work/ca/$ca_key" --dry-run=client -o yaml | "$kubectl" apply -f -

helper values "$values_file"
echo "Lockbox access and SecretStores applied in namespaces: ${namespaces//$'\n'/ }"
echo "Helm values override (no secrets): $values_file"
if git -C "$repo_root" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
  ! git -C "$repo_root" check-ignore -q "$values_file" 2>/dev/null &&
  [[ "$values_file" == "$repo_root"/* ]]; then
  echo "warning: $values_file is not git-ignored; add its folder to .gitignore" >&2
fi
