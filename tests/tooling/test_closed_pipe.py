"""The tools that print long output end quietly when their reader stops reading (`| head`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tooling import closed_pipe

ROOT = Path(__file__).resolve().parents[2]
# `python -m <command>` run as is, but with the main its entry point imports replaced by one
# printing a long plan: the real plan takes seconds, and what is tested is the entry point.
LONG_OUTPUT = """
import importlib, runpy, sys
def main(argv=None):
    for i in range(200_000):
        print(f"line {i} of a long plan")
    return 0
command, home_of_main = sys.argv[1:]
importlib.import_module(home_of_main).main = main
runpy.run_module(command, run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    ("command", "home_of_main"),
    [("tooling.plan", "tooling.plan.cli"), ("tooling.cost", "tooling.cost")],
)
def test_a_reader_that_stops_after_one_line_ends_the_command_quietly(command, home_of_main):
    tool = subprocess.Popen(
        [sys.executable, "-c", LONG_OUTPUT, command, home_of_main],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tool.stdout.readline() == b"line 0 of a long plan\n"
    tool.stdout.close()  # what `head -1` does once it has its line
    assert tool.wait(timeout=60) == closed_pipe.CLOSED_PIPE_STATUS == 141
    assert tool.stderr.read() == b""  # no BrokenPipeError traceback, none at exit either


def test_the_status_of_main_is_kept():
    assert closed_pipe.run(lambda: 3) == 3
    assert closed_pipe.run(lambda: None) is None


def test_a_broken_pipe_that_is_not_stdout_is_still_an_error():
    def main():
        raise BrokenPipeError("a subprocess went away")

    with pytest.raises(BrokenPipeError, match="a subprocess went away"):
        closed_pipe.run(main)
