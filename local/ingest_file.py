"""`make ingest FILE=… [CONTRACT=…]`: one file through the real ingestion function, locally.

    python -m local.ingest_file FILE [--contract PATH] [--root DIR]

The file is uploaded to the emulated landing bucket and the function (functions-framework, in
this process) checks it against the contract and loads it into the local warehouse, or
quarantines it with a report, exactly as in the cloud. Prints `LOADED <rows>` or
`REJECTED: <reason>` and where the report is; exits 0 when loaded, 1 otherwise. The quarantined
file and its report stay on disk under `<root>/quarantine/`, and the ingestion log's row for the
attempt under `<root>/ingestion/`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contracts import ContractError
from local.environment import (
    DEFAULT_ROOT,
    LocalEnvironment,
    add_contract_argument,
    contract_path_of,
)
from local.ingestion import LANDING_PREFIX, LocalLanding


def ingest_file(env: LocalEnvironment, path: Path) -> tuple[dict, Path]:
    """Upload and ingest `path`; the ingestion log's row and the report written for it."""
    with LocalLanding(env) as landing:
        event = landing.upload_file(f"{LANDING_PREFIX}{path.name}", path)
        status = landing.deliver(event)
        outcome = _outcome(env, landing, event, status)
    generation = event["data"]["generation"]
    report = env.root / "ingestion" / f"{path.name}@{generation}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(outcome, indent=2, default=str) + "\n", encoding="utf-8")
    if outcome.get("quarantine_uri"):
        copy = outcome["quarantine_uri"].removeprefix("gs://") + ".report.json"
        report = env.quarantine_dir / copy
    return outcome, report


def _outcome(env: LocalEnvironment, landing: LocalLanding, event: dict, status: int) -> dict:
    from local.ingestion import latest_outcome

    outcome = latest_outcome(env, event)
    if outcome is not None:
        return outcome
    # No log row: the function ignored the object (its log line says why) or crashed.
    line = next((line for line in reversed(landing.log_lines) if "status" in line), {})
    return {"status": line.get("status", f"HTTP {status}"), "reason": line.get("reason")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make ingest", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, help="the CSV file to ingest")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="local state folder")
    add_contract_argument(parser)
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"error: FILE={args.file}: no such file", file=sys.stderr)
        return 2
    env = LocalEnvironment(root=args.root, contract_path=contract_path_of(args))
    try:
        contract = env.contract
    except ContractError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    outcome, report = ingest_file(env, args.file)
    if outcome["status"] == "LOADED":
        print(f"LOADED {outcome['rows_loaded']} rows into {env.dataset}.{contract.name} "
              f"(batch {outcome['batch_id']})")  # fmt: skip
    else:
        print(f"{outcome['status']}: {outcome['reason']}")
    print(f"report: {report}")
    return 0 if outcome["status"] == "LOADED" else 1


if __name__ == "__main__":
    sys.exit(main())
