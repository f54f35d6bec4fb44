"""Data contracts: the one description of each dataset (see model.py) and the contract files."""

from pathlib import Path

from contracts.model import (
    LINEAGE_COLUMNS,
    PARTITION_COLUMN,
    Column,
    ContractError,
    DataContract,
    load_contract,
)

CONTRACTS_DIR = Path(__file__).parent

__all__ = [
    "CONTRACTS_DIR",
    "LINEAGE_COLUMNS",
    "PARTITION_COLUMN",
    "Column",
    "ContractError",
    "DataContract",
    "load_contract",
]
