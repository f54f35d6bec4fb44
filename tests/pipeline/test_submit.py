"""Submitting to Vertex AI: the job is built offline for real; its network calls are patched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from google.auth.credentials import AnonymousCredentials

from pipeline_src import submit as submit_module
from pipeline_src.submit import TrainingJob, submit

IMAGE = "europe-west4-docker.pkg.dev/acme-mlops-staging/pipelines/pipeline:deps-0123456789ab"


@pytest.fixture
def job(contract) -> TrainingJob:
    return TrainingJob(
        project="acme-mlops-staging",
        region="europe-west4",
        image=IMAGE,
        pipeline_root="gs://acme-mlops-staging-staging-artifacts/pipeline-root",
        service_account="pipeline-runner-staging@acme-mlops-staging.iam.gserviceaccount.com",
        parameters={
            "contract": contract,
            "project": "acme-mlops-staging",
            "location": "europe-west4",
            "bq_location": "europe-west4",
            "dataset": "tabular_mlops_staging",
            "table": "penguins",
            "endpoint": "projects/acme-mlops-staging/locations/europe-west4/endpoints/1234567890",
            "model_id": "tabular-mlops-staging-penguins",
            "model_display_name": "penguins model",
            "models_uri": "gs://acme-mlops-staging-staging-artifacts/models",
            "lifecycle_uri": "gs://acme-mlops-staging-staging-artifacts/lifecycle",
            "serving_image": IMAGE,
            "min_accuracy": 0.9,
        },
        labels={"app": "tabular-mlops", "stack": "staging"},
    )


def test_a_stack_serving_privately_submits_its_runs_on_its_network(monkeypatch, tmp_path, job):
    from google.cloud import aiplatform

    calls = []
    monkeypatch.setattr(aiplatform.PipelineJob, "submit", lambda self, **kw: calls.append(kw))
    monkeypatch.setattr(aiplatform.PipelineJob, "resource_name", "projects/p/pipelineJobs/j")
    monkeypatch.setattr(submit_module, "code_version", lambda: "0123456789ab")
    network = "projects/123456789012/global/networks/tabular-mlops-staging-serving"
    private = TrainingJob(**{**job.__dict__, "network": network})
    submit(private, out_dir=tmp_path, say=lambda _: None, credentials=AnonymousCredentials())
    assert calls == [{"service_account": job.service_account, "network": network}]


def test_submit_compiles_this_checkout_and_submits_as_the_runner(monkeypatch, tmp_path, job):
    from google.cloud import aiplatform

    calls = []
    monkeypatch.setattr(
        aiplatform.PipelineJob, "submit", lambda self, **kw: calls.append(("submit", self, kw))
    )
    monkeypatch.setattr(aiplatform.PipelineJob, "wait", lambda self: calls.append(("wait", self)))
    monkeypatch.setattr(aiplatform.PipelineJob, "resource_name", "projects/p/pipelineJobs/j")
    monkeypatch.setattr(aiplatform.PipelineJob, "state", "PIPELINE_STATE_SUCCEEDED")
    monkeypatch.setattr(submit_module, "code_version", lambda: "0123456789ab")

    said = []
    pipeline_job = submit(
        job.with_parameters(learning_rate=0.05), wait=True, out_dir=tmp_path, say=said.append,
        credentials=AnonymousCredentials(),
    )  # fmt: skip
    assert [c[0] for c in calls] == ["submit", "wait"]
    assert calls[0][2] == {"service_account": job.service_account}

    request = pipeline_job._gca_resource
    assert request.runtime_config.gcs_output_directory == job.pipeline_root
    values = request.runtime_config.parameter_values
    assert values["git_commit"] == "0123456789ab" and values["learning_rate"] == 0.05
    assert values["dataset"] == "tabular_mlops_staging"
    assert dict(request.labels) == job.labels
    executors = request.pipeline_spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}
    compiled = yaml.safe_load((tmp_path / "training-pipeline.yaml").read_text())
    assert compiled["pipelineInfo"]["name"] == "tabular-mlops-training"
    assert said[-1].endswith("PIPELINE_STATE_SUCCEEDED")


def test_the_job_file_is_what_the_stack_exports(tmp_path, job):
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job.__dict__))
    assert TrainingJob.from_file(path) == job
    path.write_text(json.dumps({"project": "p"}))
    with pytest.raises(ValueError, match="missing region, image, pipeline_root"):
        TrainingJob.from_file(path)
    with pytest.raises(ValueError, match="pulumi stack output training_pipeline"):
        TrainingJob.from_file(tmp_path / "absent.json")


def test_unknown_parameters_and_local_roots_are_refused(job):
    with pytest.raises(ValueError, match="not parameters of the training pipeline: lerning_rate"):
        job.with_parameters(lerning_rate=0.1)
    local_root = TrainingJob(**{**job.__dict__, "pipeline_root": "/tmp/root"})
    with pytest.raises(ValueError, match="pipeline_root must be a gs:// location"):
        submit_module.build_job(local_root, "spec.yaml", credentials=AnonymousCredentials())


class FakeTemplateRegistry:
    """Stands in for Artifact Registry's Kubeflow Pipelines repository: keeps what is uploaded."""

    def __init__(self, url: str):
        self.url = url
        self.versions: dict[str, bytes] = {}
        self.tags: list[list[str]] = []

    def upload_pipeline(self, file_name: str, tags: list[str]) -> tuple[str, str]:
        content = Path(file_name).read_bytes()
        version = "sha256:" + hashlib.sha256(content).hexdigest()
        self.versions[f"{self.url}/tabular-mlops-training/{version}"] = content
        self.tags.append(tags)
        return "tabular-mlops-training", version

    def download(self, url: str, credentials=None) -> dict:
        return yaml.safe_load(self.versions[url])


def test_publish_uploads_the_template_and_the_run_uses_that_version(monkeypatch, tmp_path, job):
    from google.cloud import aiplatform
    from google.cloud.aiplatform.utils import yaml_utils

    registry_url = "https://europe-west4-kfp.pkg.dev/acme-mlops-staging/pipeline-templates"
    registry = FakeTemplateRegistry(registry_url)
    monkeypatch.setattr(yaml_utils, "_load_yaml_from_https_uri", registry.download)
    monkeypatch.setattr(aiplatform.PipelineJob, "submit", lambda self, **kw: None)
    monkeypatch.setattr(aiplatform.PipelineJob, "resource_name", "projects/p/pipelineJobs/j")
    monkeypatch.setattr(submit_module, "code_version", lambda: "0123456789ab-dirty")

    said = []
    published = TrainingJob(**{**job.__dict__, "template_registry": registry_url})
    pipeline_job = submit(
        published, out_dir=tmp_path, say=said.append, credentials=AnonymousCredentials(),
        publish_to=registry,
    )  # fmt: skip
    (url,) = registry.versions
    assert url.startswith(f"{registry_url}/tabular-mlops-training/sha256:")
    assert registry.versions[url] == (tmp_path / "training-pipeline.yaml").read_bytes()
    assert registry.tags == [["0123456789ab-dirty"]]
    assert said[0] == f"published {url}"
    # The run names the published version, and runs exactly the uploaded spec.
    request = pipeline_job._gca_resource
    assert request.template_uri == url
    executors = request.pipeline_spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}


def test_publishing_needs_the_stacks_template_registry(tmp_path, job):
    spec = tmp_path / "spec.yaml"
    spec.write_text("{}")
    with pytest.raises(ValueError, match="names no template_registry"):
        submit_module.publish(job, spec, "0123456789ab", client=object())
    elsewhere = TrainingJob(**{**job.__dict__, "template_registry": "https://example.com/r"})
    with pytest.raises(ValueError, match=r"must be https://REGION-kfp.pkg.dev/PROJECT/REPOSITORY"):
        submit_module.publish(elsewhere, spec, "0123456789ab", client=object())
