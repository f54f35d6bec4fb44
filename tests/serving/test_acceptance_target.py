"""`make acceptance ENDPOINT=<local endpoint>`: the name `make serve` takes; one line if empty."""

from __future__ import annotations

import subprocess
import sys

from stacks.config import PROJECT_ROOT


def test_a_local_endpoint_that_serves_nothing_is_one_line_not_a_traceback_per_test():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/acceptance", "-q", "-p", "no:cacheprovider",
         "--endpoint", "no-such-endpoint"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 3
    assert "the local endpoint no-such-endpoint (.local/endpoints/) serves no model" in output
    assert "make pipeline" in output
