"""The e2e run's report: JUnit XML (CI shows each step as a test) and a small HTML page."""

from __future__ import annotations

import html
from pathlib import Path
from xml.etree import ElementTree

from tooling.e2e import RunCost, StepResult


def junit(stack: str, results: list[StepResult]) -> str:
    suite = ElementTree.Element(
        "testsuite",
        name=f"e2e {stack}",
        tests=str(len(results)),
        failures=str(sum(1 for r in results if r.error)),
        skipped=str(sum(1 for r in results if r.skipped)),
        time=f"{sum(r.seconds for r in results):.1f}",
    )
    for result in results:
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"e2e.{stack}", name=result.name,
            time=f"{result.seconds:.1f}",
        )  # fmt: skip
        if result.skipped:
            ElementTree.SubElement(case, "skipped", message="an earlier step failed")
        elif result.error:
            failure = ElementTree.SubElement(case, "failure", message=result.error)
            failure.text = result.advice or ""
        else:
            ElementTree.SubElement(case, "system-out").text = result.outcome
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 64rem; padding: 0 1rem;
       color: #1f2328; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d0d7de;
         vertical-align: top; }
td.num, td.name, td.status { white-space: nowrap; }
td.outcome { overflow-wrap: anywhere; }
td.num { text-align: right; }
.passed { color: #1a7f37; } .failed { color: #cf222e; font-weight: 600; }
.skipped { color: #6e7781; }
.advice { color: #57606a; font-size: 90%; }
"""


def page(stack: str, results: list[StepResult], cost: RunCost | None) -> str:
    rows = []
    for r in results:
        status = "skipped" if r.skipped else "passed" if r.passed else "failed"
        detail = html.escape(r.outcome if r.passed else (r.error or "an earlier step failed"))
        if r.advice:
            detail += f'<div class="advice">{html.escape(r.advice)}</div>'
        rows.append(
            f'<tr><td class="name">{html.escape(r.name)}</td>'
            f'<td class="status {status}">{status}</td>'
            f'<td class="num">{_duration(r.seconds)}</td><td class="outcome">{detail}</td></tr>'
        )
    total = sum(r.seconds for r in results)
    verdict = "passed" if all(r.passed for r in results) else "failed"
    cost_line = (
        f"<p>Cost of this run, prorated from the offline plan's estimate: "
        f"<b>${cost.of(total / 3600):.2f}</b> (standing ${cost.standing_usd_per_hour:.3f}/h for "
        f"{total / 60:.0f} min, plus one training and one evaluation run "
        f"${cost.pipeline_runs_usd:.2f}; docs/e2e.md)</p>"
        if cost
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>e2e {html.escape(stack)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body><h1>End-to-end run {html.escape(stack)}: <span class="{verdict}">{verdict}</span></h1>
<p>{len(results)} steps in {total / 60:.1f} min; destroy and stack removal run after any
failure.</p>
{cost_line}
<table><thead><tr><th>step</th><th>status</th><th>time</th><th>outcome</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table></body></html>
"""


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def write(out_dir: Path, stack: str, results: list[StepResult], cost: RunCost | None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "junit.xml").write_text(junit(stack, results), encoding="utf-8")
    target = out_dir / "index.html"
    target.write_text(page(stack, results, cost), encoding="utf-8")
    return target
