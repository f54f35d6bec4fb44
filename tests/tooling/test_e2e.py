"""`make e2e`: the real path's orchestration with the cloud replaced at its one seam (step order,
cleanup after every failure, the retry, the messages, the report, the cheap stack), the sweeper's
selection, and the whole sequence once on the local stand-ins (`make e2e LOCAL=1`)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from pipeline_src.lifecycle_page import EndpointView, Lifecycle, render_page
from stacks.config import PROJECT_ROOT, parse_stack_config
from tooling import e2e, e2e_report, e2e_sweep

OUTPUTS = {
    "project": "sandbox-e2e",
    "region": "europe-west4",
    "landing_bucket": "landing",
    "quarantine_bucket": "quarantine",
    "curated_table": "penguins",
    "dataset": "tabular_mlops",
    "endpoint": "projects/1/locations/europe-west4/endpoints/42",
    "pipeline_image": "europe-west4-docker.pkg.dev/sandbox-e2e/pipelines/pipeline:deps-1",
}


def _page(**rows) -> str:
    return render_page(Lifecycle(**rows), title="penguins", generated_at="now")


# What the runs of a passing e2e run publish: its training run and its evaluation.
PUBLISHED = _page(
    endpoints=[EndpointView("42", {"m@1": 100})],
    trainings=[{"run_id": "t-1", "decision": "deploy", "reason": "clears the bar",
                "model_version": "m@1", "recorded_at": "now", "metrics": {"accuracy": 0.98}}],
    evaluations=[{"evaluation_id": "e-1", "decision": "not_enough_data", "reason": "0 new rows",
                  "evaluated_at": "now"}],
    reports={"t-1": "https://storage.cloud.google.com/b/lifecycle/reports/t-1.html"},
)  # fmt: skip


class FakeCloud:
    """Records each call; `fail` names a method that raises `error` (once, with `times=1`)."""

    def __init__(self, fail: str | None = None, error: str = "boom", times: int = 99):
        self.calls: list[str] = []
        self.fail, self.error, self.times = fail, error, times
        self.rows = 0
        self.objects: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail and self.times > 0:
            self.times -= 1
            raise RuntimeError(self.error)

    def create_stack(self, stack, stack_file):
        self._call("create_stack")

    def up(self, stack):
        self._call("up")
        return dict(OUTPUTS)

    def publish_image(self, image):
        self._call("publish_image")
        return f"{image} published"

    def upload(self, bucket, name, path):
        self._call("upload")
        if "broken" in name:  # the function's outcome: the broken file in quarantine
            at = f"{name}@1"
            self.objects += [at, f"{at}.report.json"]
        else:
            self.rows += sum(1 for _ in path.open()) - 1

    def table_rows(self, outputs):
        self._call("table_rows")
        return self.rows

    def object_names(self, bucket):
        self._call("object_names")
        return self.objects

    def train(self, stack, outputs):
        self._call("train")
        return "trained"

    def accept(self, outputs):
        self._call("accept")
        return "accepted"

    def evaluate(self, outputs):
        self._call("evaluate")
        return "evaluated"

    def lifecycle_page(self, outputs):
        self._call("lifecycle_page")
        return PUBLISHED

    def destroy(self, stack):
        self._call("destroy")

    def remove_stack(self, stack):
        self._call("remove_stack")


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def inputs(tmp_path):
    return e2e.write_inputs(PROJECT_ROOT / "contracts" / "penguins.yaml", tmp_path / "inputs")


def context(tmp_path, cloud, inputs) -> e2e.RunContext:
    stack_file = tmp_path / "Pulumi.e2e-test.yaml"
    stack_file.write_text("config: {}\n")
    clock = FakeClock()
    return e2e.RunContext("e2e-test", stack_file, cloud, *inputs, sleep=clock.sleep, clock=clock)


SUCCESS_ORDER = [
    "create_stack", "up", "publish_image", "table_rows", "upload", "upload", "table_rows",
    "object_names", "train", "accept", "evaluate", "lifecycle_page", "destroy", "remove_stack",
]  # fmt: skip


def test_a_passing_run_goes_in_order_and_cleans_up(tmp_path, inputs):
    cloud = FakeCloud()
    ctx = context(tmp_path, cloud, inputs)
    results = e2e.run(ctx, say=lambda _: None)
    assert cloud.calls == SUCCESS_ORDER
    assert [r.name for r in results] == [n for n, _ in e2e.STEPS + e2e.CLEANUP]
    assert all(r.passed for r in results)
    ingest = next(r for r in results if r.name == "ingest")
    assert ingest.outcome.startswith("344 rows loaded; broken-palmerpenguins.csv quarantined")
    assert not ctx.stack_file.exists(), "the run's stack file is removed with the stack"


FAILING = {
    "up": "create_stack", "publish-image": "publish_image", "ingest": "upload",
    "train": "train", "accept": "accept", "evaluate": "evaluate",
    "lifecycle-page": "lifecycle_page",
}  # fmt: skip


@pytest.mark.parametrize("step", [name for name, _ in e2e.STEPS])
def test_a_failure_at_any_step_still_destroys_and_removes_the_stack(tmp_path, inputs, step):
    cloud = FakeCloud(fail=FAILING[step])
    results = e2e.run(context(tmp_path, cloud, inputs), say=lambda _: None)
    assert cloud.calls[-2:] == ["destroy", "remove_stack"]
    by_name = {r.name: r for r in results}
    assert by_name[step].error == "RuntimeError: boom"
    names = [n for n, _ in e2e.STEPS]
    later = names[names.index(step) + 1 :]
    assert all(by_name[n].skipped for n in later)
    assert all(by_name[n].passed for n in names[: names.index(step)])
    assert by_name["destroy"].passed and by_name["stack-rm"].passed


def test_a_failed_destroy_still_removes_the_stack_and_is_reported(tmp_path, inputs):
    cloud = FakeCloud(fail="destroy", error="QUOTA_EXCEEDED: nope")
    results = e2e.run(context(tmp_path, cloud, inputs), say=lambda _: None)
    assert cloud.calls[-2:] == ["destroy", "remove_stack"]
    destroy = next(r for r in results if r.name == "destroy")
    assert not destroy.passed and destroy.advice.startswith("quota:")


def test_an_interrupted_run_still_cleans_up(tmp_path, inputs):
    cloud = FakeCloud()
    cloud.train = lambda stack, outputs: (_ for _ in ()).throw(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        e2e.run(context(tmp_path, cloud, inputs), say=lambda _: None)
    assert cloud.calls[-2:] == ["destroy", "remove_stack"]


def test_iam_propagation_during_up_waits_and_retries_once(tmp_path, inputs):
    cloud = FakeCloud(fail="up", error="Error 403: PERMISSION_DENIED on the bucket", times=1)
    ctx = context(tmp_path, cloud, inputs)
    results = e2e.run(ctx, say=lambda _: None)
    assert cloud.calls[:3] == ["create_stack", "up", "up"]
    assert all(r.passed for r in results)
    assert ctx.sleep.__self__.slept[0] == ctx.propagation_wait_seconds


def test_other_up_failures_are_not_retried(tmp_path, inputs):
    cloud = FakeCloud(fail="up", error="googleapi: Error 429: Quota exceeded for quota metric")
    results = e2e.run(context(tmp_path, cloud, inputs), say=lambda _: None)
    assert cloud.calls.count("up") == 1
    assert results[0].advice.startswith("quota: a quota of the sandbox project is exhausted")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Error 403: Cloud Functions API has not been used in project 12 before or it is "
         "disabled. reason: SERVICE_DISABLED", "API not enabled"),
        ("googleapi: Error 429: Quota exceeded for quota metric 'CPUs'", "quota"),
        ("RESOURCE_EXHAUSTED: custom_model_training_cpus", "quota"),
        ("Permission 'iam.serviceAccounts.actAs' denied on service account", "IAM propagation"),
        ("Invalid resource state: Permission denied while using the Eventarc Service Agent",
         "IAM propagation"),
    ],
)  # fmt: skip
def test_known_failures_get_their_message(text, kind):
    assert e2e.explain(RuntimeError(text))[0] == kind
    assert e2e.explain(RuntimeError("the acceptance suite failed")) is None


def test_ingest_gives_up_after_its_time_limit(tmp_path, inputs):
    cloud = FakeCloud()
    cloud.upload = lambda bucket, name, path: cloud.calls.append("upload")  # nothing arrives
    results = e2e.run(context(tmp_path, cloud, inputs), say=lambda _: None)
    ingest = next(r for r in results if r.name == "ingest")
    minutes = e2e.EXPECTED_MINUTES["ingest"]
    assert ingest.error == (
        f"StepFailed: 344 rows of palmerpenguins.csv in penguins: not seen after {minutes} min"
    )
    assert ingest.seconds == pytest.approx(minutes * 60, abs=15)
    assert cloud.calls[-2:] == ["destroy", "remove_stack"]


def test_the_broken_input_is_rejected_by_any_contract(inputs):
    sample, broken = inputs
    assert broken.read_text().splitlines()[1:] == sample.read_text().splitlines()[1:]
    assert broken.read_text().split(",", 1)[0] == sample.read_text().split(",", 1)[0] + "_typo"


def test_the_e2e_stack_is_the_staging_config_with_the_cheap_profile():
    text = e2e.e2e_stack_file(
        "sandbox-e2e", "us-central1", "2612070130-ab12", 1796000000,
        PROJECT_ROOT / "Pulumi.staging.yaml",
    )  # fmt: skip
    document = yaml.safe_load(text)
    assert "secretsprovider" not in document
    config = parse_stack_config(document["config"], "Pulumi.e2e.yaml")
    platform = config.platform
    assert (config.project, config.region) == ("sandbox-e2e", "us-central1")
    assert platform.labels["e2e"] == "2612070130-ab12"
    assert platform.labels["e2e-created"] == "1796000000"
    assert not platform.workbench.enabled
    assert platform.data_lake.force_destroy and not platform.warehouse.deletion_protection
    assert "models_retention_days" not in document["config"]["tabular-mlops:platform"]["data_lake"]
    assert platform.pipelines.training.schedule.paused
    assert platform.pipelines.evaluation.schedule.paused
    assert platform.serving.model_readers_from is None
    assert platform.ci.github_repository is None
    assert all(not members for members in platform.access.model_dump().values())
    # Everything else as staging has it: the contract, the gate's bar.
    staging = yaml.safe_load((PROJECT_ROOT / "Pulumi.staging.yaml").read_text())
    assert platform.warehouse.contract == staging["config"]["tabular-mlops:platform"][
        "warehouse"]["contract"]  # fmt: skip


def test_main_writes_the_report_with_the_prorated_cost(tmp_path):
    shutil.copy(PROJECT_ROOT / "Pulumi.staging.yaml", tmp_path / "Pulumi.staging.yaml")
    cloud = FakeCloud(fail="accept", error="Error 403: PERMISSION_DENIED")
    out = tmp_path / "out"
    code = e2e.main(
        ["--project", "sandbox-e2e", "--root", str(tmp_path), "--out-dir", str(out)], cloud=cloud
    )
    assert code == 1
    assert not list(tmp_path.glob("Pulumi.e2e-*.yaml"))
    suite = ElementTree.parse(out / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("9", "1", "2")
    failure = suite.find("testcase[@name='accept']/failure")
    assert failure.get("message") == "RuntimeError: Error 403: PERMISSION_DENIED"
    assert failure.text.startswith("IAM propagation:")
    page = (out / "index.html").read_text()
    assert "failed</span>" in page and "Cost of this run, prorated" in page


def test_the_run_cost_is_the_cheap_stacks_standing_cost_prorated_plus_two_runs():
    template = PROJECT_ROOT / "Pulumi.staging.yaml"
    text = e2e.e2e_stack_file("sandbox-e2e", "europe-west4", "2612070130-ab12", 1, template)
    cost = e2e.run_cost("e2e-2612070130-ab12", yaml.safe_load(text)["config"])
    # The endpoint's one n1-standard-2 replica stands (about $0.1/h); no Workbench.
    assert 0.05 < cost.standing_usd_per_hour < 0.5
    assert cost.pipeline_runs_usd > 0
    assert cost.of(2) == pytest.approx(2 * cost.standing_usd_per_hour + cost.pipeline_runs_usd)


def test_the_html_report_names_each_step_and_escapes(tmp_path):
    results = [e2e.StepResult("up", 61, outcome="stack <e2e> up"),
               e2e.StepResult("train", 1500, error="RuntimeError: <boom>"),
               e2e.StepResult("accept", 0, skipped=True)]  # fmt: skip
    page = e2e_report.page("e2e-x", results, None)
    assert "stack &lt;e2e&gt; up" in page and "&lt;boom&gt;" in page
    assert page.count("<tr><td") == 3 and "skipped" in page and "Cost" not in page
    assert '<td class="num">61 s</td>' in page and '<td class="num">25 min</td>' in page


# --- the sweeper ------------------------------------------------------------------------------

NOW = time.mktime((2026, 12, 7, 12, 0, 0, 0, 0, 0)) - time.timezone


class FakeInventory:
    def __init__(self, stacks, labelled):
        self._stacks, self._labelled = stacks, labelled
        self.removed: list[tuple[str, str]] = []

    def stacks(self):
        return self._stacks

    def labelled(self):
        return self._labelled

    def destroy_stack(self, name):
        self.removed.append(("stack", name))

    def delete(self, kind, name):
        if name == "stuck":
            raise RuntimeError("409 bucket not empty")
        self.removed.append((kind, name))


def _labels(hours_old: float, now: float = NOW) -> dict[str, str]:
    return {"e2e": "x", "e2e-created": str(int(now - hours_old * 3600))}


def test_the_sweeper_removes_only_old_e2e_leftovers_stacks_first():
    inventory = FakeInventory(
        stacks=["org/tabular-mlops/e2e-2612070100-aa11",  # 11 h old
                "org/tabular-mlops/e2e-2612071100-bb22",  # 1 h old: a run may still go
                "org/tabular-mlops/staging", "org/tabular-mlops/e2e-manual"],
        labelled=[("bucket", "old-bucket", _labels(30)),
                  ("bucket", "young-bucket", _labels(2)),
                  ("bucket", "staging-bucket", {"team": "ml"}),
                  ("endpoint", "projects/p/endpoints/9", _labels(8)),
                  ("endpoint", "no-date", {"e2e": "x"})],
    )  # fmt: skip
    chosen, problems = e2e_sweep.sweep(inventory, NOW, older_than_hours=6)
    assert problems == []
    assert inventory.removed == [
        ("stack", "org/tabular-mlops/e2e-2612070100-aa11"),
        ("bucket", "old-bucket"),
        ("endpoint", "projects/p/endpoints/9"),
    ]
    assert [c.name for c in chosen] == [name for _, name in inventory.removed]


def test_the_sweeper_goes_on_after_a_failure_and_reports_it(capsys):
    old = _labels(9, now=time.time())  # main reads the clock
    inventory = FakeInventory([], [("bucket", "stuck", old), ("bucket", "b", old)])
    code = e2e_sweep.main(["--project", "sandbox-e2e"], inventory=inventory)
    assert code == 1 and inventory.removed == [("bucket", "b")]
    assert "could not remove bucket stuck: 409 bucket not empty" in capsys.readouterr().err


def test_a_dry_run_sweep_removes_nothing():
    inventory = FakeInventory(["e2e-2612070100-aa11"], [])
    chosen, _ = e2e_sweep.sweep(inventory, NOW, 6, dry_run=True)
    assert len(chosen) == 1 and inventory.removed == []


def test_run_ids_sort_by_age_and_the_sweeper_reads_them_back():
    run_id = e2e.new_run_id(NOW)
    assert e2e_sweep.stack_created(f"e2e-{run_id}") == NOW
    assert e2e_sweep.stack_created("staging") is None


# --- the rehearsal ----------------------------------------------------------------------------


def test_make_e2e_local_runs_every_step_on_the_stand_ins(tmp_path, capsys):
    shutil.copy(PROJECT_ROOT / "Pulumi.staging.yaml", tmp_path / "Pulumi.staging.yaml")
    out = tmp_path / "out"
    code = e2e.main(["--local", "--root", str(tmp_path), "--out-dir", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    suite = ElementTree.parse(out / "junit.xml").getroot()
    assert [c.get("name") for c in suite] == [n for n, _ in e2e.STEPS + e2e.CLEANUP]
    assert suite.get("failures") == "0" and suite.get("skipped") == "0"
    assert "ingest: 344 rows loaded; broken-palmerpenguins.csv quarantined" in printed
    assert "staging serves tabular-mlops-local-penguins@1" in printed
    assert "accept: acceptance suite on http://127.0.0.1:" in printed and " passed" in printed
    assert "evaluate: judged tabular-mlops-local-penguins@1 on 200 new rows" in printed
    assert "training runs: 1, evaluations of the served model: 1" in printed  # the page
    assert not (out / "local").exists(), "stack-rm removes the local state"
    assert not list(Path(tmp_path).glob("Pulumi.e2e-*.yaml"))


# --- the workflow and its settings --------------------------------------------------------------


def test_the_workflow_runs_on_the_label_nightly_one_at_a_time_and_sweeps_after():
    from tests.ci.test_workflows import load

    document = load(PROJECT_ROOT / ".github/workflows/e2e.yml")
    assert document["on"]["pull_request"] == {"types": ["labeled"]}
    assert document["on"]["schedule"]
    job = document["jobs"]["e2e"]
    assert "github.event.label.name == 'e2e'" in job["if"]
    assert job["concurrency"]["cancel-in-progress"] is False and job["timeout-minutes"] <= 180
    runs = [step.get("run", "") for step in job["steps"]]
    e2e_at = next(i for i, run in enumerate(runs) if run.startswith("make e2e PROJECT="))
    sweep_at = next(i for i, run in enumerate(runs) if run.startswith("make e2e-sweep"))
    assert e2e_at < sweep_at and job["steps"][sweep_at]["if"].startswith("always()")


def test_the_sandbox_settings_are_checked_and_become_step_outputs(tmp_path, monkeypatch):
    from tooling import e2e_settings

    settings = tmp_path / "e2e-sandbox.yaml"
    settings.write_text("project: null\nregion: europe-west4\n")
    assert e2e_settings.read(settings) == {}
    good = {
        "project": "acme-mlops-e2e", "region": "europe-west4",
        "workload_identity_provider": "projects/123/locations/global/workloadIdentityPools/"
        "github/providers/tabular-mlops",
        "service_account": "e2e-runner@acme-mlops-e2e.iam.gserviceaccount.com",
        "state_backend": "gs://acme-e2e-state",
        "secrets_provider": "gcpkms://projects/acme-mlops-e2e/locations/global/keyRings/e2e/"
        "cryptoKeys/stacks",
    }  # fmt: skip
    settings.write_text(yaml.safe_dump(good))
    assert e2e_settings.read(settings) == good
    settings.write_text(yaml.safe_dump({**good, "service_account": "someone@gmail.com"}))
    with pytest.raises(ValueError, match=r"e2e-sandbox\.yaml: service_account: 'someone@gmail"):
        e2e_settings.read(settings)
    # The committed file is unset: the workflow skips, saying so.
    output = tmp_path / "github-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert e2e_settings.main() == 0
    assert output.read_text() == "configured=false\n"


# --- the real side's pulumi calls (subprocess replaced) ------------------------------------------


def test_the_gcp_side_drives_the_pulumi_cli_with_the_runs_stack(monkeypatch, tmp_path):
    import json
    import subprocess

    from tooling import e2e_cloud

    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        failing = command[1] == "destroy"
        stdout = json.dumps(OUTPUTS) if command[1:3] == ["stack", "output"] else ""
        stderr = "error: googleapi: Error 429: Quota exceeded for quota metric" if failing else ""
        return subprocess.CompletedProcess(command, 1 if failing else 0, stdout, stderr)

    monkeypatch.setattr(e2e_cloud.subprocess, "run", fake_run)
    cloud = e2e_cloud.GcpCloud("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", tmp_path)
    cloud.create_stack("e2e-1", tmp_path / "Pulumi.e2e-1.yaml")
    assert cloud.up("e2e-1") == OUTPUTS
    with pytest.raises(RuntimeError) as failed:
        cloud.destroy("e2e-1")
    cloud.remove_stack("e2e-1")
    assert calls == [
        ["pulumi", "stack", "init", "e2e-1", "--secrets-provider",
         "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "--non-interactive"],
        ["pulumi", "up", "--yes", "--skip-preview", "--stack", "e2e-1", "--non-interactive"],
        ["pulumi", "stack", "output", "--json", "--stack", "e2e-1", "--non-interactive"],
        ["pulumi", "destroy", "--yes", "--skip-preview", "--stack", "e2e-1", "--non-interactive"],
        ["pulumi", "stack", "rm", "--yes", "e2e-1", "--non-interactive"],
    ]  # fmt: skip
    # pulumi's own error text reaches the report, where the known failures are recognised.
    assert e2e.explain(failed.value)[0] == "quota"


def test_the_gcp_sweeper_lists_every_stack_and_destroys_then_removes(monkeypatch):
    import json
    import subprocess

    calls = []
    listing = [{"name": "org/tabular-mlops/e2e-2612070100-aa11"}, {"name": "org/p/staging"}]

    def fake_run(command, **kwargs):
        calls.append(command)
        stdout = json.dumps(listing) if command[1:3] == ["stack", "ls"] else ""
        return subprocess.CompletedProcess(command, 0, stdout, "")

    monkeypatch.setattr(e2e_sweep.subprocess, "run", fake_run)
    inventory = e2e_sweep.GcpInventory("sandbox-e2e", "europe-west4")
    assert inventory.stacks() == [entry["name"] for entry in listing]
    inventory.destroy_stack("org/tabular-mlops/e2e-2612070100-aa11")
    assert [command[1:3] for command in calls] == [
        ["stack", "ls"], ["destroy", "--yes"], ["stack", "rm"],
    ]  # fmt: skip
    assert "--all" in calls[0]


def test_the_lifecycle_page_must_show_the_runs_of_the_e2e_run(tmp_path, inputs):
    ctx = context(tmp_path, FakeCloud(), inputs)
    assert e2e.step_lifecycle_page(ctx) == (
        "what each endpoint serves: 1, training runs: 1, evaluations of the served model: 1, "
        "ingested files: 0"
    )
    stale = _page()  # a page from before the runs: nothing on it
    ctx.cloud.lifecycle_page = lambda outputs: stale
    with pytest.raises(e2e.StepFailed, match="not the training run, its report and the eval"):
        e2e.step_lifecycle_page(ctx)
