"""A contract the function cannot use: every upload ends FAILED with the reason, answered 200.

A 5xx would make Eventarc redeliver the event for days, and no redelivery can fix a contract; the
FAILED row (and the function's FAILED log line, which the `function_errors` alert counts) says what
to fix. A deploy with a fixed contract ingests later uploads as usual.
"""

from __future__ import annotations

from contracts import CONTRACTS_DIR
from local.environment import LocalEnvironment
from local.ingestion import LocalLanding, function_server, latest_outcome


def test_a_broken_contract_gives_a_failed_log_row_not_a_500(tmp_path):
    broken = tmp_path / "penguins.yaml"
    text = (CONTRACTS_DIR / "penguins.yaml").read_text()
    # A lookahead: Python's re accepts it, RE2 (BigQuery's and DuckDB's engine) does not.
    broken.write_text(text.replace('pattern: "^[A-Z]', 'pattern: "^(?=P)[A-Z]', 1))
    env = LocalEnvironment(root=tmp_path / "state")
    with LocalLanding(env) as landing:
        with function_server({**landing.function_env, "CONTRACT_PATH": str(broken)}) as server:
            event = landing.upload("incoming/any.csv", "penguin_id,species\nPAL-1,Adelie\n")
            assert server.post(event) == 200  # acknowledged: not redelivered
            assert server.post(event) == 200
        outcome = latest_outcome(env, event)
    assert outcome is not None and outcome["status"] == "FAILED"
    assert outcome["reason"].startswith("the data contract cannot be used: ")
    assert "columns[0] (penguin_id).pattern" in outcome["reason"]
    assert "not a valid RE2 regular expression" in outcome["reason"]
    assert outcome["rows_loaded"] is None
