"""New data for the local lifecycle: generated batches, ingested the way every upload is.

A batch is a CSV the generator writes from the data contract (contracts/generate.py), optionally
drifted, uploaded to the emulated landing bucket and loaded by the real ingestion function
(local/ingestion.py): it gets its batch id and lineage from the function, as in the cloud.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from local.environment import LocalEnvironment
from local.ingestion import LANDING_PREFIX, LocalLanding


def ingest_generated(
    env: LocalEnvironment, rows: int, *, seed: int, drift: str | None = None
) -> dict[str, Any]:
    """Generate `rows` rows (seeded, drifted as `drift` says), upload and ingest them.

    Returns the ingestion log's row for the upload (status, batch_id, rows_loaded, …); raises
    RuntimeError when the function did not load it.
    """
    from contracts.generate import Drift, sample_profile, write_csv

    profile = sample_profile(env.contract)
    shape = Drift.parse(drift)
    name = f"generated-s{seed}" + (
        f"-{str(shape).replace('=', '').replace(',', '-')}" if shape.active else ""
    )
    with tempfile.TemporaryDirectory() as scratch, LocalLanding(env) as landing:
        path = write_csv(
            profile, Path(scratch) / f"{name}.csv", rows=rows, seed=seed, drift=shape
        ).path
        outcome = landing.ingest(landing.upload_file(f"{LANDING_PREFIX}{name}.csv", path))
    if outcome["status"] != "LOADED":
        raise RuntimeError(f"the generated batch {name} was not loaded: {outcome}")
    return outcome
