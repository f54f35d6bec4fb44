"""What every check shares: its findings, the context it reads, and small readers of API answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stacks.config import StackConfig, stack_file_name
from tooling.doctor.api import Api, ApiError
from tooling.plan.offline import StackRecord

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Finding:
    """One result: FAIL stops `pulumi up`, warn asks for a look, ok says what was verified."""

    check: str
    status: str
    message: str
    fix: str = ""
    """What to do: the gcloud command or console step."""


@dataclass
class Context:
    """One stack: its validated config, its offline plan, the APIs, what earlier checks learnt."""

    stack: str
    config: StackConfig
    plan: StackRecord
    api: Api
    caller: str | None = None
    """The caller's IAM member (user:… or serviceAccount:…), from the identity check."""
    project_number: str | None = None
    organization: str | None = None
    """organizations/ID the project is under, when it is under one."""
    held: set[str] = field(default_factory=set)
    """Permissions the caller holds on the project (from the permissions check)."""

    @property
    def project(self) -> str:
        return self.config.project

    @property
    def stack_file(self) -> str:
        return stack_file_name(self.stack)

    def get(self, url: str) -> dict[str, Any]:
        return self.api.call("GET", url)

    def post(self, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.api.call("POST", url, body or {})


def unreadable(check: str, what: str, error: ApiError, fix: str, status: str = FAIL) -> Finding:
    """A check that could not read what it needs: say which API answered what."""
    return Finding(check, status, f"cannot read {what}: {error}", fix)


def paged(ctx: Context, url: str, key: str) -> list[dict[str, Any]]:
    """Every item of a paged list (`nextPageToken`)."""
    items, token = [], None
    while True:
        separator = "&" if "?" in url else "?"
        page = ctx.get(url + (f"{separator}pageToken={token}" if token else ""))
        items += page.get(key, [])
        token = page.get("nextPageToken")
        if not token:
            return items


def member_of(email: str) -> str:
    kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else "user"
    return f"{kind}:{email}"
