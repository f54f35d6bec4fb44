"""Submit the training pipeline to Vertex AI Pipelines — the one module that calls PipelineJob.

    pulumi stack output training_pipeline --json > build/training-job.json
    python -m pipeline_src.submit --job build/training-job.json [--param NAME=VALUE ...] [--wait]

The job file is what the stack exports (resources/pipelines.py): project, region, pipeline image,
pipeline root, runner service account, labels and the parameters its schedule passes. Submitting
compiles this checkout's pipeline with that image and runs it with those parameters (and this
checkout's commit), so CI runs exactly what the schedule would, with the code under review. The
caller's credentials (Application Default Credentials; Workload Identity Federation in CI) need
`roles/iam.serviceAccountUser` on the runner service account.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
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
        missing = [n for n in names if n not in document and n != "labels"]
        if missing:
            raise ValueError(f"{path}: missing {', '.join(missing)}")
        return cls(**{n: document[n] for n in names if n in document})

    def with_parameters(self, **overrides: Any) -> TrainingJob:
        """The same job with some parameters replaced (names and types checked)."""
        parameters = typed_arguments({**self.parameters, **overrides})
        return TrainingJob(**{**self.__dict__, "parameters": parameters})


def build_job(job: TrainingJob, template: Path, credentials=None):
    """The PipelineJob for a compiled spec (nothing is sent until it is submitted)."""
    from google.cloud import aiplatform

    if not job.pipeline_root.startswith("gs://"):
        raise ValueError(f"pipeline_root must be a gs:// location, got {job.pipeline_root!r}")
    return aiplatform.PipelineJob(
        display_name=PIPELINE_NAME,
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
):
    """Compile this checkout's pipeline with the job's image, submit it, optionally wait."""
    job = job.with_parameters(git_commit=code_version())
    template = write_spec(job.image, out_dir / "training-pipeline.yaml")
    pipeline_job = build_job(job, template, credentials=credentials)
    pipeline_job.submit(service_account=job.service_account)
    say(f"submitted {pipeline_job.resource_name}")
    if wait:
        pipeline_job.wait()  # raises if the run fails
        say(f"{pipeline_job.resource_name} finished: {pipeline_job.state}")
    return pipeline_job


def main(argv: list[str] | None = None) -> int:
    from pipeline_src.run_local import parse_params

    parser = argparse.ArgumentParser(
        prog="python -m pipeline_src.submit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--job", type=Path, required=True, help="the stack's training_pipeline")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--wait", action="store_true", help="wait for the run to finish")
    args = parser.parse_args(argv)
    try:
        job = TrainingJob.from_file(args.job).with_parameters(**parse_params(args.param))
        submit(job, wait=args.wait)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
