"""The pipelines component in both stacks' plans: image repository, schedule, CI's job file."""

from __future__ import annotations

import copy
import json

from pipeline_src.compile import compile_spec, parameter_names
from pipeline_src.submit import TrainingJob
from stacks.config import stack_config_values
from tests.infra.records import config_of, held_by, job_of, scheduled_job
from tooling.plan.offline import run_program

KEY = "projects/acme-security/locations/europe-west4/keyRings/ml/cryptoKeys/data"


def schedule_job(record) -> dict:
    return job_of(record, "pipelines-training-schedule")


def test_the_schedule_runs_the_spec_compiled_from_pipeline_src(stack_record):
    outputs = stack_record.outputs
    job = schedule_job(stack_record)
    spec = json.loads(job["pipelineSpec"])
    image = outputs["pipeline_image"]
    defaults = {
        name: parameter["defaultValue"]
        for name, parameter in spec["root"]["inputDefinitions"]["parameters"].items()
        if name in outputs["training_pipeline"]["parameters"] and "defaultValue" in parameter
    }
    limits = outputs["training_pipeline"]["limits"]  # the stack's task sizes (CI compiles these)
    assert spec == compile_spec(image, defaults, limits=limits)  # the code, with the stack's values
    executors = spec["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {image}

    training = config_of(stack_record).platform.pipelines.training
    assert defaults["min_accuracy"] == training.min_accuracy
    assert defaults["min_improvement"] == training.min_improvement
    assert defaults["contract"]["name"] == "penguins"
    # Model versions carry the stack's labels, and say the pipeline (not Pulumi) manages them.
    assert defaults["model_labels"]["stack"] == stack_record.stack
    assert defaults["model_labels"]["managed-by"] == "training-pipeline"


def test_the_image_lives_in_the_stack_repository_under_an_immutable_tag(stack_record):
    config = config_of(stack_record)
    repository = stack_record.named("pipelines-images").inputs
    assert repository["format"] == "DOCKER" and repository["dockerConfig"]["immutableTags"]
    assert repository["location"] == config.region
    registry = f"{config.region}-docker.pkg.dev/{config.project}/{repository['repositoryId']}"
    image = stack_record.outputs["pipeline_image"]
    assert image.startswith(f"{registry}/pipeline:deps-")
    parameters = schedule_job(stack_record)["runtimeConfig"]["parameterValues"]
    assert parameters["serving_image"] == image  # the model is served with the same packages


def test_scheduled_runs_execute_as_the_runner_on_the_configured_cron(stack_record):
    config = config_of(stack_record)
    settings = config.platform.pipelines.training.schedule
    job = scheduled_job(stack_record, "pipelines-training-schedule", settings)
    assert (
        job["serviceAccount"]
        == f"pipelines-{stack_record.stack}@{config.project}.iam.gserviceaccount.com"
    )
    artifacts = stack_record.named("data-lake-artifacts").inputs
    assert job["runtimeConfig"]["gcsOutputDirectory"] == f"gs://{artifacts['name']}/pipeline-root"
    expiring = artifacts["lifecycleRules"][0]["condition"]["matchesPrefixes"]
    assert "pipeline-root/" in expiring  # run artifacts expire; registered models (models/) stay
    assert job["labels"]["stack"] == stack_record.stack
    assert job["labels"]["managed-by"] == "training-pipeline"


def test_the_schedule_passes_only_strings_and_every_required_parameter(stack_record):
    job = schedule_job(stack_record)
    values = job["runtimeConfig"]["parameterValues"]
    assert all(isinstance(v, str) for v in values.values())  # the provider's map of strings
    spec = json.loads(job["pipelineSpec"])["root"]["inputDefinitions"]["parameters"]
    missing = {n for n, p in spec.items() if not p.get("isOptional") and n not in values}
    assert not missing
    endpoint = stack_record.named("serving-endpoint")
    assert values["endpoint"].endswith(f"/endpoints/{endpoint.outputs['name']}")
    assert values["dataset"] == stack_record.named("warehouse-dataset").inputs["datasetId"]


def test_where_promotion_deploys_the_stack_training_runs_register_and_never_deploy(
    stack_record,
):
    # Prod's config names the model it serves (the Promotion resource rolls it out): its
    # scheduled training, and the retraining its evaluation starts, register a candidate.
    promoted = config_of(stack_record).platform.serving.model is not None
    assert promoted == (stack_record.stack == "prod")
    evaluation = job_of(stack_record, "pipelines-evaluation-schedule")["runtimeConfig"]
    retraining = json.loads(evaluation["parameterValues"]["training_parameters"])
    exported = stack_record.outputs["training_pipeline"]["parameters"]
    for parameters in (schedule_job(stack_record)["runtimeConfig"]["parameterValues"],
                       retraining, exported):  # fmt: skip
        assert parameters["deploy_by"] == ("promotion" if promoted else "pipeline")
        assert parameters["model_alias"] == ("candidate" if promoted else "staging")
    rollouts = stack_record.of_type("pulumi-python:dynamic/vertex:Promotion")
    assert len(rollouts) == int(promoted)


def test_prod_runs_may_read_the_staging_bundle_of_the_model_prod_serves(stack_records):
    # Re-registered in prod, a promoted version still points at staging's bundle: prod's gate
    # re-scores it as the champion, and prod's evaluation reads its baseline, as the runner.
    prod = config_of(stack_records["prod"])
    runner = f"serviceAccount:pipelines-prod@{prod.project}.iam.gserviceaccount.com"
    assert schedule_job(stack_records["prod"])["serviceAccount"] == runner.split(":", 1)[1]
    staging = stack_records["staging"]
    models = staging.named("data-lake-models").inputs["name"]
    assert ("storage", "roles/storage.objectViewer", models) in held_by(staging, runner)


def test_ci_can_submit_with_the_exported_job(stack_record):
    exported = stack_record.outputs["training_pipeline"]
    job = TrainingJob(**exported).with_parameters()  # names and types check out
    assert set(job.parameters) <= parameter_names()
    assert job.service_account == schedule_job(stack_record)["serviceAccount"]
    assert job.pipeline_root.endswith("/pipeline-root") and job.image.endswith(
        exported["image"].rsplit(":", 1)[1]
    )
    # `submit --publish` uploads the compiled template to the stack's KFP repository.
    templates = stack_record.named("pipelines-templates").inputs
    assert templates["format"] == "KFP"
    assert job.template_registry == (
        f"https://{templates['location']}-kfp.pkg.dev/{templates['project']}/"
        f"{templates['repositoryId']}"
    )


def test_who_may_publish_and_pull_the_pipeline_image(stack_record):
    config = config_of(stack_record)
    repository = stack_record.named("pipelines-images").inputs["repositoryId"]
    builder = (
        f"serviceAccount:fn-build-{stack_record.stack}@{config.project}.iam.gserviceaccount.com"
    )
    assert ("artifactregistry", "roles/artifactregistry.writer", repository) in held_by(
        stack_record, builder
    )
    for engineer in config.platform.access.ml_engineers:
        assert ("artifactregistry", "roles/artifactregistry.writer", repository) in held_by(
            stack_record, engineer
        )
    runner = (
        f"serviceAccount:pipelines-{stack_record.stack}@{config.project}.iam.gserviceaccount.com"
    )
    assert not any(kind == "artifactregistry" for kind, _, _ in held_by(stack_record, runner))


def _staging(**training) -> dict:
    config = copy.deepcopy(stack_config_values("staging"))
    config["tabular-mlops:platform"]["pipelines"]["training"].update(training)
    return config


def test_hyperparameters_from_the_config_become_the_spec_defaults():
    record = run_program(
        "staging", config=_staging(hyperparameters={"learning_rate": 0.05, "max_iter": 300})
    )
    spec = json.loads(schedule_job(record)["pipelineSpec"])
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["learning_rate"]["defaultValue"] == 0.05
    assert parameters["max_iter"]["defaultValue"] == 300
    assert record.outputs["training_pipeline"]["parameters"]["max_iter"] == 300


def test_with_a_key_the_repository_and_the_runs_are_customer_encrypted():
    config = copy.deepcopy(stack_config_values("staging"))
    config["tabular-mlops:platform"]["kms_key"] = KEY
    record = run_program("staging", config=config)
    assert record.named("pipelines-images").inputs["kmsKeyName"] == KEY
    assert schedule_job(record)["encryptionSpec"] == {"kmsKeyName": KEY}
    evaluation = record.named("pipelines-evaluation-schedule").inputs["createPipelineJobRequest"]
    assert evaluation["pipelineJob"]["encryptionSpec"] == {"kmsKeyName": KEY}
    # …and so are the batch prediction and retraining jobs the evaluation starts.
    assert evaluation["pipelineJob"]["runtimeConfig"]["parameterValues"]["kms_key"] == KEY


def test_the_config_reference_names_every_tunable_parameter():
    from pipeline_src.training import TUNABLE
    from stacks.config import TrainingConfig

    description = TrainingConfig.model_fields["hyperparameters"].description
    assert all(name in description for name in TUNABLE)
