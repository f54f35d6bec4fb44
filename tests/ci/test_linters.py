"""actionlint and zizmor, as `make lint` runs them, reject what they are there to catch.

A linter that silently passes everything (a broken binary, a wrong flag) would make the clean
result of `make lint` meaningless; these run both on a workflow with known faults.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent

FAULTY = """\
name: faulty
on:
  pull_request_target:
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo ${{ matrix.missing }}
"""


def _lint(tmp_path: Path, *command: str) -> subprocess.CompletedProcess:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "faulty.yml").write_text(FAULTY, encoding="utf-8")
    return subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )


def test_actionlint_rejects_an_undefined_context(tmp_path):
    result = _lint(tmp_path, str(BIN / "actionlint"), "-no-color", ".github/workflows/faulty.yml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "matrix" in result.stdout


def test_zizmor_offline_rejects_injection_and_unpinned_actions(tmp_path):
    result = _lint(
        tmp_path, str(BIN / "zizmor"), "--offline", "--persona", "pedantic", "--no-progress",
        "--format", "plain", ".github/workflows",
    )  # fmt: skip
    assert result.returncode != 0
    for audit in ("template-injection", "unpinned-uses", "dangerous-triggers", "artipacked"):
        assert f"[{audit}]" in result.stdout, result.stdout
