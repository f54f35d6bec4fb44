"""The committed stacks' offline plans, kept between runs for the plans that deploy them first.

Planning staging deploys prod first (staging reads prod's outputs through a stack reference). When
nothing that goes into prod's plan changed since the last run, its recorded plan is reused: the
key is a digest of every file the program reads (PLAN_INPUTS: the program, its packages, the
stack files, the pipeline, function and contract sources), of the offline plan's own modules
(tooling/plan: the mocks and rules that shape a record, and whose classes the pickle names by
module path) and of the versions of the packages that run it, so any edit, move, pull or upgrade
plans it afresh. A pickle naming a module that no longer exists is a miss, not an error.
The stack a command names is always planned; only the stacks it depends on come from here.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from stacks.config import PROJECT_ROOT

if TYPE_CHECKING:
    from tooling.plan.offline import StackRecord

CACHE_DIR = PROJECT_ROOT / "build" / "deployed-stacks"
PLAN_INPUTS = (
    "__main__.py", "Pulumi.yaml", "requirements.txt",
    "stacks", "tooling/plan", "resources", "pipeline_src", "function_src", "contracts",
)  # fmt: skip
_PACKAGES = ("pulumi", "pulumi_gcp", "pulumiverse_time", "kfp", "pydantic")


@functools.cache
def source_key(root: Path = PROJECT_ROOT) -> str:
    """A digest of the checkout's files and of the program's package versions."""
    digest = hashlib.sha256()
    for package in _PACKAGES:
        try:
            digest.update(f"{package}=={importlib.metadata.version(package)}\0".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{package} missing\0".encode())
    paths = sorted(root.glob("Pulumi.*.yaml"))
    for name in PLAN_INPUTS:
        path = root / name
        paths += [path] if path.is_file() else sorted(path.rglob("*"))
    for path in paths:
        if path.is_file() and "__pycache__" not in path.parts:
            relative = path.relative_to(root).as_posix()
            digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def _path(stack: str) -> Path:
    return CACHE_DIR / f"{stack}-{source_key()}.pickle"


def load(stack: str) -> StackRecord | None:
    """The stack's plan from an earlier run of the same checkout, or None."""
    try:
        return pickle.loads(_path(stack).read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def save(record: StackRecord) -> None:
    """Keep a committed stack's plan (best effort: a read-only checkout plans every time)."""
    path = _path(record.stack)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f"{record.stack}-*.pickle"):
            old.unlink(missing_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(pickle.dumps(record))
        os.replace(partial, path)
    except OSError:
        pass
