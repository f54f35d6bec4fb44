"""The price table of the cost estimate: Google Cloud list prices per SKU and region.

The table is data (tooling/prices/gcp.yaml): each row names its SKU, the page it was read from,
the date read and how certain the figure is. This module reads it once and answers one question,
"what does this cost here?", with an error, never a zero, when the table has no answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from stacks.config import PROJECT_ROOT

PRICE_TABLE = PROJECT_ROOT / "tooling" / "prices" / "gcp.yaml"
CERTAINTIES = ("confirmed", "catalog", "assumed")
# Machine shapes (vCPUs, GB of memory) of the machine types the table prices, to pick the
# machine Vertex AI gives a pipeline task that asks for CPU or memory limits.
MACHINE_SHAPES: dict[str, tuple[float, float]] = {
    "e2-standard-2": (2, 8),
    "e2-standard-4": (4, 16),
    "e2-standard-8": (8, 32),
    "n1-standard-2": (2, 7.5),
    "n1-standard-4": (4, 15),
    "n1-standard-8": (8, 30),
    "n1-highmem-2": (2, 13),
    "n1-highmem-4": (4, 26),
}


class PricingError(ValueError):
    """A price the table does not have (an unknown region, machine type or SKU)."""


@dataclass(frozen=True)
class Price:
    """One row of the table."""

    key: str
    region: str
    usd: float
    unit: str
    sku_id: str
    sku: str
    source: str
    certainty: str
    free: float = 0.0
    note: str = ""


@dataclass(frozen=True)
class PriceTable:
    read: str
    """The date the prices were read."""
    hours_per_month: float
    sources: dict[str, str]
    rows: tuple[Price, ...]
    path: Path = PRICE_TABLE

    def price(self, key: str, region: str) -> Price:
        """The row for `key` in `region` (or a row valid in every region)."""
        matches = [r for r in self.rows if r.key == key and r.region in (region, "any")]
        if not matches:
            known = sorted({r.region for r in self.rows if r.key == key})
            where = f"regions {', '.join(known)}" if known else "no region"
            raise PricingError(
                f"{self.path.name}: no price for {key!r} in {region!r} (the table has {where}); "
                "add the row from the published price list"
            )
        return next((r for r in matches if r.region == region), matches[0])

    def machine(self, family: str, machine_type: str, region: str) -> Price:
        """The hourly price of a machine type: family is compute, vertex-prediction or
        vertex-training."""
        if not any(r.key == f"{family}/{machine_type}" for r in self.rows):
            raise PricingError(
                f"{self.path.name}: unknown machine type {machine_type!r} for {family} "
                f"(priced: {', '.join(sorted(MACHINE_SHAPES))})"
            )
        return self.price(f"{family}/{machine_type}", region)


def _row(raw: dict[str, Any], sources: dict[str, str], path: Path) -> Price:
    try:
        row = Price(**raw)
    except TypeError as error:
        raise PricingError(f"{path.name}: row {raw.get('key')!r}: {error}") from None
    if row.certainty not in CERTAINTIES:
        raise PricingError(f"{path.name}: row {row.key!r}: certainty {row.certainty!r}")
    if row.source not in sources:
        raise PricingError(f"{path.name}: row {row.key!r}: unknown source {row.source!r}")
    if row.certainty == "assumed" and not row.note:
        raise PricingError(f"{path.name}: row {row.key!r}: an assumed price needs a note")
    return row


@cache
def load_prices(path: Path = PRICE_TABLE) -> PriceTable:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    sources = dict(document["sources"])
    rows = tuple(_row(raw, sources, path) for raw in document["prices"])
    return PriceTable(
        read=str(document["read"]),
        hours_per_month=float(document["hours_per_month"]),
        sources=sources,
        rows=rows,
        path=path,
    )
