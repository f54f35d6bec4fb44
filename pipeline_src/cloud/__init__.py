"""The deployed backend: Vertex AI and BigQuery adapters of the ports (pipeline_src/ports.py);
`rollout.py` holds the rollout's (pipeline_src/rollout.py) and the one Vertex AI deploy routine.

Every Google Cloud library is imported where it is used, so a task loads only the clients it
needs (and the local backend never loads them).
"""

from __future__ import annotations

from pipeline_src.ports import (
    ArtifactStorage,
    BatchPrediction,
    Endpoints,
    ModelRegistry,
    PipelineRuns,
    Warehouse,
)


class CloudBackend:
    """The ports on Google Cloud, in the project and region a component names."""

    def warehouse(self, project: str, location: str, dataset: str, job_label: str) -> Warehouse:
        from pipeline_src.cloud.bigquery import BigQueryWarehouse

        return BigQueryWarehouse(project, location, dataset, job_label)

    def registry(self, project: str, location: str) -> ModelRegistry:
        from pipeline_src.cloud.registry import VertexModelRegistry

        return VertexModelRegistry(project, location)

    def endpoints(self, project: str, location: str) -> Endpoints:
        from pipeline_src.cloud.endpoints import VertexEndpoints

        return VertexEndpoints(project, location)

    def batch_prediction(self, project: str, location: str) -> BatchPrediction:
        from pipeline_src.cloud.batch_prediction import VertexBatchPrediction

        return VertexBatchPrediction(project, location)

    def pipeline_runs(self, project: str, location: str) -> PipelineRuns:
        from pipeline_src.cloud.pipeline_runs import VertexPipelineRuns

        return VertexPipelineRuns(project, location)

    def artifacts(self) -> ArtifactStorage:
        from pipeline_src.cloud.storage import CloudStorage

        return CloudStorage()
