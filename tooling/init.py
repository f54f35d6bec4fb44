"""`make init`: make the two stack files yours — projects, region, people, repository, contract.

    python -m tooling.init                      # asks, showing what the files hold now
    python -m tooling.init --staging-project my-ml-staging --prod-project my-ml-prod \\
        --region europe-west1 --github-repository me/tabular-mlops --qa-reviewers alice ...

Writes `Pulumi.staging.yaml` and `Pulumi.prod.yaml` with every example value (acme-…,
example.com) replaced, validated by the stacks' own config model before anything is written.
A re-run edits the values it owns and keeps every comment and every other key; an answer not
given keeps what the file holds. Prints what changed and what to review before `make doctor`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resources.access import Grantee
from resources.identities import ACCOUNT_NAMES
from stacks.config import PROJECT_ROOT, ConfigError, parse_stack_config, stack_file_name
from stacks.naming import Naming
from tooling import stack_files

STACKS = ("staging", "prod")
BOTH = STACKS
PERSONAS = ("data_analysts", "data_scientists", "qa", "ml_engineers", "stakeholders", "deployers")


@dataclass(frozen=True)
class Question:
    """One answer of `make init`, and the keys of the stack files it is written to."""

    name: str
    """Also the flag: --<name>."""
    prompt: str
    path: str
    """Key path under `tabular-mlops:` (project, platform.ci.state_bucket…)."""
    stacks: tuple[str, ...] = BOTH
    kind: str = "text"
    """text, or list (comma- or space-separated; written as a YAML list)."""
    required: bool = True
    default: Callable[[dict[str, Any]], Any] | None = None
    """A default derived from earlier answers, for values with an obvious home."""


def _state_bucket(answers: dict[str, Any]) -> str | None:
    return f"{answers['prod-project']}-pulumi-state" if answers["prod-project"] else None


def _prod_key(ring: str, key: str) -> Callable[[dict[str, Any]], str | None]:
    """The default of a question naming a KMS key: `key` of `ring` in prod's project and region."""

    def default(answers: dict[str, Any]) -> str | None:
        if not (answers["prod-project"] and answers["region"]):
            return None
        return (
            f"projects/{answers['prod-project']}/locations/{answers['region']}"
            f"/keyRings/{ring}/cryptoKeys/{key}"
        )

    return default


QUESTIONS = (
    Question("staging-project", "GCP project id of staging", "project", ("staging",)),
    Question("prod-project", "GCP project id of prod", "project", ("prod",)),
    Question("region", "region of every regional resource", "region"),
    *(
        Question(
            persona.replace("_", "-"),
            f"{persona.replace('_', ' ')}: IAM members (group:…, user:…), comma-separated",
            f"platform.access.{persona}",
            kind="list",
        )
        for persona in PERSONAS
    ),
    Question(
        "github-repository", "GitHub repository (owner/name)", "platform.ci.github_repository"
    ),
    Question(
        "github-owner-id",
        "numeric id of the repository's owner (gh api users/OWNER --jq .id; empty: skip)",
        "platform.ci.github_repository_owner_id",
        required=False,
    ),
    Question(
        "qa-reviewers",
        "GitHub logins or org/team slugs who approve prod deploys (QA), comma-separated",
        "platform.ci.reviewers",
        ("prod",),
        kind="list",
    ),
    Question("contract", "data contract file", "platform.warehouse.contract"),
    Question(
        "notification-email", "email address alerts go to", "platform.monitoring.notification_email"
    ),
    Question(
        "workbench-owner",
        "email of the Workbench instance's owner (a data scientist)",
        "platform.workbench.owner",
        ("staging",),
    ),
    Question(
        "state-bucket",
        "Cloud Storage bucket of the Pulumi state (the bootstrap creates it)",
        "platform.ci.state_bucket",
        default=_state_bucket,
    ),
    Question(
        "secrets-key",
        "Cloud KMS key of the stacks' secrets (the bootstrap creates it)",
        "platform.ci.secrets_key",
        default=_prod_key("pulumi", "stacks"),
    ),
    Question(
        "billing-account",
        "billing account of prod's budget (XXXXXX-XXXXXX-XXXXXX; empty: no budget)",
        "platform.cost.budget.billing_account",
        ("prod",),
        required=False,
    ),
    Question(
        "prod-kms-key",
        "Cloud KMS key encrypting prod's data (CMEK, in the region; empty: Google-managed keys)",
        "platform.kms_key",
        ("prod",),
        required=False,
        default=_prod_key("tabular-mlops", "prod"),
    ),
)


class InitError(ValueError):
    """What `make init` cannot do, one line per problem."""


NONE = ""
"""An optional answer given as empty (or `-` when asked): the key is set to null."""


def _parse(question: Question, raw: str) -> Any:
    if question.kind == "list":
        return [item for item in raw.replace(",", " ").split() if item]
    value = raw.strip()
    if value in ("", "-"):
        return None if question.required else NONE
    return value


def _current(question: Question, documents: dict[str, Any]) -> Any:
    """What the files hold now, unless it is still an example."""
    value = stack_files.get(documents[question.stacks[0]], question.path)
    value = stack_files.plain(value)
    return None if value is None or stack_files.is_example(value) else value


def _show(value: Any) -> str:
    if value is None:
        return "null"
    return "[" + ", ".join(value) + "]" if isinstance(value, list) else str(value)


def gather(
    given: dict[str, str], documents: dict[str, Any], ask: Callable[[str], str] | None
) -> dict[str, Any]:
    """Every answer: a flag, else (asking when `ask` is set) what the file holds or a default."""
    answers: dict[str, Any] = {}
    missing = []
    for question in QUESTIONS:
        default = _current(question, documents)
        if default is None and question.default:
            default = question.default(answers)
        if question.name in given:
            answers[question.name] = _parse(question, given[question.name])
        elif ask is not None:
            shown = f" [{_show(default)}]" if default is not None else ""
            raw = ask(f"{question.prompt}{shown}: ")
            answers[question.name] = _parse(question, raw) if raw.strip() else default
        else:
            answers[question.name] = default
        if answers[question.name] is None and question.kind == "list" and ask is not None:
            answers[question.name] = []
        if answers[question.name] is None and question.required:
            missing.append(f"--{question.name} ({question.prompt})")
    if missing:
        raise InitError("no value for:\n  " + "\n  ".join(missing))
    return answers


def _model_readers(answers: dict[str, Any], document: Any) -> list[str]:
    """Staging's readers: prod's deployer and pipeline runner, and whatever else was listed.

    Where staging reads them from prod's outputs instead (`model_readers_from`), none are
    typed. Prod's Vertex AI service agent reads them too; its address holds prod's project
    number, which only the created project knows (the doctor's project line shows it).
    """
    current = stack_files.plain(stack_files.get(document, "platform.serving.model_readers"))
    kept = [m for m in current or [] if not stack_files.is_example(m)]
    if stack_files.get(document, "platform.serving.model_readers_from"):
        return kept
    prod = Naming(project=answers["prod-project"], stack="prod")
    domain = f"{answers['prod-project']}.iam.gserviceaccount.com"
    derived = [
        f"serviceAccount:{prod.account_id('deployer')}@{domain}",
        f"serviceAccount:{prod.account_id(ACCOUNT_NAMES[Grantee.PIPELINE_RUNNER])}@{domain}",
    ]
    return [*derived, *(m for m in kept if m not in derived)]


def _secrets_provider(stack: str, document: Any, secrets_key: str) -> str | None:
    """Point `secretsprovider` at the secrets key, unless secrets are already encrypted."""
    current, wanted = document.get("secretsprovider"), f"gcpkms://{secrets_key}"
    if current is None or current == wanted:
        return None
    if "encryptedkey" in document:
        raise InitError(
            f"{stack_file_name(stack)}: its secrets are encrypted with {current}; move them with "
            f"`pulumi stack change-secrets-provider -s {stack} {wanted}`, not make init"
        )
    document["secretsprovider"] = wanted
    return f"{stack_file_name(stack)}: secretsprovider: {current} -> {wanted}"


def apply(answers: dict[str, Any], documents: dict[str, Any]) -> list[str]:
    """Write the answers into the documents; the changed keys, as `file: key: old -> new`."""
    changes = []

    def put(stack: str, path: str, value: Any) -> None:
        before = stack_files.plain(stack_files.get(documents[stack], path))
        if stack_files.put(documents[stack], path, value):
            changes.append(f"{stack_file_name(stack)}: {path}: {_show(before)} -> {_show(value)}")

    for question in QUESTIONS:
        value = answers[question.name]
        for stack in question.stacks:
            current = stack_files.get(documents[stack], question.path)
            if value is None and not question.required and stack_files.is_example(current):
                put(stack, question.path, None)  # an example must not survive unanswered
            elif value == NONE:
                put(stack, question.path, None)
            elif value is not None and (current is not None or value):
                put(stack, question.path, value)
    put("staging", "platform.serving.model_readers", _model_readers(answers, documents["staging"]))
    if stack_files.is_example(stack_files.get(documents["prod"], "platform.serving.model")):
        # A fresh prod serves nothing until QA's first promotion (`make promote`).
        put("prod", "platform.serving.model", None)
    for stack, document in documents.items():
        change = _secrets_provider(stack, document, answers["secrets-key"])
        changes += [change] if change else []
    return changes


def validate(documents: dict[str, Any]) -> None:
    """The stacks' own model, and no example value left; both files before either is written."""
    problems = []
    for stack, document in documents.items():
        name = stack_file_name(stack)
        config = stack_files.plain(document["config"])
        try:
            parse_stack_config(config, source=name)
        except ConfigError as error:
            problems.append(str(error))
        problems += [f"{name}: {key}: still an example value" for key in
                     stack_files.example_values(stack_files.plain(document))]  # fmt: skip
    if problems:
        raise InitError("\n".join(problems))


def review(documents: dict[str, Any]) -> list[str]:
    """What a person must still look at: what no answer could settle."""
    lines = [
        "Review before the first deploy:",
        "  - every member under access: must exist (IAM refuses unknown groups and users);",
    ]
    if not stack_files.get(documents["staging"], "platform.serving.model_readers_from"):
        lines += [
            "  - Pulumi.staging.yaml serving.model_readers: add prod's Vertex AI service agent",
            "    (serviceAccount:service-<prod project number>@gcp-sa-aiplatform.iam"
            ".gserviceaccount.com);",
        ]
    if stack_files.get(documents["prod"], "platform.cost.budget.billing_account"):
        lines.append("  - prod's budget amount (cost.budget.monthly_usd) is the example's;")
    return [
        *lines,
        "  - sizes and schedules (serving, ingestion, pipelines) are the example's: "
        "docs/configuration.md;",
        "  - then: make doctor STACK=prod && make doctor STACK=staging (docs/deploy-setup.md).",
    ]


def run(
    given: dict[str, str], root: Path, ask: Callable[[str], str] | None
) -> tuple[list[str], list[str]]:
    """Gather, apply, validate and write; the changes made, and what to review."""
    paths = {stack: root / stack_file_name(stack) for stack in STACKS}
    documents = {}
    for stack, path in paths.items():
        try:
            documents[stack] = stack_files.load(path)
        except FileNotFoundError:
            raise InitError(f"{path.name}: not found in {root}") from None
    answers = gather(given, documents, ask)
    changes = apply(answers, documents)
    validate(documents)
    for stack, path in paths.items():
        text = stack_files.dump(documents[stack])
        if text != path.read_text(encoding="utf-8"):
            path.write_text(text, encoding="utf-8")
    return changes, review(documents)


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make init", description=__doc__.split("\n")[0].split(": ", 1)[1]
    )
    for question in QUESTIONS:
        parser.add_argument(f"--{question.name}", help=question.prompt)
    parser.add_argument(
        "--no-input", action="store_true", help="never ask: flags and the files' values only"
    )
    parser.add_argument("--dir", type=Path, default=PROJECT_ROOT, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _arguments().parse_args(argv)
    given = {
        q.name: getattr(args, q.name.replace("-", "_"))
        for q in QUESTIONS
        if getattr(args, q.name.replace("-", "_")) is not None
    }
    interactive = not args.no_input and sys.stdin.isatty()  # flags given are not asked again
    try:
        changes, to_review = run(given, args.dir, input if interactive else None)
    except (InitError, ValueError) as error:
        print(f"make init: {error}", file=sys.stderr)
        return 2
    wrap = {"subsequent_indent": "    ", "break_long_words": False, "break_on_hyphens": False}
    for change in changes or ["the stack files already hold these values"]:
        print("\n".join(textwrap.wrap(change, 100, **wrap)))
    print("\n".join(to_review))
    return 0


if __name__ == "__main__":
    sys.exit(main())
