"""Who may do what, declared beside each resource: personas, workloads and service agents.

Every component lists, as class-level data, the permissions it grants (`PERMISSIONS`) on the
resources it owns (`TARGETS`). The same declarations are used twice:

- at deploy time, `PlatformComponent.grant()` binds each declared role, on the resource it names,
  to the members the stack gives for that grantee (a persona's groups and users from `access:`, a
  workload's service account). A grantee without members gets no binding;
- `permissions_reference()` renders them as docs/permissions.md, so the documented permissions are
  exactly the ones deployed.

Bindings are always additive (`*IAMMember`): the platform never takes over a resource's whole IAM
policy, so grants made outside this program are left alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import pulumi


class Grantee(StrEnum):
    """Everyone the platform grants something to."""

    # Personas: people, mapped to groups and users by the stack's `access:` config (same keys).
    DATA_ANALYSTS = "data_analysts"
    DATA_SCIENTISTS = "data_scientists"
    QA = "qa"
    ML_ENGINEERS = "ml_engineers"
    STAKEHOLDERS = "stakeholders"
    # Whoever runs `pulumi up` (people or CI): must act as the workload accounts to deploy them.
    DEPLOYERS = "deployers"
    # Workloads: one dedicated service account each, created by the Identities component.
    INGESTION = "ingestion"
    INGESTION_TRIGGER = "ingestion_trigger"
    FUNCTION_BUILD = "function_build"
    PIPELINE_RUNNER = "pipeline_runner"
    WORKBENCH = "workbench"
    # CI/CD (resources/ci.py): the identities GitHub Actions jobs act as, and the jobs themselves.
    CI_DEPLOYER = "ci_deployer"
    CI_PREVIEWER = "ci_previewer"
    DEPLOY_JOBS = "deploy_jobs"
    PREVIEW_JOBS = "preview_jobs"
    # Others: the Workbench instance's owner (from config) and Google-managed service agents.
    WORKBENCH_OWNER = "workbench_owner"
    STORAGE_AGENT = "storage_agent"
    STORAGE_ANALYTICS = "storage_analytics"
    KMS_USERS = "kms_users"
    # Identities of another stack's project that deploy this stack's models (prod promoting from
    # staging): its deployer and its Vertex AI service agent (`serving.model_readers`).
    MODEL_READERS = "model_readers"

    @property
    def title(self) -> str:
        return _TITLES[self]


PERSONAS = (
    Grantee.DATA_ANALYSTS,
    Grantee.DATA_SCIENTISTS,
    Grantee.QA,
    Grantee.ML_ENGINEERS,
    Grantee.STAKEHOLDERS,
)
WORKLOADS = (
    Grantee.INGESTION,
    Grantee.INGESTION_TRIGGER,
    Grantee.FUNCTION_BUILD,
    Grantee.PIPELINE_RUNNER,
    Grantee.WORKBENCH,
)
_TITLES = {
    Grantee.DATA_ANALYSTS: "Data analyst",
    Grantee.DATA_SCIENTISTS: "Data scientist",
    Grantee.QA: "QA",
    Grantee.ML_ENGINEERS: "ML engineer",
    Grantee.STAKEHOLDERS: "Stakeholder",
    Grantee.DEPLOYERS: "Deployer (`pulumi up`)",
    Grantee.INGESTION: "Ingestion function (runtime)",
    Grantee.INGESTION_TRIGGER: "Ingestion trigger (Eventarc)",
    Grantee.FUNCTION_BUILD: "Function build (Cloud Build)",
    Grantee.PIPELINE_RUNNER: "Pipeline runner (Vertex AI Pipelines)",
    Grantee.WORKBENCH: "Workbench instance",
    Grantee.CI_DEPLOYER: "CI deployer (`pulumi up` from GitHub Actions)",
    Grantee.CI_PREVIEWER: "CI previewer (`pulumi preview` on pull requests)",
    Grantee.DEPLOY_JOBS: "GitHub Actions jobs in the stack's deploy environment",
    Grantee.PREVIEW_JOBS: "GitHub Actions pull-request jobs of the repository",
    Grantee.WORKBENCH_OWNER: "Workbench owner",
    Grantee.STORAGE_AGENT: "Cloud Storage service agent",
    Grantee.STORAGE_ANALYTICS: "Cloud Storage usage-log writer (Google's own group)",
    Grantee.KMS_USERS: "Service agents that encrypt with the CMEK key",
    Grantee.MODEL_READERS: "Model readers (the project a model is promoted to)",
}

PROJECT = "project"
"""The target key of roles that exist only at project level (running BigQuery jobs, creating
Vertex AI jobs, receiving Eventarc events…). Every other grant names a resource."""

BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
# Roles that let a principal act as, or mint tokens for, any service account they are granted on:
# only ever granted on one service account, never on the project.
IMPERSONATION_ROLES = frozenset(
    {
        "roles/iam.serviceAccountUser",
        "roles/iam.serviceAccountTokenCreator",
        "roles/iam.serviceAccountOpenIdTokenCreator",
        "roles/iam.workloadIdentityUser",
    }
)


@dataclass(frozen=True)
class Condition:
    """An IAM condition narrowing a grant (title, CEL expression)."""

    title: str
    expression: str
    description: str = ""

    def render(self, context: Mapping[str, str]) -> dict[str, str]:
        """The condition as a binding input, `{placeholders}` in the expression filled in."""
        try:
            expression = self.expression.format(**context)
        except KeyError as missing:
            raise ValueError(
                f"condition {self.title!r} needs {missing} from the component"
            ) from None
        return {"title": self.title, "expression": expression, "description": self.description}


@dataclass(frozen=True)
class Permission:
    """One role a grantee holds on one of the component's resources, and why."""

    grantee: Grantee
    role: str
    """A predefined role (`roles/...`) or the key of one of the component's custom roles."""
    target: str
    """A key of the component's TARGETS, or PROJECT."""
    why: str
    condition: Condition | None = None
    """Narrows the grant further; placeholders are filled by the component at deploy time."""
    shared: bool = False
    """Other workloads in the project may rely on the same binding (a service agent's role):
    `pulumi destroy` leaves it in place rather than pulling it from under them."""

    def __post_init__(self) -> None:
        if self.role in BASIC_ROLES:
            raise ValueError(f"{self.role} is a basic role; grant a predefined role instead")
        if self.role in IMPERSONATION_ROLES and self.target == PROJECT:
            raise ValueError(f"{self.role} at project level lets {self.grantee} act as any account")


@dataclass(frozen=True)
class CustomRole:
    """A project custom role, for when every predefined role grants more than a persona needs."""

    title: str
    permissions: tuple[str, ...]
    description: str


Binder = Callable[
    [str, pulumi.Input[str], pulumi.Input[str], dict | None, pulumi.ResourceOptions | None],
    pulumi.Resource,
]
"""Creates one IAM member binding: (resource name, role, member, condition, options)."""

Members = Mapping[Grantee, Sequence[pulumi.Input[str]] | Mapping[str, pulumi.Input[str]]]
"""The members of each grantee in this stack: `user:…`/`group:…` for personas, a
`serviceAccount:…` output for a workload, or several outputs by name (service agents by service).
Grantees that are absent get no bindings."""


def project_roles(
    components: Iterable[type], custom: Mapping[str, str], *, excluding: Iterable[Grantee] = ()
) -> tuple[str, ...]:
    """Every role `components` grant at project level (custom role keys resolved by `custom`),
    except those granted to `excluding`: what a delegated IAM administrator may hand out."""
    left_out = set(excluding)
    roles = set()
    for component in components:
        for perm in getattr(component, "PERMISSIONS", ()):
            if perm.target != PROJECT or perm.grantee in left_out:
                continue
            if not perm.role.startswith("roles/") and perm.role not in custom:
                raise ValueError(f"{component.__name__}: custom role {perm.role!r} has no name")
            roles.add(custom.get(perm.role, perm.role))
    return tuple(sorted(roles))


def role_slug(role: str) -> str:
    """'roles/storage.objectViewer' -> 'storage-objectviewer', for resource names."""
    return re.sub(r"[^a-z0-9]+", "-", role.removeprefix("roles/").lower()).strip("-")


def named_members(
    members: Sequence[pulumi.Input[str]] | Mapping[str, pulumi.Input[str]],
) -> list[tuple[str, pulumi.Input[str]]]:
    """(resource-name suffix, member) pairs, stable whatever the order members are listed in.

    A configured member is named by a short digest of itself, so reordering an `access:` list
    never renames (and so re-creates) a binding; named outputs by their name; a lone output
    (a workload's account) needs no suffix.
    """
    if isinstance(members, Mapping):
        return [(f"-{key}", member) for key, member in members.items()]
    pairs = []
    for member in members:
        if isinstance(member, str):
            pairs.append(("-" + hashlib.sha256(member.encode()).hexdigest()[:8], member))
        elif len(members) == 1:
            pairs.append(("", member))
        else:
            raise ValueError("several unnamed output members: pass them as a mapping by name")
    return pairs


# --- generated documentation --------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """A permission with the component and resource it was declared on, for the reference."""

    component: str
    resource: str
    role: str
    why: str
    grantee: Grantee
    conditional: bool


def declared(components: Iterable[type]) -> list[Declared]:
    """Every permission of the given component classes, with its resource's description."""
    rows = []
    for component in components:
        targets = {PROJECT: "the stack's project", **getattr(component, "TARGETS", {})}
        custom = getattr(component, "CUSTOM_ROLES", {})
        for perm in getattr(component, "PERMISSIONS", ()):
            role = perm.role
            if role in custom:
                spec = custom[role]
                role = f"custom `{role}` ({', '.join(spec.permissions)})"
            else:
                role = f"`{role}`"
            rows.append(
                Declared(
                    component=component.__name__,
                    resource=targets[perm.target],
                    role=role,
                    why=perm.why,
                    grantee=perm.grantee,
                    conditional=perm.condition is not None,
                )
            )
    return rows


def permissions_reference(components: Iterable[type]) -> str:
    """docs/permissions.md: a table per persona, per resource, and the workloads' grants."""
    rows = declared(components)

    def role_cell(row: Declared) -> str:
        return row.role + (" (with condition)" if row.conditional else "")

    lines = [
        "# Permissions",
        "",
        "Generated from the `PERMISSIONS` each component in `resources/` declares beside its",
        "resources, by `make docs`; a test fails when it is out of date. Roles are granted on the",
        "narrowest resource that has an IAM policy; `the stack's project` appears only for roles",
        "that exist at no narrower level (running BigQuery jobs, creating Vertex AI jobs…).",
        "No basic roles, no public members, no project-level service-account user or token",
        "creator.",
        "",
        "Persona bindings are created for exactly the members listed under `access:` in the stack",
        "file (docs/configuration.md); a persona with no members gets nothing.",
        "",
        "## By persona",
    ]
    for persona in (*PERSONAS, Grantee.DEPLOYERS):
        mine = [r for r in rows if r.grantee == persona]
        lines += ["", f"### {persona.title} (`access.{persona.value}`)", ""]
        lines += ["| resource | role | why |", "|---|---|---|"]
        lines += [f"| {r.resource} | {role_cell(r)} | {r.why} |" for r in mine]
    lines += ["", "## By resource"]
    for resource in dict.fromkeys(r.resource for r in rows):
        mine = [r for r in rows if r.resource == resource]
        lines += ["", f"### {resource[0].upper()}{resource[1:]}", ""]
        lines += ["| who | role | why |", "|---|---|---|"]
        lines += [f"| {r.grantee.title} | {role_cell(r)} | {r.why} |" for r in mine]
    lines += [
        "",
        "## Workload identities and service agents",
        "",
        "Each workload runs as its own service account (`resources/identities.py`); none uses",
        "the Compute Engine default account.",
    ]
    for grantee in Grantee:
        if grantee in (*PERSONAS, Grantee.DEPLOYERS):
            continue
        mine = [r for r in rows if r.grantee == grantee]
        if not mine:
            continue
        lines += ["", f"### {grantee.title}", ""]
        lines += ["| resource | role | why |", "|---|---|---|"]
        lines += [f"| {r.resource} | {role_cell(r)} | {r.why} |" for r in mine]
    return "\n".join(lines) + "\n"
