"""Pulumi component resources: one per concern of the platform.

Each component takes a frozen args dataclass (only what it needs, never the whole config), names its
children `f"{name}-…"` with `parent=self`, exposes its outputs as attributes and documents, beside
its resources, what each persona may do there.
"""
