"""What every component of the platform shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import pulumi
import pulumi_gcp as gcp

from resources.access import (
    PROJECT,
    Binder,
    CustomRole,
    Members,
    Permission,
    named_members,
    role_slug,
)


class RegionalArgs(Protocol):
    """What every regional component's args hold."""

    project: str
    region: str
    labels: Mapping[str, str]
    kms_key: str | None


class PlatformComponent(pulumi.ComponentResource):
    """A component whose children wait for whatever the component was told to wait for.

    Pulumi does not pass a component's `depends_on` to its children (pulumi/pulumi#8721): a bucket
    inside a component that depends on the Storage API would otherwise be created while the API is
    still being enabled. `self.child()` gives children `parent=self` plus those dependencies.
    """

    TYPE: str
    """The component's type token, `tabular-mlops:<module>:<Name>`."""
    APIS: tuple[str, ...] = ()
    """The Google APIs the component's resources need enabled first."""
    KMS_AGENTS: tuple[str, ...] = ()
    """Services whose agents must use the CMEK key for this component's resources (when set)."""
    TARGETS: ClassVar[Mapping[str, str]] = {}
    """The component's resources that carry grants: key -> description (for docs/permissions.md)."""
    PERMISSIONS: tuple[Permission, ...] = ()
    """Who may do what on those resources, and why (resources/access.py)."""
    CUSTOM_ROLES: ClassVar[Mapping[str, CustomRole]] = {}
    """Project custom roles the component defines, by the key its PERMISSIONS use as role."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, None, opts)
        self._name = name
        self._waits_for = opts.depends_on if opts is not None else None

    def child(self, **options) -> pulumi.ResourceOptions:
        """Options for a child resource: parented here, waiting on this component's dependencies."""
        return pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(parent=self, depends_on=self._waits_for),
            pulumi.ResourceOptions(**options),
        )

    def artifact_repository(
        self,
        resource_name: str,
        args: RegionalArgs,
        repository_id: str,
        format: str,
        description: str,
        *,
        cleanup_policies: list[dict[str, Any]] | None = None,
        **options: Any,
    ) -> gcp.artifactregistry.Repository:
        """An Artifact Registry repository of this component, in its project and region,
        labelled and encrypted like the rest; its cleanup policies, if any, applied for real
        (not as a dry run)."""
        cleanup = (
            {"cleanup_policy_dry_run": False, "cleanup_policies": cleanup_policies}
            if cleanup_policies
            else {}
        )
        return gcp.artifactregistry.Repository(
            resource_name,
            project=args.project,
            location=args.region,
            repository_id=repository_id,
            format=format,
            description=description,
            labels=dict(args.labels),
            kms_key_name=args.kms_key,
            **cleanup,
            **options,
            opts=self.child(),
        )

    def grant(
        self,
        project: str,
        members: Members,
        binders: Mapping[str, Binder],
        *,
        only: tuple[str, ...] | None = None,
        roles: Mapping[str, pulumi.Input[str]] | None = None,
        context: Mapping[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> list[pulumi.Resource]:
        """Create the bindings this component's PERMISSIONS declare, for the members given.

        `binders` create a binding on each target (PROJECT is built in); `only` restricts to some
        targets (to create those before, or after, other resources); `roles` resolves the keys of
        CUSTOM_ROLES to role names; `context` fills condition placeholders.
        """
        binders = {PROJECT: binder(self, gcp.projects.IAMMember, project=project), **binders}
        undeclared = {p.target for p in self.PERMISSIONS} - set(self.TARGETS) - {PROJECT}
        if undeclared:
            raise ValueError(f"{type(self).__name__} grants on undeclared targets: {undeclared}")
        created = []
        for perm in self.PERMISSIONS:
            if only is not None and perm.target not in only:
                continue
            if perm.target not in binders:
                raise ValueError(f"{type(self).__name__} has no binder for target {perm.target!r}")
            role = (roles or {}).get(perm.role, perm.role)
            condition = perm.condition.render(context or {}) if perm.condition else None
            for suffix, member in named_members(members.get(perm.grantee, ())):
                name = (
                    f"{self._name}-{perm.target.replace('_', '-')}-"
                    f"{perm.grantee.value.replace('_', '-')}-{role_slug(perm.role)}{suffix}"
                )
                options = opts
                if perm.shared:
                    options = pulumi.ResourceOptions.merge(
                        opts or pulumi.ResourceOptions(),
                        pulumi.ResourceOptions(retain_on_delete=True),
                    )
                created.append(binders[perm.target](name, role, member, condition, options))
        return created


def binder(component: PlatformComponent, member_type: type, **target: pulumi.Input) -> Binder:
    """A Binder creating `member_type` (any `*IAMMember` resource) on the resource `target` names.

    All of pulumi-gcp's additive IAM member resources take `role`, `member` and `condition`.
    """

    def bind(name, role, member, condition, opts=None):
        return member_type(
            name,
            role=role,
            member=member,
            condition=condition,
            **target,
            opts=pulumi.ResourceOptions.merge(component.child(), opts or pulumi.ResourceOptions()),
        )

    return bind
