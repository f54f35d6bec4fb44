"""The model registry port on the Vertex AI Model Registry."""

from __future__ import annotations

import shutil
from typing import Any

from pipeline_src.cloud.storage import gcs_fuse_path
from pipeline_src.ports import ModelRef, Registered
from pipeline_src.serving.integrity import vertex_bundle_digest


def serving_container() -> dict:
    """How Vertex AI runs the serving image for the model: pipeline_src/serving's entry point.

    The image's server reads the port and routes from the AIP_* variables Vertex AI sets from
    these; the values are the server's defaults, so the image also serves as it is elsewhere.
    """
    return {
        "serving_container_command": ["python", "-m", "pipeline_src.serving"],
        "serving_container_predict_route": "/predict",
        "serving_container_health_route": "/health",
        "serving_container_ports": [8080],
    }


def model_ref(model) -> ModelRef:
    """A Vertex AI model version as the pipelines read it: its bundle through the /gcs mount."""
    return ModelRef(
        model.versioned_resource_name, gcs_fuse_path(model.uri), vertex_bundle_digest(model)
    )


class VertexModelRegistry:
    def __init__(self, project: str, location: str):
        self.project, self.location = project, location

    def upload(
        self, model_id: str, bundle_dir: str, destination_uri: str, fields: dict[str, Any]
    ) -> Registered:
        """Copy the bundle to `destination_uri` first (the pipeline root expires, a registered
        model must not), then upload it under the parent model (created on first upload)."""
        from google.api_core.exceptions import NotFound
        from google.cloud import aiplatform

        if not fields.get("serving_container_image_uri"):
            raise ValueError("register needs the serving image the model is served with")
        if not destination_uri.startswith("gs://"):
            raise ValueError(f"models_uri must be a gs:// location, got {destination_uri!r}")
        shutil.copytree(bundle_dir, gcs_fuse_path(destination_uri), dirs_exist_ok=True)
        aiplatform.init(project=self.project, location=self.location)
        try:
            parent = {"parent_model": aiplatform.Model(model_id).resource_name}
        except NotFound:
            parent = {"model_id": model_id}  # the first version creates the model
        model = aiplatform.Model.upload(
            artifact_uri=destination_uri, **parent, **serving_container(), **fields
        )
        # The name promotion takes: the project by id (Vertex AI names it by number).
        promotable = (
            f"projects/{self.project}/locations/{self.location}/models/{model_id}"
            f"@{model.version_id}"
        )
        return Registered(
            model.versioned_resource_name, model.version_id, destination_uri, promotable
        )

    def default_version(self, model_id: str) -> ModelRef | None:
        from google.api_core.exceptions import NotFound
        from google.cloud import aiplatform

        aiplatform.init(project=self.project, location=self.location)
        try:
            return model_ref(aiplatform.Model(model_id))
        except NotFound:
            return None
