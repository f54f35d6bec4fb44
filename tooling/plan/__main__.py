"""`python -m tooling.plan`: the offline plan's command line (tooling/plan/cli.py)."""

import sys

from tooling import closed_pipe
from tooling.plan.cli import main

if __name__ == "__main__":
    sys.exit(closed_pipe.run(main))
