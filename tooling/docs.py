"""Generated documentation: `python -m tooling.docs` (make docs) rewrites every generated page.

Each page is produced from the code it documents, and a test fails when a committed page differs
from what the code generates, so the docs cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable

from resources.access import permissions_reference
from stacks.config import PROJECT_ROOT
from stacks.platform import ALL_COMPONENTS
from tooling.config_reference import configuration_reference
from tooling.security_page import security_reference

GENERATED: dict[str, Callable[[], str]] = {
    "docs/configuration.md": configuration_reference,
    "docs/permissions.md": lambda: permissions_reference(ALL_COMPONENTS),
    "docs/security.md": security_reference,
}


def main() -> None:
    for relative, generate in GENERATED.items():
        path = PROJECT_ROOT / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generate())
        print(f"wrote {relative}")


if __name__ == "__main__":
    main()
