"""`make score`: the batch scoring pipeline, run locally by kfp.local, into the local warehouse.

    python -m local.run_scoring [--root DIR] [--param NAME=VALUE ...]

The same components as on Vertex AI score rows with the model the local prod endpoint serves
(staging's while prod serves nothing) and append the predictions to the warehouse's predictions
table. Which rows: `--param source=dataset.table` or `--param source="SELECT …"` names them;
`--param source=` (empty) scores the ingested batches no run has scored yet, as the schedule
does; by default `--param generate=ROWS` (1000) unlabelled rows are generated from the contract
into `<dataset>.scoring_batch` and scored.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.tables import PREDICTIONS
from local.environment import LocalEnvironment
from local.run_evaluation import PROD_ENDPOINT
from local.run_training import (
    STAGING_ENDPOINT,
    command_line,
    execute,
    local_base_parameters,
)
from pipeline_src.compile import typed_arguments
from pipeline_src.scoring import scoring_pipeline

GENERATED_TABLE = "scoring_batch"
"""Where generated unlabelled rows wait to be scored (replaced by each generation)."""
DEFAULT_ROWS = 1000


@dataclass(frozen=True)
class LocalScoring:
    """What one local scoring run did."""

    scored: int
    model: str
    """The registry version (model@version) recorded on every prediction of the run."""
    run_id: str
    source: str
    table: str
    """The predictions table, as `dataset.table` in the local DuckDB warehouse."""
    warehouse: Path
    sample: list[dict[str, Any]]
    """A few of the run's predictions, as the table holds them."""
    seconds: float
    log: Path

    @property
    def query(self) -> str:
        """SQL that reads the run's predictions back."""
        return f"SELECT * FROM {self.table} WHERE scoring_run_id = '{self.run_id}'"


def scoring_parameters(env: LocalEnvironment, **overrides: Any) -> dict[str, Any]:
    """The scoring pipeline's arguments for a local run; `overrides` replace any of them."""
    parameters = {
        **local_base_parameters(env),
        "endpoint": PROD_ENDPOINT,
        "fallback_endpoint": STAGING_ENDPOINT,
        "predictions_table": PREDICTIONS.table_id,
    }
    return typed_arguments({**parameters, **overrides}, scoring_pipeline)


def generate_unlabelled(env: LocalEnvironment, rows: int, seed: int) -> str:
    """`rows` rows generated from the contract, label dropped, as `<dataset>.scoring_batch`."""
    import pyarrow as pa

    from contracts.generate import generate, sample_profile
    from local.warehouse import connect

    if rows < 1:
        raise ValueError(f"generate must be at least 1 row, got {rows}")
    contract = env.contract
    table = pa.concat_tables(generate(sample_profile(contract), rows, seed=seed))
    table = table.drop_columns([contract.label_column])
    with connect(env.warehouse_path) as con:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{env.dataset}"')
        con.register("_generated", table)
        try:
            con.execute(
                f'CREATE OR REPLACE TABLE "{env.dataset}"."{GENERATED_TABLE}" AS '
                "SELECT * FROM _generated"
            )
        finally:
            con.unregister("_generated")
    return f"{env.dataset}.{GENERATED_TABLE}"


def run(
    env: LocalEnvironment,
    *,
    say: Callable[[str], None] = print,
    generate: int | None = None,
    seed: int | None = None,
    **overrides: Any,
) -> LocalScoring:
    """Score rows locally: generated ones unless `source` is given (empty: unscored batches)."""
    env.ensure()
    if "source" in overrides and overrides["source"] is None:  # --param source= (empty)
        overrides["source"] = ""
    if "source" not in overrides or generate is not None:
        rows = DEFAULT_ROWS if generate is None else generate
        seed = seed if seed is not None else time.time_ns() % 2**31  # new rows each run
        overrides["source"] = generate_unlabelled(env, rows, seed)
        say(f"generated {rows} unlabelled rows (seed {seed}) into {overrides['source']}")
    parameters = scoring_parameters(env, **overrides)
    started = time.perf_counter()
    result, log_path = execute(env, scoring_pipeline, parameters, log_name="scoring", say=say)
    run_id = Path(result.outputs["predictions"].path).parent.parent.name
    table = f"{env.dataset}.{parameters['predictions_table']}"
    return LocalScoring(
        scored=int(result.outputs["scored"]),
        model=result.outputs["model"],
        run_id=run_id,
        source=parameters["source"] or "ingested batches not scored yet",
        table=table,
        warehouse=env.warehouse_path,
        sample=run_sample(env, table, run_id),
        seconds=time.perf_counter() - started,
        log=log_path,
    )


def run_sample(env: LocalEnvironment, table: str, run_id: str, rows: int = 3) -> list[dict]:
    """The first `rows` predictions the run appended."""
    from local.warehouse import connect

    with connect(env.warehouse_path, read_only=True) as con:
        found = con.sql(
            f"SELECT row_key, predicted_class, probabilities, model_version FROM {table} "
            "WHERE scoring_run_id = $run ORDER BY source_row LIMIT $rows",
            params={"run": run_id, "rows": rows},
        ).to_arrow_table()
    return found.to_pylist()


def summary(outcome: LocalScoring) -> list[str]:
    """Where the predictions are, how to read them, and a few of them."""
    lines = [
        f"scored {outcome.scored} rows of {outcome.source} with {outcome.model}",
        f"predictions: {outcome.table} in {outcome.warehouse}, run {outcome.run_id}",
        "read them (any DuckDB client; docs/scoring.md): " + outcome.query,
    ]
    for row in outcome.sample:
        probabilities = json.loads(row["probabilities"])
        shown = ", ".join(f"{c} {p:.3f}" for c, p in probabilities.items())
        lines.append(f"  {row['row_key'] or '(no key)'} -> {row['predicted_class']} ({shown})")
    return lines


def main(argv: list[str] | None = None) -> int:
    return command_line(
        argv, prog="python -m local.run_scoring", doc=__doc__,
        title="scoring pipeline", run=run, summary=summary,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
