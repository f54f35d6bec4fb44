"""Load test a serving endpoint against the stack's SLO; a breach exits 1 (it blocks promotion).

    python -m loadtest.run --endpoint http://127.0.0.1:8080 [--stack staging] [--seconds 3]
    python -m loadtest.run --endpoint projects/P/locations/R/endpoints/ID     # CD, on Vertex AI
    make loadtest ENDPOINT=… [STACK=staging]

Runs locust headless (its own venv, `.venv-locust`, made by `make` when missing) for the stack's
`platform.serving.load_test` settings: `users` closed-loop clients, each POSTing one golden
instance (tests/acceptance/golden.json) per request, for `seconds`. Against Vertex AI it calls
the endpoint's `rawPredict` with the caller's credentials, as the acceptance suite does. Then
it judges the aggregate against the SLO (p95 latency, error rate, throughput), prints the table
and appends it to `$GITHUB_STEP_SUMMARY` when set (the CD job's summary).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stacks.config import LoadTestConfig, load_stack_file, stack_file_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCUST = PROJECT_ROOT / ".venv-locust" / "bin" / "locust"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
GOLDEN = PROJECT_ROOT / "tests" / "acceptance" / "golden.json"


@dataclass(frozen=True)
class Result:
    """The aggregate of a load test run."""

    requests: int
    failures: int
    p95_ms: float
    rps: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 1.0

    def breaches(self, slo: LoadTestConfig) -> list[str]:
        """Each SLO the run missed, with the figure and the bound."""
        problems = []
        if self.requests == 0:
            problems.append("no request was answered")
        if self.p95_ms > slo.p95_ms:
            problems.append(f"p95 latency {self.p95_ms:.0f} ms is above {slo.p95_ms:g} ms")
        if self.error_rate > slo.max_error_rate:
            problems.append(
                f"error rate {self.error_rate:.2%} is above {slo.max_error_rate:.2%} "
                f"({self.failures} of {self.requests} requests failed)"
            )
        if self.rps < slo.min_rps:
            problems.append(f"throughput {self.rps:.1f} req/s is below {slo.min_rps:g}")
        return problems

    def table(self, slo: LoadTestConfig, target: str) -> str:
        verdict = "passed" if not self.breaches(slo) else "FAILED"
        return "\n".join([
            f"### Load test of {target}: {verdict}",
            "",
            "| figure | measured | SLO |",
            "|---|---|---|",
            f"| p95 latency | {self.p95_ms:.0f} ms | ≤ {slo.p95_ms:g} ms |",
            f"| error rate | {self.error_rate:.2%} ({self.failures}/{self.requests}) | "
            f"≤ {slo.max_error_rate:.2%} |",
            f"| throughput | {self.rps:.1f} req/s | ≥ {slo.min_rps:g} req/s |",
            f"| load | {slo.users} users, closed loop, 1 instance per request | |",
        ])  # fmt: skip


def target_of(endpoint: str) -> tuple[str, str, str]:
    """(host, predict path, bearer token) for a URL or a Vertex AI endpoint resource name."""
    if endpoint.startswith(("http://", "https://")):
        parts = urlsplit(endpoint)
        return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/") + "/predict", ""
    if endpoint.startswith("projects/") and "/endpoints/" in endpoint:
        import google.auth
        import google.auth.transport.requests

        region = endpoint.split("/")[3]
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        credentials.refresh(google.auth.transport.requests.Request())
        host = f"https://{region}-aiplatform.googleapis.com"
        return host, f"/v1/{endpoint}:rawPredict", credentials.token
    raise ValueError(
        f"endpoint {endpoint!r}: give a URL (http://127.0.0.1:8080) or a Vertex AI endpoint "
        "(projects/PROJECT/locations/REGION/endpoints/ID)"
    )


def ensure_locust() -> Path:
    """locust's venv, made by the Makefile's rule when it is not there yet."""
    if not LOCUST.exists():
        subprocess.run(["make", "-s", ".venv-locust/.ready"], cwd=PROJECT_ROOT, check=True)
    return LOCUST


def run_locust(endpoint: str, settings: LoadTestConfig, scratch: Path) -> Result:
    host, path, token = target_of(endpoint)
    instances = scratch / "instances.json"
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))["examples"]
    instances.write_text(json.dumps([example["instance"] for example in golden]))
    command = [
        str(ensure_locust()), "-f", str(LOCUSTFILE), "--headless", "--host", host,
        "--users", str(settings.users), "--spawn-rate", str(settings.users),
        "--run-time", f"{math.ceil(settings.seconds)}s", "--stop-timeout", "5",
        "--csv", str(scratch / "run"), "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    environment = {**os.environ, "LOADTEST_PATH": path, "LOADTEST_INSTANCES": str(instances),
                   "LOADTEST_TOKEN": token}  # fmt: skip
    done = subprocess.run(
        command, env=environment, capture_output=True, text=True,
        timeout=settings.seconds + 120, check=False,
    )  # fmt: skip
    stats = scratch / "run_stats.csv"
    if not stats.exists():
        raise RuntimeError(f"locust wrote no statistics (exit {done.returncode}): {done.stderr}")
    with stats.open(newline="") as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    return Result(
        requests=int(total["Request Count"]),
        failures=int(total["Failure Count"]),
        p95_ms=float(total["95%"] if total["95%"] not in ("", "N/A") else "inf"),
        rps=float(total["Requests/s"]),
    )


def serves_a_model(endpoint: str) -> bool:
    """Whether a Vertex AI endpoint has a deployed model taking traffic."""
    from pipeline_src.serving.client import endpoint_client

    return endpoint_client(endpoint).health().status == 200


def load_test(endpoint: str, settings: LoadTestConfig) -> Result:
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
        return run_locust(endpoint, settings, Path(scratch))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__)
    parser.add_argument("--endpoint", required=True, help="a URL or a Vertex AI endpoint name")
    parser.add_argument("--stack", default="staging", help="whose SLO (Pulumi.<stack>.yaml)")
    parser.add_argument("--seconds", type=float, help="override the stack's load_test.seconds")
    args = parser.parse_args(argv)
    settings = load_stack_file(PROJECT_ROOT / stack_file_name(args.stack)).platform
    settings = settings.serving.load_test
    if args.seconds:
        settings = settings.model_copy(update={"seconds": args.seconds})
    if args.endpoint.startswith("projects/") and not serves_a_model(args.endpoint):
        print(f"{args.endpoint} serves no model yet (the training pipeline deploys the first): "
              "nothing to load test")  # fmt: skip
        return 0
    result = load_test(args.endpoint, settings)
    table = result.table(settings, args.endpoint)
    print(table)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
            summary.write(table + "\n")
    breaches = result.breaches(settings)
    for breach in breaches:
        print(f"load test of {args.endpoint}: SLO missed: {breach}", file=sys.stderr)
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
