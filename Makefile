# tabular-mlops — every command a user meets. Each target sets up what it needs itself:
# on a fresh machine with Python 3 and make, `make demo` and `make test` are enough.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# The stamp is newer than the lock once the environment matches it; a changed lock reinstalls.
READY  := $(VENV)/.ready
# locust's own venv: its pins clash with the lock (requests). The load test runs it as a tool.
LOCUST_READY := .venv-locust/.ready
STACK  ?= staging
BUILD  := build
# The policy engine's own environment: checkov's pins clash with pulumi-gcp's.
CHECKOV_VENV  := .venv-checkov
CHECKOV_READY := $(CHECKOV_VENV)/.ready

.DEFAULT_GOAL := help
.PHONY: help venv test lint format demo index pipeline evaluate score plan plan-fresh plan-diff cost-diff docs lock clean \
        test-pipeline compile publish-image submit ci-variables serve acceptance promote init doctor \
        compliance bootstrap plan-bootstrap stack-init destroy ingest contract generate loadtest \
        e2e e2e-sweep e2e-settings

# `make help` lists every target with a `## ` comment, in these three groups (a new target goes
# into exactly one: tests/ci/test_makefile.py checks), each wrapped to 100 columns.
HELP_LOCAL  := demo index pipeline evaluate score serve acceptance loadtest ingest contract \
               generate init test test-pipeline lint format bench-training bench-ingest \
               bench-score bench-serve venv lock clean help
HELP_REVIEW := plan plan-diff plan-fresh plan-bootstrap cost-diff compliance docs compile promote
HELP_CLOUD  := doctor bootstrap stack-init publish-image submit ci-variables destroy e2e e2e-sweep \
               e2e-settings
HELP_GROUPS := "local: runs here, no cloud account needed|$(HELP_LOCAL)" \
  "review: what a change to the stacks does, offline (plan, cost, compliance, docs)|$(HELP_REVIEW)" \
  "needs GCP or the Pulumi CLI: a live project and your credentials|$(HELP_CLOUD)"

help: ## list the commands: those that run here, those that review a change, those that need GCP
	@$(PYTHON) tooling/make_help.py $(firstword $(MAKEFILE_LIST)) $(HELP_GROUPS)

venv: $(READY) ## create .venv from requirements.txt (done by every target that needs it)

# The pinned packages (numpy 2.4, pandas 3.1, contourpy …) need Python 3.11 or newer: say so
# before anything installs, not deep inside pip's resolver.
PYTHON_VERSION_CHECK = $(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) \
  else "tabular-mlops needs Python >= 3.11, found %d.%d (%s): install a newer one and run make \
again with PYTHON=python3.11 (or newer)" % (v[0], v[1], sys.executable))'

# uv downloads and installs the pinned environment far faster than pip (docs/install.md has the
# figures; compiling the bytecode costs both alike); it is itself a wheel from the same registry,
# installed into the venv by pip, so a machine needs nothing but Python and make. uv reads no pip.conf: where a package mirror is
# configured only there, INSTALLER=pip installs with pip alone (so does a failed uv install).
UV_VERSION := 0.13.8
INSTALLER  ?= uv
PIP_INSTALL = $(BIN)/pip install --disable-pip-version-check --progress-bar on -r requirements.txt

$(READY): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "no $(PYTHON) on PATH: install Python >= 3.11, \
	or name one with PYTHON=…" >&2; exit 2; }
	@$(PYTHON_VERSION_CHECK)
	@echo "==> creating $(VENV) from requirements.txt with $(INSTALLER) (a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
ifeq ($(INSTALLER),uv)
	$(BIN)/pip install --disable-pip-version-check --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(PY) --compile-bytecode -r requirements.txt || \
	  { echo "==> uv could not install the environment; installing with pip" >&2; $(PIP_INSTALL); }
else
	$(PIP_INSTALL)
endif
	@touch $@

$(CHECKOV_READY): tooling/requirements-checkov.txt
	@echo "==> creating $(CHECKOV_VENV) for checkov (about a minute the first time)"
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r tooling/requirements-checkov.txt
	@touch $@

test: $(READY) $(LOCUST_READY) lint compliance ## every check CI runs: lint, the policy engine on both plans, then all tests
	$(PY) -m pytest

lint: $(READY) ## ruff lint and format check; the GitHub workflows with actionlint and zizmor
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/actionlint
	$(BIN)/zizmor --offline --persona pedantic --no-progress .github

format: $(READY) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# CONTRACT=path: the data contract of every local command (default: the staging stack's).
CONTRACT_ARG = $(if $(CONTRACT),--contract '$(CONTRACT)')
# PARAMS="name=value …": training pipeline arguments (make pipeline, make demo's train stage).
PARAM_ARGS = $(foreach p,$(PARAMS),--param '$(p)')

demo: $(READY) $(LOCUST_READY) ## the lifecycle locally, stage by stage (starts from an empty .local/; KEEP=1 keeps it) [CONTRACT=…]
	$(PY) -m local.demo $(CONTRACT_ARG) $(PARAM_ARGS) $(if $(KEEP),--keep)

index: $(READY) ## regenerate .local/index.html, the lifecycle page (every run does it too)
	$(PY) -m local.lifecycle $(CONTRACT_ARG)

pipeline: $(READY) ## the training pipeline, locally (kfp.local) on the local warehouse
	$(PY) -m local.run_training $(CONTRACT_ARG) $(PARAM_ARGS)

evaluate: $(READY) ## the evaluation pipeline, locally: judge the served model on new batches, retrain if degraded
	$(PY) -m local.run_evaluation $(CONTRACT_ARG)

.PHONY: bench-training
bench-training: $(READY) ## training pipeline time and peak memory at 10k, 100k, 1M rows (~5 min idle)
	$(PY) -m benchmarks.training_growth $(if $(ROWS),--rows $(ROWS))

score: $(READY) ## the scoring pipeline, locally: the served model scores ROWS=1000 generated rows (or SOURCE=table|SELECT, NEW=1: unscored batches) into the predictions table
	$(PY) -m local.run_scoring $(CONTRACT_ARG) \
	  $(if $(NEW),--param source=,$(if $(SOURCE),--param "source=$(SOURCE)",--param generate=$(or $(ROWS),1000)))

.PHONY: bench-ingest
bench-ingest: $(READY) ## ingestion throughput and peak memory vs the alternatives: make bench-ingest SIZE=1GB
	$(PY) -m benchmarks.ingest_throughput --size $(or $(SIZE),1GB) $(CONTRACT_ARG)

.PHONY: bench-score
bench-score: $(READY) ## batch scoring rows/s vs the model's floor, and 10M rows on each stack's batch job
	$(PY) -m benchmarks.scoring $(if $(ROWS),--rows $(ROWS))

.PHONY: bench-serve
bench-serve: $(READY) ## serving latency/throughput: ours, the floor, the previous server, plain FastAPI
	$(PY) -m benchmarks.serving $(if $(BENCH_SECONDS),--seconds $(BENCH_SECONDS))

test-pipeline: $(READY) ## the pipeline's tests only (CI's pipeline workflow)
	$(PY) -m pytest tests/pipeline

compile: $(READY) ## compile both pipelines for a stack's image, offline: make compile STACK=prod
	image="$$($(PY) -m tooling.plan --stack $(STACK) --output pipeline_image)" && \
	for pipeline in training evaluation; do \
	    $(PY) -m pipeline_src.compile --image "$$image" --pipeline $$pipeline \
	        --out $(BUILD)/$$pipeline-pipeline-$(STACK).yaml || exit 1; \
	done

# The next two act on a deployed stack: they need the Pulumi CLI logged in to the stack's state
# backend and Google credentials (CI: Workload Identity Federation, docs/ci-cd.md).
# One line instead of `pulumi: not found` half-way through a recipe.
NEEDS_PULUMI = @command -v pulumi >/dev/null || { echo "make $@: needs the Pulumi CLI, logged in \
to the stack's state backend (docs/deploy.md); offline, make plan STACK=$(STACK) shows the stack" >&2; exit 2; }

publish-image: ## build and push the pipeline image a deployed stack names, unless published
	$(NEEDS_PULUMI)
	.ci/publish-image "$$(pulumi stack output pipeline_image -s $(STACK))"

ci-variables: $(READY) ## the `gh variable set` commands for the workflows, from the deployed stacks
	$(PY) -m tooling.github_variables

submit: $(READY) ## publish this checkout's pipeline template and run it on a deployed stack
	$(NEEDS_PULUMI)
	@mkdir -p $(BUILD)
	pulumi stack output training_pipeline --json -s $(STACK) > $(BUILD)/training-job-$(STACK).json.tmp
	mv $(BUILD)/training-job-$(STACK).json.tmp $(BUILD)/training-job-$(STACK).json
	$(PY) -m pipeline_src.submit --job $(BUILD)/training-job-$(STACK).json --publish

serve: $(READY) ## serve a local endpoint over HTTP (Vertex routes): make serve ENDPOINT=staging [PORT=8080]
	$(PY) -m local.serving --endpoint $(or $(ENDPOINT),staging) --port $(or $(PORT),8080) \
	  $(CONTRACT_ARG)

acceptance: $(READY) ## QA acceptance suite: make acceptance [ENDPOINT=staging | http://… | projects/…/endpoints/…] [MODEL=id@version]
	$(PY) -m pytest tests/acceptance -v -s \
	  $(if $(ENDPOINT),--endpoint '$(ENDPOINT)') $(if $(MODEL),--expect-model '$(MODEL)') \
	  $(CONTRACT_ARG)

$(LOCUST_READY): loadtest/requirements.txt
	@echo "==> creating .venv-locust from loadtest/requirements.txt (the load test's own venv)"
	$(PYTHON) -m venv .venv-locust
	.venv-locust/bin/pip install --quiet --disable-pip-version-check -r loadtest/requirements.txt
	@touch $@

loadtest: $(READY) $(LOCUST_READY) ## load test an endpoint against the stack's SLO: make loadtest ENDPOINT=http://… | projects/…/endpoints/… [STACK=staging]
	$(PY) -m loadtest.run --endpoint '$(ENDPOINT)' --stack $(STACK)

promote: $(READY) ## write what staging serves into Pulumi.prod.yaml: make promote FROM=projects/…/endpoints/ID | MODEL=projects/…/models/ID@N | LOCAL=1 (local staging, into .local's copy)
	$(PY) -m tooling.promote $(if $(FROM),--from-vertex '$(FROM)') $(if $(MODEL),--model '$(MODEL)') \
	  $(if $(LOCAL),--local-copy)

ingest: $(READY) ## one CSV through the real function into the local warehouse: make ingest FILE=x.csv [CONTRACT=…]
	@test -n "$(FILE)" || { echo "make ingest FILE=path/to/file.csv [CONTRACT=contracts/….yaml]"; exit 2; }
	$(PY) -m local.ingest_file '$(FILE)' $(CONTRACT_ARG)

contract: $(READY) ## draft a data contract from a CSV: make contract FROM=file.csv [LABEL=column] [OUT=path.yaml]
	@test -n "$(FROM)" || { echo "make contract FROM=path/to/file.csv [LABEL=column] [OUT=path.yaml]"; exit 2; }
	$(PY) -m contracts.draft '$(FROM)' $(if $(LABEL),--label '$(LABEL)') $(if $(OUT),--out '$(OUT)')

generate: $(READY) ## a CSV of new rows from the contract's sample: make generate OUT=batch.csv [ROWS=400] [DRIFT=shift=1.5] [CONTRACT=…]
	$(PY) -m contracts.generate --rows $(or $(ROWS),400) $(if $(DRIFT),--drift '$(DRIFT)') \
	  $(CONTRACT_ARG) '$(or $(OUT),batch.csv)'

init: $(READY) ## make the stack files yours (asks, or flags: make init ARGS="--staging-project … --no-input")
	$(PY) -m tooling.init $(ARGS)

doctor: $(READY) ## preflight of a real project before `pulumi up` (read only, your credentials): make doctor STACK=prod
	$(PY) -m tooling.doctor --stack $(STACK) $(if $(VERBOSE),--verbose)

compliance: $(READY) $(CHECKOV_READY) ## both plans checked by checkov; fails on a finding not in the skip list
	$(PY) -m tooling.compliance --checkov $(CHECKOV_VENV)/bin/checkov --out-dir $(BUILD)/compliance

# The bootstrap (docs/bootstrap.md) runs once per organisation, by a person: the Pulumi CLI, gcloud
# credentials, and GITHUB_TOKEN of a repository administrator (for this run only, never stored).
# Its own state starts in bootstrap/.state (the bucket does not exist yet), then moves into the
# bucket it creates, beside the stacks it reads: make bootstrap BOOTSTRAP_BACKEND=gs://<bucket>.
BOOTSTRAP_BACKEND ?= file://$(CURDIR)/bootstrap/.state

bootstrap: $(READY) ## state bucket, secrets key, GitHub environments/protection/variables (docs/bootstrap.md)
	@mkdir -p bootstrap/.state
	cd bootstrap && export PULUMI_BACKEND_URL='$(BOOTSTRAP_BACKEND)' && \
	    { pulumi stack select bootstrap 2>/dev/null || \
	      pulumi stack init bootstrap --secrets-provider passphrase; } && \
	    pulumi up --stack bootstrap $(if $(WIRED),--config tabular-mlops-bootstrap:wire_stacks=true)

destroy: $(READY) ## tear a stack down in order (staging, prod, bootstrap), saying what stays: make destroy STACK=staging [DRY_RUN=1]
	$(PY) -m tooling.destroy --stack $(STACK) --bootstrap-backend '$(BOOTSTRAP_BACKEND)' $(if $(DRY_RUN),--dry-run)

# A real run on a sandbox project (docs/e2e.md): the Pulumi CLI logged in to a state backend and
# Google credentials; its throwaway stack is destroyed and removed whatever happens.
e2e: $(READY) ## a throwaway stack, the lifecycle on it, then destroy: make e2e PROJECT=sandbox [REGION=…] | LOCAL=1 (the stand-ins)
	$(if $(LOCAL),,$(NEEDS_PULUMI))
	$(PY) -m tooling.e2e $(if $(LOCAL),--local,--project '$(PROJECT)') $(if $(REGION),--region '$(REGION)') \
	  $(if $(SECRETS_PROVIDER),--secrets-provider '$(SECRETS_PROVIDER)')

e2e-sweep: $(READY) ## destroy what interrupted e2e runs left (label e2e, older than HOURS=6): make e2e-sweep PROJECT=sandbox [DRY_RUN=1]
	$(PY) -m tooling.e2e_sweep --project '$(PROJECT)' $(if $(REGION),--region '$(REGION)') \
	  $(if $(HOURS),--older-than-hours $(HOURS)) $(if $(DRY_RUN),--dry-run)

e2e-settings: $(READY) ## the e2e workflow's sandbox settings (.github/e2e-sandbox.yaml) as step outputs
	$(PY) -m tooling.e2e_settings

plan-bootstrap: $(READY) ## offline plan of the bootstrap program (WIRED=1: with the stacks' variables)
	$(PY) -m bootstrap.plan $(if $(WIRED),--wired)

stack-init: ## create a stack whose secrets use the bootstrap's key: make stack-init STACK=prod
	pulumi stack init $(STACK) --secrets-provider "$$(cd bootstrap && \
	    PULUMI_BACKEND_URL='$(BOOTSTRAP_BACKEND)' pulumi stack output secrets_provider -s bootstrap)"

plan: $(READY) ## offline plan of one stack and its monthly cost estimate: make plan STACK=prod [FULL=1]
	$(PY) -m tooling.plan --stack $(STACK) --out-dir $(BUILD) $(if $(FULL),--full)

plan-fresh: $(READY) ## both stacks planned from nothing in first-deploy order (docs/first-deploy.md)
	$(PY) -m tooling.plan.fresh

plan-diff: $(READY) ## what differs between the staging and prod plans, and what it costs [FULL=1]
	$(PY) -m tooling.plan --diff staging prod --out-dir $(BUILD) $(if $(FULL),--full)

cost-diff: $(READY) ## monthly cost change between two plan JSON files: make cost-diff BEFORE=a.json AFTER=b.json
	$(PY) -m tooling.cost diff $(BEFORE) $(AFTER)

docs: $(READY) ## regenerate the generated docs (docs/configuration.md, …)
	$(PY) -m tooling.docs

lock: ## re-resolve requirements.in into requirements.txt in a scratch venv
	rm -rf $(BUILD)/lock-venv
	$(PYTHON) -m venv $(BUILD)/lock-venv
	$(BUILD)/lock-venv/bin/pip install --quiet --disable-pip-version-check -r requirements.in
	$(BUILD)/lock-venv/bin/pip check
	{ echo "# Generated by \`make lock\` from requirements.in: the exact environment make test and make demo use."; \
	  $(BUILD)/lock-venv/bin/pip freeze; } > requirements.txt
	rm -rf $(BUILD)/lock-venv

clean: ## remove build output and the virtualenv
	rm -rf $(BUILD) $(VENV) $(CHECKOV_VENV) .venv-locust .pytest_cache .ruff_cache
