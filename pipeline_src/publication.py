"""Publishing a run: its report, headed by what was decided, and the lifecycle page, refreshed.

Both go under one location, `lifecycle_uri`, through the artifact storage port — in the cloud
`gs://<artifacts>/lifecycle` (the dashboard links its `index.html`; nothing expires it), locally
the local root (`.local/index.html`, `.local/reports/`):

    <lifecycle_uri>/index.html              the lifecycle page (pipeline_src/lifecycle_page.py)
    <lifecycle_uri>/reports/<run id>.html   each run's report, linked from its row on the page

The page's rows come from the warehouse's own tables through the warehouse port, and what each
endpoint serves through the endpoint port, so the same code publishes on Vertex AI and locally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_src.lifecycle_page import EndpointView, read_lifecycle, render_page

if TYPE_CHECKING:
    from pipeline_src.ports import ArtifactStorage, Backend

BROWSER = "https://storage.cloud.google.com/"
"""Cloud Storage's authenticated browser downloads: a person with read access opens an object
at this address after signing in (how the dashboard links the page, too)."""


def page_location(lifecycle_uri: str) -> str:
    return f"{lifecycle_uri.rstrip('/')}/index.html"


def report_location(lifecycle_uri: str, run_id: str) -> str:
    if not run_id or "/" in run_id:
        raise ValueError(f"a run id names one report file, got {run_id!r}")
    return f"{lifecycle_uri.rstrip('/')}/reports/{run_id}.html"


def report_link(lifecycle_uri: str, run_id: str) -> str:
    """How the page links a run's report: in the cloud by its browser address (the page itself
    is reached through a redirect, which a relative link would not survive); locally relative
    to the page, so the folder can be moved or zipped."""
    location = report_location(lifecycle_uri, run_id)
    if location.startswith("gs://"):
        return BROWSER + location.removeprefix("gs://")
    return f"reports/{run_id}.html"


def provenance(model_version: str, run_id: str, git_commit: str, when: datetime) -> dict[str, str]:
    """The facts a training report states under its decision (lifecycle_page.headed_by_decision)."""
    return {
        "model version": model_version or "none registered",
        "run": run_id,
        "code commit": git_commit or "unknown",
        "date": f"{when:%Y-%m-%d %H:%M} UTC",
    }


def publish_report(storage: ArtifactStorage, lifecycle_uri: str, run_id: str, report: str) -> str:
    """Keep a run's report (HTML text) where the page links it; return where it went."""
    return storage.write_text(report_location(lifecycle_uri, run_id), report)


def published_reports(storage: ArtifactStorage, lifecycle_uri: str) -> dict[str, str]:
    """Run id -> link, for every report kept under `lifecycle_uri` (read through the storage's
    file view: the /gcs mount on Vertex AI, the folder locally)."""
    folder = Path(storage.path(f"{lifecycle_uri.rstrip('/')}/reports"))
    if not folder.is_dir():
        return {}
    return {path.stem: report_link(lifecycle_uri, path.stem) for path in folder.glob("*.html")}


def endpoint_views(
    traffic: Callable[[str], dict[str, int]], endpoints: Iterable[str]
) -> list[EndpointView]:
    """What each named endpoint serves, as the page shows it (blank names are skipped)."""
    return [EndpointView(name, traffic(name)) for name in dict.fromkeys(endpoints) if name]


def refresh_page(
    ports: Backend,
    *,
    project: str,
    location: str,
    bq_location: str,
    dataset: str,
    endpoints: Iterable[str],
    lifecycle_uri: str,
    model_name: str,
    now: datetime,
) -> str:
    """The page rendered again through a backend's ports (warehouse, endpoints, storage);
    return where it went. The publish step calls it on the run's backend, `make index` on the
    local one."""
    warehouse = ports.warehouse(project, bq_location, dataset, "lifecycle")
    return publish_page(
        lambda sql, table: warehouse.read(sql, tables=[table]).to_pylist(),
        ports.artifacts(),
        dataset=dataset,
        endpoints=endpoint_views(ports.endpoints(project, location).traffic, endpoints),
        lifecycle_uri=lifecycle_uri,
        title=f"{model_name}: the model's lifecycle",
        now=now,
    )


def publish_page(
    read: Callable[[str, str], list[dict[str, Any]]],
    storage: ArtifactStorage,
    *,
    dataset: str,
    endpoints: list[EndpointView],
    lifecycle_uri: str,
    title: str,
    now: datetime,
) -> str:
    """Render the lifecycle page from the warehouse's tables and write it; return where.

    `read(sql, table)` runs BigQuery SQL reading one platform table and returns its rows."""
    lifecycle = read_lifecycle(read, dataset, endpoints, published_reports(storage, lifecycle_uri))
    page = render_page(lifecycle, title=title, generated_at=f"{now:%Y-%m-%d %H:%M} UTC")
    return storage.write_text(page_location(lifecycle_uri), page)
