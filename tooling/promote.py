"""`make promote`: write the model version staging serves into the prod stack's config.

    python -m tooling.promote --from-vertex projects/P/locations/R/endpoints/ID  # an endpoint's
    python -m tooling.promote --model projects/P/locations/R/models/ID@3         # this version
    python -m tooling.promote --local-copy        # local staging's version, into .local's copy

The one key `platform.serving.model` of the stack file (`Pulumi.prod.yaml` by default) is edited
in place through a round-trip YAML library (ruamel.yaml) — comments, order and layout stay as
they are — and the file is validated before it is written. QA opens the PR with that change; its
`pulumi preview` shows the Promotion resource's update, and the merge's `pulumi up` rolls the
version out (canary, then full traffic).

A model of the local registry exists in no GCP project: it is written only into the local copy
of the stack file (`.local/Pulumi.prod.yaml`, what `make demo` promotes into), never into the
committed one.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import yaml
from ruamel.yaml import YAMLError

from stacks.config import NAMESPACE, PROJECT_ROOT, ConfigError, parse_stack_config
from tooling import stack_files

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


def set_scalar(
    text: str, path: tuple[str, ...], value: str, source: str = "the stack file"
) -> tuple[str, str | None]:
    """`text` with the YAML key at `path` set to `value`; (new text, old value).

    A round trip through the YAML library (tooling/stack_files.py): comments, key order, quoting
    and layout stay as written; a missing key is added to its section, a missing section is an
    error (the file is not the stack file it should be).
    """
    try:
        document = stack_files.parse(text, source)
    except YAMLError as error:
        raise PromoteError(f"{_yaml_problem(error, source)} (check the indentation)") from None
    except ValueError as error:
        raise PromoteError(str(error)) from None
    section = document
    for depth, key in enumerate(path[:-1]):
        section = section.get(key) if isinstance(section, dict) else None
        if not isinstance(section, dict):
            raise PromoteError(f"{source} has no `{'.'.join(path[: depth + 1])}` key")
    old = section.get(path[-1])
    if isinstance(old, (dict, list)):
        raise PromoteError(f"{source}: `{'.'.join(path)}` is not a one-line value")
    section[path[-1]] = value
    return stack_files.dump(document), (None if old is None else str(old))


def _yaml_problem(error: YAMLError, source: str) -> str:
    """Where the parser stopped and why, on one line, as stacks/config.py reports PyYAML's."""
    mark = getattr(error, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{where}: not valid YAML: {problem}"


def local_stack_file(root: Path, stack: str = "prod") -> Path:
    """The local state's own copy of a stack file (made on first use): a rehearsal edits it."""
    copy = root / f"Pulumi.{stack}.yaml"
    if not copy.exists():
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / copy.name, copy)
    return copy


def is_local_model(model: str) -> bool:
    """A version of the local registry (named by the local stack), which no GCP project holds."""
    from local.environment import LocalEnvironment

    return model.split("/models/")[-1].startswith(LocalEnvironment().naming.resource(""))


def promote(stack_file: Path, model: str, local_copy: bool = False) -> str | None:
    """Write `model` into the stack file's `platform.serving.model`; return the previous value.

    A local model only goes into a local copy (`local_copy`): in a committed stack file it would
    name a model of the stack's project that cannot exist.
    """
    if is_local_model(model) and not local_copy:
        raise PromoteError(
            f"{stack_file.name}: {model} is a model of the local registry, which no GCP project "
            "holds; promote a registered version (FROM=projects/…/endpoints/ID or "
            "MODEL=projects/…/models/ID@N), or rehearse in the local copy (LOCAL=1)"
        )
    try:
        text = stack_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromoteError(f"stack file {stack_file} not found") from None
    new_text, old = set_scalar(text, MODEL_KEY, model, stack_file.name)
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
    parser = argparse.ArgumentParser(
        prog="python -m tooling.promote",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--from-local", default="staging", metavar="ENDPOINT", help="a local endpoint (default)"
    )
    parser.add_argument(
        "--local-copy",
        action="store_true",
        help="edit the local state's copy of the stack file (as make demo does), not the committed",
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
        stack_file = args.stack_file
        if args.local_copy:
            stack_file = local_stack_file(_local_root(args.root), stack_file.stem.split(".")[-1])
        old = promote(stack_file, model, local_copy=args.local_copy)
    except PromoteError as error:
        print(f"promote: {error}", file=sys.stderr)
        return 1
    if old == model:
        print(f"{stack_file.name}: platform.serving.model is already {model}; nothing to do")
        return 0
    print(f"{_shown(stack_file)}: platform.serving.model: {old or '(none)'} -> {model}")
    print(_next_steps(stack_file, model, args.local_copy))
    return 0


def _local_root(root: Path | None) -> Path:
    from local.environment import DEFAULT_ROOT

    return root or DEFAULT_ROOT


def _shown(path: Path) -> str:
    """A path as a person types it: relative to the project when inside it."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _next_steps(stack_file: Path, model: str, local_copy: bool) -> str:
    name = _shown(stack_file)
    if local_copy:
        return (
            f"next: a rehearsal — the committed {stack_file.name} is unchanged; compare with\n"
            f"  diff {stack_file.name} {name}"
        )
    stack = stack_file.stem.split(".")[-1]
    return (
        "next:\n"
        f"  git diff {name}    # review the one-line change\n"
        "  commit it on a branch and open a pull request: its preview\n"
        f"  (pulumi preview -s {stack}) shows the serving promotion moving to the new version;\n"
        "  the merge's pulumi up rolls it out (canary, then all traffic)"
    )


if __name__ == "__main__":
    sys.exit(main())
