"""What the real provider and GCP would refuse, checked on every resource the offline plan records.

The mocks (offline.py) echo inputs; these rules make them refuse what `pulumi up` would:

- **auto-naming** exactly as pulumi-gcp does it (`AUTONAMED`): the physical name the provider
  would send, with a suffix seeded by stack and logical name so plans stay comparable;
- **inputs against the provider's own types** (provider_schema.py): unknown keys at any
  depth, missing required inputs, wrong types, enum values;
- **GCP's ID and name rules** (`NAME_RULES`) on the final names, and on labels and members;
- **first-deploy consistency**, **a fresh organisation** and **bucket IAM conditions**: see
  `check_record` and iam_conditions.py.

Every rule names its source and its certainty (certain: the schema, the source or a documented
behaviour shows it; likely: a documented or known-issue mechanism; possible: unverified). A
`possible` rule warns; the others fail the plan. Each finding names the resource, the input and
the rule.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

RESOURCES_GO = "pulumi/pulumi-gcp provider/resources.go"


@dataclass(frozen=True)
class Rule:
    name: str
    source: str
    certainty: str  # certain | likely | possible

    @property
    def severity(self) -> str:
        return "warning" if self.certainty == "possible" else "error"


@dataclass(frozen=True)
class Finding:
    resource: str
    input: str
    message: str
    rule: Rule

    @property
    def severity(self) -> str:
        return self.rule.severity

    def __str__(self) -> str:
        return (
            f"{self.severity}: {self.resource}: {self.input}: {self.message} "
            f"[rule {self.rule.name}; {self.rule.certainty}; {self.rule.source}]"
        )


class PlanError(Exception):
    """The offline plan found what the provider or GCP would refuse."""

    def __init__(self, stack: str, findings: list[Finding]):
        self.findings = findings
        lines = "\n".join(f"  {f}" for f in findings)
        super().__init__(
            f"stack {stack}: {len(findings)} problem(s) `pulumi up` would hit:\n{lines}"
        )


# --- auto-naming ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoName:
    property: str
    maxlen: int
    separator: str = "-"
    lowercase: bool = False
    source: str = f'{RESOURCES_GO}: prov.SetAutonaming(255, "-")'


# Overrides resources.go declares for the types this program uses; every other gcp resource with a
# string `name` input gets SetAutonaming's default (pulumi-terraform-bridge
# pkg/tfbridge/info/autonaming.go: `<logical name><separator><7 random hex>`, refused when longer
# than maxlen).
_LOWER = AutoName("name", 63, lowercase=True, source=f"{RESOURCES_GO}: lowercaseAutoName()")
AUTONAMED: dict[str, AutoName] = {
    "gcp:storage/bucket:Bucket": AutoName(
        "name", 222, source=f"{RESOURCES_GO}: google_storage_bucket"
    ),
    "gcp:serviceaccount/account:Account": AutoName(
        "accountId", 30, source=f"{RESOURCES_GO}: google_service_account"
    ),
    "gcp:projects/iAMCustomRole:IAMCustomRole": AutoName(
        "roleId", 255, source=f"{RESOURCES_GO}: google_project_iam_custom_role"
    ),
    "gcp:compute/network:Network": _LOWER,
    "gcp:compute/subnetwork:Subnetwork": _LOWER,
    "gcp:compute/router:Router": _LOWER,
    "gcp:compute/routerNat:RouterNat": _LOWER,
}
AUTONAME_RULE = Rule(
    "autonaming", f"{RESOURCES_GO}; pulumi-terraform-bridge autonaming.go", "certain"
)


def autoname_spec(token: str, schema: dict | None) -> AutoName | None:
    if token in AUTONAMED:
        return AUTONAMED[token]
    props = (schema or {}).get("props", {})
    name = props.get("name")
    if token.startswith("gcp:") and name and name["schema"]["kind"] == "str":
        return AutoName("name", 255)
    return None


def autoname(
    token: str, logical: str, stack: str, inputs: dict, schema: dict | None
) -> tuple[dict, list[Finding]]:
    """Inputs with the name the provider would generate, where the program sets none."""
    spec = autoname_spec(token, schema)
    if spec is None or inputs.get(spec.property) not in (None, ""):
        return inputs, []
    prefix = (logical.lower() if spec.lowercase else logical) + spec.separator
    suffix = hashlib.sha256(f"{stack}/{logical}".encode()).hexdigest()[:7]
    if len(prefix) + 7 > spec.maxlen:
        message = f"auto-name {prefix}<7 hex> is longer than {spec.maxlen} characters"
        return inputs, [Finding(logical, spec.property, message, AUTONAME_RULE)]
    return {**inputs, spec.property: prefix + suffix}, []


# --- inputs against the provider's types ----------------------------------------------------

TYPES_RULE = Rule(
    "input-types", "the installed package's *Args classes (provider schema)", "certain"
)
ENUM_RULE = Rule(
    "enum", "'Possible values' of the *Args docstrings (magic-modules enum_values)", "certain"
)


def check_inputs(logical: str, inputs: dict, schema: dict) -> list[Finding]:
    """Unknown keys at any depth, missing required inputs, wrong types and enum values."""
    return list(_check_object(logical, "", inputs, schema))


def _check_object(logical: str, path: str, value: Any, schema: dict) -> Iterator[Finding]:
    props = schema["props"]
    for key, item in value.items():
        if key.startswith("__"):
            continue  # engine metadata (__defaults)
        where = f"{path}.{key}" if path else key
        if key not in props:
            close = difflib.get_close_matches(_camel(key), list(props), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = f"{schema['class']} has no input {key!r}{hint}"
            yield Finding(logical, where, known, TYPES_RULE)
            continue
        if item is None:
            continue
        yield from _check_value(logical, where, item, props[key])
    for key, prop in props.items():
        if prop["required"] and value.get(key) is None:
            where = f"{path}.{key}" if path else key
            yield Finding(logical, where, f"required by {schema['class']} but not set", TYPES_RULE)


def _check_value(logical: str, where: str, value: Any, prop: dict) -> Iterator[Finding]:
    value = _unsecret(value)
    yield from _check_type(logical, where, value, prop["schema"])
    enum = prop.get("enum")
    if enum and isinstance(value, str) and value not in enum:
        yield Finding(logical, where, f"{value!r} is not one of {', '.join(enum)}", ENUM_RULE)


def _check_type(logical: str, where: str, value: Any, schema: dict) -> Iterator[Finding]:
    kind = schema["kind"]
    value = _unsecret(value)
    if value is None or kind == "any" or _is_unknown(value):
        return
    if kind == "object":
        if isinstance(value, dict):
            yield from _check_object(logical, where, value, schema)
            return
    elif kind == "list":
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from _check_type(logical, f"{where}[{i}]", item, schema["item"])
            return
    elif kind == "map":
        if isinstance(value, dict):
            for key, item in value.items():
                yield from _check_type(logical, f"{where}.{key}", item, schema["value"])
            return
    elif _scalar_ok(kind, value):
        return
    wanted = {"object": "an object", "list": "a list", "map": "a map"}.get(kind, kind)
    got = type(value).__name__
    yield Finding(logical, where, f"expects {wanted}, got {got} {value!r:.60}", TYPES_RULE)


def _scalar_ok(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return kind == "bool"
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":  # the engine sends every number as a float
        return isinstance(value, int | float) and float(value).is_integer()
    if kind == "float":
        return isinstance(value, int | float)
    return kind == "bool" and isinstance(value, bool)


def _unsecret(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"secret"}:
        return value["secret"]
    return value


def _is_unknown(value: Any) -> bool:
    return value == "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown sentinel


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# --- GCP's ID and name rules ------------------------------------------------------------------


@dataclass(frozen=True)
class NameRule:
    pattern: str
    described: str
    rule: Rule

    def problem(self, value: str) -> str | None:
        if re.fullmatch(self.pattern, value):
            return None
        return f"{value!r} is not {self.described}"


def _rule(name: str, pattern: str, described: str, source: str, certainty: str) -> NameRule:
    return NameRule(pattern, described, Rule(name, source, certainty))


_RFC1035 = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?"
MM = "GoogleCloudPlatform/magic-modules mmv1/products"
NAME_RULES: dict[tuple[str, str], NameRule] = {
    ("gcp:vertex/aiEndpoint:AiEndpoint", "name"): _rule(
        "vertex-endpoint-id", r"[1-9][0-9]{0,9}",
        "numeric with no leading zero, at most 10 digits",
        f"{MM}/vertexai/Endpoint.yaml (name, create_url ?endpointId=); "
        "hashicorp/terraform-provider-google#12963", "certain",
    ),
    ("gcp:serviceaccount/account:Account", "accountId"): _rule(
        "service-account-id", r"[a-z](?:[-a-z0-9]{4,28}[a-z0-9])",
        "6-30 characters: lowercase letters, digits, hyphens, starting with a letter",
        "terraform-provider-google google_service_account account_id validation; IAM docs",
        "certain",
    ),
    ("gcp:storage/bucket:Bucket", "name"): _rule(
        "bucket-name", r"(?!goog)(?!.*google)[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]",
        "3-63 lowercase letters, digits, '-' or '_', not starting with 'goog' nor containing "
        "'google'", "cloud.google.com/storage/docs/buckets#naming", "certain",
    ),
    ("gcp:bigquery/dataset:Dataset", "datasetId"): _rule(
        "dataset-id", r"[A-Za-z0-9_]{1,1024}", "letters, digits and underscores (1-1024)",
        f"{MM}/bigquery/Dataset.yaml (datasetId validation)", "certain",
    ),
    ("gcp:bigquery/table:Table", "tableId"): _rule(
        "table-id", r"[\w -]{1,1024}", "letters, digits, '_', '-' or spaces (1-1024)",
        "cloud.google.com/bigquery/docs/tables#table_naming", "likely",
    ),
    ("gcp:iam/workloadIdentityPool:WorkloadIdentityPool", "workloadIdentityPoolId"): _rule(
        "pool-id", r"(?!gcp-)[a-z0-9-]{4,32}", "4-32 lowercase letters, digits or '-', not 'gcp-…'",
        f"{MM}/iambeta/WorkloadIdentityPool.yaml", "certain",
    ),
    (
        "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
        "workloadIdentityPoolProviderId",
    ): _rule(
        "pool-provider-id", r"(?!gcp-)[a-z0-9-]{4,32}",
        "4-32 lowercase letters, digits or '-', not 'gcp-…'",
        f"{MM}/iambeta/WorkloadIdentityPoolProvider.yaml", "certain",
    ),
    ("gcp:artifactregistry/repository:Repository", "repositoryId"): _rule(
        "repository-id", _RFC1035, "a letter then up to 62 lowercase letters, digits or '-'",
        "cloud.google.com/artifact-registry/docs/repositories/create-repos", "likely",
    ),
    ("gcp:projects/iAMCustomRole:IAMCustomRole", "roleId"): _rule(
        "custom-role-id", r"[a-zA-Z0-9_.]{3,64}", "3-64 letters, digits, '_' or '.'",
        "cloud.google.com/iam/docs/reference/rest/v1/projects.roles/create (roleId)", "certain",
    ),
    ("gcp:logging/metric:Metric", "name"): _rule(
        "log-metric-name", r"[A-Za-z0-9_\-.,+!*'()%/]{1,100}",
        "at most 100 of A-Z a-z 0-9 _-.,+!*',()%/",
        "cloud.google.com/logging/docs/reference/v2/rest/v2/projects.metrics (name)", "certain",
    ),
    ("gcp:cloudfunctionsv2/function:Function", "name"): _rule(
        "function-name", _RFC1035, "a letter then up to 62 lowercase letters, digits or '-'",
        f"{RESOURCES_GO} google_cloudfunctions_function comment; Cloud Run service names",
        "likely",
    ),
    ("gcp:workbench/instance:Instance", "name"): _rule(
        "workbench-name", _RFC1035, "an RFC 1035 name", f"{MM}/workbench/Instance.yaml", "likely",
    ),
    ("gcp:colab/schedule:Schedule", "displayName"): _rule(
        "schedule-display-name", r".{1,128}", "at most 128 characters",
        "Vertex AI Schedule displayName (unverified limit)", "possible",
    ),
    **{
        (f"gcp:compute/{kind}", "name"): _rule(
            "compute-name", _RFC1035, "an RFC 1035 name (lowercase, at most 63)",
            "cloud.google.com/compute/docs/naming-resources", "certain",
        )
        for kind in ("network:Network", "subnetwork:Subnetwork", "router:Router",
                     "routerNat:RouterNat")
    },
}  # fmt: skip
LABEL_RULE = Rule(
    "labels", "cloud.google.com/resource-manager/docs/labels-overview#requirements", "certain"
)
MEMBER_RULE = Rule("iam-member", "cloud.google.com/iam/docs/principal-identifiers", "certain")
_LABEL = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_MEMBER = re.compile(
    r"(user|group|serviceAccount|domain|principal|principalSet|deleted:\w+):\S+|allUsers|"
    r"allAuthenticatedUsers|projectOwner:\S+|projectEditor:\S+|projectViewer:\S+"
)
LABEL_INPUTS = ("labels", "userLabels")
VERSIONING_RETENTION = Rule(
    "bucket-versioning-retention",
    'sonarsource RSPEC-6412 ("Object versioning cannot be enabled on a bucket with a retention '
    'policy"); cloud.google.com/storage/docs/bucket-lock',
    "likely",
)


def check_names(token: str, logical: str, inputs: dict) -> list[Finding]:
    """The GCP rules for the type's ids and names, labels and IAM members."""
    found = []
    for (rule_type, prop), rule in NAME_RULES.items():
        value = inputs.get(prop)
        if rule_type == token and isinstance(value, str):
            problem = rule.problem(value)
            if problem:
                found.append(Finding(logical, prop, problem, rule.rule))
    # A notification channel's `labels` configure it (email_address), they are not labels.
    label_inputs = LABEL_INPUTS if "notificationChannel" not in token else ("userLabels",)
    for key in label_inputs:
        for label, value in (inputs.get(key) or {}).items():
            if not _LABEL.fullmatch(label) or not _LABEL_VALUE.fullmatch(str(value)):
                message = f"label {label}={value!r}: keys and values are lowercase, at most 63"
                found.append(Finding(logical, f"{key}.{label}", message, LABEL_RULE))
    member = inputs.get("member")
    is_member = token.lower().endswith("iammember") and isinstance(member, str)
    if is_member and not _MEMBER.fullmatch(member):
        message = f"{member!r} is not a principal identifier (user:, group:, serviceAccount:…)"
        found.append(Finding(logical, "member", message, MEMBER_RULE))
    versioning = (inputs.get("versioning") or {}).get("enabled")
    if token == "gcp:storage/bucket:Bucket" and versioning and inputs.get("retentionPolicy"):
        message = "versioning and a retention policy on one bucket: Cloud Storage refuses both"
        found.append(Finding(logical, "retentionPolicy", message, VERSIONING_RETENTION))
    return found
