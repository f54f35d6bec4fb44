"""`make promote`: write the model version staging serves into the prod stack's config.

    python -m stacks.promote                                       # local staging's version
    python -m stacks.promote --from-vertex projects/P/locations/R/endpoints/ID  # an endpoint's
    python -m stacks.promote --model projects/P/locations/R/models/ID@3         # this version

The one key `platform.serving.model` of the stack file (`Pulumi.prod.yaml` by default) is edited
in place — comments, order and layout stay as they are — and the file is validated before it is
written. QA opens the PR with that change; its `pulumi preview` shows the Promotion resource's
update, and the merge's `pulumi up` rolls the version out (canary, then full traffic).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from stacks.config import NAMESPACE, PROJECT_ROOT, ConfigError, parse_stack_config

MODEL_KEY = ("config", f"{NAMESPACE}:platform", "serving", "model")


class PromoteError(ValueError):
    """Nothing to promote, or a stack file that cannot take the change; says what and where."""


def served_by_local(root: Path | None, endpoint: str) -> str:
    """`<model id>@<version>` a local endpoint sends most traffic to."""
    from local.environment import DEFAULT_ROOT, LocalEnvironment
    from local.registry import LocalEndpoint

    env = LocalEnvironment(root=root or DEFAULT_ROOT)
    serving = LocalEndpoint(env.endpoints_dir, endpoint).serving()
    if serving is None:
        raise PromoteError(f"the local endpoint {endpoint} ({env.endpoints_dir}) serves no model")
    return serving.resource_name


def served_by_vertex(endpoint_name: str) -> str:
    """projects/P/locations/R/models/ID@VERSION a Vertex AI endpoint sends most traffic to."""
    from google.cloud import aiplatform

    match = re.match(r"^projects/([^/]+)/locations/([^/]+)/endpoints/[^/]+$", endpoint_name)
    if not match:
        raise PromoteError(f"{endpoint_name!r} is not projects/P/locations/R/endpoints/ID")
    endpoint = aiplatform.Endpoint(endpoint_name, project=match[1], location=match[2])
    split, deployed = endpoint.traffic_split, endpoint.list_models()
    if not deployed:
        raise PromoteError(f"the endpoint {endpoint_name} serves no model")
    top = max(deployed, key=lambda d: split.get(d.id, 0))
    model_id = top.model.rsplit("/models/", 1)[-1]
    # Vertex names the project by number; a model deployed there is in the endpoint's project,
    # which the stack files name by id.
    return f"projects/{match[1]}/locations/{match[2]}/models/{model_id}@{top.model_version_id}"


def set_scalar(text: str, path: tuple[str, ...], value: str) -> tuple[str, str | None]:
    """`text` with the block-style YAML key at `path` set to `value`; (new text, old value).

    Edits the one line (its comment kept at its column), or inserts the key as the first child of
    its parent when missing. Every other byte of the file is kept.
    """
    lines = text.splitlines(keepends=True)
    start, end, parent_indent = 0, len(lines), -1
    for depth, key in enumerate(path):
        last = depth == len(path) - 1
        found, child_indent = None, None
        for number in range(start, end):
            line = lines[number]
            content = line.strip()
            if not content or content.startswith("#"):
                continue
            indent = len(line) - len(line.lstrip(" "))
            child_indent = indent if child_indent is None else child_indent
            if indent == child_indent and re.match(rf"{re.escape(key)}\s*:(\s|$)", content):
                found = number
                break
        if found is None:
            if not last or child_indent is None:
                raise PromoteError(f"the stack file has no `{'.'.join(path[: depth + 1])}` key")
            lines.insert(start, f"{' ' * child_indent}{key}: {value}\n")
            return "".join(lines), None
        if last:
            line = lines[found]
            match = re.match(
                rf"^(?P<lead>\s*{re.escape(key)}\s*:\s*)(?P<old>[^#\n]*?)(?P<gap>[ \t]*)"
                r"(?P<comment>#.*)?(?P<eol>\n?)$",
                line,
            )
            if match is None or match["old"].startswith(("|", ">", "[", "{", "&", "*")):
                raise PromoteError(f"`{'.'.join(path)}` is not a one-line value: {line.strip()}")
            head = f"{match['lead']}{value}"
            comment = ""
            if match["comment"]:
                column = line.index(match["comment"], len(match["lead"]))
                comment = " " * max(1, column - len(head)) + match["comment"]
            lines[found] = head + comment + match["eol"]
            old = match["old"].strip()
            return "".join(lines), (None if old in ("", "null", "~") else old)
        parent_indent = len(lines[found]) - len(lines[found].lstrip(" "))
        start, end = found + 1, len(lines)
        for number in range(found + 1, len(lines)):
            content = lines[number].strip()
            indent = len(lines[number]) - len(lines[number].lstrip(" "))
            if content and not content.startswith("#") and indent <= parent_indent:
                end = number
                break
    raise AssertionError("unreachable")


def promote(stack_file: Path, model: str) -> str | None:
    """Write `model` into the stack file's `platform.serving.model`; return the previous value."""
    try:
        text = stack_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromoteError(f"stack file {stack_file} not found") from None
    new_text, old = set_scalar(text, MODEL_KEY, model)
    document = yaml.safe_load(new_text) or {}
    try:  # the file as `pulumi up` will read it, before anything is written
        parse_stack_config(document.get("config") or {}, source=stack_file.name)
    except ConfigError as error:
        raise PromoteError(str(error)) from None
    if document["config"][MODEL_KEY[1]]["serving"]["model"] != model:
        raise PromoteError(f"{stack_file.name}: the edit did not land on {'.'.join(MODEL_KEY)}")
    stack_file.write_text(new_text, encoding="utf-8")
    return old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.promote", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--from-local", default="staging", metavar="ENDPOINT", help="a local endpoint (default)"
    )
    source.add_argument("--from-vertex", metavar="ENDPOINT", help="a Vertex AI endpoint name")
    source.add_argument("--model", help="this model version")
    parser.add_argument("--root", type=Path, help="local state folder (default .local)")
    parser.add_argument(
        "--stack-file", type=Path, default=PROJECT_ROOT / "Pulumi.prod.yaml", help="to edit"
    )
    args = parser.parse_args(argv)
    try:
        if args.model:
            model = args.model
        elif args.from_vertex:
            model = served_by_vertex(args.from_vertex)
        else:
            model = served_by_local(args.root, args.from_local)
        old = promote(args.stack_file, model)
    except PromoteError as error:
        print(f"promote: {error}", file=sys.stderr)
        return 1
    if old == model:
        print(f"{args.stack_file.name}: platform.serving.model is already {model}")
    else:
        print(f"{args.stack_file.name}: platform.serving.model: {old or '(none)'} -> {model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
