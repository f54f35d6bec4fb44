"""The predict contract: named raw features in, a class and its probabilities out.

Request (Vertex AI's predict payload)::

    {"instances": [{"island": "Biscoe", "bill_length_mm": 46.1, …, "sex": "female"}, …],
     "parameters": {}}                                  # optional, unused

- every instance is an object holding each feature of the model's signature (`model.json`) by
  name; `null` is a missing value (the model imputes it, as it did in training);
- numeric features take numbers; categorical features take strings (or, for INT64 columns with
  allowed values, numbers) from the contract's allowed values when it lists them;
- an unknown or missing field is an error, not ignored: a misspelt feature would otherwise be
  silently predicted as missing.

Response::

    {"predictions": [{"class": "Gentoo",
                      "probabilities": {"Adelie": 0.01, "Chinstrap": 0.01, "Gentoo": 0.98}}, …]}

Vertex AI adds `deployedModelId`, `model` and `modelVersionId` to an endpoint's response; the
local endpoint server does the same. A request that breaks the contract is answered 400 with every
problem, each naming the instance and the field (`instances[2].body_mass_g: expected a number,
got "heavy"`).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

_LARGEST_FLOAT = int(sys.float_info.max)
MAX_INSTANCES = 1000
"""Largest batch per request (Vertex AI limits a request to 1.5 MB anyway)."""


class InvalidRequest(ValueError):
    """A request that breaks the predict contract; `problems` says what and where, one per line."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedModel:
    """A model directory (`model.joblib` + `model.json`) loaded for prediction."""

    pipeline: Any
    signature: dict
    """`model.json`: features (name, type, categorical, categories), label, classes, …"""

    @classmethod
    def load(cls, directory: str | Path, expected_sha256: str | None = None) -> LoadedModel:
        """Load a model directory. `expected_sha256` is the bundle digest recorded at its
        registration, checked before anything is unpickled ("" refuses: none was recorded);
        None only where the caller trusts the directory (`--model-dir` without MODEL_SHA256)."""
        import joblib

        directory = Path(directory)
        signature_path, model_path = directory / "model.json", directory / "model.joblib"
        for path in (signature_path, model_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: not a model directory")
        if expected_sha256 is not None:
            from pipeline_src.serving.integrity import verify_bundle

            verify_bundle(str(directory), expected_sha256)
        signature = json.loads(signature_path.read_text(encoding="utf-8"))
        return cls(pipeline=joblib.load(model_path), signature=signature)

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.signature["features"])

    @cached_property
    def _feature_set(self) -> frozenset[str]:
        return frozenset(self.feature_names)

    @cached_property
    def _acceptors(self) -> tuple[tuple[str, Callable[[Any], bool]], ...]:
        """Per feature, a quick test that passes the values the contract accepts. Most requests
        are good: their instances pass these tests and skip `check`, which only runs for an
        instance with a problem, to say what it is (the tests never pass a value it rejects)."""
        return tuple((f["name"], _acceptor(f)) for f in self.signature["features"])

    @cached_property
    def classes(self) -> list[str]:
        return [str(c) for c in self.pipeline.classes_]

    def predict(self, payload: Any) -> list[dict]:
        """Predictions for a request body (already parsed JSON); InvalidRequest if it is bad.

        Runs with whatever thread limits the process has: the server sets them once at start-up
        (one thread per prediction) instead of around each request."""
        import numpy as np

        probabilities = self.pipeline.predict_proba(self.inputs(instances_of(payload)))
        best = probabilities.argmax(axis=1).tolist()
        classes = self.classes
        return [
            {"class": classes[index], "probabilities": dict(zip(classes, row, strict=True))}
            for index, row in zip(best, np.round(probabilities, 6).tolist(), strict=True)
        ]

    def inputs(self, instances: list[Any]):
        """The model's input frame for checked instances: the frame training used
        (`components.common.model_inputs`), built column by column from the instances' values."""
        import numpy as np
        import pandas as pd

        problems = [
            problem
            for index, instance in enumerate(instances)
            if not self._accepted(instance)
            for problem in self.check(index, instance)
        ]
        if problems:
            raise InvalidRequest(problems)
        columns = {}
        for feature in self.signature["features"]:
            name = feature["name"]
            values = [math.nan if inst[name] is None else inst[name] for inst in instances]
            as_text = feature["categorical"] and feature["type"] != "INT64"
            columns[name] = np.array(values, dtype=object if as_text else float)
        return pd.DataFrame(columns, copy=False)

    def _accepted(self, instance: Any) -> bool:
        """True for an instance with exactly the features, each value passing its quick test."""
        return (
            type(instance) is dict
            and instance.keys() == self._feature_set
            and all(accepts(instance[name]) for name, accepts in self._acceptors)
        )

    def check(self, index: int, instance: Any) -> list[str]:
        """Every problem of one instance, each naming the instance and the field."""
        where = f"instances[{index}]"
        if not isinstance(instance, dict):
            return [
                f"{where}: expected an object of named features "
                f"({', '.join(self.feature_names)}), got {_kind(instance)}"
            ]
        problems = []
        for name in instance.keys() - set(self.feature_names):
            problems.append(
                f"{where}.{name}: unknown field (features: {', '.join(self.feature_names)})"
            )
        for feature in self.signature["features"]:
            name = feature["name"]
            if name not in instance:
                problems.append(f"{where}.{name}: missing (send null for an unknown value)")
                continue
            problem = _value_problem(feature, instance[name])
            if problem:
                problems.append(f"{where}.{name}: {problem}")
        return sorted(problems)


def instances_of(payload: Any) -> list[Any]:
    """The `instances` of a predict request body, or InvalidRequest saying what is wrong."""
    if not isinstance(payload, dict):
        raise InvalidRequest(
            [f'body: expected an object {{"instances": [...]}}, got {_kind(payload)}']
        )
    unknown = sorted(payload.keys() - {"instances", "parameters"})
    if unknown:
        raise InvalidRequest(
            [f"body.{k}: unknown field (expected instances, parameters)" for k in unknown]
        )
    instances = payload.get("instances")
    if not isinstance(instances, list) or not instances:
        raise InvalidRequest(["body.instances: expected a non-empty list of instances"])
    if len(instances) > MAX_INSTANCES:
        raise InvalidRequest(
            [f"body.instances: {len(instances)} instances, at most {MAX_INSTANCES} per request"]
        )
    return instances


def _acceptor(feature: dict) -> Callable[[Any], bool]:
    """A quick test for the common good values of a feature (null, a finite number, a listed
    category); False sends the value through `_value_problem`, which has the last word."""
    categories = feature.get("categories")
    if feature["type"] == "BOOL":
        return lambda value: value is None or type(value) is bool
    if feature["type"] in ("FLOAT64", "INT64"):
        if categories is not None:
            return lambda value: value is None
        return lambda value: value is None or (
            (type(value) is float and math.isfinite(value))
            or (type(value) is int and -_LARGEST_FLOAT <= value <= _LARGEST_FLOAT)
        )  # fmt: skip
    if categories is not None:
        allowed = frozenset(categories)
        return lambda value: value is None or (type(value) is str and value in allowed)
    return lambda value: value is None or type(value) is str


def _value_problem(feature: dict, value: Any) -> str | None:
    if value is None:
        return None
    categories = feature.get("categories")
    if feature["type"] == "BOOL":
        return None if isinstance(value, bool) else f"expected true or false, got {_kind(value)}"
    numeric = feature["type"] in ("FLOAT64", "INT64")
    if numeric:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {_kind(value)}"
        if isinstance(value, int) and abs(value) > _LARGEST_FLOAT:
            return f"expected a finite number, got an integer of {len(str(abs(value)))} digits"
        if not math.isfinite(value):
            return f"expected a finite number, got {value}"
        if categories is not None and float(value) not in categories:
            return f"{value} is not one of {', '.join(format(c, 'g') for c in categories)}"
        return None
    if not isinstance(value, str):
        return f"expected a string, got {_kind(value)}"
    if categories is not None and value not in categories:
        return f"{json.dumps(value)} is not one of {', '.join(categories)}"
    return None


def _kind(value: Any) -> str:
    """A short description of a JSON value for an error message."""
    if isinstance(value, str):
        text = json.dumps(value)
        return text if len(text) <= 40 else text[:37] + '..."'
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)
