# Yandex Cloud side (terraform/): from an empty folder to a cluster with its Secrets.
#   make infra-init infra-apply kubeconfig infra-secrets     then `make images deploy`
# docs/infrastructure.md has the prerequisites, costs and teardown. Terraform reads
# terraform/terraform.tfvars and credentials from the environment (YC_TOKEN or
# YC_SERVICE_ACCOUNT_KEY_FILE; AWS_* keys for the state bucket when terraform/backend.tf exists).

TERRAFORM ?= terraform
TF_DIR := terraform
TF := $(TERRAFORM) -chdir=$(TF_DIR)
TF_INIT_ARGS ?=
TF_ARGS ?=

.PHONY: infra-init infra-fmt infra-plan infra-apply infra-destroy kubeconfig infra-secrets

LOCAL_STATE ?=

infra-init: ## terraform init with the remote, locked state of terraform/backend.tf (LOCAL_STATE=1: local)
	@test -f $(TF_DIR)/backend.tf || [ "$(LOCAL_STATE)" = 1 ] || { \
		echo "no $(TF_DIR)/backend.tf: the state (database passwords, keys) would stay on this disk," >&2; \
		echo "unlocked. Copy backend.tf.example to backend.tf (docs/infrastructure.md), or LOCAL_STATE=1." >&2; \
		exit 1; }
	$(TF) init -input=false $(TF_INIT_ARGS)

infra-fmt: ## Format the Terraform files
	$(TERRAFORM) fmt -recursive $(TF_DIR)

infra-plan: ## terraform plan of the whole cloud side
	$(TF) plan $(TF_ARGS)

infra-apply: ## Create or update the cloud side (asks for confirmation)
	$(TF) apply $(TF_ARGS)

# What costs money while idle and holds no data: the cluster and its node groups (destroying the
# cluster takes its node groups with it). The lake, the MLflow artifacts, PostgreSQL, the KMS key,
# Lockbox and the network stay; `make infra-apply` brings the cluster back onto them.
INFRA_IDLE_TARGETS := yandex_kubernetes_node_group.spark yandex_kubernetes_node_group.system \
	yandex_kubernetes_cluster.this
DESTROY_DATA ?=

infra-destroy: ## Stop the spend: destroy the cluster and node groups, keep the data (DESTROY_DATA=1: everything)
ifeq ($(DESTROY_DATA),1)
	@echo ">>> DESTROY_DATA=1: terraform destroy of EVERYTHING, the lake, the MLflow artifacts,"
	@echo ">>> PostgreSQL, the KMS key and Lockbox included. With the default deletion_protection"
	@echo ">>> and force_destroy_buckets it stops at them: apply deletion_protection = false and"
	@echo ">>> force_destroy_buckets = true first (docs/security.md)."
	$(TF) destroy $(TF_ARGS)
else
	@echo ">>> will destroy: $(INFRA_IDLE_TARGETS)"
	@echo ">>> will keep: the buckets (lake, MLflow artifacts, task logs), PostgreSQL, the KMS key,"
	@echo ">>> Lockbox, the registry and the network. DESTROY_DATA=1 destroys everything."
	$(TF) destroy $(addprefix -target=,$(INFRA_IDLE_TARGETS)) $(TF_ARGS)
endif

kubeconfig: ## Add the cluster to ~/.kube/config with yc (external or internal endpoint)
	@cluster_id="$$($(TF) output -raw cluster_id)"; \
	endpoint="$$($(TF) output -raw cluster_endpoint_type)"; \
	project="$$(sed -n 's/^project: *//p' fraudops/core/platform.yaml)"; \
	yc managed-kubernetes cluster get-credentials --id "$$cluster_id" --"$$endpoint" \
		--context-name "$$project" --force

# External Secrets Operator must be there before its SecretStores: `helm` installs it first (the
# make deploy path); `argocd` waits for the one the external-secrets Application installs.
EXTERNAL_SECRETS_INSTALL ?= helm

infra-secrets: $(VENV)/.synced $(if $(filter helm,$(EXTERNAL_SECRETS_INSTALL)),external-secrets) ## Lockbox access, SecretStores, the DB CA and .deploy/terraform-values.yaml
	$(if $(filter argocd,$(EXTERNAL_SECRETS_INSTALL)),$(KUBECTL) wait --for condition=established \
		--timeout=10m crd/secretstores.external-secrets.io)
	TERRAFORM=$(TERRAFORM) PYTHON=$(PY) scripts/tf-outputs-to-k8s.sh
