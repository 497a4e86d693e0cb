# Images and the Kubernetes side: build and push the three images, install spark-operator, MLflow
# and Airflow with Helm plus the k8s/ overlay, reach the UIs. docs/kubernetes.md has the walk-through.
#   yandex: make infra-apply kubeconfig infra-secrets images deploy
#   dev:    make images-dev deploy OVERLAY=dev          (kind or minikube)
# Secrets never come from here: scripts/tf-outputs-to-k8s.sh (yandex) or the dev overlay create
# them; the only one made here is Airflow's own random keys, once, if missing.
# Argo CD is the other way to deploy (k8s/argocd): do not mix the two on one cluster.

OVERLAY ?= yandex
HELM ?= helm
KUBECTL ?= kubectl
DOCKER ?= docker
TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
TF_VALUES ?= .deploy/terraform-values.yaml
CHART_CACHE ?= $(TOOLS_DIR)/charts
HELM_TIMEOUT ?= 20m

# Shared names, read from fraudops/core/platform.yaml when a recipe needs them.
platform = $(shell $(PY) -c "from fraudops.core.platform import platform; print(platform()$(1))")
NS_PLATFORM = $(call platform,['namespaces']['platform'])
NS_JOBS = $(call platform,['namespaces']['jobs'])
NS_SPARK_OPERATOR = $(call platform,['namespaces']['spark_operator'])
AIRFLOW_KEYS_SECRET = $(call platform,['secrets']['airflow_keys'])
MLFLOW_SERVICE = $(call platform,['mlflow']['service'])
MLFLOW_AUTH_SERVER_SECRET = $(call platform,['secrets']['mlflow_auth_server'])
MLFLOW_AUTH_ADMIN = $(call platform,['mlflow']['auth_admin'])
NS_EXTERNAL_SECRETS = $(call platform,['external_secrets']['namespace'])
MLFLOW_PORT = $(call platform,['mlflow']['port'])
SPARK_HISTORY = $(call platform,['spark_history']['service'])
SPARK_HISTORY_PORT = $(call platform,['spark_history']['port'])
POOL_LABEL = $(call platform,['spark_node_pool']['label_key'])=$(call platform,['spark_node_pool']['label_value'])
IMAGE_NAMES = $(call platform,['images']['spark']) $(call platform,['images']['airflow']) $(call platform,['images']['mlflow'])
image_name = $(call platform,['images']['$(1)'])
# Upstream chart versions: charts/versions.yaml, the one place they are pinned.
chart_field = $(shell sed -n 's/^  $(1): *//p' charts/versions.yaml)

# cr.yandex/<registry id>: the terraform helper's values file, else `terraform output`.
REGISTRY ?= $(shell if [ -f $(TF_VALUES) ]; then \
	$(PY) -c "import yaml; print(yaml.safe_load(open('$(TF_VALUES)'))['registry']['url'])"; \
	else $(TERRAFORM) -chdir=terraform output -json 2>/dev/null | $(PY) -c \
		"import json, sys; print(json.loads(sys.stdin.read() or '{}').get('registry_url', {}).get('value', ''))"; fi)
# The repository git-sync clones the DAGs from.
GIT_REPO_URL ?= $(shell git remote get-url origin 2>/dev/null)
GIT_BRANCH ?= main

ifeq ($(OVERLAY),dev)
DEPLOY_REGISTRY :=
DEPLOY_TAG := dev
DEV_VALUES = -f charts/$(1)-values.dev.yaml
else
DEPLOY_REGISTRY = $(REGISTRY)/
DEPLOY_TAG = $(TAG)
DEV_VALUES =
endif
image_ref = $(DEPLOY_REGISTRY)$(call image_name,$(1)):$(DEPLOY_TAG)

.PHONY: images images-dev deploy deploy-check undeploy port-forward-airflow \
	port-forward-mlflow port-forward-spark-history argocd-bootstrap charts-pull external-secrets

# The dev overlay labels every node and ships fake credentials: only on a cluster on this machine.
LOCAL_CONTEXTS := kind-*|k3d-*|minikube|docker-desktop|rancher-desktop
ALLOW_REMOTE_CONTEXT ?=

images: $(VENV)/.synced ## Build and push the images to cr.yandex/<registry>/<name>:<git sha> (TAG, REGISTRY)
	@test -n "$(REGISTRY)" || { echo "REGISTRY unknown: run make infra-secrets or set REGISTRY" >&2; exit 1; }
	@test -n "$(TAG)" || { echo "TAG unknown: not a git checkout? set TAG" >&2; exit 1; }
	@for image in spark airflow mlflow; do \
		name=$$($(PY) -c "from fraudops.core.platform import platform; print(platform()['images']['$$image'])"); \
		echo ">>> $(REGISTRY)/$$name:$(TAG)"; \
		$(DOCKER) build --file images/$$image/Dockerfile --tag "$(REGISTRY)/$$name:$(TAG)" . \
			&& $(DOCKER) push "$(REGISTRY)/$$name:$(TAG)" || exit 1; \
	done

images-dev: $(VENV)/.synced ## Build the images as <name>:dev and load them into kind or minikube
	@for image in spark airflow mlflow; do \
		name=$$($(PY) -c "from fraudops.core.platform import platform; print(platform()['images']['$$image'])"); \
		$(DOCKER) build --file images/$$image/Dockerfile --tag "$$name:dev" . || exit 1; \
		if command -v kind >/dev/null; then kind load docker-image "$$name:dev" $${KIND_CLUSTER:+--name $$KIND_CLUSTER}; \
		elif command -v minikube >/dev/null; then minikube image load "$$name:dev"; \
		else echo "neither kind nor minikube found: load $$name:dev into your cluster" >&2; fi; \
	done

deploy-check: $(VENV)/.synced
	@test -f k8s/overlays/$(OVERLAY)/kustomization.yaml || { echo "no overlay k8s/overlays/$(OVERLAY)" >&2; exit 1; }
	@test -n "$(GIT_REPO_URL)" || { echo "GIT_REPO_URL unknown (git-sync clones the DAGs from it)" >&2; exit 1; }
	@if [ "$(OVERLAY)" != dev ]; then test -n "$(REGISTRY)" -a -n "$(TAG)" \
		|| { echo "REGISTRY and TAG are needed (make infra-secrets, a git checkout)" >&2; exit 1; }; fi
	@context="$$($(KUBECTL) config current-context)" || { echo "no current kubectl context" >&2; exit 1; }; \
	if [ "$(OVERLAY)" = dev ] && [ "$(ALLOW_REMOTE_CONTEXT)" != 1 ]; then \
		case "$$context" in \
		$(LOCAL_CONTEXTS)) ;; \
		*) echo "refusing OVERLAY=dev on context '$$context': it is not a local cluster" \
			"($(LOCAL_CONTEXTS)). The dev overlay labels every node and ships fake" \
			"credentials. ALLOW_REMOTE_CONTEXT=1 overrides." >&2; exit 1 ;; \
		esac; \
	fi; \
	echo ">>> deploying overlay $(OVERLAY) to context $$context"

deploy: deploy-check $(if $(filter-out dev,$(OVERLAY)),external-secrets) ## helm upgrade --install spark-operator, MLflow, Airflow and apply k8s/overlays/$(OVERLAY)
	$(KUBECTL) kustomize k8s/overlays/$(OVERLAY) | $(KUBECTL) apply -f -
	@# The images of this deploy, where the Airflow pods read the Spark one (Argo CD gets them
	@# from the committed overlay instead).
	$(KUBECTL) --namespace $(NS_PLATFORM) patch configmap fraudops-environment --type merge \
		-p '{"data": {"spark_image": "$(call image_ref,spark)", "airflow_image": "$(call image_ref,airflow)", "mlflow_image": "$(call image_ref,mlflow)"}}'
	@# The Spark History Server runs the same Spark image (the overlay names the committed tag).
	$(KUBECTL) --namespace $(NS_PLATFORM) set image deployment/$(SPARK_HISTORY) \
		$(SPARK_HISTORY)=$(call image_ref,spark)
ifeq ($(OVERLAY),dev)
	@# Single node: it is also the "Spark node group" the SparkApplications select.
	$(KUBECTL) label nodes --all $(POOL_LABEL) --overwrite
else
	@$(KUBECTL) --namespace $(NS_PLATFORM) get secret $(AIRFLOW_KEYS_SECRET) >/dev/null 2>&1 || { \
		echo ">>> creating Secret $(AIRFLOW_KEYS_SECRET) (random, once)"; \
		umask 077; work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
		openssl rand -base64 32 | tr '+/' '-_' | tr -d '\n' > "$$work/fernet-key"; \
		for key in api-secret-key jwt-secret webserver-secret-key; do openssl rand -hex 32 | tr -d '\n' > "$$work/$$key"; done; \
		$(KUBECTL) --namespace $(NS_PLATFORM) create secret generic $(AIRFLOW_KEYS_SECRET) \
			--from-file="$$work/fernet-key" --from-file="$$work/api-secret-key" \
			--from-file="$$work/jwt-secret" --from-file="$$work/webserver-secret-key"; }
endif
	$(HELM) repo add apache-airflow $(call chart_field,airflow_repo) --force-update
	$(HELM) repo add spark-operator $(call chart_field,spark_operator_repo) --force-update
	$(HELM) upgrade --install spark-operator spark-operator/$(call chart_field,spark_operator_chart) \
		--version $(call chart_field,spark_operator_version) --namespace $(NS_SPARK_OPERATOR) \
		--values charts/spark-operator-values.yaml --wait --timeout $(HELM_TIMEOUT)
	$(HELM) upgrade --install $(MLFLOW_SERVICE) charts/mlflow --namespace $(NS_PLATFORM) \
		$(call DEV_VALUES,mlflow) \
		--set image.repository=$(DEPLOY_REGISTRY)$(call image_name,mlflow) --set-string image.tag=$(DEPLOY_TAG) \
		--wait --timeout $(HELM_TIMEOUT)
	@# Without Helm hooks (see airflow-values.yaml) the migration Job is a plain resource: a new
	@# image must not patch the finished one.
	$(KUBECTL) --namespace $(NS_PLATFORM) delete job airflow-run-airflow-migrations --ignore-not-found
	$(HELM) upgrade --install airflow apache-airflow/$(call chart_field,airflow_chart) \
		--version $(call chart_field,airflow_version) --namespace $(NS_PLATFORM) \
		--values charts/airflow-values.yaml $(call DEV_VALUES,airflow) \
		--set images.airflow.repository=$(DEPLOY_REGISTRY)$(call image_name,airflow) \
		--set-string images.airflow.tag=$(DEPLOY_TAG) \
		--set defaultAirflowRepository=$(DEPLOY_REGISTRY)$(call image_name,airflow) \
		--set-string defaultAirflowTag=$(DEPLOY_TAG) \
		--set dags.gitSync.repo=$(GIT_REPO_URL) --set dags.gitSync.branch=$(GIT_BRANCH) \
		--set dags.gitSync.rev=HEAD --set dags.gitSync.ref=$(GIT_BRANCH) \
		--wait --wait-for-jobs --timeout $(HELM_TIMEOUT)
	$(HELM) test $(MLFLOW_SERVICE) --namespace $(NS_PLATFORM) --timeout 5m
	@echo ">>> deployed. make port-forward-airflow / make port-forward-mlflow / make port-forward-spark-history"

undeploy: $(VENV)/.synced ## Uninstall the releases and delete the overlay's objects (namespaces included: data in dev PVCs goes too)
	-$(HELM) uninstall airflow --namespace $(NS_PLATFORM) --wait
	-$(HELM) uninstall $(MLFLOW_SERVICE) --namespace $(NS_PLATFORM) --wait
	-$(HELM) uninstall spark-operator --namespace $(NS_SPARK_OPERATOR) --wait
	$(KUBECTL) kustomize k8s/overlays/$(OVERLAY) | $(KUBECTL) delete --ignore-not-found -f -

# External Secrets Operator, which turns the Lockbox secrets into the platform's Secrets (yandex).
external-secrets: $(VENV)/.synced ## Install External Secrets Operator (the yandex overlay's Secrets come from Lockbox)
	$(HELM) repo add external-secrets $(call chart_field,external_secrets_repo) --force-update
	$(HELM) upgrade --install external-secrets external-secrets/$(call chart_field,external_secrets_chart) \
		--version $(call chart_field,external_secrets_version) --namespace $(NS_EXTERNAL_SECRETS) \
		--create-namespace --set installCRDs=true --wait --timeout $(HELM_TIMEOUT)

port-forward-airflow: $(VENV)/.synced ## Airflow UI and API on http://localhost:8080
	@echo ">>> http://localhost:8080 - log in with the Airflow user you created (FAB auth manager, no"
	@echo ">>> default admin): docs/kubernetes.md, 'Airflow login'."
	$(KUBECTL) --namespace $(NS_PLATFORM) port-forward service/airflow-api-server 8080:8080

port-forward-mlflow: $(VENV)/.synced ## MLflow UI on http://localhost:<mlflow.port> (5000)
	@echo ">>> http://localhost:$(MLFLOW_PORT) - basic auth (yandex; off in dev): log in as user $(MLFLOW_AUTH_ADMIN), password from"
	@echo ">>> Lockbox, the admin_password line of: yc lockbox payload get --name $(MLFLOW_AUTH_SERVER_SECRET) --key basic_auth.ini"
	$(KUBECTL) --namespace $(NS_PLATFORM) port-forward service/$(MLFLOW_SERVICE) $(MLFLOW_PORT):$(MLFLOW_PORT)

port-forward-spark-history: $(VENV)/.synced ## Spark History Server on http://localhost:<spark_history.port> (18080)
	@echo ">>> http://localhost:$(SPARK_HISTORY_PORT) - every step's Spark UI after its driver is gone (no login: reachable"
	@echo ">>> through this port-forward only). A step's task log names its page: .../history/<spark application id>/"
	$(KUBECTL) --namespace $(NS_PLATFORM) port-forward service/$(SPARK_HISTORY) $(SPARK_HISTORY_PORT):$(SPARK_HISTORY_PORT)

argocd-bootstrap: ## Hand the cluster to Argo CD: apply the root Application (k8s/argocd)
	$(KUBECTL) apply -k k8s/argocd

charts-pull: $(VENV)/.synced ## Download the pinned upstream charts into .tools/charts (tests render them when present)
	$(PY) -c "import helm_python as h; \
		[h.pull(c, repo_url=r, version=v, destination='$(CHART_CACHE)') for c, r, v in ( \
		('$(call chart_field,airflow_chart)', '$(call chart_field,airflow_repo)', '$(call chart_field,airflow_version)'), \
		('$(call chart_field,spark_operator_chart)', '$(call chart_field,spark_operator_repo)', '$(call chart_field,spark_operator_version)'), \
		('$(call chart_field,external_secrets_chart)', '$(call chart_field,external_secrets_repo)', '$(call chart_field,external_secrets_version)'))]"
