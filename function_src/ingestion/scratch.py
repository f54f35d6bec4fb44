"""Local scratch space for one attempt, and the removal of what crashed attempts left behind.

An attempt's directory is removed when the attempt ends, however it ends, except when its process
dies (SIGKILL, out of memory), which runs no cleanup. So each directory holds a lock (flock) for
as long as its attempt lives; the operating system drops the lock with the process, and the next
attempt on the machine removes every directory whose lock nobody holds. Locally a crashed
attempt's copy of a large CSV would otherwise stay in the temporary directory for good; on Cloud
Run the instance's memory-backed /tmp goes with the instance, and this costs one glob.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT_NAME = "tabular-mlops-ingest"
LOCK = ".lock"
UNNAMED_FOR = 60.0  # seconds after which an unnamed (`.new-`) directory is a dead attempt's


def scratch_root() -> Path:
    """Under the temporary directory (TMPDIR), shared by the attempts of this machine."""
    return Path(tempfile.gettempdir()) / ROOT_NAME


@contextlib.contextmanager
def attempt_scratch(root: Path | None = None) -> Iterator[Path]:
    """A directory for this attempt alone, removed at its end; dead attempts' removed first."""
    root = root or scratch_root()
    root.mkdir(parents=True, exist_ok=True)
    sweep(root)
    # Locked under a name the sweep ignores, then renamed: a sweep never sees it unlocked.
    fresh = Path(tempfile.mkdtemp(prefix=".new-", dir=root))
    lock = open(fresh / LOCK, "w")  # noqa: SIM115 (held open for the attempt's lifetime)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = root / fresh.name.replace(".new-", "attempt-", 1)
        os.rename(fresh, path)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    finally:
        lock.close()


def sweep(root: Path) -> list[Path]:
    """Remove the directories of attempts that are no longer alive; those removed. Besides them,
    a `.new-` directory older than a minute was left by an attempt killed before it named its
    scratch (it lives so for microseconds). A younger one may be an attempt's before its lock:
    taking it then would let our removal, which follows the directory through its rename, empty
    a live attempt's scratch."""
    removed = []
    stale_new = [p for p in root.glob(".new-*") if _age_seconds(p) > UNNAMED_FOR]
    for path in [*root.glob("attempt-*"), *stale_new]:
        try:
            with open(path / LOCK, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        except (BlockingIOError, FileNotFoundError, NotADirectoryError):
            continue  # alive (its lock is held), or removed by another sweep meanwhile
    return removed


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0  # named or removed meanwhile
