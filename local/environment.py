"""Where local mode keeps its state, and the names it uses.

Local names come from the same naming rules as a real stack (project "local-project", stack
"local"), so the code under test sees the same shapes of bucket names and dataset ids it will see
in the cloud. In DuckDB, a BigQuery dataset is a schema of the same name, so `dataset.table`
references in BigQuery SQL keep working after transpilation.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass, field
from pathlib import Path

from contracts import DataContract, load_contract
from stacks.config import PROJECT_ROOT
from stacks.naming import Naming

DEFAULT_ROOT = PROJECT_ROOT / ".local"
DEFAULT_CONTRACT = PROJECT_ROOT / "contracts" / "penguins.yaml"
"""The sample's contract (tests that need the penguins whatever the stack names)."""
LOCAL_STACK = "staging"
"""The stack whose `warehouse.contract` local commands use unless told otherwise (CONTRACT=)."""


@functools.cache
def stack_contract_path(stack: str = LOCAL_STACK) -> Path:
    """The data contract a stack file names (`platform.warehouse.contract`)."""
    from stacks.config import load_stack_file, stack_file_name

    config = load_stack_file(PROJECT_ROOT / stack_file_name(stack))
    return PROJECT_ROOT / config.platform.warehouse.contract


def add_contract_argument(parser: argparse.ArgumentParser) -> None:
    """`--contract PATH` for a local command (make … CONTRACT=path)."""
    parser.add_argument(
        "--contract", type=Path, default=None,
        help=f"data contract (default: the {LOCAL_STACK} stack's warehouse.contract)",
    )  # fmt: skip


def contract_path_of(args: argparse.Namespace) -> Path:
    """The contract a command was given, or the stack's."""
    return args.contract if args.contract is not None else stack_contract_path()


@dataclass(frozen=True)
class LocalEnvironment:
    """Paths and names of one local lifecycle. Everything lives under `root` (git-ignored)."""

    root: Path = DEFAULT_ROOT
    contract_path: Path = field(default_factory=stack_contract_path)
    project: str = "local-project"
    stack: str = "local"
    dataset_prefix: str = "tabular_mlops"

    @property
    def naming(self) -> Naming:
        return Naming(self.project, self.stack)

    @property
    def contract(self) -> DataContract:
        return load_contract(self.contract_path)

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file standing in for BigQuery."""
        return self.root / "warehouse.duckdb"

    @property
    def dataset(self) -> str:
        return self.naming.dataset_id(self.dataset_prefix)

    @property
    def landing_bucket(self) -> str:
        return self.naming.bucket("landing")

    @property
    def quarantine_bucket(self) -> str:
        return self.naming.bucket("quarantine")

    @property
    def artifacts_bucket(self) -> str:
        return self.naming.bucket("artifacts")

    @property
    def quarantine_dir(self) -> Path:
        """A copy of the emulated quarantine bucket: rejected files and their reports, on disk."""
        return self.root / "quarantine"

    @property
    def registry_dir(self) -> Path:
        """The file-based model registry standing in for the Vertex Model Registry."""
        return self.root / "registry"

    @property
    def endpoints_dir(self) -> Path:
        """One state file per local endpoint ("staging", "prod"): which registry version serves."""
        return self.root / "endpoints"

    @property
    def model_id(self) -> str:
        """The registry id of the dataset's model, named as a stack would name it."""
        return self.naming.model_id(self.contract.name)

    @property
    def pipeline_root(self) -> Path:
        """kfp.local's pipeline root (an absolute local path: a gs:// root breaks kfp.local)."""
        return (self.root / "pipeline-root").resolve()

    def ensure(self) -> LocalEnvironment:
        self.root.mkdir(parents=True, exist_ok=True)
        return self
