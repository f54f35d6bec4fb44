"""The Makefile's first contact with a machine: the Python version is checked before any install."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from stacks.config import PROJECT_ROOT
from tooling.make_help import UNGROUPED, UNKNOWN, described_targets, parse_group, render

# An interpreter that reports 3.10 to `-c` code (what the version check runs) and nothing else.
FAKE_PYTHON = f"""#!/bin/sh
if [ "$1" = "-c" ]; then
  exec {sys.executable} -c "import sys
class Version(tuple): pass
sys.version_info = Version((3, 10, 13, 'final', 0))
$2"
fi
echo "the Makefile went past the version check: $*" >&2
exit 99
"""


def test_an_old_python_is_named_before_anything_installs(tmp_path: Path):
    shutil.copy(PROJECT_ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(PROJECT_ROOT / "requirements.txt", tmp_path / "requirements.txt")
    python = tmp_path / "python3.10"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    result = subprocess.run(
        ["make", "--no-print-directory", "venv", f"PYTHON={python}"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "tabular-mlops needs Python >= 3.11, found 3.10" in result.stderr
    assert "PYTHON=python3.11" in result.stderr
    assert not (tmp_path / ".venv").exists(), "nothing may be installed on a Python too old"


def test_a_missing_python_is_one_line(tmp_path: Path):
    shutil.copy(PROJECT_ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(PROJECT_ROOT / "requirements.txt", tmp_path / "requirements.txt")
    result = subprocess.run(
        ["make", "--no-print-directory", "venv", "PYTHON=no-such-python3"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.startswith("no no-such-python3 on PATH: install Python >= 3.11")


def _help() -> list[str]:
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "help", f"PYTHON={sys.executable}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return result.stdout.splitlines()


def test_make_help_lists_every_target_once_in_one_of_three_groups_within_100_columns():
    described = described_targets((PROJECT_ROOT / "Makefile").read_text())
    lines = _help()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    groups: dict[str, list[str]] = {}
    entries: dict[str, str] = {}
    for line in lines:
        if line and not line.startswith(" "):
            groups[line] = []
        elif line.startswith("  make "):
            target, _, text = line.removeprefix("  make ").partition(" ")
            list(groups.values())[-1].append(target)
            entries[target] = text.strip()
        elif line.strip():
            entries[target] += " " + line.strip()  # a description's continuation line
    assert [title.split(":")[0] for title in groups] == [
        "local", "review", "needs GCP or the Pulumi CLI",
    ]  # fmt: skip
    listed = [target for targets in groups.values() for target in targets]
    assert sorted(listed) == sorted(described), "each target in exactly one group"
    assert len(described) > 40
    assert entries == described, "each target keeps its ## comment, word for word"
    assert "promote" in groups[next(t for t in groups if t.startswith("review"))]
    assert "demo" in groups[next(t for t in groups if t.startswith("local"))]


def test_make_help_shows_a_target_no_group_lists_and_a_listed_name_with_no_target():
    described = {"demo": "the lifecycle", "new-thing": "what a new target does"}
    lines = render(described, [parse_group("local: here|demo typo")])
    assert lines[0] == "local: here"
    assert lines[1].split() == ["make", "demo", "the", "lifecycle"]
    assert lines[2].startswith("  make typo") and lines[2].endswith(UNKNOWN)
    assert UNGROUPED in lines and lines[-1].split()[:2] == ["make", "new-thing"]
