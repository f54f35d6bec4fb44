"""Tools a person or CI runs around the stacks, apart from the program (the environment layer,
config, naming and composition, is stacks/):

- plan/: the offline plan (`make plan`, `make plan-diff`, `make plan-fresh`) and its mocks;
- cost/: the monthly cost estimate of a plan and its price table (`make cost-diff`);
- docs.py (`make docs`), promote.py (`make promote`), github_variables.py (`make ci-variables`);
- init.py (`make init`), doctor/ (`make doctor`), destroy.py (`make destroy`), e2e*.py (`make e2e`);
- compliance.py, tfplan.py, skips.py: the plans exported as Terraform plan JSON and checked by a
  policy engine (`make compliance`);
- closed_pipe.py: the long-output commands (plan, cost) end quietly when piped into `head`.
"""
