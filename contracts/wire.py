"""Names the deployment and the ingestion function must agree on, defined once.

The function runs in another process, from its own archive, which ships this package
(resources/ingestion.py CONTRACT_MODULES); the deployment imports it like any module. Each name is
written on one side and read on the other:

- the event type: the function's trigger (resources/ingestion.py) and the events the local
  stand-in delivers (local/ingestion.py);
- the function's environment: set on deploy (resources/ingestion.py) or by the local stand-in,
  read once per instance (function_src/ingestion/settings.py);
- the function's log line, one per attempt: written by function_src/ingestion/ingest.py, counted
  and alerted on by resources/monitoring.py;
- where the function stages its load jobs' copies: granted by resources/data_lake.py, passed to
  the function as STAGING_URI.

A rename here is a rename on both sides; a name typed anywhere else is a bug.
"""

FINALIZED = "google.cloud.storage.object.v1.finalized"
"""The CloudEvent type of a new object generation, which triggers the function."""

# --- the function's environment ---------------------------------------------------------------

CONTRACT_PATH = "CONTRACT_PATH"
"""The data contract file, relative to the function's folder."""
LANDING_BUCKET = "LANDING_BUCKET"
"""The one bucket whose events are read; events for any other are refused."""
LANDING_PREFIX = "LANDING_PREFIX"
"""Only objects under this prefix are ingested."""
QUARANTINE_BUCKET = "QUARANTINE_BUCKET"
BQ_PROJECT = "BQ_PROJECT"
BQ_DATASET = "BQ_DATASET"
BQ_LOCATION = "BQ_LOCATION"
CURATED_TABLE = "CURATED_TABLE"
INGESTION_LOG_TABLE = "INGESTION_LOG_TABLE"
TIMEOUT_SECONDS = "TIMEOUT_SECONDS"
"""The function's timeout: an attempt older than this with no outcome was cut short."""
STAGING_URI = "STAGING_URI"
"""`gs://bucket/prefix/` the BigQuery adapter copies the event's generation to for its load job."""
LOCAL_WAREHOUSE = "LOCAL_WAREHOUSE"
"""Local mode only, never set by the deployment: a DuckDB file instead of BigQuery."""
REQUIRED_ENVIRONMENT = (
    CONTRACT_PATH,
    LANDING_BUCKET,
    LANDING_PREFIX,
    QUARANTINE_BUCKET,
    BQ_PROJECT,
    BQ_DATASET,
    BQ_LOCATION,
    CURATED_TABLE,
    INGESTION_LOG_TABLE,
)
"""What the function cannot start without (the others have defaults or are optional)."""

STAGING_PREFIX = "tmp/ingestion/"
"""Under the artifacts bucket: the function's per-attempt copies for BigQuery load jobs, the one
place there it may write."""

# --- the function's log line, one per ingestion attempt ------------------------------------------

LOG_EVENT_FIELD = "event"
LOG_EVENT = "ingestion"
"""The line's `event` (Cloud Logging: `jsonPayload.event`), which the log-based metric counts."""
LOG_STATUS_FIELD = "status"
"""The attempt's outcome (below), the metric's `status` label."""

LOADED, REJECTED, DUPLICATE, FAILED, IGNORED = (
    "LOADED",
    "REJECTED",
    "DUPLICATE",
    "FAILED",
    "IGNORED",
)
"""The outcomes of one attempt, as its log line and the ingestion log table name them."""
STARTED = "STARTED"
"""The row an attempt writes before its work (never a log line's status)."""
