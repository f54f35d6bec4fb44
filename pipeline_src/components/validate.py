"""validate: is the snapshot fit to train on? And its feature statistics, kept as the baseline.

Every problem is reported at once (not only the first), and the run stops here rather than train
on data that breaks the contract. The statistics are what the evaluation pipeline compares new
data with to measure drift; they travel with the model into the registry.
"""

from kfp.dsl import Artifact, Dataset, Input, Output

from pipeline_src.components.common import pipeline_component


def arrow_type_fits(column_type: str, arrow_type) -> bool:
    """Whether an Arrow column type holds a contract column type."""
    import pyarrow.types as t

    string = getattr(t, "is_string_view", lambda _: False)
    checks = {
        "STRING": lambda a: t.is_string(a) or t.is_large_string(a) or string(a),
        "INT64": t.is_integer,
        "FLOAT64": lambda a: t.is_floating(a) or t.is_integer(a) or t.is_decimal(a),
        "BOOL": t.is_boolean,
        "DATE": t.is_date,
        "TIMESTAMP": t.is_timestamp,
    }
    return checks[column_type](arrow_type)


def check_snapshot(
    frame, schema, spec: dict, min_rows_per_class: int, max_missing_rate: float
) -> tuple[list, list]:
    """Problems that make the snapshot unfit (list of messages), and notes worth knowing."""
    problems = schema_problems(schema, spec["columns"])
    if problems:  # the value checks below need the columns
        return problems, []
    if frame.empty:
        return ["the snapshot has no rows"], []
    for column in spec["columns"]:
        problems += value_problems(frame[column["name"]], column)
    keys = spec["keys"]
    duplicated = int(frame.duplicated(subset=keys).sum()) if keys else 0
    if duplicated:
        problems.append(f"{duplicated} rows repeat a key ({', '.join(keys)})")
    class_problems, notes = class_checks(frame[spec["label"]], spec, min_rows_per_class)
    missing_problems, missing_notes = missing_checks(frame, spec["features"], max_missing_rate)
    return problems + class_problems + missing_problems, notes + missing_notes


def schema_problems(schema, columns: list) -> list:
    """Contract columns the snapshot's (Arrow) schema lacks or holds with another type."""
    problems = []
    present = {field.name: field.type for field in schema}
    for column in columns:
        name = column["name"]
        if name not in present:
            problems.append(f"column {name} is missing")
        elif not arrow_type_fits(column["type"], present[name]):
            problems.append(f"column {name} is {present[name]}, the contract says {column['type']}")
    return problems


def value_problems(values, column: dict) -> list:
    """A column's values against its contract: empty where it must not be, outside the allowed
    list, outside [min, max]."""
    problems = []
    name, nulls = column["name"], int(values.isna().sum())
    if nulls and not column.get("nullable", True):
        problems.append(f"column {name}: {nulls} rows are empty, the contract forbids it")
    if column.get("allowed") is not None:
        allowed = {str(v) for v in column["allowed"]}
        outside = values.dropna().astype(str)
        outside = outside[~outside.isin(allowed)].value_counts()
        if len(outside):
            shown = ", ".join(f"{v!r} ({n})" for v, n in outside.head(5).items())
            problems.append(f"column {name}: values outside the contract's list: {shown}")
    if column["type"] in ("INT64", "FLOAT64"):
        low, high = column.get("min"), column.get("max")
        numbers = values.dropna()
        bad = int((numbers < low).sum()) if low is not None else 0
        bad += int((numbers > high).sum()) if high is not None else 0
        if bad:
            problems.append(f"column {name}: {bad} values outside [{low}, {high}]")
    return problems


def class_checks(labels, spec: dict, min_rows_per_class: int) -> tuple[list, list]:
    """(problems, notes) of the label's classes: at least two, each with enough rows; classes
    the contract allows that the snapshot lacks are noted."""
    problems, notes = [], []
    counts = labels.value_counts()
    if len(counts) < 2:
        problems.append(
            f"the label {spec['label']} has {len(counts)} class(es); a classifier needs at least 2"
        )
    for label, count in counts.items():
        if count < min_rows_per_class:
            problems.append(
                f"class {label!r} has {count} rows; at least {min_rows_per_class} are needed"
            )
    absent = [c for c in spec["classes"] or [] if c not in counts.index]
    if absent:
        notes.append(f"classes the contract allows but the snapshot lacks: {absent}")
    return problems, notes


def missing_checks(frame, features: list, max_missing_rate: float) -> tuple[list, list]:
    """(problems, notes) of missing feature values: a problem above `max_missing_rate`, else a
    note when any are missing."""
    problems, notes = [], []
    for feature in features:
        rate = float(frame[feature["name"]].isna().mean())
        if rate > max_missing_rate:
            problems.append(
                f"feature {feature['name']}: {rate:.1%} of values missing, above the allowed "
                f"{max_missing_rate:.1%}"
            )
        elif rate:
            notes.append(f"feature {feature['name']}: {rate:.1%} of values missing")
    return problems, notes


def feature_statistics(frame, spec: dict) -> dict:
    """Per-feature statistics and the label's distribution: the baseline drift is measured against.

    Numeric features keep count, missing rate, mean, std, min, max, quantiles and a histogram on
    decile edges (counts per [edge_i, edge_i+1), the last bin closed) so drift measures such as
    PSI can bin new data the same way. Categorical features keep the share of each value.
    """
    import numpy as np

    features = {}
    for feature in spec["features"]:
        values = frame[feature["name"]]
        present = values.dropna()
        entry = {
            "kind": "categorical" if feature["categorical"] else "numeric",
            "count": len(present),
            "missing_rate": float(values.isna().mean()),
        }
        if feature["categorical"]:
            shares = present.astype(str).value_counts(normalize=True).sort_index()
            entry["frequencies"] = {str(k): float(v) for k, v in shares.items()}
        elif len(present):
            numbers = present.astype(float).to_numpy()
            edges = np.unique(np.quantile(numbers, np.linspace(0, 1, 11)))
            counts = np.histogram(numbers, bins=edges)[0] if len(edges) > 1 else [len(numbers)]
            entry.update(
                {
                    "mean": float(numbers.mean()),
                    "std": float(numbers.std(ddof=1)) if len(numbers) > 1 else 0.0,
                    "min": float(numbers.min()),
                    "max": float(numbers.max()),
                    "quantiles": {
                        str(q): float(np.quantile(numbers, q))
                        for q in (0.05, 0.25, 0.5, 0.75, 0.95)
                    },
                    "histogram": {
                        "edges": [float(e) for e in edges],
                        "counts": [int(c) for c in counts],
                    },
                }
            )
        features[feature["name"]] = entry
    label = frame[spec["label"]].astype(str)
    return {
        "rows": len(frame),
        "label": {
            "name": spec["label"],
            "counts": {str(k): int(v) for k, v in label.value_counts().sort_index().items()},
        },
        "features": features,
    }


@pipeline_component(
    packages=(
        "pandas",
        "pyarrow",
    )
)
def validate(
    contract: dict,
    snapshot: Input[Dataset],
    baseline: Output[Artifact],
    min_rows_per_class: int = 10,
    max_missing_rate: float = 0.2,
):
    """Check the snapshot against the contract and fitness rules; save the feature baseline.

    Fails with every problem listed when the data is unfit: columns missing or of another type,
    empty required values, values outside the contract, repeated keys, fewer than two classes or
    a class with fewer than `min_rows_per_class` rows, a feature missing more than
    `max_missing_rate` of its values.
    """
    import pyarrow.parquet as pq

    from pipeline_src.components.common import feature_spec, write_json
    from pipeline_src.components.validate import check_snapshot, feature_statistics

    if min_rows_per_class < 1:
        raise ValueError(f"min_rows_per_class must be at least 1, got {min_rows_per_class}")
    if not 0 <= max_missing_rate <= 1:
        raise ValueError(f"max_missing_rate must be within [0, 1], got {max_missing_rate}")
    spec = feature_spec(contract)
    table = pq.read_table(snapshot.path)
    frame = table.to_pandas()
    snapshot_id = snapshot.metadata.get("snapshot_id", "")
    problems, notes = check_snapshot(
        frame, table.schema, spec, min_rows_per_class, max_missing_rate
    )
    for note in notes:
        print(f"note: {note}")
    if problems:
        raise ValueError(
            f"snapshot {snapshot_id or snapshot.uri} ({len(frame)} rows) is unfit for training:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    statistics = feature_statistics(frame, spec)
    # The snapshot's exact time: continuous evaluation judges the model only on batches
    # ingested after it (rows the model never saw).
    statistics.update(
        {"snapshot_id": snapshot_id, "snapshot_time": snapshot.metadata.get("snapshot_time", ""),
         "contract": {"name": spec["name"], "version": spec["version"]}, "notes": notes}
    )  # fmt: skip
    write_json(baseline.path, statistics)
    baseline.metadata.update({"snapshot_id": snapshot_id, "rows": len(frame), "notes": len(notes)})
    print(f"snapshot {snapshot_id}: {len(frame)} rows fit for training; baseline saved")
