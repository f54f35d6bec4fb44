"""register: a new version of the model in the Vertex AI Model Registry (or the local registry).

The registered artifact directory (the "model bundle") holds everything later stages need:

    model.joblib      the fitted scikit-learn pipeline: raw features in, classes out
    model.json        its signature: features, label, classes, contract, hyperparameters, versions
    evaluation.json   test-time metrics beside the baseline's (what continuous evaluation compares
                      new data's metrics with)
    baseline.json     feature statistics of the training snapshot (what drift is measured against)
    report.html       the stakeholder report

On Vertex AI the bundle is copied to `models_uri/<model id>/<run>/` first: the pipeline root
expires, a registered model must not. The version is uploaded under the parent model (created on
first upload with `model_id`), becomes the default version, carries the alias (e.g. "staging",
moved off the previous version) and labels naming its data snapshot, git commit, run and metrics.
The sha256 of `model.joblib` and `model.json` is recorded as the version's `MODEL_SHA256`
serving variable; nothing unpickles the bundle without checking it
(`pipeline_src.serving.integrity.verify_bundle`).

Where the endpoint is deployed by promotion (`deploy_by="promotion"`, prod), the version is a
candidate (alias "candidate") awaiting QA: the task says how to promote it, by the name the
prod stack's config takes (the project by id: Vertex AI names it by number).
"""

from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Input, Model, Output

from pipeline_src.components.common import (
    gcs_fuse_path,
    label_value,
    local_environment,
    pipeline_component,
    read_json,
)
from pipeline_src.serving.integrity import bundle_digest

BUNDLE_FILES = ("model.joblib", "model.json", "evaluation.json", "baseline.json", "report.html")


def version_labels(
    extra: dict, evaluation: dict, signature: dict, snapshot_id: str, git_commit: str, run_id: str
) -> dict:
    """The version's labels (GCP label rules): provenance and headline metrics."""
    labels = {str(k): label_value(v) for k, v in (extra or {}).items()}
    labels.update(
        {
            "dataset": label_value(signature["contract"]["name"]),
            "contract_version": label_value(signature["contract"]["version"]),
            "data_snapshot": label_value(snapshot_id or "unknown"),
            "git_commit": label_value(git_commit or "unknown"),
            "pipeline_run": label_value(run_id or "unknown"),
        }
    )
    for key in ("accuracy", "log_loss", "roc_auc_ovr"):
        value = evaluation["model"].get(key)
        if value is not None:
            labels[key] = label_value(float(value))
    labels["baseline_accuracy"] = label_value(float(evaluation["baseline"]["accuracy"]))
    return labels


def serving_container() -> dict:
    """How Vertex AI runs the serving image for the model: pipeline_src/serving's entry point.

    The image's server reads the port and routes from the AIP_* variables Vertex AI sets from
    these; the values are the server's defaults, so the image also serves as it is elsewhere.
    """
    return {
        "serving_container_command": ["python", "-m", "pipeline_src.serving"],
        "serving_container_predict_route": "/predict",
        "serving_container_health_route": "/health",
        "serving_container_ports": [8080],
    }


def register_local(local_root: str, bundle_dir: str, model_id: str, **fields):
    """Upload to the local registry; (versioned name, version id, artifact directory)."""
    from local.registry import LocalModelRegistry

    registry = LocalModelRegistry(local_environment(local_root).registry_dir)
    version = registry.upload(model_id, bundle_dir, **fields)
    return version.resource_name, version.version_id, version.artifact_uri


def register_vertex(
    project: str, location: str, bundle_dir: str, destination_uri: str, model_id: str, **fields
):
    """Upload to the Vertex AI Model Registry; (versioned name, version id, artifact URI)."""
    import shutil

    from google.api_core.exceptions import NotFound
    from google.cloud import aiplatform

    if not destination_uri.startswith("gs://"):
        raise ValueError(f"models_uri must be a gs:// location, got {destination_uri!r}")
    shutil.copytree(bundle_dir, gcs_fuse_path(destination_uri), dirs_exist_ok=True)
    aiplatform.init(project=project, location=location)
    try:
        parent = {"parent_model": aiplatform.Model(model_id).resource_name}
    except NotFound:
        parent = {"model_id": model_id}  # the first version creates the model
    model = aiplatform.Model.upload(
        artifact_uri=destination_uri, **parent, **serving_container(), **fields
    )
    return model.versioned_resource_name, model.version_id, destination_uri


@pipeline_component(
    packages=("google-cloud-aiplatform",),
    helpers=(
        bundle_digest,
        gcs_fuse_path,
        label_value,
        local_environment,
        read_json,
        version_labels,
        register_local,
        serving_container,
        register_vertex,
    ),
)
def register(
    model: Input[Model],
    evaluation: Input[Artifact],
    baseline: Input[Artifact],
    report: Input[HTML],
    registered: Output[Model],
    project: str,
    location: str,
    model_id: str,
    display_name: str,
    alias: str,
    serving_image: str,
    models_uri: str,
    snapshot_id: str,
    git_commit: str,
    run_id: str,
    gate_reason: str,
    # KFP puts the default into the component spec; the dict is never mutated.
    labels: dict = {},  # noqa: B006
    deploy_by: str = "pipeline",
    local_root: str = "",
) -> NamedTuple("Outputs", [("model", str), ("version", str)]):
    """Bundle the model with its evaluation, baseline and report, and register it as a version."""
    import os
    import shutil
    from collections import namedtuple

    if not model_id or not alias:
        raise ValueError("register needs the model id and the alias the new version takes")
    os.makedirs(registered.path, exist_ok=True)
    for name in ("model.joblib", "model.json"):
        shutil.copy(os.path.join(model.path, name), os.path.join(registered.path, name))
    shutil.copy(evaluation.path, os.path.join(registered.path, "evaluation.json"))
    shutil.copy(baseline.path, os.path.join(registered.path, "baseline.json"))
    shutil.copy(report.path, os.path.join(registered.path, "report.html"))

    results = read_json(evaluation.path)
    signature = read_json(os.path.join(model.path, "model.json"))
    scores = results["model"]
    fields = {
        "display_name": display_name,
        "serving_container_image_uri": serving_image,
        "labels": version_labels(labels, results, signature, snapshot_id, git_commit, run_id),
        "version_aliases": [alias],
        "version_description": (
            f"Trained on snapshot {snapshot_id} at commit {git_commit} by run {run_id}. Test "
            f"accuracy {scores['accuracy']:.3f} (baseline {results['baseline']['accuracy']:.3f}),"
            f" log loss {scores['log_loss']:.3f}. Gate: {gate_reason}"
        ),
        "is_default_version": True,
        # The bundle's digest, in the version's serving environment: immutable once uploaded,
        # passed by Vertex AI to the serving container, read by whatever loads the bundle later
        # (serving, gate, evaluation, promotion), which refuses a bundle that does not match.
        "serving_container_environment_variables": {"MODEL_SHA256": bundle_digest(registered.path)},
    }
    if local_root:
        resource, version, artifact_uri = register_local(
            local_root, registered.path, model_id, **fields
        )
    else:
        if not serving_image:
            raise ValueError("register needs the serving image the model is served with")
        destination = f"{models_uri.rstrip('/')}/{model_id}/{label_value(run_id)}"
        resource, version, artifact_uri = register_vertex(
            project, location, registered.path, destination, model_id, **fields
        )
    digest = fields["serving_container_environment_variables"]["MODEL_SHA256"]
    registered.metadata.update(
        {"resource_name": resource, "version": version, "artifact_uri": artifact_uri,
         "alias": alias, "sha256": digest}
    )  # fmt: skip
    print(f"registered {resource} (alias {alias}) from {artifact_uri}")
    if deploy_by == "promotion":
        promotable = (
            resource
            if local_root
            else f"projects/{project}/locations/{location}/models/{model_id}@{version}"
        )
        registered.metadata["promote"] = f"make promote MODEL={promotable}"
        print(
            f"registered {promotable}; the endpoint serves by promotion: "
            f"make promote MODEL={promotable}"
        )
    return namedtuple("Outputs", ["model", "version"])(resource, version)
