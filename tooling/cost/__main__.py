"""`python -m tooling.cost diff BEFORE AFTER`: the monthly cost change between two plan files."""

import sys

from tooling.cost import main

if __name__ == "__main__":
    sys.exit(main())
