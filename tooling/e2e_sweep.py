"""`make e2e-sweep PROJECT=…`: what interrupted e2e runs left behind, older than a bound, removed.

    python -m tooling.e2e_sweep --project my-sandbox [--older-than-hours 6] [--dry-run]

An e2e run destroys its stack whatever happens, unless the process itself dies (a cancelled CI
job, a lost machine). Then its stack `e2e-<yymmddhhmm>-<hex>` stays in the backend, and its
resources in the project, each labelled `e2e: <run id>` and `e2e-created: <epoch s>`. The sweeper
destroys and removes such stacks older than the bound (their age is in their name), then deletes
buckets and endpoints still carrying the label (a destroy that failed half-way, a lost state).
Younger ones are left alone: they may belong to a run still going.
"""

from __future__ import annotations

import argparse
import calendar
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Protocol

from stacks.config import PROJECT_ROOT
from tooling.e2e import CREATED_LABEL, E2E_LABEL

STACK_NAME = re.compile(r"^e2e-(\d{10})-[0-9a-f]{4}$")
DEFAULT_HOURS = 6.0
"""Longer than any run (its CI job's time limit is 3 h), short enough to bound a leftover's bill."""


@dataclass(frozen=True)
class Leftover:
    kind: str  # "stack", "bucket" or "endpoint"
    name: str
    created: float | None
    """Epoch seconds, from the stack's name or the resource's label; None: unknown (kept)."""


class Inventory(Protocol):
    """What the sweeper reads and removes: the seam the tests replace."""

    def stacks(self) -> list[str]: ...
    def labelled(self) -> list[tuple[str, str, dict[str, str]]]: ...
    def destroy_stack(self, name: str) -> None: ...
    def delete(self, kind: str, name: str) -> None: ...


def stack_created(name: str) -> float | None:
    match = STACK_NAME.match(name.rsplit("/", 1)[-1])
    if not match:
        return None
    return float(calendar.timegm(time.strptime(match.group(1), "%y%m%d%H%M")))


def leftovers(inventory: Inventory) -> list[Leftover]:
    """e2e stacks (by name) and resources carrying the e2e label; nothing else."""
    found = [
        Leftover("stack", name, stack_created(name))
        for name in inventory.stacks()
        if STACK_NAME.match(name.rsplit("/", 1)[-1])
    ]
    for kind, name, labels in inventory.labelled():
        if E2E_LABEL not in labels:
            continue
        created = labels.get(CREATED_LABEL, "")
        found.append(Leftover(kind, name, float(created) if created.isdigit() else None))
    return found


def select(found: list[Leftover], now: float, older_than_hours: float) -> list[Leftover]:
    """Those old enough to be an interrupted run's; stacks first (their destroy removes most)."""
    bound = now - older_than_hours * 3600
    old = [item for item in found if item.created is not None and item.created < bound]
    return sorted(old, key=lambda item: (item.kind != "stack", item.created or 0))


def sweep(
    inventory: Inventory, now: float, older_than_hours: float, dry_run: bool = False
) -> tuple[list[Leftover], list[str]]:
    """Remove the selected leftovers; (removed or to remove, problems)."""
    chosen = select(leftovers(inventory), now, older_than_hours)
    problems = []
    for item in chosen:
        age = (now - (item.created or now)) / 3600
        print(
            f"{'would remove' if dry_run else 'removing'} {item.kind} {item.name} ({age:.1f} h old)"
        )
        if dry_run:
            continue
        try:
            if item.kind == "stack":
                inventory.destroy_stack(item.name)
            else:
                inventory.delete(item.kind, item.name)
        except Exception as error:  # one failure must not stop the sweep
            problems.append(f"{item.kind} {item.name}: {error}")
    return chosen, problems


class GcpInventory:
    """The current Pulumi backend's stacks, the project's buckets and Vertex AI endpoints."""

    def __init__(self, project: str, region: str):
        self.project, self.region = project, region

    def _pulumi(self, *args: str) -> str:
        result = subprocess.run(["pulumi", *args, "--non-interactive"], cwd=PROJECT_ROOT,
                                capture_output=True, text=True, check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"pulumi {args[0]}: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def stacks(self) -> list[str]:
        return [s["name"] for s in json.loads(self._pulumi("stack", "ls", "--all", "--json"))]

    def labelled(self) -> list[tuple[str, str, dict[str, str]]]:
        from google.cloud import aiplatform, storage

        found = [("bucket", b.name, dict(b.labels or {}))
                 for b in storage.Client(project=self.project).list_buckets()]  # fmt: skip
        aiplatform.init(project=self.project, location=self.region)
        found += [("endpoint", e.resource_name, dict(e.labels or {}))
                  for e in aiplatform.Endpoint.list(filter=f"labels.{E2E_LABEL}:*")]  # fmt: skip
        return found

    def destroy_stack(self, name: str) -> None:
        self._pulumi("destroy", "--yes", "--skip-preview", "--stack", name)
        self._pulumi("stack", "rm", "--yes", name)

    def delete(self, kind: str, name: str) -> None:
        from google.cloud import aiplatform, storage

        if kind == "bucket":
            bucket = storage.Client(project=self.project).bucket(name)
            for blob in bucket.list_blobs(versions=True):
                blob.delete()
            bucket.delete()
        else:
            aiplatform.Endpoint(name).delete(force=True)  # undeploys its models first


def main(argv: list[str] | None = None, inventory: Inventory | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make e2e-sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--project", required=True, help="the sandbox project")
    parser.add_argument("--region", default="europe-west4")
    parser.add_argument("--older-than-hours", type=float, default=DEFAULT_HOURS)
    parser.add_argument("--dry-run", action="store_true", help="list only")
    args = parser.parse_args(argv)
    if not args.project:
        parser.error("--project is required: make e2e-sweep PROJECT=<the sandbox project>")
    inventory = inventory or GcpInventory(args.project, args.region)
    chosen, problems = sweep(inventory, time.time(), args.older_than_hours, args.dry_run)
    print(f"{len(chosen)} e2e leftover(s) older than {args.older_than_hours:g} h"
          + (" (dry run)" if args.dry_run else " removed"))  # fmt: skip
    for problem in problems:
        print(f"make e2e-sweep: could not remove {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
