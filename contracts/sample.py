"""The datasets the project ships a sample of, found by their contract's name.

- penguins: the Palmer penguins of the `palmerpenguins` package. The published data has no key;
  `penguin_id` is built from the raw data's study, species code and sample number (e.g.
  PAL0708-ADE-001), which is unique and matches the contract's key pattern.
- anes96: the 1996 American National Election Study extract `statsmodels` ships
  (statsmodels/datasets/anes96/anes96.csv, public domain): 944 rows, 9 numeric features, a binary
  label (vote), no key; a tab-separated file whose headers are quoted 'like_this'. Its contract
  (contracts/anes96.yaml) was drafted from that file by `make contract`; the file is uploaded as
  it is shipped.

A sample seeds a fresh local warehouse and is what the generator fits (contracts/generate.py). A
contract of any other name has no sample: its data arrives with `make ingest FILE=…`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from contracts.model import DataContract

SHIPPED = ("penguins", "anes96")


def has_sample(contract: DataContract) -> bool:
    return contract.name in SHIPPED


def sample_file_name(contract: DataContract) -> str:
    """The name the sample is uploaded under (in the landing prefix)."""
    return "palmerpenguins.csv" if contract.name == "penguins" else f"{contract.name}.csv"


def anes96_file() -> Path:
    """statsmodels' shipped copy of the ANES 1996 extract."""
    import statsmodels.datasets.anes96 as anes96

    return Path(anes96.__file__).with_name("anes96.csv")


def write_sample_file(contract: DataContract, path: Path, rows: int | None = None) -> int:
    """The sample as the file an analyst would upload (the first `rows`); its data row count."""
    if contract.name == "penguins":
        frame = load_sample(contract)
        frame = frame.head(rows) if rows else frame
        frame.to_csv(path, index=False, na_rep="", lineterminator="\n")
        return len(frame)
    _require_sample(contract)
    lines = anes96_file().read_bytes().splitlines(keepends=True)
    kept = lines[: 1 + rows] if rows else lines
    path.write_bytes(b"".join(kept))
    return len(kept) - 1


def load_sample(contract: DataContract) -> pd.DataFrame:
    """The sample's rows with the contract's column names, in its order (missing as NaN)."""
    import pandas as pd

    _require_sample(contract)
    if contract.name == "penguins":
        return _penguins(contract)
    frame = pd.read_csv(anes96_file(), sep=contract.file.delimiter, quotechar='"')
    frame = frame.rename(columns={c.header: c.name for c in contract.columns})
    return frame[contract.column_names]


def _require_sample(contract: DataContract) -> None:
    if not has_sample(contract):
        raise ValueError(
            f"contract {contract.name!r} has no shipped sample (samples: {', '.join(SHIPPED)}); "
            f"load its data with `make ingest FILE=your.csv CONTRACT=…` first"
        )


def _penguins(contract: DataContract) -> pd.DataFrame:
    import palmerpenguins

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
