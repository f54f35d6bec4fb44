"""Identities: one dedicated service account per workload, and who may act as each.

No workload runs as the Compute Engine default service account (which holds Editor in many
projects). Each account gets only what its workload needs, granted beside the resource it is on:
buckets in the data lake, the dataset and tables in the warehouse, the function's service in
ingestion. This component holds the grants on the accounts themselves (who may act as them) and
the few roles that exist only at project level.

Later components take the accounts from `Identities.accounts` (or the named attributes below), e.g.
the pipelines' schedules run jobs as `identities.pipeline_runner`. A schedule has no identity of
its own (no caller field): its runs are created with the authority of whoever deployed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from resources.access import PROJECT, WORKLOADS, Grantee, Members, Permission
from resources.base import PlatformComponent, binder

# What each workload's account is for: its description in the console and in the docs.
PURPOSES: dict[Grantee, str] = {
    Grantee.INGESTION: "runs the ingestion function: reads uploads, loads BigQuery, quarantines",
    Grantee.INGESTION_TRIGGER: "delivers landing-bucket events (Eventarc) to the function",
    Grantee.FUNCTION_BUILD: "builds the ingestion function's image (Cloud Build)",
    Grantee.PIPELINE_RUNNER: "runs the Vertex AI pipelines' jobs (training and evaluation)",
    Grantee.WORKBENCH: "runs the Workbench instance the data scientists explore from",
}
# Short workload names in account ids (<name>-<stack>, at most 30 characters).
ACCOUNT_NAMES: dict[Grantee, str] = {
    Grantee.INGESTION: "ingest",
    Grantee.INGESTION_TRIGGER: "ingest-trigger",
    Grantee.FUNCTION_BUILD: "fn-build",
    Grantee.PIPELINE_RUNNER: "pipelines",
    Grantee.WORKBENCH: "workbench",
}

ACT_AS = "roles/iam.serviceAccountUser"


def _account_target(workload: Grantee) -> str:
    return f"{workload.value}_account"


@dataclass(frozen=True)
class IdentitiesArgs:
    project: str
    account_ids: Mapping[Grantee, str]
    """Account id of each workload to create (the Workbench one only when Workbench is on)."""
    display_prefix: str
    """Prefix of the accounts' display names, e.g. 'tabular-mlops staging'."""
    members: Members
    """Personas and deployers; the workloads' own members are added by the component."""


class Identities(PlatformComponent):
    """The workloads' service accounts, and the grants on (and of) them."""

    TYPE = "tabular-mlops:iam:Identities"
    APIS = (
        "iam.googleapis.com",
        "iamcredentials.googleapis.com",
        "cloudresourcemanager.googleapis.com",
    )
    TARGETS: ClassVar[dict[str, str]] = {
        _account_target(w): f"{w.title} service account" for w in WORKLOADS
    }
    PERMISSIONS = (
        *(
            Permission(
                Grantee.DEPLOYERS,
                ACT_AS,
                _account_target(workload),
                "deploy the resources that run as this account (GCP checks actAs on every deploy)",
            )
            for workload in WORKLOADS
        ),
        Permission(
            Grantee.PIPELINE_RUNNER,
            ACT_AS,
            _account_target(Grantee.PIPELINE_RUNNER),
            "pipeline steps that launch Vertex AI jobs run them as the same account",
        ),
        Permission(
            Grantee.PIPELINE_RUNNER,
            "roles/aiplatform.user",
            PROJECT,
            "run pipeline jobs, upload model versions, deploy to the endpoint, run the "
            "evaluation's batch prediction jobs and the retraining runs it starts (Vertex AI "
            "jobs and models live in the project)",
        ),
        Permission(
            Grantee.WORKBENCH,
            ACT_AS,
            _account_target(Grantee.PIPELINE_RUNNER),
            "submit pipeline runs from a notebook, as the pipeline runner",
        ),
        Permission(
            Grantee.WORKBENCH,
            "roles/aiplatform.user",
            PROJECT,
            "use Vertex AI (experiments, pipeline runs, models) from the notebook",
        ),
        Permission(
            Grantee.DATA_SCIENTISTS,
            ACT_AS,
            _account_target(Grantee.PIPELINE_RUNNER),
            "run a pipeline from a branch (CI, Workbench) as the pipeline runner",
        ),
        Permission(
            Grantee.DATA_SCIENTISTS,
            "roles/aiplatform.user",
            PROJECT,
            "submit pipeline runs, read experiments, models and endpoints",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            ACT_AS,
            _account_target(Grantee.PIPELINE_RUNNER),
            "re-run or debug pipelines as the pipeline runner",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/aiplatform.user",
            PROJECT,
            "operate pipelines, models and endpoints",
        ),
        # The documented way to publish the pipeline image by hand (pipeline_src/cloudbuild.yaml):
        # `gcloud builds submit --service-account fn-build-STACK` creates a build (project-level)
        # that runs as the build account (actAs on it).
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/cloudbuild.builds.editor",
            PROJECT,
            "submit the pipeline image's build (pipeline_src/cloudbuild.yaml)",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            ACT_AS,
            _account_target(Grantee.FUNCTION_BUILD),
            "run that build as the stack's build account, which may push to the repository",
        ),
    )

    accounts: dict[Grantee, gcp.serviceaccount.Account]
    """Every workload account created, by workload."""
    ingestion: gcp.serviceaccount.Account
    """Runtime identity of the ingestion function."""
    ingestion_trigger: gcp.serviceaccount.Account
    """Identity the Eventarc trigger uses to invoke the function."""
    function_build: gcp.serviceaccount.Account
    """Identity Cloud Build uses to build the function's image."""
    pipeline_runner: gcp.serviceaccount.Account
    """Identity every pipeline job runs as (`service_account` of a PipelineJob)."""
    workbench: gcp.serviceaccount.Account | None
    """Identity of the Workbench instance; None when the stack has no Workbench."""

    def __init__(self, name: str, args: IdentitiesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        unknown = set(args.account_ids) - set(WORKLOADS)
        if unknown:
            raise ValueError(f"not workloads: {sorted(unknown)}")
        self.accounts = {
            workload: gcp.serviceaccount.Account(
                f"{name}-{workload.value.replace('_', '-')}",
                project=args.project,
                account_id=account_id,
                display_name=f"{args.display_prefix}: {workload.title.lower()}"[:100],
                description=PURPOSES[workload],
                opts=self.child(),
            )
            for workload, account_id in args.account_ids.items()
        }
        self.ingestion = self.accounts[Grantee.INGESTION]
        self.ingestion_trigger = self.accounts[Grantee.INGESTION_TRIGGER]
        self.function_build = self.accounts[Grantee.FUNCTION_BUILD]
        self.pipeline_runner = self.accounts[Grantee.PIPELINE_RUNNER]
        self.workbench = self.accounts.get(Grantee.WORKBENCH)

        self.bindings = self.grant(
            args.project,
            {**args.members, **self.members},
            {
                _account_target(workload): binder(
                    self, gcp.serviceaccount.IAMMember, service_account_id=account.name
                )
                for workload, account in self.accounts.items()
            },
            only=(PROJECT, *(_account_target(w) for w in self.accounts)),
        )
        self.register_outputs({w.value: account.email for w, account in self.accounts.items()})

    @property
    def members(self) -> dict[Grantee, list[pulumi.Output[str]]]:
        """Each workload's IAM member (`serviceAccount:…`), to pass to other components."""
        return {workload: [account.member] for workload, account in self.accounts.items()}
