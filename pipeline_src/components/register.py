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

from pipeline_src.components.common import label_value, pipeline_component
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


def write_bundle(directory: str, model_dir: str, evaluation: str, baseline: str, report: str):
    """Put the bundle together in `directory` (see the module's list); its digest."""
    import os
    import shutil

    os.makedirs(directory, exist_ok=True)
    for name in ("model.joblib", "model.json"):
        shutil.copy(os.path.join(model_dir, name), os.path.join(directory, name))
    shutil.copy(evaluation, os.path.join(directory, "evaluation.json"))
    shutil.copy(baseline, os.path.join(directory, "baseline.json"))
    shutil.copy(report, os.path.join(directory, "report.html"))
    return bundle_digest(directory)


def version_description(
    extra: dict,
    results: dict,
    signature: dict,
    snapshot_id: str,
    git_commit: str,
    run_id: str,
    gate: str,
) -> dict:
    """The version's labels and description: its provenance, scores and the gate's reason."""
    scores, baseline = results["model"], results["baseline"]
    return {
        "labels": version_labels(extra, results, signature, snapshot_id, git_commit, run_id),
        "version_description": (
            f"Trained on snapshot {snapshot_id} at commit {git_commit} by run {run_id}. Test "
            f"accuracy {scores['accuracy']:.3f} (baseline {baseline['accuracy']:.3f}),"
            f" log loss {scores['log_loss']:.3f}. Gate: {gate}"
        ),
    }  # fmt: skip


def version_fields(
    display_name: str, serving_image: str, description: dict, alias: str, digest: str
) -> dict:
    """What the new version is uploaded with: its names, serving container, labels and
    description (`version_description`), and the bundle's digest."""
    return {
        "display_name": display_name,
        "serving_container_image_uri": serving_image,
        **description,
        "version_aliases": [alias],
        "is_default_version": True,
        # The bundle's digest, in the version's serving environment: immutable once uploaded,
        # passed by Vertex AI to the serving container, read by whatever loads the bundle later
        # (serving, gate, evaluation, promotion), which refuses a bundle that does not match.
        "serving_container_environment_variables": {"MODEL_SHA256": digest},
    }


@pipeline_component(packages=("google-cloud-aiplatform",))
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
) -> NamedTuple("Outputs", [("model", str), ("version", str)]):
    """Bundle the model with its evaluation, baseline and report, and register it as a version."""
    import os
    from collections import namedtuple

    from pipeline_src.components.common import label_value, read_json
    from pipeline_src.components.register import (
        version_description,
        version_fields,
        write_bundle,
    )
    from pipeline_src.ports import backend

    if not model_id or not alias:
        raise ValueError("register needs the model id and the alias the new version takes")
    digest = write_bundle(registered.path, model.path, evaluation.path, baseline.path, report.path)
    results = read_json(evaluation.path)
    signature = read_json(os.path.join(model.path, "model.json"))
    description = version_description(
        labels, results, signature, snapshot_id, git_commit, run_id, gate_reason
    )
    fields = version_fields(display_name, serving_image, description, alias, digest)
    destination = f"{models_uri.rstrip('/')}/{model_id}/{label_value(run_id)}"
    registry = backend().registry(project, location)
    resource, version, artifact_uri, promotable = registry.upload(
        model_id, registered.path, destination, fields
    )
    registered.metadata.update(
        {"resource_name": resource, "version": version, "artifact_uri": artifact_uri,
         "alias": alias, "sha256": digest}
    )  # fmt: skip
    print(f"registered {resource} (alias {alias}) from {artifact_uri}")
    if deploy_by == "promotion":
        registered.metadata["promote"] = how = f"make promote MODEL={promotable}"
        print(f"registered {promotable}; the endpoint serves by promotion: {how}")
    return namedtuple("Outputs", ["model", "version"])(resource, version)
