"""Persona permissions: declared beside each resource, documented from the declarations, and
bound for exactly the members the stack's `access:` config names."""

from __future__ import annotations

import copy
from collections import Counter

import pytest

from resources.access import (
    PERSONAS,
    PROJECT,
    Grantee,
    Permission,
    named_members,
    permissions_reference,
)
from resources.data_lake import STORAGE_ANALYTICS
from resources.identities import WORKLOADS, Identities
from stacks.config import PROJECT_ROOT, load_stack_file, stack_config_values
from stacks.platform import ALL_COMPONENTS
from tests.infra.records import bindings, held_by
from tooling.plan.offline import run_program

PEOPLE = (*PERSONAS, Grantee.DEPLOYERS)


def test_permissions_reference_is_current():
    """docs/permissions.md is generated from the components; regenerate with `make docs`."""
    committed = (PROJECT_ROOT / "docs" / "permissions.md").read_text()
    assert committed == permissions_reference(ALL_COMPONENTS), "docs/permissions.md is stale"


def test_reference_has_a_table_per_persona_and_per_resource():
    reference = permissions_reference(ALL_COMPONENTS)
    for persona in PERSONAS:
        assert f"### {persona.title} (`access.{persona.value}`)" in reference
    for heading in ("### Landing bucket", "### The stack's project", "### `ingestion_log` table"):
        assert heading in reference


def test_declarations_name_their_targets_and_roles():
    for component in ALL_COMPONENTS:
        for perm in component.PERMISSIONS:
            assert perm.target in component.TARGETS or perm.target == PROJECT, (component, perm)
            assert perm.role.startswith("roles/") or perm.role in component.CUSTOM_ROLES
            assert perm.why, perm


def test_each_project_role_is_declared_once_per_grantee():
    """Two components binding the same project role to the same member would be one binding in
    GCP: destroying either would remove it for both."""
    pairs = Counter(
        (perm.grantee, perm.role)
        for component in ALL_COMPONENTS
        for perm in component.PERMISSIONS
        if perm.target == PROJECT
    )
    assert [pair for pair, count in pairs.items() if count > 1] == []


@pytest.mark.parametrize(
    ("role", "target", "problem"),
    [
        ("roles/editor", "landing", "basic role"),
        ("roles/iam.serviceAccountUser", PROJECT, "act as any account"),
        ("roles/iam.serviceAccountTokenCreator", PROJECT, "act as any account"),
    ],
)
def test_forbidden_grants_cannot_be_declared(role, target, problem):
    with pytest.raises(ValueError, match=problem):
        Permission(Grantee.QA, role, target, "because")


def test_binding_names_do_not_depend_on_member_order():
    one = dict(named_members(["group:a@example.com", "user:b@example.com"]))
    other = dict(named_members(["user:b@example.com", "group:a@example.com"]))
    assert one == other and len(one) == 2


def _targets_in(record, component) -> set[str]:
    """The component's targets this stack has: Identities holds an account per workload run."""
    if component is Identities:
        names = {r.name for r in record.resources}
        return {
            f"{w.value}_account"
            for w in WORKLOADS
            if f"identities-{w.value.replace('_', '-')}" in names
        }
    return set(component.TARGETS)


def _expected_people_bindings(record, access) -> Counter:
    """(component type, role, member, project-level?) for every persona and deployer member."""
    components = {r.type: r for r in record.resources if r.is_component}
    custom_roles = {
        r.inputs["roleId"]: r.outputs["name"]
        for r in record.resources
        if r.type == "gcp:projects/iAMCustomRole:IAMCustomRole"
    }
    expected = Counter()
    for component in ALL_COMPONENTS:
        if component.TYPE not in components:
            continue
        for perm in component.PERMISSIONS:
            if perm.grantee not in PEOPLE:
                continue
            if perm.target != PROJECT and perm.target not in _targets_in(record, component):
                continue
            role = perm.role
            if role in component.CUSTOM_ROLES:
                (role,) = [name for rid, name in custom_roles.items() if rid.endswith(role)]
            for member in getattr(access, perm.grantee.value):
                expected[(component.TYPE, role, member, perm.target == PROJECT)] += 1
    return expected


def test_people_get_exactly_the_declared_bindings(stack_record):
    access = load_stack_file(PROJECT_ROOT / f"Pulumi.{stack_record.stack}.yaml").platform.access
    members = {m for grantee in PEOPLE for m in getattr(access, grantee.value)}
    assert members, "the committed stacks should exercise persona bindings"
    actual = Counter(
        (stack_record.parent(b.record).type, b.role, b.member, b.target == "project")
        for b in bindings(stack_record)
        if b.member in members
    )
    assert actual == _expected_people_bindings(stack_record, access)
    assert sum(actual.values()) >= 39


def test_deployers_may_act_as_each_workload_account_and_nothing_else(stack_record):
    config = load_stack_file(PROJECT_ROOT / f"Pulumi.{stack_record.stack}.yaml")
    (deployer,) = config.platform.access.deployers
    accounts = [
        r
        for r in stack_record.resources
        if r.type.endswith("account:Account")
        and stack_record.parent(r).type == "tabular-mlops:iam:Identities"
    ]
    assert held_by(stack_record, deployer) == {
        ("serviceaccount", "roles/iam.serviceAccountUser", a.outputs["name"]) for a in accounts
    }


def test_no_access_config_means_no_bindings_for_people():
    config = copy.deepcopy(stack_config_values("staging"))
    del config["tabular-mlops:platform"]["access"]
    record = run_program("staging", config=config)
    owner = f"user:{config['tabular-mlops:platform']['workbench']['owner']}"
    people = [
        b
        for b in bindings(record)
        # GitHub Actions jobs (principal://…) are CI, not people; nor is the group Google writes
        # Cloud Storage usage logs as.
        if not b.member.startswith(("serviceAccount:", "principal://"))
        and b.member not in (owner, STORAGE_ANALYTICS)
    ]
    assert people == []
    # The platform's own identities are still wired.
    assert any(b.member.startswith("serviceAccount:ingest-") for b in bindings(record))
