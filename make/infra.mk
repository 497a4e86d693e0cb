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

infra-init: ## terraform init (remote state when terraform/backend.tf exists)
	@test -f $(TF_DIR)/backend.tf || echo ">>> no $(TF_DIR)/backend.tf: state stays local (see backend.tf.example)"
	$(TF) init -input=false $(TF_INIT_ARGS)

infra-fmt: ## Format the Terraform files
	$(TERRAFORM) fmt -recursive $(TF_DIR)

infra-plan: ## terraform plan of the whole cloud side
	$(TF) plan $(TF_ARGS)

infra-apply: ## Create or update the cloud side (asks for confirmation)
	$(TF) apply $(TF_ARGS)

infra-destroy: ## Remove everything Terraform created, data included (asks for confirmation)
	$(TF) destroy $(TF_ARGS)

kubeconfig: ## Add the cluster to ~/.kube/config with yc (external or internal endpoint)
	@cluster_id="$$($(TF) output -raw cluster_id)"; \
	endpoint="$$($(TF) output -raw cluster_endpoint_type)"; \
	project="$$(sed -n 's/^project: *//p' fraudops/core/platform.yaml)"; \
	yc managed-kubernetes cluster get-credentials --id "$$cluster_id" --"$$endpoint" \
		--context-name "$$project" --force

infra-secrets: $(VENV)/.synced ## Kubernetes Secrets and .deploy/terraform-values.yaml from Terraform outputs
	TERRAFORM=$(TERRAFORM) PYTHON=$(PY) scripts/tf-outputs-to-k8s.sh
