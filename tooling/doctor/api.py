"""The one seam where `make doctor` reaches the real APIs: every check reads through `Api.call`.

Live, Google's REST APIs are called with the caller's Application Default Credentials
(google-auth's AuthorizedSession) and GitHub's with the caller's token (GITHUB_TOKEN, or what
`gh auth token` prints). Everything is a read: GETs, and the testIamPermissions / getAncestry
POSTs that only answer questions. Tests replace this class with recorded responses.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, Protocol

TIMEOUT_SECONDS = 15
TOKENINFO = "https://oauth2.googleapis.com/tokeninfo"
GITHUB = "https://api.github.com"


class ApiError(Exception):
    """An API answered with an error (or could not be reached): its HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Api(Protocol):
    def call(self, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON answer of one request; ApiError for any error status."""


class LiveApi:
    """The real APIs, as the caller."""

    def __init__(self) -> None:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession, Request

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        credentials.refresh(Request())
        self._credentials = credentials
        self._google = AuthorizedSession(credentials)
        self._github_token = _github_token()

    def call(self, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import requests

        try:
            if url.startswith(TOKENINFO):
                response = requests.get(
                    url, params={"access_token": self._credentials.token}, timeout=TIMEOUT_SECONDS
                )
            elif url.startswith(GITHUB):
                headers = {"Accept": "application/vnd.github+json"}
                if self._github_token:
                    headers["Authorization"] = f"Bearer {self._github_token}"
                response = requests.request(method, url, headers=headers, timeout=TIMEOUT_SECONDS)
            else:
                response = self._google.request(method, url, json=body, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise ApiError(0, f"{url}: {error}") from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _error_message(response))
        answer = response.json() if response.content else {}
        if url.startswith(TOKENINFO) and "email" not in answer:
            # A service account's token without the email scope: its credentials know it.
            email = getattr(self._credentials, "service_account_email", None)
            answer = {**answer, "email": email} if email else answer
        return answer


def _error_message(response: Any) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200]
    error = payload.get("error", payload)
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(payload.get("error_description") or payload.get("message") or error)


def _github_token() -> str | None:
    """The caller's GitHub token: GITHUB_TOKEN, else the GitHub CLI's, else none (public only)."""
    if os.environ.get("GITHUB_TOKEN"):
        return os.environ["GITHUB_TOKEN"]
    try:
        result = subprocess.run(
            ["gh", "auth", "token"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None
