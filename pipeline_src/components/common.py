"""What the components share: the decorator that puts them on the pipeline image, and helpers.

A component is a lightweight KFP component: its body reaches Vertex AI as source text in the
compiled spec and runs on the pipeline image, which carries this whole package
(pipeline_src/Dockerfile). So a body imports what it calls from `pipeline_src` like any module —
inside the body, as the spec holds the body alone — and gets what lies outside the pipeline (the
warehouse, the registry, endpoints, …) from `pipeline_src.ports.backend()`. The package never
imports the project's other packages (`local`, `contracts`, `stacks`): the image holds only this
one (tests/pipeline/test_ports.py checks both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kfp import dsl

from pipeline_src.image import PLACEHOLDER_IMAGE, normalise, pinned_packages

if TYPE_CHECKING:
    from kfp.dsl.python_component import PythonComponent

PACKAGES: dict[str, dict[str, str]] = {}
"""Component name -> the pinned packages it imports on Vertex AI (all held by the image)."""


def pipeline_component(*, packages: tuple[str, ...]) -> Callable[[Callable], PythonComponent]:
    """Declare a component that runs on the pipeline image and installs nothing at run time.

    `packages` are the distributions the component imports; each must be pinned in the image's
    requirements (checked now, at import), which is what makes the pins per component hold. The
    image carries one consistent set rather than one per component on purpose: the model train
    pickles is unpickled by evaluate, gate and serving, which needs the very same scikit-learn.
    """
    pins = pinned_packages()
    missing = [p for p in packages if normalise(p) not in pins]
    if missing:
        raise ValueError(
            f"packages {missing} are not in the pipeline image; add them, pinned to the lock, "
            "to pipeline_src/requirements.txt"
        )

    def declare(func: Callable) -> PythonComponent:
        PACKAGES[func.__name__] = {p: pins[normalise(p)] for p in packages}
        if not hasattr(dsl, "component"):
            # Inside a running task kfp loads its runtime only (`_KFP_RUNTIME=true`: no
            # decorator). A body importing this module runs already: nothing to declare.
            return func
        return dsl.component(
            func,
            base_image=PLACEHOLDER_IMAGE,
            install_kfp_package=False,  # the image holds kfp
        )

    return declare


# --- helpers ------------------------------------------------------------------------------------


def feature_spec(contract: dict) -> dict:
    """What the components need from a data contract (`DataContract.model_dump(mode="json")`).

    Returns name, version, label, classes (the label's allowed values, if listed), keys, identity
    (what tells rows apart: the keys, or without a key every column: a row is its content), columns
    and features. A feature is numeric (FLOAT64, INT64, BOOL as 0/1) or categorical (STRING, or any
    column with allowed values, which become its fixed categories). Numbers in a contract that
    crossed a pipeline boundary arrive as floats; that is undone here.
    """
    columns = contract.get("columns") or []
    if not columns:
        raise ValueError("the data contract has no columns; pass DataContract.model_dump()")
    labels = [c["name"] for c in columns if c.get("role") == "label"]
    if len(labels) != 1:
        raise ValueError(f"the data contract needs exactly one label column, found {labels}")
    features = []
    for column in columns:
        if column.get("role", "feature") != "feature":
            continue
        kind, allowed = column["type"], column.get("allowed")
        if kind not in ("STRING", "INT64", "FLOAT64", "BOOL"):
            raise ValueError(
                f"feature {column['name']} has type {kind}, which the model cannot use; give the "
                "column role 'metadata' in the contract or derive a numeric feature from it"
            )
        categorical = kind == "STRING" or allowed is not None
        categories = None
        if allowed is not None:
            categories = [float(v) for v in allowed] if kind == "INT64" else list(allowed)
        features.append(
            {"name": column["name"], "type": kind, "categorical": categorical,
             "categories": categories}
        )  # fmt: skip
    if not features:
        raise ValueError("the data contract has no feature columns")
    label = next(c for c in columns if c["name"] == labels[0])
    keys = [c["name"] for c in columns if c.get("role") == "key"]
    return {
        "name": contract["name"],
        "version": int(contract["version"]),
        "label": labels[0],
        "classes": list(label["allowed"]) if label.get("allowed") else None,
        "keys": keys,
        "identity": keys or [c["name"] for c in columns],
        "columns": columns,
        "features": features,
    }


def model_inputs(frame, spec: dict):
    """The model's input frame: the contract's features in contract order, numeric as float.

    Missing values are NaN. Serving builds the same frame from request instances (see the model's
    `model.json` signature); the fitted pipeline also accepts plain Python values and None.
    """
    import numpy as np
    import pandas as pd

    data = {}
    for feature in spec["features"]:
        values = frame[feature["name"]]
        if feature["categorical"] and feature["type"] != "INT64":
            data[feature["name"]] = values.astype(object).where(values.notna(), np.nan)
        else:
            data[feature["name"]] = pd.to_numeric(values, errors="coerce").astype(float)
    return pd.DataFrame(data, index=frame.index)


def compute_threads(rows: int):
    """A context in which scikit-learn uses one thread for small data and every core for large.

    Gradient boosting parallelises with OpenMP. On a few thousand rows the threads' coordination
    costs more than it saves, and on a busy machine it turns seconds into minutes (measured: the
    evaluation took 20 s instead of 1.5 s with two other processes on two cores).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1 if rows < 50_000 else None)


def label_value(text) -> str:
    """Any value as a GCP label value: lowercase letters, digits, '_' and '-', at most 63."""
    import re

    if isinstance(text, float):
        text = f"{text:.4f}".replace(".", "_")
    return re.sub(r"[^a-z0-9_-]", "-", str(text).lower())[:63]


def write_json(path: str, document) -> None:
    import json
    import os

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2, sort_keys=True, default=str)


def read_json(path: str):
    import json

    with open(path, encoding="utf-8") as source:
        return json.load(source)


def pyplot():
    """matplotlib's pyplot, drawing to files: a pipeline task has no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, out_dir: str, name: str) -> str:
    """Lay `figure` out, write it as `<out_dir>/<name>.png` and free it; its path."""
    import os

    figure.tight_layout()
    path = os.path.join(out_dir, f"{name}.png")
    figure.savefig(path, dpi=100)
    pyplot().close(figure)
    return path


def html_figures(plots: dict) -> str:
    """PNG files (name -> path) as figures embedded in HTML: a report is one file."""
    import base64
    from html import escape

    figures = ""
    for name, path in plots.items():
        with open(path, "rb") as image:
            encoded = base64.b64encode(image.read()).decode("ascii")
        # No caption: every plot carries its own title (a caption only repeated it).
        figures += (
            f'<figure><img alt="{escape(name.replace("_", " "))}" '
            f'src="data:image/png;base64,{encoded}"></figure>'
        )
    return figures


def decision_badge(decision: str) -> str:
    """A decision or status as a coloured badge a person reads at a glance (html_page's CSS)."""
    from html import escape

    text, tone = {
        "deploy": ("deployed", "good"),
        "register": ("registered as a candidate", "candidate"),
        "keep_champion": ("kept the champion", "neutral"),
        "healthy": ("healthy", "good"),
        "degraded": ("degraded", "bad"),
        "already_triggered": ("degraded", "bad"),
        "not_enough_data": ("not enough new data", "neutral"),
        "LOADED": ("loaded", "good"),
        "REJECTED": ("rejected", "bad"),
        "DUPLICATE": ("duplicate", "neutral"),
        "FAILED": ("failed", "bad"),
        "STARTED": ("no outcome", "neutral"),  # an attempt cut short, or still running
        "IGNORED": ("ignored", "neutral"),
    }.get(decision or "", (decision or "unknown", "neutral"))
    return f'<span class="badge {tone}">{escape(text)}</span>'


def html_page(title: str, body: str, image_width: int = 500) -> str:
    """A self-contained HTML page in the reports' common style; `body` is HTML.

    Images never exceed the window (a narrow screen scales them, no sideways scrolling); wide
    tables scroll inside their own box. `.badge` marks a decision (good, bad, candidate, neutral).
    """
    from html import escape

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; padding: 0 1rem; max-width: 1200px;
        color: #222; line-height: 1.4; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; display: block; overflow-x: auto; }}
td, th {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }}
thead th {{ background: #f3f3f3; }}
td.why {{ min-width: 10rem; max-width: 32rem; font-size: 0.9em; }}
.when {{ white-space: nowrap; }}
figure {{ display: inline-block; margin: 0.5rem; max-width: 100%; vertical-align: top; }}
img {{ max-width: min(100%, {image_width}px); height: auto; }}
.badge {{ display: inline-block; padding: 0.1rem 0.6rem; border-radius: 1rem; font-weight: 600;
          white-space: nowrap; background: #e8e8e8; color: #333; }}
.badge.good {{ background: #d7f0dc; color: #14532d; }}
.badge.bad {{ background: #fbd9d9; color: #7f1d1d; }}
.badge.candidate {{ background: #dbe8fb; color: #1e3a8a; }}
.headline {{ font-size: 1.25rem; margin: 0.5rem 0; }}
.meta, .empty {{ color: #666; }}
code {{ font-size: 0.9em; }}
</style></head><body>
<h1>{escape(title)}</h1>
{body}
</body></html>
"""
