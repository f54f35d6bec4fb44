"""Where local mode keeps its state, and the names it uses.

Local names come from the same naming rules as a real stack (project "local-project", stack
"local"), so the code under test sees the same shapes of bucket names and dataset ids it will see
in the cloud. In DuckDB, a BigQuery dataset is a schema of the same name, so `dataset.table`
references in BigQuery SQL keep working after transpilation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contracts import DataContract, load_contract
from stacks.config import PROJECT_ROOT
from stacks.naming import Naming

DEFAULT_ROOT = PROJECT_ROOT / ".local"
DEFAULT_CONTRACT = PROJECT_ROOT / "contracts" / "penguins.yaml"


@dataclass(frozen=True)
class LocalEnvironment:
    """Paths and names of one local lifecycle. Everything lives under `root` (git-ignored)."""

    root: Path = DEFAULT_ROOT
    contract_path: Path = DEFAULT_CONTRACT
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
