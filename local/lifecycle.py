"""`.local/index.html`: the lifecycle page of the local platform.

    python -m local.lifecycle [--root DIR] [--contract PATH]     # or: make index

Every local pipeline run refreshes the page in its last step (pipeline_src/components/publish.py),
as runs do in the cloud; this renders it again on demand, through the same code and the local
backend's ports: the local warehouse's own tables (ingestion_log, model_metrics, evaluations), the
local endpoints, and each run's report kept under `<root>/reports/`.
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

ENDPOINTS = ("staging", "prod")
"""The local platform plays both stacks: its one page shows both endpoints."""


def lifecycle_parameters(env: LocalEnvironment) -> dict[str, Any]:
    """What a local pipeline run publishes with: the page and reports under the local root."""
    return {"lifecycle_uri": str(env.root.resolve()), "page_endpoints": list(ENDPOINTS)}


def write_index(env: LocalEnvironment) -> Path:
    """Regenerate `<root>/index.html` from the local state; return its path."""
    from local.adapters import LocalBackend
    from pipeline_src.publication import refresh_page

    env.ensure()
    page = refresh_page(
        LocalBackend(str(env.root)),
        project=env.project,
        location="local",
        bq_location="",
        dataset=env.dataset,
        endpoints=ENDPOINTS,
        lifecycle_uri=lifecycle_parameters(env)["lifecycle_uri"],
        model_name=env.contract.name,
        now=datetime.now(UTC),
    )
    return Path(page)


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
