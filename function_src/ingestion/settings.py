"""The function's settings: read once from the environment Pulumi sets on it.

The variables are named in contracts/wire.py, which resources/ingestion.py sets them by;
`LOCAL_WAREHOUSE` exists only in local mode (a DuckDB file instead of BigQuery) and is never set
by the deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts import wire


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
        missing = [name for name in wire.REQUIRED_ENVIRONMENT if name not in environ]
        if missing:
            raise RuntimeError(
                f"the ingestion function is missing environment variable(s) {', '.join(missing)} "
                "(set by resources/ingestion.py on deploy)"
            )
        local = environ.get(wire.LOCAL_WAREHOUSE)
        return cls(
            contract_path=base / environ[wire.CONTRACT_PATH],
            landing_bucket=environ[wire.LANDING_BUCKET],
            landing_prefix=environ[wire.LANDING_PREFIX],
            quarantine_bucket=environ[wire.QUARANTINE_BUCKET],
            project=environ[wire.BQ_PROJECT],
            dataset=environ[wire.BQ_DATASET],
            location=environ[wire.BQ_LOCATION],
            curated_table=environ[wire.CURATED_TABLE],
            log_table=environ[wire.INGESTION_LOG_TABLE],
            attempt_timeout_seconds=int(environ.get(wire.TIMEOUT_SECONDS, "540")),
            staging_uri=environ.get(wire.STAGING_URI),
            local_warehouse=Path(local) if local else None,
        )
