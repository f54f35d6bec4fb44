"""`python -m tooling.cost diff BEFORE AFTER`: the monthly cost change between two plan files."""

import sys

from tooling import closed_pipe
from tooling.cost import main

if __name__ == "__main__":
    sys.exit(closed_pipe.run(main))
