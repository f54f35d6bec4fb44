"""The function's settings: read once from the environment Pulumi sets on it.

resources/ingestion.py sets exactly these variables; `LOCAL_WAREHOUSE` exists only in local mode
(a DuckDB file instead of BigQuery) and is never set by the deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REQUIRED = (
    "CONTRACT_PATH",
    "LANDING_BUCKET",
    "LANDING_PREFIX",
    "QUARANTINE_BUCKET",
    "BQ_PROJECT",
    "BQ_DATASET",
    "BQ_LOCATION",
    "CURATED_TABLE",
    "INGESTION_LOG_TABLE",
)


@dataclass(frozen=True)
class Settings:
    contract_path: Path
    landing_bucket: str
    landing_prefix: str
    quarantine_bucket: str
    project: str
    dataset: str
    location: str
    curated_table: str
    log_table: str
    attempt_timeout_seconds: int = 540
    """The function's timeout (TIMEOUT_SECONDS): an attempt older than that has ended."""
    staging_uri: str | None = None
    """Where the BigQuery adapter copies the event's generation for its load job (STAGING_URI,
    `gs://bucket/prefix/`); unused in local mode."""
    local_warehouse: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], base: Path) -> Settings:
        """`base` is the function's folder: CONTRACT_PATH is relative to it in the archive."""
        missing = [name for name in REQUIRED if name not in environ]
        if missing:
            raise RuntimeError(
                f"the ingestion function is missing environment variable(s) {', '.join(missing)} "
                "(set by resources/ingestion.py on deploy)"
            )
        local = environ.get("LOCAL_WAREHOUSE")
        return cls(
            contract_path=base / environ["CONTRACT_PATH"],
            landing_bucket=environ["LANDING_BUCKET"],
            landing_prefix=environ["LANDING_PREFIX"],
            quarantine_bucket=environ["QUARANTINE_BUCKET"],
            project=environ["BQ_PROJECT"],
            dataset=environ["BQ_DATASET"],
            location=environ["BQ_LOCATION"],
            curated_table=environ["CURATED_TABLE"],
            log_table=environ["INGESTION_LOG_TABLE"],
            attempt_timeout_seconds=int(environ.get("TIMEOUT_SECONDS", "540")),
            staging_uri=environ.get("STAGING_URI"),
            local_warehouse=Path(local) if local else None,
        )
