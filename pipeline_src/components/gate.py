"""gate: deploy the challenger only if it is good enough and better than the champion.

The champion is the model the staging endpoint serves (the one with the most traffic) or, when the
endpoint serves nothing, the registry's default version of the model. It is scored again on this
run's test split, so both models are judged on the same rows; only when that is impossible (its
artifacts cannot be read, or it was trained on other features) does the gate fall back to the
accuracy recorded when the champion was registered, and says so.

The challenger wins when its test accuracy clears `min_accuracy` and, if there is a champion,
exceeds the champion's by more than zero and by at least `min_improvement`. A winner is deployed
("deploy") when the pipeline deploys to the endpoint (`deploy_by="pipeline"`, staging); when
the endpoint is deployed by promotion (`deploy_by="promotion"`, prod: the Promotion resource
rolls out the version its stack's config names), it is only registered, as a candidate for QA
to promote ("register"). The champion is then still what that endpoint serves — the version QA
promoted, not an earlier candidate — so each candidate beats what prod serves. The decision
("deploy", "register" or "keep_champion") and its reason are outputs of this task and are
written to the model_metrics table with the run's metrics.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input

from pipeline_src.components.common import (
    compute_threads,
    model_inputs,
    pipeline_component,
    read_json,
)
from pipeline_src.serving.integrity import verify_bundle


def decide(
    challenger: float,
    champion: float | None,
    min_accuracy: float,
    min_improvement: float,
    champion_name: str = "",
    basis: str = "",
    deploy_by: str = "pipeline",
) -> tuple[str, str]:
    """("deploy" | "register" | "keep_champion", reason) from the accuracies and the bars.

    A challenger that wins is deployed by the pipeline, or only registered when its endpoint is
    deployed by promotion.
    """
    wins, promoted = "deploy", ""
    if deploy_by == "promotion":
        wins = "register"
        promoted = "; the endpoint is deployed by promotion: registered as a candidate for QA"
    if challenger < min_accuracy:
        return "keep_champion", (
            f"challenger accuracy {challenger:.3f} is below the bar of {min_accuracy:.3f}"
        )
    if champion is None:
        return wins, (
            f"no champion to compare with ({basis}); challenger accuracy {challenger:.3f} "
            f"clears the bar of {min_accuracy:.3f}{promoted}"
        )
    improvement = round(challenger - champion, 9)  # accuracies are ratios of small integers
    versus = f"champion {champion_name} ({champion:.3f}, {basis})"
    if improvement > 0 and improvement >= min_improvement:
        return wins, (
            f"challenger accuracy {challenger:.3f} beats {versus} by {improvement:.3f}, "
            f"at least the margin of {min_improvement:.3f}{promoted}"
        )
    return "keep_champion", (
        f"challenger accuracy {challenger:.3f} does not beat {versus} by more than zero and by "
        f"at least the margin of {min_improvement:.3f}"
    )


def check_bars(min_accuracy: float, min_improvement: float, deploy_by: str, endpoint: str):
    if not 0 < min_accuracy <= 1 or not 0 <= min_improvement <= 1:
        raise ValueError(
            f"min_accuracy must be in (0, 1] and min_improvement in [0, 1], got {min_accuracy} "
            f"and {min_improvement}"
        )
    if deploy_by not in ("pipeline", "promotion"):
        raise ValueError(
            f"deploy_by must be 'pipeline' (the pipeline deploys to endpoint {endpoint}) or "
            f"'promotion' (QA promotes to it), got {deploy_by!r}"
        )


def champion(endpoints, registry, endpoint: str, model_id: str):
    """The champion (ports: `Endpoints`, `ModelRegistry`): (versioned name, artifact directory,
    where it was found, recorded bundle digest), or None."""
    found = endpoints.serving(endpoint)
    where = f"served by endpoint {endpoint}"
    if found is None:
        found = registry.default_version(model_id)
        where = "the registry's default version"
    if found is None:
        return None
    return found.name, found.artifact_dir, where, found.digest


def champion_accuracy(artifact_dir: str, digest: str, test_frame, spec: dict):
    """(accuracy, basis): re-scored on this test split, or as recorded at its registration. The
    bundle is unpickled only once its digest matches the one recorded at its registration."""
    import os

    import joblib
    from sklearn.metrics import accuracy_score

    problem = ""
    try:
        signature = read_json(os.path.join(artifact_dir, "model.json"))
        names = [f["name"] for f in signature["features"]]
        if names != [f["name"] for f in spec["features"]] or signature["label"] != spec["label"]:
            problem = "it was trained on other features"
        else:
            verify_bundle(artifact_dir, digest)
            model = joblib.load(os.path.join(artifact_dir, "model.joblib"))
            with compute_threads(len(test_frame)):
                predicted = model.predict(model_inputs(test_frame, spec))
            labels = test_frame[spec["label"]].astype(str)
            return float(accuracy_score(labels, predicted.astype(str))), "on the same test split"
    except Exception as error:  # any failure to load means: fall back to the record
        problem = f"it could not be loaded ({type(error).__name__}: {error})"
    try:
        recorded = read_json(os.path.join(artifact_dir, "evaluation.json"))["model"]["accuracy"]
        return float(recorded), f"recorded at registration, as {problem}"
    except (OSError, KeyError, ValueError):
        return None, f"unscored, as {problem} and it has no recorded evaluation"


@pipeline_component(
    packages=("pandas", "pyarrow", "scikit-learn", "threadpoolctl", "google-cloud-aiplatform")
)
def gate(
    contract: dict,
    evaluation: Input[Artifact],
    test_data: Input[Dataset],
    project: str,
    location: str,
    endpoint: str,
    model_id: str,
    min_accuracy: float,
    min_improvement: float,
    deploy_by: str = "pipeline",
) -> NamedTuple(
    "Outputs",
    [
        ("decision", str),
        ("reason", str),
        ("champion", str),
        ("champion_accuracy", float),
        ("challenger_accuracy", float),
    ],
):
    """Compare the challenger with the champion; output the decision and its reason."""
    from collections import namedtuple

    import pandas as pd

    from pipeline_src.components.common import feature_spec, read_json
    from pipeline_src.components.gate import champion, champion_accuracy, check_bars, decide
    from pipeline_src.ports import backend

    check_bars(min_accuracy, min_improvement, deploy_by, endpoint)
    spec = feature_spec(contract)
    challenger = float(read_json(evaluation.path)["model"]["accuracy"])
    ports = backend()
    found = champion(
        ports.endpoints(project, location), ports.registry(project, location), endpoint, model_id
    )

    champion_name, score, basis = "", None, f"nothing on endpoint {endpoint} or in the registry"
    if found is not None:
        champion_name, artifact_dir, where, digest = found
        test_frame = pd.read_parquet(test_data.path)
        score, basis = champion_accuracy(artifact_dir, digest, test_frame, spec)
        # "…@1 served by endpoint staging is unscored, as …" or "served by …, on the same …"
        basis = f"{champion_name} {where} is {basis}" if score is None else f"{where}, {basis}"
    decision, reason = decide(
        challenger, score, min_accuracy, min_improvement, champion_name, basis, deploy_by
    )
    print(f"gate: {decision} — {reason}")
    outputs = namedtuple(
        "Outputs",
        ["decision", "reason", "champion", "champion_accuracy", "challenger_accuracy"],
    )
    # -1 stands for "no champion": parameters cannot be None.
    return outputs(decision, reason, champion_name, -1.0 if score is None else score, challenger)
