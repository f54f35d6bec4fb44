"""The project's sample dataset: the Palmer penguins, with the penguins contract's columns.

The published data has no key; `penguin_id` is built from the raw data's study, species code and
sample number (e.g. PAL0708-ADE-001), which is unique and matches the contract's key pattern.
It seeds a fresh local warehouse and is what the generator fits (contracts/generate.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from contracts.model import DataContract

SAMPLE_DATASET = "penguins"


def load_sample(contract: DataContract) -> pd.DataFrame:
    """The palmerpenguins rows with the contract's columns, in its order (missing values as NaN)."""
    import palmerpenguins

    if contract.name != SAMPLE_DATASET:
        raise ValueError(
            f"the bundled sample is the {SAMPLE_DATASET} dataset; contract {contract.name!r} "
            "needs a sample of its own (a CSV of that contract)"
        )
    raw = palmerpenguins.load_penguins_raw()
    frame = palmerpenguins.load_penguins()  # same rows, tidy names and values
    frame["penguin_id"] = (
        raw["studyName"]
        + "-"
        + raw["Species"].str[:3].str.upper()
        + "-"
        + raw["Sample Number"].map("{:03d}".format)
    )
    missing = [c for c in contract.column_names if c not in frame.columns]
    if missing:
        raise ValueError(
            f"contract {contract.name} names columns the palmerpenguins sample lacks: {missing}"
        )
    return frame[contract.column_names]
