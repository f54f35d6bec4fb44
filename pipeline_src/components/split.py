"""split: deterministic, stratified train / validation / test splits of the snapshot.

Within each class, rows are ordered by a seeded hash of their identity (the key, or without one the
row's content) and cut at the fractions. The split depends only on identities, labels and seed — not
on row order — and a row keeps its place in that order as the table grows, so most of a model's test
rows stay test rows next time.
"""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Output

from pipeline_src.components.common import pipeline_component


def split_sizes(rows: int, validation_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(validation, test) rows for one class: rounded shares, at least one each when asked for."""
    test = max(1, round(rows * test_fraction)) if test_fraction > 0 else 0
    validation = max(1, round(rows * validation_fraction)) if validation_fraction > 0 else 0
    return validation, test


def stratified_split(
    frame, spec: dict, validation_fraction: float, test_fraction: float, seed: int
) -> dict:
    """{"train": frame, "validation": frame, "test": frame}, stratified by the label."""
    import hashlib

    import pandas as pd

    if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1:
        raise ValueError(
            f"test_fraction must be in (0, 1) and validation_fraction in [0, 1), got "
            f"{test_fraction} and {validation_fraction}"
        )
    if validation_fraction + test_fraction >= 1:
        raise ValueError(
            f"validation_fraction + test_fraction = {validation_fraction + test_fraction:g} "
            "leaves no rows to train on"
        )
    keys = frame[spec["identity"]].astype(str).agg("\x1f".join, axis=1)
    order = keys.map(lambda key: hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest())
    parts = {"train": [], "validation": [], "test": []}
    for label, rows in frame.groupby(spec["label"], sort=True):
        rows = rows.loc[order[rows.index].sort_values(kind="stable").index]
        validation, test = split_sizes(len(rows), validation_fraction, test_fraction)
        if len(rows) - validation - test < 1:
            raise ValueError(
                f"class {label!r} has {len(rows)} rows: too few to leave any for training after "
                f"{validation} validation and {test} test rows"
            )
        parts["test"].append(rows.iloc[:test])
        parts["validation"].append(rows.iloc[test : test + validation])
        parts["train"].append(rows.iloc[test + validation :])
    return {
        name: pd.concat(chunks).sort_values(spec["identity"], kind="stable").reset_index(drop=True)
        for name, chunks in parts.items()
    }


@pipeline_component(
    packages=(
        "pandas",
        "pyarrow",
    )
)
def split(
    contract: dict,
    snapshot: Input[Dataset],
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
    validation_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 42,
) -> NamedTuple("Outputs", [("train_rows", int), ("validation_rows", int), ("test_rows", int)]):
    """Split the snapshot into train, validation and test Parquet datasets."""
    from collections import namedtuple

    import pandas as pd

    from pipeline_src.components.common import feature_spec
    from pipeline_src.components.split import stratified_split

    spec = feature_spec(contract)
    frame = pd.read_parquet(snapshot.path)
    parts = stratified_split(frame, spec, validation_fraction, test_fraction, seed)
    for name, artifact in (("train", train), ("validation", validation), ("test", test)):
        part = parts[name]
        part.to_parquet(artifact.path, index=False)
        artifact.metadata.update(
            {
                "rows": len(part),
                "snapshot_id": snapshot.metadata.get("snapshot_id", ""),
                "classes": {str(k): int(v) for k, v in part[spec["label"]].value_counts().items()},
            }
        )
    sizes = {name: len(part) for name, part in parts.items()}
    print(f"split (seed {seed}): {sizes}")
    return namedtuple("Outputs", ["train_rows", "validation_rows", "test_rows"])(
        sizes["train"], sizes["validation"], sizes["test"]
    )
