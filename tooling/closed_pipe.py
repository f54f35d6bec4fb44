"""Command lines whose output is often cut short by its reader: `python -m tooling.plan … | head`.

Python ignores SIGPIPE, so a reader that stops reading turns the next write into a BrokenPipeError
and a traceback (and, at exit, a second one from flushing what is still buffered). Other Unix
tools are killed by the signal and say nothing; `run` makes the tools that print long output
(tooling.plan, tooling.cost) end as quietly, with the status a shell gives such a tool.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from collections.abc import Callable

# What a shell reports for a command the SIGPIPE signal ended: 128 + the signal's number.
CLOSED_PIPE_STATUS = 128 + signal.SIGPIPE


def run(main: Callable[[], int | None]) -> int | None:
    """`main()`'s exit status, or CLOSED_PIPE_STATUS, silently, once stdout's reader has gone.

    A BrokenPipeError from anything but stdout (a subprocess, a socket) is raised as before.
    """
    try:
        try:
            status = main()
        finally:  # on SystemExit too (argparse's --help): flushed here, not as Python exits
            sys.stdout.flush()
        return status
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        # Python flushes stdout once more as it exits: pointed at /dev/null, that flush succeeds.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return CLOSED_PIPE_STATUS


def _stdout_closed() -> bool:
    """Whether stdout is a pipe (or socket) whose reading end is closed: poll says POLLERR."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (AttributeError, OSError, ValueError):  # no real file behind stdout
        return False
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
