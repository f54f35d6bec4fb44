"""The monthly cost estimate (tooling/cost/) and its price table (tooling/prices/gcp.yaml)."""

from __future__ import annotations

import copy
import json
import re

import pytest

from stacks.config import ConfigError, CostConfig, parse_stack_config, stack_config_values
from tooling import cost
from tooling.cost.prices import PricingError, load_prices
from tooling.plan.cli import to_json
from tooling.plan.offline import project_number, run_program

PLATFORM = "tabular-mlops:platform"


@pytest.fixture(scope="module")
def plans(stack_records) -> dict[str, dict]:
    return {stack: to_json(record) for stack, record in stack_records.items()}


def _estimate(plan: dict) -> cost.Estimate:
    return cost.estimate(plan, CostConfig())


def _serving(plan: dict) -> cost.CostLine:
    (line,) = [line for line in _estimate(plan).lines if line.resource == "model replicas"]
    return line


def test_every_billable_resource_type_in_either_plan_has_a_pricing_rule(plans):
    for stack, plan in plans.items():
        types = {r["type"] for r in plan["resources"] if not r["component"]}
        rules = {type_: cost.pricing_rule(type_) for type_ in types}
        # The types that cost money are priced by a rule of their own, not waved through.
        for billable in (
            "gcp:storage/bucket:Bucket",
            "gcp:cloudfunctionsv2/function:Function",
            "gcp:colab/schedule:Schedule",
        ):
            assert not rules[billable].startswith("free"), (stack, billable)
        assert _estimate(plan).total() > 0


def test_a_resource_type_without_a_rule_is_an_error_not_a_zero(plans):
    plan = copy.deepcopy(plans["prod"])
    plan["resources"].append(
        {"type": "gcp:alloydb/cluster:Cluster", "name": "db", "component": False, "inputs": {}}
    )
    with pytest.raises(cost.UnpricedResource, match="gcp:alloydb/cluster:Cluster"):
        _estimate(plan)


def test_an_unknown_region_or_machine_type_is_an_error(plans):
    plan = copy.deepcopy(plans["prod"])
    plan["outputs"]["region"] = "mars-north1"
    with pytest.raises(PricingError, match="mars-north1"):
        _estimate(plan)
    plan = copy.deepcopy(plans["prod"])
    (promotion,) = [r for r in plan["resources"] if r["type"] == cost.PROMOTION]
    promotion["inputs"]["machine_type"] = "n1-ultramem-999"
    with pytest.raises(PricingError, match="unknown machine type 'n1-ultramem-999'"):
        _estimate(plan)


def test_standing_costs_are_replicas_x_machine_x_hours(plans):
    prices = load_prices()
    hourly = prices.machine("vertex-prediction", "n1-standard-4", "europe-west4").usd
    assert _serving(plans["prod"]).monthly_usd == pytest.approx(2 * hourly * 730)
    # Staging's endpoint is priced from what its training pipeline deploys.
    hourly = prices.machine("vertex-prediction", "n1-standard-2", "europe-west4").usd
    assert _serving(plans["staging"]).monthly_usd == pytest.approx(1 * hourly * 730)


def test_changing_min_replicas_changes_the_cost_diff_by_replicas_x_price_x_hours(plans, tmp_path):
    values = copy.deepcopy(stack_config_values("prod"))
    values[PLATFORM]["serving"]["min_replicas"] = 4
    changed = to_json(run_program("prod", config=values))
    settings = parse_stack_config(values, "copy of Pulumi.prod.yaml").platform.cost
    before, after = _estimate(plans["prod"]), cost.estimate(changed, settings)

    hourly = load_prices().machine("vertex-prediction", "n1-standard-4", "europe-west4").usd
    assert after.total() - before.total() == pytest.approx((4 - 2) * hourly * 730)
    summary, *changes = cost.diff(before, after)
    assert summary.startswith(f"+${2 * hourly * 730:,.2f}/month in total")
    assert changes == [
        f"+${2 * hourly * 730:,.2f}/month: serving.min_replicas 2 -> 4 (model replicas)"
    ]
    # The same change read from two plan JSON files, as the pull-request workflow does.
    for name, estimate in (("base", before), ("head", after)):
        document = {**plans["prod"], "cost": estimate.to_json()}
        (tmp_path / f"{name}.json").write_text(json.dumps(document))
    assert cost.main(["diff", str(tmp_path / "base.json"), str(tmp_path / "head.json")]) == 0


def test_cost_diff_of_a_plan_without_an_estimate_says_so(tmp_path, capsys):
    (tmp_path / "old.json").write_text(json.dumps({"stack": "prod", "resources": []}))
    assert cost.main(["diff", str(tmp_path / "old.json"), str(tmp_path / "old.json")]) == 2
    assert "has no cost estimate" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("cron", "runs"),
    [
        ("0 3 * * 1", 52 / 12),  # Mondays of 2026
        ("TZ=UTC 0 4 * * *", 365 / 12),
        ("*/15 * * * *", 365 * 96 / 12),
        ("0 0 1 * *", 1),
        ("30 6 * * MON-FRI", 261 / 12),
        # Day of month OR day of week, as cron reads it: 12 firsts + 52 Sundays, less the three
        # firsts that are Sundays in 2026 (February, March, November).
        ("0 0 1 * SUN", (12 + 52 - 3) / 12),
    ],
)
def test_runs_per_month_follow_the_cron(cron, runs):
    assert cost.runs_per_month(cron) == pytest.approx(runs)


def test_paused_schedules_cost_nothing_and_say_what_they_would(plans):
    lines = {line.resource: line for line in _estimate(plans["prod"]).lines}
    assert lines["pipelines-training-schedule"].monthly_usd == 0
    assert "paused: $0 (active: $" in lines["pipelines-training-schedule"].basis
    assert lines["pipelines-evaluation-schedule"].monthly_usd > 0


def test_a_task_asking_for_more_runs_on_a_bigger_machine():
    assert cost.task_machine({"container": {}}) == "e2-standard-4"
    assert cost.task_machine({"container": {"resources": {"cpuLimit": 6.0}}}) == "e2-standard-8"
    assert (
        cost.task_machine({"container": {"resources": {"resourceMemoryLimit": "20G"}}})
        == "e2-standard-8"
    )


def test_a_budget_below_the_standing_cost_is_a_config_error(plans):
    values = copy.deepcopy(stack_config_values("prod"))
    values[PLATFORM]["cost"] = {
        "budget": {"billing_account": "012345-6789AB-CDEF01", "monthly_usd": 50}
    }
    budget = parse_stack_config(values, "Pulumi.prod.yaml").platform.cost.budget
    with pytest.raises(ConfigError, match=r"budget.monthly_usd: 50 is below .* standing cost"):
        cost.check_budget(_estimate(plans["prod"]), budget, "Pulumi.prod.yaml")


def test_the_estimate_fits_100_columns_and_states_its_assumptions(plans):
    text = cost.render(_estimate(plans["prod"]))
    assert max(len(line) for line in text.splitlines()) <= 100
    change = cost.render_diff(cost.diff(_estimate(plans["staging"]), _estimate(plans["prod"])))
    assert max(len(line) for line in change.splitlines()) <= 100
    assert "serving.machine_type n1-standard-2 -> n1-standard-4" in change.replace("\n    ", " ")
    # The secrets key (ci.secrets_key) is held by another project: named, not priced here.
    assert re.search(r"KMS keys used but held elsewhere \([^)]*\bstacks\b", text)
    assert "assumptions" in text and "cost.workbench_hours_per_month" in text
    assert text.splitlines()[0].startswith("Monthly cost estimate: prod (europe-west4), $")


def test_every_price_row_names_its_sku_source_date_and_certainty():
    prices = load_prices()
    assert prices.read and prices.rows
    for row in prices.rows:
        assert row.sku and row.sku_id and row.source in prices.sources, row
        assert row.certainty in ("confirmed", "catalog", "assumed"), row
        assert row.certainty != "assumed" or row.note, row
        assert row.usd > 0, row


def test_the_budget_alerts_the_stack_channel_at_its_thresholds_and_on_forecast(stack_records):
    record = stack_records["prod"]
    (budget,) = record.of_type("gcp:billing/budget:Budget")
    (channel,) = record.of_type("gcp:monitoring/notificationChannel:NotificationChannel")
    inputs = budget.inputs
    assert inputs["allUpdatesRule"]["monitoringNotificationChannels"] == [channel.outputs["name"]]
    assert inputs["amount"]["specifiedAmount"] == {
        "currencyCode": "USD",
        "units": "500",
        "nanos": 0.0,
    }
    rules = {(r["spendBasis"], r["thresholdPercent"]) for r in inputs["thresholdRules"]}
    assert rules == {
        ("CURRENT_SPEND", 0.5),
        ("CURRENT_SPEND", 0.9),
        ("CURRENT_SPEND", 1.0),
        ("FORECASTED_SPEND", 1.0),
    }
    assert inputs["budgetFilter"]["projects"] == [f"projects/{project_number(record.project)}"]
    # CI's deployer may maintain the budget: the one grant on the billing account.
    (grant,) = record.of_type("gcp:billing/accountIamMember:AccountIamMember")
    assert grant.inputs["role"] == "roles/billing.costsManager"
    assert grant.inputs["member"].startswith("serviceAccount:deployer-prod@")
    assert grant.urn in record.depends_on(budget)


def test_without_a_billing_account_there_is_no_budget(stack_records):
    record = stack_records["staging"]  # its stack file configures no budget
    assert not record.of_type("tabular-mlops:billing:Budget")
    assert "billingbudgets.googleapis.com" not in {
        r.inputs["service"] for r in record.of_type("gcp:projects/service:Service")
    }


def test_a_budget_needs_an_amount():
    values = copy.deepcopy(stack_config_values("prod"))
    del values[PLATFORM]["cost"]["budget"]["monthly_usd"]
    with pytest.raises(ConfigError, match="monthly_usd is required when billing_account is set"):
        parse_stack_config(values, "Pulumi.prod.yaml")


def test_a_sized_pipeline_task_is_priced_on_the_machine_that_fits_it(plans):
    values = copy.deepcopy(stack_config_values("prod"))
    evaluation = values[PLATFORM]["pipelines"]["evaluation"]
    evaluation["resources"] = {"assess": {"cpu": 8, "memory_gb": 32}}
    sized = cost.estimate(to_json(run_program("prod", config=values)), CostConfig())
    lines = {line.resource: line for line in sized.lines}
    before = {line.resource: line for line in _estimate(plans["prod"]).lines}
    prices = load_prices()
    step = (
        (
            prices.machine("vertex-training", "e2-standard-8", "europe-west4").usd
            - prices.machine("vertex-training", "e2-standard-4", "europe-west4").usd
        )
        * 10
        / 60
    )
    runs = cost.runs_per_month(evaluation["schedule"]["cron"])
    schedule = "pipelines-evaluation-schedule"
    assert lines[schedule].monthly_usd - before[schedule].monthly_usd == pytest.approx(runs * step)


def test_a_run_is_priced_along_one_branch_of_each_decision():
    """A training run deploys, registers or keeps the champion: the estimate counts the tasks of
    the costliest of those branches, not every branch's."""
    from pipeline_src.compile import compile_spec
    from tooling.cost import run_path

    spec = compile_spec("europe-west4-docker.pkg.dev/p/r/pipeline:deps-0123456789ab")
    path = run_path(spec, lambda executor: 1.0)
    labels = {
        label for label, e in spec["deploymentSpec"]["executors"].items() for p in path if p is e
    }
    assert labels == {
        "exec-extract", "exec-validate", "exec-split", "exec-train", "exec-evaluate", "exec-gate",
        "exec-register", "exec-deploy", "exec-record-metrics", "exec-publish",
    }  # fmt: skip
    # With another branch the costliest, that one is priced instead.
    costly = run_path(
        spec, lambda e: 9.0 if e is spec["deploymentSpec"]["executors"]["exec-publish-3"] else 1.0
    )
    assert len(costly) == 8 and spec["deploymentSpec"]["executors"]["exec-publish-3"] in costly
