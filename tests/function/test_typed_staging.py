"""The typed fast path (Warehouse.stage_typed) changes how fast a file is checked, not the verdict.

Every file of the bad-file corpus and every good variant goes through the ingestion twice on the
DuckDB adapter: as it runs (typed staging first, text when that finds anything) and with the fast
path turned off (text staging only, as before it existed). Status, reason, every check with its
count and samples, the rows in the file and the rows loaded must be the same; so must the loaded
values. Direct Ingestor calls on a file in memory: no server, no emulator (fast).
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pytest

from contracts import DataContract, load_contract
from contracts.sample import write_sample_file
from function_src.ingestion.duckdb_warehouse import DuckDbWarehouse
from function_src.ingestion.ingest import Ingestor, Landing, Outcome
from function_src.ingestion.sql import typed_staging_columns
from local.environment import DEFAULT_CONTRACT
from tests.function.conftest import SAMPLE_ROWS
from tests.function.test_ingest import BAD_FILES, GOOD_VARIANTS

CONTRACT = load_contract(DEFAULT_CONTRACT)


class InMemory:
    """The Storage port over one object's bytes."""

    def __init__(self, data: bytes):
        self.data = data

    def pin(self, obj) -> None:
        """Nothing to pin: the bytes are the generation."""

    def head(self, obj, length: int) -> bytes:
        return self.data[:length]

    def download(self, obj, target: Path) -> None:
        target.write_bytes(self.data)

    def quarantine(self, obj, bucket: str, report: dict[str, Any]) -> str:
        return f"gs://{bucket}/{obj.name}@{obj.generation}"


class Recording(DuckDbWarehouse):
    """The DuckDB adapter noting which staging ran; `typed=False` turns the fast path off."""

    typed = True
    staged: ClassVar[list[str]] = []

    def stage_typed(self, batch, contract, columns=None) -> bool:
        if not self.typed:
            return False
        self.staged.append("typed")
        return super().stage_typed(batch, contract, columns)

    def stage(self, batch, contract, columns=None) -> None:
        self.staged.append("text")
        super().stage(batch, contract, columns)


def ingest(
    tmp: Path, data: bytes, *, typed: bool, contract: DataContract = CONTRACT
) -> tuple[Outcome, list[dict], list[str]]:
    """(outcome, loaded rows without lineage, stagings run) of one file on a fresh warehouse."""
    warehouse_class = type("Run", (Recording,), {"typed": typed, "staged": []})
    path = tmp / ("typed" if typed else "text") / "warehouse.duckdb"
    storage = InMemory(data)
    ingestor = Ingestor(
        contract, Landing("landing", "incoming/", "quarantine"), storage,
        lambda: warehouse_class.open(path, "ds", contract.name, "ingestion_log", storage.download),
        log_table="ingestion_log", curated_table=contract.name, out=io.StringIO(),
    )  # fmt: skip
    event = {"bucket": "landing", "name": "incoming/f.csv", "generation": "7", "size": len(data)}
    outcome = ingestor.handle(event)
    with duckdb.connect(str(path), read_only=True) as con:
        names = ", ".join(contract.column_names)
        rows = con.sql(f"SELECT {names} FROM ds.{contract.name} ORDER BY ALL").fetchall()
    return outcome, rows, warehouse_class.staged


def verdict(outcome: Outcome) -> dict[str, Any]:
    """Everything an outcome says about the file (not how long it took)."""
    return {
        "status": outcome.status, "reason": outcome.reason, "rows": outcome.rows_in_file,
        "loaded": outcome.rows_loaded, "quarantine": outcome.quarantine_uri,
        "checks": json.dumps([c.as_json() for c in outcome.checks], default=str),
    }  # fmt: skip


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("sample") / "sample.csv"
    write_sample_file(CONTRACT, path, SAMPLE_ROWS)
    return path.read_text()


def as_bytes(data: bytes | str) -> bytes:
    return data if isinstance(data, bytes) else data.encode()


FILES = {
    **{f"bad: {k}": make for k, (make, _, _) in BAD_FILES.items()},
    **{f"good: {k}": make for k, make in GOOD_VARIANTS.items()},
    "good: sample": lambda s: s,
}


@pytest.mark.parametrize("kind", list(FILES))
def test_the_verdict_and_the_rows_do_not_depend_on_the_fast_path(kind, sample, tmp_path):
    data = as_bytes(FILES[kind](sample))
    fast, fast_rows, stagings = ingest(tmp_path, data, typed=True)
    slow, slow_rows, _ = ingest(tmp_path, data, typed=False)
    assert verdict(fast) == verdict(slow)
    assert fast_rows == slow_rows
    if kind.startswith("good"):
        # A clean file is read once into types, never staged as text.
        assert fast.status == "LOADED" and stagings == ["typed"] and len(fast_rows) == SAMPLE_ROWS
    elif stagings:  # past the head checks: the typed staging found it, the text one reports it
        assert stagings == ["typed", "text"] and fast.status == "REJECTED"


def test_a_value_the_typed_reader_refuses_falls_back_to_text_and_is_reported(sample, tmp_path):
    lines = sample.split("\n")
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("body_mass_g")] = "heavy"
    lines[3] = ",".join(cells)
    outcome, rows, stagings = ingest(tmp_path, "\n".join(lines).encode(), typed=True)
    assert stagings == ["typed", "text"] and rows == []
    assert outcome.status == "REJECTED" and "'heavy' at row 3" in outcome.reason


def test_the_typed_float_reader_takes_exactly_what_the_checks_cast_takes(tmp_path):
    """The fast path's premise (sql.typed_staging_columns): DuckDB's FLOAT64 reader accepts the
    same text as TRY_CAST, with the same value. If an upgrade changes that, this fails."""
    rng = random.Random(7)
    alphabet = "0123456789.eE+-_ xXinfaINFAbB\t,"
    values = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(800)}
    values |= {" 1", "1e5", ".5", "5.", "inf", "-Infinity", "NaN", "1_000", "0x10", "1e400", "1,5"}
    path = tmp_path / "values.csv"
    quoted = ['"' + v + '"' for v in sorted(values)]
    path.write_text("i,x\n" + "".join(f"{i},{v}\n" for i, v in enumerate(quoted)))
    read = (f"read_csv('{path}', header = true, auto_detect = false, quote = '\"', "
            "escape = '\"', nullstr = [''], columns = {{'i': 'BIGINT', 'x': '{}'}}{})")  # fmt: skip
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE text AS SELECT * FROM {read.format('VARCHAR', '')}")
        cast = dict(con.execute("SELECT i, TRY_CAST(x AS DOUBLE) FROM text").fetchall())
        typed = dict(
            con.execute(
                f"SELECT i, x FROM {read.format('DOUBLE', ', ignore_errors = true')}"
            ).fetchall()
        )
    differ = {i for i in cast if repr(cast[i]) != repr(typed.get(i))}
    assert not differ, [sorted(values)[i] for i in sorted(differ)][:10]
    assert 20 < len(typed) < len(cast)  # both some values taken and some refused


def test_only_plain_float_columns_are_read_typed():
    # penguins: four FLOAT64 measurements; its INT64 year and STRING key stay text.
    assert typed_staging_columns(CONTRACT) == [
        "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
    ]  # fmt: skip


def test_keys_one_value_as_typed_but_two_as_text_are_judged_on_the_text(tmp_path):
    """The one-pass load counts the keys it inserted, as typed values: '7' and '07' repeat there
    but not in the file's text, which the checks (and BigQuery's fingerprints) compare. The
    one pass rolls back, the text staging decides: both rows loaded, as without the fast path."""
    contract = DataContract.model_validate({
        "name": "counts", "version": 1, "file": {"null_markers": [""]},
        "columns": [{"name": "id", "type": "INT64", "role": "key", "nullable": False},
                    {"name": "weight", "type": "FLOAT64"},
                    {"name": "kind", "type": "STRING", "role": "label", "nullable": False}],
    })  # fmt: skip
    data = b"id,weight,kind\n7,1.5,a\n07,2.5,b\n8,3.5,a\n"
    fast, fast_rows, stagings = ingest(tmp_path, data, typed=True, contract=contract)
    slow, slow_rows, _ = ingest(tmp_path, data, typed=False, contract=contract)
    assert verdict(fast) == verdict(slow) and fast_rows == slow_rows
    assert fast.status == "LOADED" and fast.rows_loaded == 3 and stagings == ["typed", "text"]
