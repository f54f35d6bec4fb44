"""Pipelines: the registry of the pipeline image, and the training and evaluation schedules.

- The Artifact Registry repository holds the one image every component runs on (and that serves
  the model): `pipeline_src/Dockerfile`, published by Cloud Build or CI under a tag that digests
  its inputs. Tags are immutable, so a tag always names the image the spec was compiled for.
- A Kubeflow Pipelines repository holds the compiled templates CI publishes, one version per
  submitted change, tagged with the code version: what ran is kept, and can be run again.
- The schedule (`gcp.colab.Schedule`, Vertex AI's schedule API) runs the spec compiled from
  `pipeline_src/` at preview time: a change to the pipeline's code shows in `pulumi preview` as
  a change of the schedule. Its runs execute as the pipeline runner, never as the Compute Engine
  default account; whoever creates the schedule (the deployer) must be able to act as it.

The spec carries the stack's typed parameters (contract, gate, hyperparameters, replicas) as its
defaults; the schedule passes only string parameters, which is all the provider's
`parameter_values` (a map of strings) can carry faithfully.

The continuous evaluation pipeline and the batch scoring pipeline (pipeline_src/scoring.py: the
served model's predictions of new rows, appended to the warehouse's predictions table) have their
own schedules, on the same terms. Its spec carries the
compiled training spec (as a default) so that a retraining it starts runs exactly the training
code deployed beside it, with the training schedule's parameters; it runs as the pipeline runner
too, which may start jobs as itself (resources/identities.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pulumi
import pulumi_gcp as gcp

from resources.access import Grantee, Members, Permission
from resources.base import PlatformComponent, binder
from stacks.config import ScheduleConfig


@dataclass(frozen=True)
class ScheduledPipeline:
    """A pipeline run on a schedule (the training, the continuous evaluation, the scoring)."""

    display_name: str
    spec: Mapping[str, Any]
    """Its compiled spec (pipeline_src.compile.compile_spec)."""
    parameters: Mapping[str, pulumi.Input[str]]
    """The run's string parameters (resource names); typed ones are the spec's defaults."""
    schedule: ScheduleConfig
    run_labels: Mapping[str, str]
    """Labels of the pipeline jobs the schedule creates."""


@dataclass(frozen=True)
class PipelinesArgs:
    project: str
    region: str
    repository_id: str
    templates_repository_id: str
    """The Kubeflow Pipelines (KFP-format) repository compiled templates are published to."""
    image: str
    """The pipeline image's full reference (pinned tag) the specs name."""
    pipeline_root: pulumi.Input[str]
    """gs:// folder runs write their artifacts under."""
    runner_email: pulumi.Input[str]
    labels: Mapping[str, str]
    training: ScheduledPipeline
    """The training pipeline and its schedule."""
    evaluation: ScheduledPipeline | None = None
    """The continuous evaluation pipeline and its schedule, if the stack runs one."""
    scoring: ScheduledPipeline | None = None
    """The batch scoring pipeline and its schedule, if the stack runs one."""
    kms_key: str | None = None
    network: pulumi.Input[str] | None = None
    """Runs' jobs are peered with this network (`projects/<number>/global/networks/<name>`),
    where the private endpoint is; None: Google's own network."""
    members: Members = dataclasses.field(default_factory=dict)
    """Who plays each grantee of PERMISSIONS in this stack (resources/access.py)."""


class Pipelines(PlatformComponent):
    """The pipeline image repository and the training, evaluation and scoring schedules."""

    TYPE = "tabular-mlops:vertex:Pipelines"
    APIS = ("artifactregistry.googleapis.com", "aiplatform.googleapis.com")
    KMS_AGENTS = ("artifactregistry", "aiplatform")
    TARGETS: ClassVar[dict[str, str]] = {
        "repository": "pipeline image repository (Artifact Registry)",
        "templates": "pipeline template repository (Artifact Registry, Kubeflow Pipelines)",
    }
    PERMISSIONS = (
        # CI publishes as the deployer, whose project-level Artifact Registry admin role (needed
        # to create repositories) covers pushing; no grant here.
        Permission(
            Grantee.FUNCTION_BUILD,
            "roles/artifactregistry.writer",
            "repository",
            "the project's Cloud Build identity also builds the pipeline image "
            "(pipeline_src/cloudbuild.yaml)",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/artifactregistry.writer",
            "repository",
            "publish the pipeline image by hand (Cloud Build or docker push)",
        ),
        Permission(
            Grantee.DATA_SCIENTISTS,
            "roles/artifactregistry.reader",
            "repository",
            "pull the pipeline image to reproduce a component's environment",
        ),
        # CI publishes templates as the deployer (project-level Artifact Registry admin).
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/artifactregistry.writer",
            "templates",
            "publish a compiled template by hand (`python -m pipeline_src.submit --publish`)",
        ),
        Permission(
            Grantee.DATA_SCIENTISTS,
            "roles/artifactregistry.reader",
            "templates",
            "run or inspect a published version of the pipeline",
        ),
        Permission(
            Grantee.MODEL_READERS,
            "roles/artifactregistry.reader",
            "repository",
            "the project a model is promoted to serves it from this image (its serving container)",
        ),
    )

    repository: gcp.artifactregistry.Repository
    """Where the pipeline image is published."""
    templates: gcp.artifactregistry.Repository
    """Where compiled pipeline templates are published."""
    template_registry: str
    """The templates repository's URL (`https://REGION-kfp.pkg.dev/PROJECT/REPOSITORY`)."""
    image: str
    """The pipeline image the schedule's spec names (the tag must be published before a run)."""
    schedule: gcp.colab.Schedule
    """Runs the training pipeline on the configured cron (created paused unless configured)."""
    evaluation_schedule: gcp.colab.Schedule | None
    """Runs the continuous evaluation on its cron (created paused unless configured)."""
    scoring_schedule: gcp.colab.Schedule | None
    """Runs the batch scoring on its cron (created paused unless configured)."""

    def __init__(self, name: str, args: PipelinesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        self.image = args.image
        self.repository, self.templates = self._repositories(name, args)
        self.template_registry = (
            f"https://{args.region}-kfp.pkg.dev/{args.project}/{args.templates_repository_id}"
        )
        self.bindings = self.grant(
            args.project,
            args.members,
            {
                target: binder(
                    self,
                    gcp.artifactregistry.RepositoryIamMember,
                    project=args.project,
                    location=args.region,
                    repository=repository.name,
                )
                for target, repository in (
                    ("repository", self.repository),
                    ("templates", self.templates),
                )
            },
        )
        # One training run at a time: two gates racing for the endpoint could both deploy.
        self.schedule = self._schedule(f"{name}-training-schedule", args, args.training)
        # One evaluation at a time as well: two would judge the same new batches (the trigger
        # would still start one retraining, but both would record a verdict).
        self.evaluation_schedule = (
            self._schedule(f"{name}-evaluation-schedule", args, args.evaluation)
            if args.evaluation
            else None
        )
        # One scoring run at a time too: two would both score the same unscored batches.
        self.scoring_schedule = (
            self._schedule(f"{name}-scoring-schedule", args, args.scoring) if args.scoring else None
        )
        self.register_outputs(
            {
                "repository": self.repository.name,
                "templates": self.templates.name,
                "image": self.image,
                "schedule": self.schedule.id,
                "evaluation_schedule": (
                    self.evaluation_schedule.id if self.evaluation_schedule else None
                ),
                "scoring_schedule": self.scoring_schedule.id if self.scoring_schedule else None,
            }
        )

    def _repositories(
        self, name: str, args: PipelinesArgs
    ) -> tuple[gcp.artifactregistry.Repository, gcp.artifactregistry.Repository]:
        """The pipeline image's repository and the compiled templates' repository."""
        images = self.artifact_repository(
            f"{name}-images",
            args,
            args.repository_id,
            "DOCKER",
            "The training pipeline's image: Python and the pinned packages.",
            # A tag names one image for good: the spec compiled for it cannot change under it.
            docker_config={"immutable_tags": True},
            cleanup_policies=[
                # Old tags may still be named by a registered model (its serving image): only
                # untagged layers left by rebuilt tags are removed.
                {"id": "untagged", "action": "DELETE", "condition": {"tag_state": "UNTAGGED"}},
            ],
        )
        templates = self.artifact_repository(
            f"{name}-templates",
            args,
            args.templates_repository_id,
            "KFP",
            "Compiled training pipeline templates, one version per submitted change.",
        )
        return images, templates

    def _schedule(
        self, resource_name: str, args: PipelinesArgs, pipeline: ScheduledPipeline
    ) -> gcp.colab.Schedule:
        """A schedule running `pipeline` as the pipeline runner, one run at a time."""
        settings = pipeline.schedule
        return gcp.colab.Schedule(
            resource_name,
            project=args.project,
            location=args.region,
            display_name=pipeline.display_name,
            cron=f"TZ={settings.time_zone} {settings.cron}",
            desired_state="PAUSED" if settings.paused else "ACTIVE",
            # Limits starting the scheduled requests only; the active-run limit is what keeps
            # a second run from starting while one still runs (pipeline requests only).
            max_concurrent_run_count="1",
            max_concurrent_active_run_count="1",
            allow_queueing=False,
            create_pipeline_job_request={
                "parent": f"projects/{args.project}/locations/{args.region}",
                "pipeline_job": {
                    "display_name": pipeline.display_name,
                    # Sorted keys: the same spec is the same text, so no spurious diffs.
                    "pipeline_spec": json.dumps(
                        pipeline.spec, sort_keys=True, separators=(",", ":")
                    ),
                    "runtime_config": {
                        "gcs_output_directory": args.pipeline_root,
                        "parameter_values": dict(pipeline.parameters),
                        "failure_policy": "PIPELINE_FAILURE_POLICY_FAIL_FAST",
                    },
                    "service_account": args.runner_email,
                    "labels": dict(pipeline.run_labels),
                    "encryption_spec": {"kms_key_name": args.kms_key} if args.kms_key else None,
                    "network": args.network,
                },
            },
            opts=self.child(),
        )
