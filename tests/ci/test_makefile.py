"""The Makefile's first contact with a machine: the Python version is checked before any install."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from stacks.config import PROJECT_ROOT

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
