"""The pipeline runs port on Vertex AI Pipelines: a PipelineJob whose id is the claim."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from pipeline_src.components.common import write_json
from pipeline_src.ports import TrainingRun


class VertexPipelineRuns:
    def __init__(self, project: str, location: str):
        self.project, self.location = project, location

    def start(self, run_id: str, request: dict[str, Any], run: TrainingRun) -> bool:
        """Submit the training pipeline as job `run_id` (unique in its location: submitting it
        twice is refused, so the id is the claim); False if that job exists already."""
        from google.api_core.exceptions import AlreadyExists
        from google.cloud import aiplatform

        if not run.spec:
            raise ValueError("the evaluation needs the compiled training pipeline to retrain")
        aiplatform.init(project=self.project, location=self.location)
        with tempfile.TemporaryDirectory() as scratch:
            template = os.path.join(scratch, "training-pipeline.json")
            write_json(template, run.spec)
            job = aiplatform.PipelineJob(
                display_name=run_id,
                template_path=template,
                job_id=run_id,
                pipeline_root=run.pipeline_root or None,
                parameter_values=run.parameters,
                labels=run.labels,
                enable_caching=False,
                encryption_spec_key_name=run.kms_key or None,
            )
            try:
                job.submit(service_account=run.service_account or None)
            except AlreadyExists:
                return False
        return True
