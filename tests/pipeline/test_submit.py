"""Submitting to Vertex AI: the job is built offline for real; its network calls are patched."""

from __future__ import annotations

import json

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
            "serving_image": IMAGE,
            "min_accuracy": 0.9,
        },
        labels={"app": "tabular-mlops", "stack": "staging"},
    )


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
