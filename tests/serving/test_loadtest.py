"""The load test before promotion: locust against a real server, judged by the stack's SLO."""

from __future__ import annotations

import pytest

from loadtest.run import Result, load_test, target_of
from pipeline_src.serving.client import predict
from pipeline_src.serving.server import ModelSource
from stacks.config import LoadTestConfig
from tests.serving.test_server import PENGUIN, running

SLO = LoadTestConfig(users=2, seconds=3, p95_ms=500, max_error_rate=0.01, min_rps=5)


def test_each_missed_slo_is_named_with_its_figure_and_bound():
    assert Result(requests=100, failures=0, p95_ms=120, rps=50).breaches(SLO) == []
    assert Result(requests=100, failures=5, p95_ms=900, rps=2).breaches(SLO) == [
        "p95 latency 900 ms is above 500 ms",
        "error rate 5.00% is above 1.00% (5 of 100 requests failed)",
        "throughput 2.0 req/s is below 5",
    ]
    assert "no request was answered" in Result(0, 0, float("inf"), 0).breaches(SLO)


def test_targets_are_a_server_url_or_a_vertex_endpoint():
    assert target_of("http://127.0.0.1:8080") == ("http://127.0.0.1:8080", "/predict", "")
    assert target_of("http://h:1/v1/")[1] == "/v1/predict"
    with pytest.raises(ValueError, match="give a URL"):
        target_of("127.0.0.1:8080")


def test_locust_loads_a_real_server_and_an_unmet_slo_is_a_breach(sample_model_dir):
    with running(ModelSource(sample_model_dir)) as client:
        assert predict(client, [PENGUIN]).status == 200  # warm, as QA's suite leaves it
        result = load_test(client.target, SLO)
    assert result.requests > 0 and result.failures == 0
    assert result.p95_ms > 0 and result.rps > 0
    strict = SLO.model_copy(update={"min_rps": 1e6, "p95_ms": 0.001})
    assert [b.split(" ")[0] for b in result.breaches(strict)] == ["p95", "throughput"]
