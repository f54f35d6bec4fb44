"""publish: the run's report kept beside the lifecycle page, and the page refreshed — the last step
of every training and evaluation run (pipeline_src/publication.py).

A training run's report is headed here, after the gate, by what was decided (deployed, kept the
champion, registered as a candidate), why, and its provenance: the version registered, the run,
the code commit and the date. The evaluation's report already leads with its verdict. Either is
kept as `<lifecycle_uri>/reports/<run>.html`, which nothing expires (the pipeline root does), and
the page `<lifecycle_uri>/index.html` is rendered again from the warehouse's own tables (every
ingestion, training run and evaluation, newest first) and what each endpoint serves. In the cloud
`lifecycle_uri` is the artifacts bucket's `lifecycle/`, which the stakeholders' dashboard links.
"""

from typing import Optional

from kfp.dsl import HTML, Input

from pipeline_src.components.common import pipeline_component


@pipeline_component(
    packages=("pyarrow", "google-cloud-bigquery", "google-cloud-storage", "google-cloud-aiplatform")
)
def publish(
    contract: dict,
    project: str,
    location: str,
    bq_location: str,
    dataset: str,
    lifecycle_uri: str,
    run_id: str,
    endpoint: str,
    fallback_endpoint: str = "",
    page_endpoints: list = [],  # noqa: B006 (a spec default, never mutated)
    report: Optional[Input[HTML]] = None,  # noqa: UP045 (kfp reads Optional, not X | None)
    decision: str = "",
    reason: str = "",
    model_version: str = "",
    git_commit: str = "",
) -> str:
    """Keep the run's report (headed by `decision` when one is given) and refresh the page;
    return where the report went ("" for a run without one).

    The page shows what `page_endpoints` serve, else `endpoint` and `fallback_endpoint` (a cloud
    stack has one endpoint; locally staging and prod share one page)."""
    from datetime import UTC, datetime

    from pipeline_src.lifecycle_page import headed_by_decision
    from pipeline_src.ports import backend
    from pipeline_src.publication import provenance, publish_report, refresh_page

    now = datetime.now(UTC)
    ports = backend()
    kept = ""
    if report is not None:
        with open(report.path, encoding="utf-8") as source:
            text = source.read()
        if decision:  # a training run: what the gate decided leads its report
            facts = provenance(model_version, run_id, git_commit, now)
            text = headed_by_decision(text, decision, reason, facts)
        kept = publish_report(ports.artifacts(), lifecycle_uri, run_id, text)
    page = refresh_page(
        ports, project=project, location=location, bq_location=bq_location, dataset=dataset,
        endpoints=page_endpoints or [endpoint, fallback_endpoint], lifecycle_uri=lifecycle_uri,
        model_name=contract["name"], now=now,
    )  # fmt: skip
    print(f"report kept at {kept or '- (no report this run)'}; lifecycle page at {page}")
    return kept
