"""Seeded synthetic data from a data contract: rows or CSV files of any size, optionally drifted.

    python -m contracts.generate --rows N [--seed S] [--drift SPEC] [--key-prefix P] out.csv
    python -m contracts.generate --size 1GB --seed 7 big.csv

The generator fits a profile on a real sample of the contract (by default the bundled penguins
sample): class priors, and per class the mean and covariance of the numeric features and the
frequencies of the categorical ones, so generated data is as learnable as the real data and a
model trained on one scores alike on the other. Missing values appear at the sample's rates; other
columns follow the sample's marginal distribution; the key is a batch prefix plus a running number,
so batches with different prefixes never share a key.

Drift (`--drift shift=2,relabel=0.3`) produces degraded batches for the continuous evaluation:
`shift` moves every numeric feature by that many of its standard deviations (covariate drift, what
PSI catches), `relabel` gives that fraction of rows the label of the next class (concept drift: the
class-feature relationship changes, so a model's accuracy drops without any feature moving).

Rows are made in fixed chunks, each from its own seeded stream, written as they are made: memory is
bounded whatever the size, and the first N rows of a file are the same whatever its total size.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.model import DataContract, load_contract

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

# Rows per generated chunk. Part of the output's definition (each chunk has its own seeded stream),
# so changing it changes every generated file.
CHUNK_ROWS = 65_536
KEY_DIGITS = 10
DEFAULT_CONTRACT = Path(__file__).parent / "penguins.yaml"

_ARROW_TYPES = {
    "STRING": "string",
    "INT64": "int64",
    "FLOAT64": "float64",
    "BOOL": "bool",
    "DATE": "date32",
    "TIMESTAMP": "timestamp[us, tz=UTC]",
}


@dataclass(frozen=True)
class Drift:
    """How a batch departs from the sample: covariate shift and concept drift, both optional."""

    shift: float = 0.0  # numeric features move by this many standard deviations
    relabel: float = 0.0  # fraction of rows labelled as the next class

    def __post_init__(self) -> None:
        if not 0.0 <= self.relabel <= 1.0:
            raise ValueError(f"drift relabel is a fraction of rows in [0, 1], got {self.relabel}")

    @property
    def active(self) -> bool:
        return bool(self.shift or self.relabel)

    def __str__(self) -> str:
        return (
            ",".join(
                f"{k}={v:g}" for k, v in (("shift", self.shift), ("relabel", self.relabel)) if v
            )
            or "none"
        )

    @classmethod
    def parse(cls, spec: str | None) -> Drift:
        """'shift=2,relabel=0.3'; a bare 'shift' or 'relabel' takes its default (2 / 0.5)."""
        defaults = {"shift": 2.0, "relabel": 0.5}
        values: dict[str, float] = {}
        for part in (spec or "").replace(" ", "").split(","):
            if not part or part == "none":
                continue
            name, _, number = part.partition("=")
            if name not in defaults:
                raise ValueError(
                    f"drift {spec!r}: unknown kind {name!r}; "
                    "use shift[=STDS] and/or relabel[=FRACTION]"
                )
            try:
                values[name] = float(number) if number else defaults[name]
            except ValueError:
                raise ValueError(f"drift {spec!r}: {name} needs a number, got {number!r}") from None
        return cls(**values)


@dataclass(frozen=True)
class _Categorical:
    values: pa.Array  # the distinct values, typed as the column
    cumulative: np.ndarray  # cumulative probabilities, for inverse-CDF sampling


@dataclass(frozen=True)
class _ClassProfile:
    mean: np.ndarray  # of the numeric features
    cholesky: np.ndarray  # of their covariance: correlated draws from independent normals
    categorical: dict[str, _Categorical]  # per-class frequencies of categorical features


@dataclass(frozen=True)
class Profile:
    """What the generator learned from a sample; build one with `fit_profile`."""

    contract: DataContract
    classes: list[str]
    class_cumulative: np.ndarray
    per_class: list[_ClassProfile]
    numeric: list[str]  # numeric features, modelled jointly per class
    numeric_std: np.ndarray  # overall standard deviations: the unit of `Drift.shift`
    decimals: dict[str, int]  # digits the sample records per numeric feature
    marginal: dict[str, _Categorical]  # every other non-key column
    missing: dict[str, float] = field(default_factory=dict)  # null rate per nullable column


def fit_profile(contract: DataContract, sample: pd.DataFrame) -> Profile:
    """Fit the generator on a sample frame holding the contract's columns."""
    import numpy as np

    absent = [c for c in contract.column_names if c not in sample.columns]
    if absent:
        raise ValueError(f"the sample lacks the contract's columns {absent}")
    labelled, as_text, classes = _classes(contract, sample)
    features = contract.feature_columns
    numeric = [
        c for c in features if contract.column(c).is_numeric and not contract.column(c).allowed
    ]
    # Frequencies over the column's distinct values in the whole sample, so every class indexes
    # the same value list (a class may give some values probability 0).
    universe = {c: sorted(sample[c].dropna().unique()) for c in contract.column_names}

    def categorical_of(values: pd.Series, column: str) -> _Categorical:
        return _categorical(contract, column, values, universe[column])

    per_class = []
    for cls in classes:
        rows = labelled[as_text == str(cls)]
        mean, cholesky = _numeric_model(cls, rows[numeric])
        others = {c: categorical_of(rows[c], c) for c in features if c not in numeric}
        per_class.append(_ClassProfile(mean, cholesky, others))
    class_counts = np.array([(as_text == str(c)).sum() for c in classes], dtype=float)
    unmodelled = [
        c
        for c in contract.column_names
        if c not in features and c != contract.label_column and c not in contract.key_columns
    ]
    return Profile(
        contract=contract,
        classes=classes,
        class_cumulative=np.cumsum(class_counts / class_counts.sum()),
        per_class=per_class,
        numeric=numeric,
        numeric_std=labelled[numeric].std().to_numpy(dtype=float),
        decimals={c: _decimals(sample[c].dropna().to_numpy(dtype=float)) for c in numeric},
        marginal={c: categorical_of(sample[c], c) for c in unmodelled},
        missing={
            c.name: float(sample[c.name].isna().mean())
            for c in contract.columns
            if c.nullable and sample[c.name].isna().any()
        },
    )


def _classes(
    contract: DataContract, sample: pd.DataFrame
) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """The labelled rows, their labels as text, and the classes they hold (the contract's order)."""
    label = contract.label_column
    labelled = sample[sample[label].notna()]
    if labelled.empty:
        raise ValueError(f"the sample has no rows with a {label} value to fit classes on")
    allowed = contract.column(label).allowed
    # Compared as text: an INT64 label's allowed values are written as strings ("0", "1").
    as_text = labelled[label].astype(str)
    classes = [
        c for c in (allowed or sorted(labelled[label].unique())) if (as_text == str(c)).any()
    ]
    return labelled, as_text, classes


def _categorical(
    contract: DataContract, column: str, values: pd.Series, universe: list
) -> _Categorical:
    """The frequencies of `values` over the column's `universe` of values, typed as the column."""
    import numpy as np
    import pyarrow as pa

    counts = values.dropna().value_counts().reindex(universe, fill_value=0)
    if not counts.sum():
        raise ValueError(f"the sample has no values of {column} to learn from")
    arrow_type = pa.type_for_alias(_ARROW_TYPES[contract.column(column).type])
    probs = counts.to_numpy(dtype=float) / counts.sum()
    return _Categorical(pa.array(counts.index.tolist(), type=arrow_type), np.cumsum(probs))


def _numeric_model(cls: str, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """One class's numeric features: their mean, and the Cholesky factor of their covariance."""
    import numpy as np

    complete = features.dropna().to_numpy(dtype=float)
    if len(complete) < 2:
        raise ValueError(f"class {cls!r} has {len(complete)} complete rows in the sample; need 2+")
    mean = complete.mean(axis=0)
    # Full covariance when the class has enough rows to estimate it, else the diagonal; a tiny
    # ridge keeps the Cholesky factor defined for (near-)collinear features.
    width = features.shape[1]
    cov = (
        np.cov(complete, rowvar=False)
        if len(complete) > width
        else np.diag(complete.var(axis=0, ddof=1))
    )
    cov = np.atleast_2d(cov) + np.eye(width) * 1e-9
    return mean, np.linalg.cholesky(cov)


def sample_profile(contract: DataContract) -> Profile:
    """The profile of the contract's bundled sample (contracts/sample.py)."""
    from contracts.sample import load_sample

    return fit_profile(contract, load_sample(contract))


def default_key_prefix(seed: int, drift: Drift) -> str:
    """G<seed>, plus a digest of the drift: a drifted batch never reuses a clean batch's keys."""
    if not drift.active:
        return f"G{seed}"
    return f"G{seed}D{hashlib.sha256(str(drift).encode()).hexdigest()[:6].upper()}"


def generate(
    profile: Profile,
    rows: int,
    *,
    seed: int = 0,
    drift: Drift = Drift(),
    key_prefix: str | None = None,
) -> Iterator[pa.Table]:
    """Yield Arrow tables of at most CHUNK_ROWS rows, `rows` in all, typed as the contract says."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    contract = profile.contract
    prefix = key_prefix or default_key_prefix(seed, drift)
    _check_key(contract, prefix)
    for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
        table = _chunk(profile, start, seed, chunk, drift, prefix)
        yield table.slice(0, min(CHUNK_ROWS, rows - start))


def generate_records(profile: Profile, rows: int, **options: Any) -> list[dict[str, Any]]:
    """Generated rows as dicts (None for missing): small batches for tests and the local demo."""
    return [record for table in generate(profile, rows, **options) for record in table.to_pylist()]


@dataclass(frozen=True)
class WriteResult:
    path: Path
    rows: int
    bytes: int
    seconds: float
    key_prefix: str


def write_csv(
    profile: Profile,
    path: str | Path,
    *,
    rows: int | None = None,
    size: int | None = None,
    seed: int = 0,
    drift: Drift = Drift(),
    key_prefix: str | None = None,
) -> WriteResult:
    """Write a CSV by the contract's file rules: `rows` rows, or chunks until `size` bytes."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if (rows is None) == (size is None):
        raise ValueError("give exactly one of rows or size")
    rules = profile.contract.file
    options = pacsv.WriteOptions(
        include_header=False,  # written below, quoted only where a header needs it
        delimiter=rules.delimiter,
        # Generated values never hold delimiters, quotes or newlines: no quoting needed.
        quoting_style="none",
        null_string=rules.null_markers[0],
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = key_prefix or default_key_prefix(seed, drift)
    started = time.perf_counter()
    written = 0
    target_rows = rows if rows is not None else sys.maxsize // 2
    schema = pa.schema(
        [(c.name, pa.type_for_alias(_ARROW_TYPES[c.type])) for c in profile.contract.columns]
    )
    with path.open("wb") as sink, pacsv.CSVWriter(sink, schema, write_options=options) as writer:
        sink.write(_header_line(profile.contract).encode())
        for table in generate(profile, target_rows, seed=seed, drift=drift, key_prefix=prefix):
            writer.write_table(table)
            written += table.num_rows
            if size is not None and sink.tell() >= size:
                break
    return WriteResult(path, written, path.stat().st_size, time.perf_counter() - started, prefix)


def _chunk(
    profile: Profile, start: int, seed: int, chunk: int, drift: Drift, prefix: str
) -> pa.Table:
    """One full chunk of rows numbered from start + 1 (callers slice off what they do not need:
    a chunk's rows never depend on how many of them are kept)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    contract = profile.contract
    n = CHUNK_ROWS
    rng = np.random.default_rng([seed, chunk])
    klass = np.searchsorted(profile.class_cumulative, rng.random(n), side="right")
    klass = np.minimum(klass, len(profile.classes) - 1)
    numeric = np.empty((n, len(profile.numeric)))
    categorical = {name: np.zeros(n, dtype=np.int64) for name in profile.per_class[0].categorical}
    for c, cp in enumerate(profile.per_class):
        members = np.flatnonzero(klass == c)
        draws = rng.standard_normal((members.size, len(profile.numeric)))
        numeric[members] = cp.mean + draws @ cp.cholesky.T
        for name, cat in cp.categorical.items():
            categorical[name][members] = _draw(rng, cat, members.size)
    if drift.shift:
        numeric += drift.shift * profile.numeric_std
    # Drawn whatever the drift, so a drifted batch and a clean one with the same seed share every
    # other draw and differ only by the drift itself.
    moved = rng.random(n) < drift.relabel
    label = np.where(moved, (klass + 1) % len(profile.classes), klass)

    columns: dict[str, pa.Array] = {}
    for i, name in enumerate(profile.numeric):
        col = contract.column(name)
        values = np.round(numeric[:, i], profile.decimals[name])
        low = col.min if col.min is not None else -np.inf
        high = col.max if col.max is not None else np.inf
        values = np.clip(values, low, high)
        columns[name] = pa.array(values.astype(np.int64) if col.type == "INT64" else values)
    for name, idx in categorical.items():
        columns[name] = profile.per_class[0].categorical[name].values.take(pa.array(idx))
    columns[contract.label_column] = pa.array(profile.classes).take(pa.array(label))
    for name, cat in profile.marginal.items():
        columns[name] = cat.values.take(pa.array(_draw(rng, cat, n)))
    numbers = pc.cast(pa.array(np.arange(start + 1, start + n + 1)), pa.string())
    for key in contract.key_columns:
        columns[key] = pc.binary_join_element_wise(
            prefix, pc.utf8_lpad(numbers, width=KEY_DIGITS, padding="0"), "-"
        )
    for name, rate in profile.missing.items():
        if name in columns and rate:
            null = pa.array(rng.random(n) < rate)
            columns[name] = pc.if_else(null, pa.scalar(None, columns[name].type), columns[name])
    return pa.table(
        [columns[c.name].cast(pa.type_for_alias(_ARROW_TYPES[c.type])) for c in contract.columns],
        names=contract.column_names,
    )


def _header_line(contract: DataContract) -> str:
    """The file's header row: each column's `source` header, or its name."""
    import csv
    import io

    line = io.StringIO()
    csv.writer(line, delimiter=contract.file.delimiter, lineterminator="\n").writerow(
        contract.headers
    )
    return line.getvalue()


def _draw(rng: np.random.Generator, cat: _Categorical, n: int) -> np.ndarray:
    import numpy as np

    return np.minimum(
        np.searchsorted(cat.cumulative, rng.random(n), side="right"), len(cat.values) - 1
    )


def _decimals(values: np.ndarray) -> int:
    """Fewest decimal digits that represent every sample value (0 for whole numbers)."""
    import numpy as np

    for digits in range(7):
        if np.allclose(values, np.round(values, digits), rtol=0, atol=1e-9):
            return digits
    return 6


def _check_key(contract: DataContract, prefix: str) -> None:
    example = f"{prefix}-{1:0{KEY_DIGITS}d}"
    for key in contract.key_columns:
        col = contract.column(key)
        if col.pattern and not re.search(col.pattern, example):
            raise ValueError(
                f"key prefix {prefix!r} makes keys like {example!r} that the contract's "
                f"{key} pattern {col.pattern!r} rejects"
            )
        if col.max_length and len(example) > col.max_length:
            raise ValueError(
                f"key prefix {prefix!r} makes keys of {len(example)} characters; "
                f"{key} allows at most {col.max_length}"
            )


def _parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]?B?)", text.strip().upper())
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r}: use a number with KB, MB or GB, e.g. 1GB")
    unit = {
        "": 1,
        "B": 1,
        "K": 1024,
        "KB": 1024,
        "M": 1024**2,
        "MB": 1024**2,
        "G": 1024**3,
        "GB": 1024**3,
    }
    return int(float(match.group(1)) * unit[match.group(2)])


def _stack_contract() -> Path:
    from local.environment import stack_contract_path

    return stack_contract_path()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contracts.generate", description=__doc__.split("\n")[0]
    )
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--rows", type=int, help="rows to write")
    amount.add_argument(
        "--size", type=_parse_size, help="write until the file reaches this size (e.g. 1GB)"
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same rows (default 0)")
    parser.add_argument("--drift", default=None, help="e.g. shift=2,relabel=0.3 (default: none)")
    parser.add_argument(
        "--key-prefix", default=None, help="key prefix (default from seed and drift)"
    )
    parser.add_argument(
        "--contract", type=Path, default=None, help="contract file (default: the stack's)"
    )
    parser.add_argument(
        "--sample", type=Path, default=None, help="CSV to fit on (default: bundled sample)"
    )
    parser.add_argument("out", type=Path, help="CSV file to write")
    args = parser.parse_args(argv)
    try:
        contract = load_contract(args.contract or _stack_contract())
        if args.sample:
            import pandas as pd

            profile = fit_profile(
                contract, pd.read_csv(args.sample, na_values=contract.file.null_markers)
            )
        else:
            profile = sample_profile(contract)
        result = write_csv(
            profile,
            args.out,
            rows=args.rows,
            size=args.size,
            seed=args.seed,
            drift=Drift.parse(args.drift),
            key_prefix=args.key_prefix,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    mb = result.bytes / 1024**2
    print(
        f"{result.path}: {result.rows} rows, {mb:.1f} MB in {result.seconds:.1f} s "
        f"({mb / max(result.seconds, 1e-9):.0f} MB/s), "
        + (f"keys {result.key_prefix}-…" if contract.key_columns else "no key column")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
