"""What every component of the platform shares."""

from __future__ import annotations

import pulumi


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

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, None, opts)
        self._waits_for = opts.depends_on if opts is not None else None

    def child(self, **options) -> pulumi.ResourceOptions:
        """Options for a child resource: parented here, waiting on this component's dependencies."""
        return pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(parent=self, depends_on=self._waits_for),
            pulumi.ResourceOptions(**options),
        )
