"""The head checks on their own: what needs no served function to show."""

from __future__ import annotations

import pytest

from contracts import CONTRACTS_DIR, DataContract, load_contract
from function_src.ingestion.head import HEAD_BYTES, check_head, staging_columns

CONTRACT = load_contract(CONTRACTS_DIR / "penguins.yaml")
HEADER = ",".join(CONTRACT.column_names) + "\n"
ROW = "PAL0708-ADE-001,Adelie,Torgersen,39.1,18.7,181,3750,male,2007\n"


def failed(checks):
    return [(c.name, c.reason) for c in checks if not c.passed]


def test_a_file_over_the_contracts_size_limit_is_refused_before_it_is_read():
    small = CONTRACT.model_copy(
        update={"file": CONTRACT.file.model_copy(update={"max_bytes": 100})}
    )
    ((name, reason),) = failed(check_head((HEADER + ROW).encode(), 3_000_000, small))
    assert name == "size.max_bytes"
    assert reason == "the file is 3,000,000 bytes; the contract accepts at most 100"


def test_a_character_cut_by_the_end_of_the_head_is_not_an_encoding_error():
    text = (HEADER + ROW.replace("Torgersen", "Torgérsen") * 2000).encode()
    cut = HEAD_BYTES
    while text[cut - 1] & 0xC0 != 0xC0:  # end the head inside the two bytes of an é
        cut -= 1
    assert failed(check_head(text[:cut], len(text), CONTRACT)) == []


def test_a_header_longer_than_the_head_is_reported_as_such():
    head = b"x" * HEAD_BYTES
    ((name, reason),) = failed(check_head(head, HEAD_BYTES * 3, CONTRACT))
    assert name == "header.columns" and "longer than 65,536 bytes" in reason


def test_a_good_head_passes_every_check_in_order():
    checks = check_head((HEADER + ROW).encode(), len(HEADER + ROW), CONTRACT)
    assert [c.name for c in checks] == [
        "size", "encoding", "line_endings", "delimiter", "header", "rows.present"
    ]  # fmt: skip
    assert all(c.passed for c in checks)


def _strict(**rules) -> DataContract:
    return CONTRACT.model_copy(update={"file": CONTRACT.file.model_copy(update=rules)})


def test_excel_csv_utf8_bom_and_crlf_pass_by_default_and_fail_only_when_opted_out():
    data = b"\xef\xbb\xbf" + (HEADER + ROW).replace("\n", "\r\n").encode()
    assert failed(check_head(data, len(data), CONTRACT)) == []
    assert staging_columns(data, CONTRACT) == CONTRACT.column_names
    assert failed(check_head(data, len(data), _strict(bom="reject")))[0][0] == "encoding.bom"
    crlf = data[3:]
    assert failed(check_head(crlf, len(crlf), _strict(line_endings="lf")))[0][0] == "line_endings"


def test_header_matched_by_name_in_any_order_unless_exact_order_is_asked():
    names = CONTRACT.column_names
    swapped = [names[1], names[0], *names[2:]]
    data = (",".join(swapped) + "\n" + ROW).encode()
    assert failed(check_head(data, len(data), CONTRACT)) == []
    assert staging_columns(data, CONTRACT) == swapped
    ((name, reason),) = failed(check_head(data, len(data), _strict(header_order="exact")))
    assert name == "header.order" and "column 1 is 'species'" in reason


def test_source_headers_map_to_warehouse_names_and_extra_columns_are_opt_in():
    raw = CONTRACT.model_copy(
        update={"columns": [c.model_copy(update={"source": f"Raw {c.name}"})
                            for c in CONTRACT.columns]}
    )  # fmt: skip
    header = ",".join(f"Raw {n}" for n in CONTRACT.column_names) + ",Comments\n"
    data = (header + ROW.rstrip("\n") + ",seen @ dawn\n").encode()
    ((name, reason),) = failed(check_head(data, len(data), raw))
    assert name == "header.columns" and "unexpected column(s) 'Comments'" in reason
    lenient = raw.file.model_copy(update={"extra_columns": "ignore"})
    ignoring = raw.model_copy(update={"file": lenient})
    assert failed(check_head(data, len(data), ignoring)) == []
    assert staging_columns(data, ignoring) == [*CONTRACT.column_names, "_extra_10"]


@pytest.mark.parametrize("delimiter", ['"', "\n"])
def test_a_contract_cannot_use_a_quote_or_newline_as_delimiter(delimiter):
    raw = CONTRACT.model_dump()
    raw["file"]["delimiter"] = delimiter
    with pytest.raises(ValueError, match="cannot separate CSV fields"):
        DataContract.model_validate(raw)
