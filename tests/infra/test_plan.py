"""The program under the recording mocks, and the offline plan built from it."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
import resource
import subprocess
import sys

import pulumi
import pytest

from resources.data_lake import DataLake, DataLakeArgs
from stacks.config import PROJECT_ROOT, DataLakeConfig, stack_config_values
from tooling.plan.cli import diff, render_summary, render_table
from tooling.plan.offline import run_program


def test_every_component_follows_the_shape(stack_record):
    """Type tokens are `tabular-mlops:<module>:<Name>`; children are named after their parent."""
    components = [r for r in stack_record.resources if r.is_component]
    assert components, "the program declares no component"
    for component in components:
        package, module, name = component.type.split(":")
        assert package == "tabular-mlops" and module and name[0].isupper()
        assert component.name not in component.type
        children = [r for r in stack_record.resources if r.parent_urn == component.urn]
        assert children, f"{component.name} has no children"
        for child in children:
            assert child.name.startswith(f"{component.name}-"), child.name


def test_every_cloud_resource_belongs_to_a_component(stack_record):
    for res in stack_record.resources:
        # A stack reference is read, not created: the composition reads it.
        if res.custom and not res.read and not res.type.startswith("pulumi:providers:"):
            parent = stack_record.parent(res)
            assert parent is not None and parent.is_component, res.name


def test_resources_wait_for_the_apis_they_use(stack_record):
    """Every resource outside the services component waits for at least one enabled API."""
    services = {r.urn for r in stack_record.resources if r.type == "gcp:projects/service:Service"}
    for res in stack_record.resources:
        if not res.custom or res.type in ("gcp:projects/service:Service", "pulumi:providers:gcp"):
            continue
        if res.read:
            continue
        assert stack_record.depends_on(res) & services, f"{res.name} waits for no API"


def test_outputs_are_exported(stack_records):
    outputs = stack_records["prod"].outputs
    assert outputs["landing_bucket"] == "acme-mlops-prod-prod-landing"
    assert outputs["dataset"] == "tabular_mlops_prod"


def test_component_under_mocks_fixture(pulumi_mocks):
    args = DataLakeArgs(
        project="p-test1",
        location="europe-west4",
        landing_bucket="l",
        quarantine_bucket="q",
        artifacts_bucket="a",
        access_logs_bucket="logs",
        models_bucket="m",
        labels={"stack": "test"},
        settings=DataLakeConfig(force_destroy=False),
    )
    record = pulumi_mocks(lambda: DataLake("lake", args))
    buckets = record.of_type("gcp:storage/bucket:Bucket")
    assert {b.inputs["name"] for b in buckets} == {"l", "q", "a", "logs", "m"}
    assert not any(b.inputs["forceDestroy"] for b in buckets)


def test_a_plan_after_asyncio_run_still_declares(pulumi_mocks):
    """asyncio.run() leaves the thread without an event loop; the plan makes its own (a test
    that ran a server before the tooling tests made five of them fail on 'no current event
    loop')."""
    import asyncio

    import pulumi_gcp as gcp

    asyncio.run(asyncio.sleep(0))
    record = pulumi_mocks(lambda: gcp.storage.Bucket("b", name="b", location="EU"))
    assert [b.inputs["name"] for b in record.of_type("gcp:storage/bucket:Bucket")] == ["b"]


def test_mocks_are_reset_between_declarations(pulumi_mocks):
    first = pulumi_mocks(lambda: pulumi.ComponentResource("tabular-mlops:test:A", "a"), stack="x")
    second = pulumi_mocks(lambda: None, stack="y")
    assert len(first.resources) == 1 and second.resources == []
    assert pulumi.get_stack() is None  # no stack settings leak out of a declaration


def test_invalid_config_fails_the_program_with_the_clear_message():
    config = copy.deepcopy(stack_config_values("prod"))
    config["tabular-mlops:platform"]["serving"]["min_replicas"] = 0
    with pytest.raises(pulumi.RunError) as caught:
        run_program("prod", config=config)
    assert (
        "Pulumi.prod.yaml: tabular-mlops:platform.serving.min_replicas: must be >= 1, got 0"
        in str(caught.value)
    )


def test_table_lists_type_name_parent_and_settings(stack_records):
    table = render_table(stack_records["prod"])
    header = table.splitlines()[0].split()
    assert header[:3] == ["TYPE", "NAME", "PARENT"]
    assert "storage.Bucket" in table and "publicAccessPrevention=enforced" in table
    assert "datasetId=tabular_mlops_prod" in table


def test_summary_counts_every_resource_once_under_its_component(stack_records):
    record = stack_records["staging"]
    summary = render_summary(record)
    assert max(len(line) for line in summary.splitlines()) <= 100  # a terminal's width
    # A component's types may wrap onto indented lines; each component starts a line.
    rows: dict[str, list[str]] = {}
    name = ""
    for line in summary.splitlines():
        if not line.startswith(" "):
            name = line.split()[0]
        rows[name] = rows.get(name, []) + line.split()
    assert sum(int(row[1]) for row in rows.values()) == sum(r.custom for r in record.resources)
    data_lake = record.named("data-lake")
    buckets = [
        r for r in record.of_type("gcp:storage/bucket:Bucket") if data_lake in record.ancestors(r)
    ]
    assert f"{len(buckets)} storage.Bucket" in " ".join(rows["data-lake"])


def test_diff_shows_what_the_environments_change(stack_records):
    text = diff(stack_records["staging"], stack_records["prod"])
    assert "forceDestroy: on -> off" in text
    assert "deletionProtection: off -> on" in text
    # Names derived from project and stack are not noise in the diff.
    assert "acme-mlops-prod-prod-landing" not in text


def test_diff_pairs_a_grant_whose_name_differs_only_by_its_member_digest(stack_records):
    """A grant to a configured member is named by a digest of the member, which names the
    project: each stack's grant of the deployers has its own name, yet it is one resource."""
    staging, prod = stack_records["staging"], stack_records["prod"]
    stem = "identities-ingestion-account-deployers-iam-serviceaccountuser-"
    (in_staging,), (in_prod,) = (
        [
            r
            for r in record.resources
            if r.name.startswith(stem) and "deployer-" in r.inputs["member"]
        ]
        for record in (staging, prod)
    )
    assert in_staging.name != in_prod.name
    text = diff(staging, prod)
    only = text.split("settings that differ")[0]
    assert in_staging.name not in only and in_prod.name not in only
    assert f"{stem}<member digest>" not in text  # paired, and nothing else differs
    # The storage agent differs only by the project's number: not listed either.
    assert "gs-project-accounts" not in text and "<project-number>" in text

    # A grant to another member is a real difference: one added, one removed.
    member = "group:auditors@example.org"
    other = dataclasses.replace(
        in_prod,
        name=stem + hashlib.sha256(member.encode()).hexdigest()[:8],
        inputs={**in_prod.inputs, "member": member},
    )
    changed = dataclasses.replace(
        prod, resources=[other if r is in_prod else r for r in prod.resources]
    )
    only = diff(staging, changed).split("settings that differ")[0]
    assert in_staging.name in only and other.name in only
    # Same member, another setting changed: paired, and the setting shown under its stem.
    conditioned = dataclasses.replace(in_prod, inputs={**in_prod.inputs, "role": "roles/owner"})
    changed = dataclasses.replace(
        prod, resources=[conditioned if r is in_prod else r for r in prod.resources]
    )
    text = diff(staging, changed)
    assert f"{stem}<member digest>\n      role: roles/iam.serviceAccountUser -> roles/owner" in text


SETTING = re.compile(r"^ {6}[A-Za-z]")  # a setting's line in the diff, under its resource


def test_diff_fits_100_columns_and_full_shows_every_value_whole(stack_records):
    staging, prod = stack_records["staging"], stack_records["prod"]

    def settings(text: str) -> list[str]:
        """The changed settings' paths, whichever layout each took."""
        part = text.split("settings that differ in resources both declare:")[1]
        return [line.split(":")[0].strip() for line in part.splitlines() if SETTING.match(line)]

    text, whole = diff(staging, prod), diff(staging, prod, width=None)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert max(len(line) for line in whole.splitlines()) > 100
    assert "…" in text and "make plan-diff FULL=1" in text and "…" not in whole
    assert settings(text) == settings(whole) and len(settings(text)) > 40
    # A value too long for one line goes under its setting, old then new.
    assert (
        "      kmsKeyName:\n           None\n"
        "        -> projects/acme-security/locations/europe-west4/keyRings/tabular-mlops/"
    ) in text


def test_plan_command_for_both_stacks_is_fast_and_writes_json(tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-m", "tooling.plan", "--stack", "staging", "--stack", "prod",
         "--out-dir", str(tmp_path)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, result.stderr
    # About 5 s of CPU for ~120 resources a stack, most of it importing pulumi-gcp's modules
    # (compute alone takes about 1.5 s): a reviewer's loop stays short. CPU time, not wall time,
    # so a busy machine (CI neighbours, parallel jobs) does not fail the check.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 10, f"the plan of both stacks took {cpu:.1f} s of CPU"
    assert "=== stack staging" in result.stdout and "=== stack prod" in result.stdout
    plan = json.loads((tmp_path / "plan-prod.json").read_text())
    by_name = {r["name"]: r for r in plan["resources"]}
    assert by_name["data-lake-landing"]["parent"] == "data-lake"
    assert "services-storage" in by_name["data-lake-landing"]["depends_on"]


def test_plan_diff_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tooling.plan", "--diff", "staging", "prod",
         "--out-dir", str(tmp_path)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "Plan difference: staging -> prod" in result.stdout


def test_table_shows_the_platform_settings_a_reviewer_checks(stack_records):
    table = render_table(stack_records["staging"])
    for setting in (
        "serviceConfig.ingressSettings=ALLOW_INTERNAL_ONLY",
        "eventTrigger.eventType=google.cloud.storage.object.v1.finalized",
        "serviceConfig.environmentVariables.CONTRACT_PATH=contracts/penguins.yaml",
        "gceSetup.disablePublicIp=on",
        "gceSetup.metadata.idle-timeout-seconds=3600",
        "role=roles/eventarc.eventReceiver",
        "condition.title=function sources only",
        "dashboardJson=<10 tiles>",
        "serviceConfig.maxInstanceCount=5",
    ):
        assert setting in table, setting


def test_output_prints_one_stack_output_as_pulumi_would(stack_records, monkeypatch, capsys):
    """`--output` is what `make compile` reads the stack's image from, offline."""
    from tooling.plan import cli as plan

    monkeypatch.setattr(plan, "run_program", lambda stack: stack_records[stack])
    assert plan.main(["--stack", "prod", "--output", "pipeline_image"]) == 0
    image = capsys.readouterr().out.strip()
    assert image == stack_records["prod"].outputs["pipeline_image"]
    assert image.startswith("europe-west4-docker.pkg.dev/acme-mlops-prod/")

    assert plan.main(["--stack", "staging", "--output", "training_pipeline"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["project"] == "acme-mlops-staging" and job["parameters"]

    assert plan.main(["--stack", "staging", "--output", "no_such_output"]) == 2
    error = capsys.readouterr().err
    assert "no output 'no_such_output'" in error and "pipeline_image" in error


def test_unknown_stack_is_one_line_naming_the_stacks_that_exist(capsys):
    from tooling.plan import cli as plan

    assert plan.main(["--stack", "production"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("Pulumi.production.yaml: no such stack file (stacks: ")
    assert "prod" in error and "staging" in error and error.count("\n") == 1
