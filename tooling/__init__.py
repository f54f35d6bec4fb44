"""Tools a person or CI runs around the stacks, apart from the program: `make init`, `make doctor`,
and `make compliance` (the plans exported as Terraform plan JSON and checked by a policy engine)."""
