"""QA acceptance: what any endpoint serving the model must do (docs/serving.md's contract).

Runs unchanged against the local server, the staging endpoint (QA, before promotion) and the
production endpoint (CD, after a deployment): see conftest.py for how the endpoint is chosen.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest

from pipeline_src.serving.client import Reply, predict


def model_version(name: str) -> str:
    """`<model id>@<version>` of a local name or a Vertex resource name (projects/…/models/ID)."""
    return name.rsplit("/models/", 1)[-1]


def problems(reply: Reply) -> str:
    """The error text of a rejected request (message and every detail)."""
    error = reply.body.get("error", {}) if isinstance(reply.body, dict) else {}
    if not isinstance(error, dict):  # Vertex AI's own errors carry a string here
        return str(error)
    return " | ".join([str(error.get("message", "")), *map(str, error.get("details", []))])


# --- contract and schema ---------------------------------------------------------------------


def test_endpoint_is_healthy(client):
    reply = client.health()
    assert reply.status == 200, reply.body


def test_predictions_follow_the_contract(client, golden):
    instances = [example["instance"] for example in golden]
    reply = predict(client, instances)
    assert reply.status == 200, reply.body
    predictions = reply.body["predictions"]
    assert len(predictions) == len(instances), "one prediction per instance, in order"
    classes = set(predictions[0]["probabilities"])
    assert len(classes) >= 2
    for number, prediction in enumerate(predictions):
        where = f"predictions[{number}]"
        assert set(prediction) == {"class", "probabilities"}, where
        probabilities = prediction["probabilities"]
        assert set(probabilities) == classes, f"{where}: the same classes in every prediction"
        assert all(0.0 <= p <= 1.0 for p in probabilities.values()), where
        assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-3), where
        assert prediction["class"] == max(probabilities, key=probabilities.get), (
            f"{where}: the class is the most probable one"
        )


def test_a_batch_answers_like_single_requests(client, golden):
    instances = [example["instance"] for example in golden[:3]]
    batch = predict(client, instances)
    assert batch.status == 200, batch.body
    for instance, in_batch in zip(instances, batch.body["predictions"], strict=True):
        single = predict(client, [instance])
        assert single.status == 200, single.body
        if single.served_model == batch.served_model:  # a canary split may route elsewhere
            assert single.body["predictions"][0]["class"] == in_batch["class"]
            for name, p in in_batch["probabilities"].items():
                assert single.body["predictions"][0]["probabilities"][name] == pytest.approx(p)


def test_parameters_are_accepted_and_unused(client, golden):
    reply = predict(client, [golden[0]["instance"]], parameters={})
    assert reply.status == 200, reply.body


# --- golden examples -------------------------------------------------------------------------


def test_golden_examples_get_their_expected_class(client, golden, dataset):
    if dataset != "penguins":
        pytest.skip(f"golden examples exist for the penguins contract only, not {dataset}")
    reply = predict(client, [example["instance"] for example in golden])
    assert reply.status == 200, reply.body
    wrong = [
        f"{json.dumps(example['instance'])}: expected {example['expected']}, got "
        f"{prediction['class']} ({prediction['probabilities']})"
        for example, prediction in zip(golden, reply.body["predictions"], strict=True)
        if prediction["class"] != example["expected"]
    ]
    assert not wrong, "\n".join(wrong)


# --- invalid input is rejected clearly -------------------------------------------------------

GOOD = {
    "island": "Biscoe",
    "bill_length_mm": 46.1,
    "bill_depth_mm": 13.2,
    "flipper_length_mm": 211,
    "body_mass_g": 4500,
    "sex": "female",
}


def without(key: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != key}


INVALID = {
    "not JSON": (b'{"instances": [', ["not valid JSON"]),
    "not an object": (json.dumps([GOOD]).encode(), ["body", "instances"]),
    "no instances": (json.dumps({"rows": [GOOD]}).encode(), ["body.rows", "unknown"]),
    "empty instances": (json.dumps({"instances": []}).encode(), ["body.instances", "non-empty"]),
    "instance not an object": (
        json.dumps({"instances": [[46.1, 13.2]]}).encode(),
        ["instances[0]", "named features"],
    ),
    "missing feature": (
        json.dumps({"instances": [without("body_mass_g")]}).encode(),
        ["instances[0].body_mass_g", "missing"],
    ),
    "misspelt feature": (
        json.dumps({"instances": [{**without("bill_length_mm"), "bill_lenght_mm": 46.1}]}).encode(),
        ["instances[0].bill_lenght_mm", "unknown", "instances[0].bill_length_mm", "missing"],
    ),
    "text for a number": (
        json.dumps({"instances": [{**GOOD, "body_mass_g": "heavy"}]}).encode(),
        ["instances[0].body_mass_g", "number", "heavy"],
    ),
    "unknown category": (
        json.dumps({"instances": [{**GOOD, "island": "Atlantis"}]}).encode(),
        ["instances[0].island", "Atlantis", "Biscoe"],
    ),
    "bad second instance": (
        json.dumps({"instances": [GOOD, {**GOOD, "sex": 1}]}).encode(),
        ["instances[1].sex", "string"],
    ),
}


@pytest.mark.parametrize("body, fragments", INVALID.values(), ids=INVALID.keys())
def test_invalid_input_is_rejected_with_what_and_where(client, body, fragments, dataset):
    if dataset != "penguins":
        pytest.skip(f"the invalid inputs are penguins' instances; contract {dataset}: skipped")
    reply = client.post(body)
    assert reply.status == 400, reply.body
    text = problems(reply)
    missing = [fragment for fragment in fragments if fragment not in text]
    assert not missing, f"the error {text!r} does not say {missing}"


def test_the_endpoint_still_serves_after_bad_requests(client, golden):
    client.post(b"\xff\xfe")
    assert predict(client, [golden[0]["instance"]]).status == 200


# --- latency and the served model ------------------------------------------------------------


def test_p95_latency_is_within_budget(client, target, golden):
    instances = [[example["instance"]] for example in golden]
    for warm_up in instances[:3]:
        predict(client, warm_up)
    seconds = []
    for number in range(60):
        reply = predict(client, instances[number % len(instances)])
        assert reply.status == 200, reply.body
        seconds.append(reply.seconds)
    p95_ms = statistics.quantiles(seconds, n=20)[-1] * 1000
    print(f"latency over {len(seconds)} requests: median {statistics.median(seconds) * 1000:.1f} "
          f"ms, p95 {p95_ms:.1f} ms (budget {target.p95_ms:.0f} ms)")  # fmt: skip
    assert p95_ms <= target.p95_ms


def test_the_served_model_version_is_named_and_expected(client, target, golden):
    reply = predict(client, [golden[0]["instance"]])
    assert reply.status == 200, reply.body
    served = reply.served_model
    assert served and "@" in served, f"the response names no model version: {reply.body}"
    health = client.health().body
    deployed = {
        model_version(f"{m['model']}@{m['modelVersionId']}") for m in health["deployedModels"]
    }
    assert model_version(served) in deployed, f"{served} is not among {deployed}"
    if target.expected_model:
        assert model_version(served) == model_version(target.expected_model), (
            f"the endpoint serves {served}, expected {target.expected_model}"
        )
