"""`.local/index.html`: the lifecycle page of the local platform, regenerated after every run.

    python -m local.lifecycle [--root DIR] [--contract PATH]     # or: make index

Reads the local warehouse's own tables (ingestion_log, model_metrics, evaluations) and the local
endpoints, links each run to its report under `reports/`, and writes `<root>/index.html` — the
page pipeline_src/lifecycle_page.py renders, the same one the cloud writes to its artifacts bucket.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local.environment import (
    DEFAULT_ROOT,
    LocalEnvironment,
    add_contract_argument,
    contract_path_of,
)
from pipeline_src.lifecycle_page import EndpointView, read_lifecycle, render_page, write_page

ENDPOINTS = ("staging", "prod")


def write_index(env: LocalEnvironment) -> Path:
    """Regenerate `<root>/index.html` from the local state; return its path."""
    from contracts.tables import PLATFORM_TABLES
    from local.warehouse import connect, create_table, query

    env.ensure()
    with connect(env.warehouse_path) as con:
        for table in PLATFORM_TABLES:  # a fresh platform has no rows yet, not no tables
            create_table(con, env.dataset, table.table_id, table.schema)

        def read(sql: str) -> list[dict[str, Any]]:
            return query(con, sql).to_pylist()

        lifecycle = read_lifecycle(read, env.dataset, local_endpoints(env), local_reports(env))
    page = render_page(
        lifecycle,
        title=f"{env.contract.name}: the model's lifecycle (local)",
        generated_at=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    )
    return Path(write_page(page, str(env.root / "index.html")))


def local_endpoints(env: LocalEnvironment) -> list[EndpointView]:
    from local.registry import LocalEndpoint

    views = []
    for name in ENDPOINTS:
        deployed = LocalEndpoint(env.endpoints_dir, name).deployed_models()
        traffic = {m.resource_name: m.traffic_percentage for m in deployed if m.traffic_percentage}
        views.append(EndpointView(name, traffic))
    return views


def local_reports(env: LocalEnvironment) -> dict[str, str]:
    """Run id -> the report's path relative to the page (reports are named by their run)."""
    return {
        path.stem: path.relative_to(env.root).as_posix()
        for path in sorted((env.root / "reports").glob("*.html"))
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.lifecycle", description=__doc__)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="local state folder")
    add_contract_argument(parser)
    args = parser.parse_args(argv)
    path = write_index(LocalEnvironment(root=args.root, contract_path=contract_path_of(args)))
    print(f"lifecycle page: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
