"""The bootstrap program: state backend and GitHub delivery for the platform's stacks.

Run once by a person with the rights docs/bootstrap.md lists (`make bootstrap`), then again with
`wire_stacks: true` once both stacks are deployed, to set the Actions variables from their outputs.
"""

import sys
from pathlib import Path

import pulumi

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # Pulumi runs this file from bootstrap/: the platform's modules

from bootstrap.delivery import Delivery, DeliveryArgs  # noqa: E402
from bootstrap.settings import from_stacks  # noqa: E402
from bootstrap.state import StateBackend  # noqa: E402
from stacks.config import ConfigError, load_stack_file, stack_file_name  # noqa: E402
from tooling import github_variables  # noqa: E402

config = pulumi.Config("tabular-mlops-bootstrap")
try:
    configs = {s: load_stack_file(ROOT / stack_file_name(s)) for s in github_variables.STACKS}
    settings = from_stacks(configs, ROOT / ".github" / "workflows")
    variables = ()
    if config.get_bool("wire_stacks"):
        references = {
            stack: pulumi.StackReference(f"{config.require('stacks_project')}/{stack}")
            for stack in configs
        }
        outputs = {
            stack: {key: ref.get_output(key) for key in github_variables.REQUIRED_OUTPUTS}
            for stack, ref in references.items()
        }
        variables = tuple(github_variables.variables(configs, outputs))
except ConfigError as error:
    raise pulumi.RunError(f"invalid configuration:\n{error}") from None

state = StateBackend("state", settings)
delivery = Delivery("delivery", DeliveryArgs(settings, variables))

pulumi.export("backend_url", state.bucket.url)
# `pulumi stack init <stack> --secrets-provider <this>` (make stacks-init) writes it into the
# stack files.
pulumi.export("secrets_provider", state.key.id.apply(lambda _: settings.secrets_provider))
pulumi.export("environments", list(delivery.environments))
pulumi.export("variables", sorted({v.name for v in variables}))
