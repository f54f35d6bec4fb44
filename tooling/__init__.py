"""Tools a person runs around the stacks (`make init`, `make doctor`), apart from the program."""
