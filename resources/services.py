"""Project services: the Google APIs the platform calls, enabled before anything uses them."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from resources.base import PlatformComponent


@dataclass(frozen=True)
class ProjectServicesArgs:
    project: str
    apis: tuple[str, ...]
    """Service names, e.g. "storage.googleapis.com"."""


class ProjectServices(PlatformComponent):
    """Enables each API once per stack; other components depend on the ones they need."""

    TYPE = "tabular-mlops:project:Services"

    services: dict[str, gcp.projects.Service]
    """The enabled services, by API name."""

    def __init__(
        self, name: str, args: ProjectServicesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(name, opts)
        self.services = {
            api: gcp.projects.Service(
                f"{name}-{api.split('.')[0]}",
                project=args.project,
                service=api,
                # Other workloads in the project may use the same API: destroying this stack must
                # not switch it off under them.
                disable_on_destroy=False,
                opts=self.child(),
            )
            for api in args.apis
        }
        self.register_outputs({"apis": sorted(self.services)})

    def needed_by(self, *apis: str) -> list[pulumi.Resource]:
        """The service resources a consumer of these APIs must wait for."""
        missing = [api for api in apis if api not in self.services]
        if missing:
            raise ValueError(f"APIs not enabled by this stack: {', '.join(missing)}")
        return [self.services[api] for api in apis]
