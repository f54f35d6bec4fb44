"""The two sides of the e2e seam (tooling/e2e.py `Cloud`): Google Cloud, and the local stand-ins.

`GcpCloud` is the only code of the e2e run that reaches GCP: the Pulumi CLI, Cloud Storage,
BigQuery and Vertex AI, with the caller's credentials (the e2e identity in CI). The tests never
construct it with a real client. `LocalCloud` runs the same steps on the local lifecycle
(`make e2e LOCAL=1`): the offline plan for `pulumi up`, the emulated landing bucket and the real
function, kfp.local for the pipelines, a local server for the endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from stacks.config import PROJECT_ROOT


class GcpCloud:
    """pulumi and the Google clients, for a stack in the current Pulumi backend."""

    def __init__(self, secrets_provider: str = "passphrase", out_dir: Path | None = None):
        self.secrets_provider = secrets_provider
        self.out_dir = out_dir or PROJECT_ROOT / "build" / "e2e"

    def _pulumi(self, *args: str, capture: bool = False) -> str:
        result = subprocess.run(
            ["pulumi", *args, "--non-interactive"], cwd=PROJECT_ROOT, text=True,
            capture_output=capture, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"pulumi {args[0]} failed: {(result.stderr or '')[-4000:]}")
        return result.stdout or ""

    def create_stack(self, stack: str, stack_file: Path) -> None:
        self._pulumi("stack", "init", stack, "--secrets-provider", self.secrets_provider)

    def up(self, stack: str) -> dict[str, Any]:
        # Captured so a failure's text (quota, API, IAM) reaches the report; pulumi's progress
        # is in the run's log in the backend all the same.
        self._pulumi("up", "--yes", "--skip-preview", "--stack", stack, capture=True)
        return json.loads(self._pulumi("stack", "output", "--json", "--stack", stack, capture=True))

    def publish_image(self, image: str) -> str:
        subprocess.run([str(PROJECT_ROOT / ".ci" / "publish-image"), image], check=True)
        return f"{image} published (or already there)"

    def upload(self, bucket: str, name: str, path: Path) -> None:
        from google.cloud import storage

        storage.Client().bucket(bucket).blob(name).upload_from_filename(str(path))

    def table_rows(self, outputs: dict[str, Any]) -> int:
        from google.cloud import bigquery

        table = f"{outputs['project']}.{outputs['dataset']}.{outputs['curated_table']}"
        return bigquery.Client(project=outputs["project"]).get_table(table).num_rows or 0

    def object_names(self, bucket: str) -> list[str]:
        from google.cloud import storage

        return [blob.name for blob in storage.Client().list_blobs(bucket)]

    def train(self, stack: str, outputs: dict[str, Any]) -> str:
        from pipeline_src.submit import TrainingJob, submit

        self.out_dir.mkdir(parents=True, exist_ok=True)
        job_file = self.out_dir / f"training-job-{stack}.json"
        job_file.write_text(json.dumps(outputs["training_pipeline"]), encoding="utf-8")
        job = submit(TrainingJob.from_file(job_file), wait=True, out_dir=self.out_dir)
        return f"{job.resource_name}: {job.state}"

    def accept(self, outputs: dict[str, Any]) -> str:
        endpoint = (
            f"projects/{outputs['project']}/locations/{outputs['region']}/endpoints/"
            + str(outputs["endpoint"]).rsplit("/", 1)[-1]
        )
        return run_acceptance(endpoint)

    def evaluate(self, outputs: dict[str, Any]) -> str:
        """One run of the job the stack's evaluation schedule would start (it is paused): the
        schedule's own create request, sent once, then waited for."""
        from google.cloud import aiplatform
        from google.cloud.aiplatform_v1 import PipelineServiceClient

        aiplatform.init(project=outputs["project"], location=outputs["region"])
        schedules = [
            s for s in aiplatform.PipelineJobSchedule.list()
            if "evaluation" in s.display_name
        ]  # fmt: skip
        if not schedules:
            raise RuntimeError("no evaluation schedule in the stack's project and region")
        request = schedules[0].gca_resource.create_pipeline_job_request
        client = PipelineServiceClient(
            client_options={"api_endpoint": f"{outputs['region']}-aiplatform.googleapis.com"}
        )
        created = client.create_pipeline_job(
            parent=request.parent, pipeline_job=request.pipeline_job
        )
        job = aiplatform.PipelineJob.get(created.name)
        job.wait()  # raises if the run fails
        return f"{job.resource_name}: {job.state}"

    def lifecycle_page(self, outputs: dict[str, Any]) -> str:
        from google.cloud import storage

        from pipeline_src.lifecycle_page import PAGE_OBJECT

        blob = storage.Client().bucket(outputs["artifacts_bucket"]).blob(PAGE_OBJECT)
        return blob.download_as_text()

    def destroy(self, stack: str) -> None:
        self._pulumi("destroy", "--yes", "--skip-preview", "--stack", stack, capture=True)

    def remove_stack(self, stack: str) -> None:
        self._pulumi("stack", "rm", "--yes", stack, capture=True)


def run_acceptance(endpoint: str, contract: Path | None = None, model: str | None = None) -> str:
    """The acceptance suite (tests/acceptance) against an endpoint: its summary line."""
    command = [sys.executable, "-m", "pytest", "tests/acceptance", "-q", "-p", "no:cacheprovider",
               "--endpoint", endpoint]  # fmt: skip
    if contract:
        command += ["--contract", str(contract)]
    if model:
        command += ["--expect-model", model]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0:
        raise RuntimeError(f"the acceptance suite failed on {endpoint}: {result.stdout[-2000:]}")
    return f"acceptance suite on {endpoint}: {lines[-1].strip('= ') if lines else 'passed'}"


LOCAL_BATCH_ROWS = 200
"""The staging config's evaluation.min_new_rows: the fewest rows it judges."""


class LocalCloud:
    """The same steps on the local stand-ins: the rehearsal, fast (small data)."""

    def __init__(self, root: Path):
        from local.environment import LocalEnvironment

        self.root = root
        self.env = LocalEnvironment(root=root)
        self.landing: Any = None
        self.loaded = 0
        self.record: Any = None

    def _demo(self) -> Any:
        from local.demo import DemoContext

        return DemoContext(env=self.env, fast=True)

    def create_stack(self, stack: str, stack_file: Path) -> None:
        from stacks.config import stack_config_values

        self.config = stack_config_values(stack, stack_file.parent)
        self.env.ensure()

    def up(self, stack: str) -> dict[str, Any]:
        """The offline plan of the e2e stack stands in for `pulumi up`; the landing emulator
        starts (it stops at destroy)."""
        from local.ingestion import LocalLanding
        from tooling.plan.offline import run_program

        self.record = run_program(stack, config=self.config)
        self.landing = LocalLanding(self.env).__enter__()
        return {
            "landing_bucket": self.env.landing_bucket,
            "quarantine_bucket": self.env.quarantine_bucket,
            "curated_table": f"{self.env.dataset}.{self.env.contract.name}",
            "endpoint": "staging",
            "pipeline_image": self.record.outputs.get("pipeline_image", ""),
        }

    def publish_image(self, image: str) -> str:
        return f"not needed locally: kfp.local runs this checkout ({image} in the cloud)"

    def upload(self, bucket: str, name: str, path: Path) -> None:
        outcome = self.landing.ingest(self.landing.upload_file(name, path))
        self.loaded += int(outcome.get("rows_loaded") or 0)

    def table_rows(self, outputs: dict[str, Any]) -> int:
        return self.loaded

    def object_names(self, bucket: str) -> list[str]:
        return list(self.landing.quarantined())

    def train(self, stack: str, outputs: dict[str, Any]) -> str:
        from local.demo import stage_train

        return stage_train(self._demo())

    def accept(self, outputs: dict[str, Any]) -> str:
        from local.registry import LocalEndpoint
        from local.serving import serve_endpoint

        serving = LocalEndpoint(self.env.endpoints_dir, "staging").serving()
        if serving is None:
            raise RuntimeError("the staging endpoint serves nothing after training")
        with serve_endpoint(self.env, "staging") as server:
            return run_acceptance(server.url, self.env.contract_path, serving.resource_name)

    def evaluate(self, outputs: dict[str, Any]) -> str:
        """The evaluation pipeline once, on a new undrifted batch: judged, no retraining (the
        demo's evaluate stage shows a drifted one and the retraining)."""
        from local.batches import ingest_generated
        from local.run_evaluation import run

        batch = ingest_generated(self.env, LOCAL_BATCH_ROWS, seed=20)
        record = run(self.env, say=lambda line: print(f"  {line}", flush=True)).record
        return (
            f"judged {record['model_version']} on {batch['rows_loaded']} new rows: "
            f"{record['decision']}"
        )

    def lifecycle_page(self, outputs: dict[str, Any]) -> str:
        return (self.env.root / "index.html").read_text(encoding="utf-8")

    def destroy(self, stack: str) -> None:
        if self.landing is not None:
            self.landing.__exit__(None, None, None)
            self.landing = None

    def remove_stack(self, stack: str) -> None:
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)
