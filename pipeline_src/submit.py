"""Submit the training pipeline to Vertex AI Pipelines — the one module that calls PipelineJob.

    pulumi stack output training_pipeline --json > build/training-job.json
    python -m pipeline_src.submit --job build/training-job.json [--param NAME=VALUE ...] [--wait]
        [--publish]

The job file is what the stack exports (a `TrainingJob`, built by stacks/platform.py): project,
region, pipeline image, pipeline root, runner service account, labels and the parameters its
schedule passes. Submitting compiles this checkout's pipeline with that image and runs it with those
parameters (and this checkout's commit), so CI runs exactly what the schedule would, with the code
under review. The caller's credentials (Application Default Credentials; Workload Identity
Federation in CI) need `roles/iam.serviceAccountUser` on the runner service account.

With `--publish`, the compiled template is first uploaded to the stack's Kubeflow Pipelines
repository in Artifact Registry (`template_registry`), tagged with the code version, and the run
is submitted from that published version: the run links to the exact template it ran, which
stays available to run again. Publishing needs `roles/artifactregistry.writer` there.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline_src.compile import code_version, typed_arguments, write_spec
from pipeline_src.image import PROJECT_ROOT
from pipeline_src.training import PIPELINE_NAME

BUILD = PROJECT_ROOT / "build"


@dataclass(frozen=True)
class TrainingJob:
    """Where and how a training run executes on Vertex AI (the stack's `training_pipeline`)."""

    project: str
    region: str
    image: str
    pipeline_root: str
    service_account: str
    parameters: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    template_registry: str | None = None
    """`https://REGION-kfp.pkg.dev/PROJECT/REPOSITORY`, where `--publish` uploads the template."""
    limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    """CPU, memory and accelerator per task, from the stack's config (pipeline_src/sizing.py)."""
    network: str | None = None
    """The VPC network runs are peered with (a stack with `serving.private_network`)."""

    @classmethod
    def from_file(cls, path: Path) -> TrainingJob:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(
                f"{path}: no such job file; write it with "
                "`pulumi stack output training_pipeline --json > " + str(path) + "`"
            ) from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not JSON ({error})") from None
        names = [f.name for f in fields(cls)]
        optional = {
            f.name
            for f in fields(cls)
            if f.default is not MISSING or f.default_factory is not MISSING
        }
        missing = [n for n in names if n not in document and n not in optional]
        if missing:
            raise ValueError(f"{path}: missing {', '.join(missing)}")
        return cls(**{n: document[n] for n in names if n in document})

    def with_parameters(self, **overrides: Any) -> TrainingJob:
        """The same job with some parameters replaced (names and types checked)."""
        parameters = typed_arguments({**self.parameters, **overrides})
        return TrainingJob(**{**self.__dict__, "parameters": parameters})


def publish(job: TrainingJob, template: Path, tag: str, client=None) -> str:
    """Upload a compiled template to the job's template registry; return the version's URL.

    `client` is a `kfp.registry.RegistryClient` for that registry (by default one with the
    caller's Application Default Credentials).
    """
    registry = job.template_registry
    if not registry:
        raise ValueError(
            "the job file names no template_registry: deploy the stack's pipelines component "
            "(it exports training_pipeline.template_registry) before publishing"
        )
    if not registry.startswith("https://") or "-kfp.pkg.dev/" not in registry:
        raise ValueError(
            f"template_registry must be https://REGION-kfp.pkg.dev/PROJECT/REPOSITORY, "
            f"got {registry!r}"
        )
    if client is None:
        from kfp.registry import RegistryClient

        client = RegistryClient(host=registry)
    package, version = client.upload_pipeline(file_name=str(template), tags=[_tag(tag)])
    return f"{registry.rstrip('/')}/{package}/{version}"


def _tag(version: str) -> str:
    """A registry tag from a code version ('0123456789ab-dirty' stays as it is)."""
    tag = re.sub(r"[^a-z0-9-]+", "-", version.lower()).strip("-")
    if not tag:
        raise ValueError(f"cannot tag a template with {version!r}")
    return tag


def build_job(job: TrainingJob, template: Path | str, credentials=None):
    """The PipelineJob for a compiled spec (nothing is sent until it is submitted)."""
    from google.cloud import aiplatform

    if not job.pipeline_root.startswith("gs://"):
        raise ValueError(f"pipeline_root must be a gs:// location, got {job.pipeline_root!r}")
    return aiplatform.PipelineJob(
        display_name=PIPELINE_NAME,
        # A local file, or the published version's URL (then Vertex AI records where it came from).
        template_path=str(template),
        pipeline_root=job.pipeline_root,
        parameter_values=job.parameters,
        labels=job.labels,
        enable_caching=False,  # a run must read the warehouse as it is now
        project=job.project,
        location=job.region,
        credentials=credentials,
    )


def submit(
    job: TrainingJob,
    *,
    wait: bool = False,
    out_dir: Path = BUILD,
    say: Callable[[str], None] = print,
    credentials=None,
    publish_to=None,
):
    """Compile this checkout's pipeline with the job's image, submit it, optionally wait.

    `publish_to` (a registry client, or True for the default one) publishes the template first
    and submits the run from the published version.
    """
    version = code_version()
    job = job.with_parameters(git_commit=version)
    template: Path | str = write_spec(
        job.image, out_dir / "training-pipeline.yaml", limits=job.limits
    )
    if publish_to:
        client = None if publish_to is True else publish_to
        template = publish(job, Path(template), version, client=client)
        say(f"published {template}")
    pipeline_job = build_job(job, template, credentials=credentials)
    # On a stack that serves privately, runs join the network the endpoint is on.
    network = {"network": job.network} if job.network else {}
    pipeline_job.submit(service_account=job.service_account, **network)
    say(f"submitted {pipeline_job.resource_name}")
    if wait:
        pipeline_job.wait()  # raises if the run fails
        say(f"{pipeline_job.resource_name} finished: {pipeline_job.state}")
    return pipeline_job


def main(argv: list[str] | None = None) -> int:
    from pipeline_src.compile import parse_params

    parser = argparse.ArgumentParser(
        prog="python -m pipeline_src.submit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--job", type=Path, required=True, help="the stack's training_pipeline")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--wait", action="store_true", help="wait for the run to finish")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="publish the template to the stack's template registry and run that version",
    )
    args = parser.parse_args(argv)
    try:
        job = TrainingJob.from_file(args.job).with_parameters(**parse_params(args.param))
        submit(job, wait=args.wait, publish_to=args.publish)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
