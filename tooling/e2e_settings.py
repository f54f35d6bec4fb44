"""The e2e workflow's settings (.github/e2e-sandbox.yaml), as step outputs: `make e2e-settings`.

The sandbox project and its keyless identity are created by hand once (docs/e2e.md), not by the
bootstrap: the file names them, and the workflow reads them from the step outputs this writes
(`configured` is false until `project` is set, and the run is skipped with a line saying so).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import yaml

from stacks.config import PROJECT_ROOT

SETTINGS = PROJECT_ROOT / ".github" / "e2e-sandbox.yaml"
KEYS = {
    "project": r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$",
    "region": r"^[a-z]+-[a-z]+[0-9]$",
    "workload_identity_provider": r"^projects/[0-9]+/locations/global/workloadIdentityPools/"
    r"[a-z0-9-]+/providers/[a-z0-9-]+$",
    "service_account": r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+\.iam\.gserviceaccount\.com$",
    "state_backend": r"^gs://[a-z0-9][a-z0-9._-]{1,220}$",
    "secrets_provider": r"^gcpkms://projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$",
}


def read(path: Path = SETTINGS) -> dict[str, str]:
    """The settings, checked: {} when `project` is unset; a one-line error per bad value."""
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ValueError(f"{path.name}: unknown key(s) {', '.join(unknown)}")
    if not values.get("project"):
        return {}
    problems = [
        f"{path.name}: {key}: {values.get(key)!r} is not {'valid' if values.get(key) else 'set'}"
        for key, pattern in KEYS.items()
        if not re.match(pattern, str(values.get(key) or ""))
    ]
    if problems:
        raise ValueError("; ".join(problems))
    return {key: str(values[key]) for key in KEYS}


def main(argv: list[str] | None = None) -> int:
    try:
        settings = read()
    except (OSError, ValueError) as error:
        print(f"make e2e-settings: {error}", file=sys.stderr)
        return 2
    lines = [f"configured={'true' if settings else 'false'}"]
    lines += [f"{key}={value}" for key, value in settings.items()]
    if not settings:
        print("e2e is not set up: .github/e2e-sandbox.yaml names no project (docs/e2e.md)")
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as stream:
            stream.write("\n".join(lines) + "\n")
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
