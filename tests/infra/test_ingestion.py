"""The ingestion function's deployment: its archive, its settings and the order of its grants."""

from __future__ import annotations

import ast
from pathlib import Path

import pulumi
import pytest

from contracts import CONTRACTS_DIR
from resources.ingestion import (
    FunctionSource,
    Ingestion,
    IngestionArgs,
    function_source,
)
from stacks.config import PROJECT_ROOT, IngestionConfig
from stacks.platform import FUNCTION_DIR

CONTRACT = CONTRACTS_DIR / "penguins.yaml"
CONTRACT_FILES = {
    "contracts/__init__.py",
    "contracts/model.py",
    "contracts/dates.py",
    "contracts/messages.py",
    "contracts/tables.py",
    "contracts/wire.py",
}


@pytest.fixture
def function_dir(tmp_path: Path) -> Path:
    """A function folder with what ships and what must not."""
    root = tmp_path / "function_src"
    (root / "ingest").mkdir(parents=True)
    (root / "main.py").write_text("def ingest(event):\n    return None\n")
    (root / "requirements.txt").write_text("functions-framework==3.10.0\n")
    (root / "ingest" / "checks.py").write_text("CHECKS = []\n")
    for junk in ("tests/test_main.py", "__pycache__/main.cpython-311.pyc", ".env", "test_x.py"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text("not shipped")
    (root / "ingest" / "__pycache__").mkdir()
    (root / "ingest" / "__pycache__" / "checks.cpython-311.pyc").write_bytes(b"\0")
    return root


def test_archive_holds_the_function_and_the_contract_package(function_dir):
    source = function_source(function_dir, CONTRACT)
    assert set(source.files) == {
        "main.py",
        "requirements.txt",
        "ingest/checks.py",
        *CONTRACT_FILES,
        "contracts/penguins.yaml",
    }
    assert source.contract_path == "contracts/penguins.yaml"
    assert source.problems == ()
    assert source.object_name == f"sources/ingestion-{source.digest[:16]}.zip"


def _contracts_modules(node: ast.AST) -> set[str]:
    """The modules of the `contracts` package an import statement names."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module == "contracts":
        names = [f"contracts.{a.name}" for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        names = [node.module or ""]
    else:
        return set()
    modules = {n.split(".")[1] for n in names if n.startswith("contracts.")}
    return {m for m in modules if (CONTRACTS_DIR / f"{m}.py").exists()}


def test_the_archive_carries_every_contracts_module_the_function_imports():
    """The function imports the shared wire names and tables from `contracts`: a module it
    imports but the archive lacks would fail only once deployed."""
    imported = {
        module
        for path in FUNCTION_DIR.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        for module in _contracts_modules(node)
    }
    assert {"wire", "tables"} <= imported
    shipped = function_source(FUNCTION_DIR, CONTRACT).files
    assert {f"contracts/{module}.py" for module in imported} <= set(shipped)


def test_only_a_change_of_shipped_content_changes_the_digest(function_dir):
    before = function_source(function_dir, CONTRACT).digest
    assert function_source(function_dir, CONTRACT).digest == before
    (function_dir / "tests" / "test_main.py").write_text("changed")
    (function_dir / "__pycache__" / "main.cpython-311.pyc").write_text("changed")
    assert function_source(function_dir, CONTRACT).digest == before
    (function_dir / "ingest" / "checks.py").write_text("CHECKS = ['header']\n")
    assert function_source(function_dir, CONTRACT).digest != before


def test_a_contract_change_redeploys_the_function(function_dir, tmp_path):
    other = tmp_path / "penguins.yaml"
    other.write_text(CONTRACT.read_text() + "\n# a comment is a change of the shipped file\n")
    assert (
        function_source(function_dir, other).digest
        != function_source(function_dir, CONTRACT).digest
    )


@pytest.mark.parametrize(
    ("main", "problem"),
    [
        (None, "function_src/main.py is missing"),
        ("def handler(event): ...\n", "defines no top-level function `ingest`"),
        ("def outer():\n    def ingest(event): ...\n", "defines no top-level function `ingest`"),
        ("def ingest(event:\n", "does not parse"),
    ],
)
def test_an_undeployable_function_is_reported(function_dir, main, problem):
    if main is None:
        (function_dir / "main.py").unlink()
    else:
        (function_dir / "main.py").write_text(main)
    (found,) = function_source(function_dir, CONTRACT).problems
    assert problem in found


def test_the_function_cannot_bring_its_own_contracts_package(function_dir):
    (function_dir / "contracts").mkdir()
    (function_dir / "contracts" / "model.py").write_text("")
    with pytest.raises(ValueError, match="comes from the project's contracts/ folder"):
        function_source(function_dir, CONTRACT)


def _args(source: FunctionSource) -> IngestionArgs:
    return IngestionArgs(
        project="acme-test",
        region="europe-west4",
        function_name="fn",
        repository_id="repo",
        source=source,
        settings=IngestionConfig(
            landing_prefix="incoming/",
            min_instances=0,
            max_instances=2,
            memory="1Gi",
            timeout_seconds=540,
        ),
        landing_bucket="landing",
        landing_location="EUROPE-WEST4",
        quarantine_bucket="quarantine",
        artifacts_bucket="artifacts",
        dataset_id="ds",
        bq_location="europe-west4",
        curated_table="penguins",
        ingestion_log_table="ingestion_log",
        runtime_account_email="rt@x.iam.gserviceaccount.com",
        trigger_account_email="tr@x.iam.gserviceaccount.com",
        build_account_name="projects/acme-test/serviceAccounts/b@x.iam.gserviceaccount.com",
        labels={"stack": "test"},
    )


def test_preview_warns_but_a_deploy_refuses_an_unbuildable_function(pulumi_mocks, monkeypatch):
    source = FunctionSource(files={}, digest="0" * 64, contract_path="c", problems=("no main",))
    record = pulumi_mocks(lambda: Ingestion("ingestion", _args(source)))
    assert record.named("ingestion-function").inputs["buildConfig"]["entryPoint"] == "ingest"

    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: False)
    with pytest.raises(pulumi.RunError, match="cannot be built: no main"):
        pulumi_mocks(lambda: Ingestion("ingestion", _args(source)))


def test_deployed_function_runs_the_archive_of_function_src(stack_record):
    source = function_source(FUNCTION_DIR, PROJECT_ROOT / "contracts" / "penguins.yaml")
    uploaded = stack_record.named("ingestion-source").inputs
    assert uploaded["name"] == source.object_name
    assert set(uploaded["source"]["archive"]) == set(source.files)
    build = stack_record.named("ingestion-function").inputs["buildConfig"]
    assert build["source"]["storageSource"] == {
        "bucket": uploaded["bucket"],
        "object": uploaded["name"],
    }
    assert (build["runtime"], build["entryPoint"]) == ("python311", "ingest")
    assert build["dockerRepository"].endswith(
        "/repositories/" + stack_record.named("ingestion-images").inputs["repositoryId"]
    )


def test_function_settings_are_environment_variables(stack_record):
    service = stack_record.named("ingestion-function").inputs["serviceConfig"]
    env = service["environmentVariables"]
    outputs = stack_record.outputs
    assert env == {
        "CONTRACT_PATH": "contracts/penguins.yaml",
        "LANDING_BUCKET": outputs["landing_bucket"],
        "LANDING_PREFIX": "incoming/",
        "QUARANTINE_BUCKET": outputs["quarantine_bucket"],
        "BQ_PROJECT": outputs["project"],
        "BQ_DATASET": outputs["dataset"],
        "BQ_LOCATION": outputs["region"],
        "CURATED_TABLE": "penguins",
        "INGESTION_LOG_TABLE": "ingestion_log",
        "TIMEOUT_SECONDS": str(int(service["timeoutSeconds"])),  # cut-short attempts are older
        "STAGING_URI": f"gs://{outputs['artifacts_bucket']}/tmp/ingestion/",
    }


def test_trigger_prerequisites_come_before_the_function_and_invoker_after(stack_record):
    function = stack_record.named("ingestion-function")
    waits = {stack_record.by_urn(urn).name for urn in stack_record.depends_on(function)}
    assert {
        "ingestion-eventarc-agent",
        "ingestion-project-storage-agent-pubsub-publisher",
        "ingestion-project-ingestion-trigger-eventarc-eventreceiver",
        "ingestion-project-function-build-logging-logwriter",
        "ingestion-repository-function-build-artifactregistry-writer",
        "data-lake-landing-ingestion-storage-objectviewer",
        "warehouse-dataset-ingestion-bigquery-dataeditor",
    } <= waits
    invoker = stack_record.named("ingestion-function-service-ingestion-trigger-run-invoker")
    assert function.urn in stack_record.depends_on(invoker)
    publisher = stack_record.named("ingestion-project-storage-agent-pubsub-publisher")
    # The storage agent's role may serve other stacks' triggers: destroy leaves it.
    assert publisher.retain_on_delete and publisher.inputs["member"].endswith(
        "@gs-project-accounts.iam.gserviceaccount.com"
    )
