"""The doctor's one seam to the real APIs: errors read in one line, and nothing else reaches out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tooling import doctor
from tooling.doctor import api

DOCTOR = Path(doctor.__file__).parent


class Response:
    def __init__(self, payload=None, text=""):
        self.payload, self.text = payload, text

    def json(self):
        if self.payload is None:
            raise ValueError("not JSON")
        return self.payload


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (Response({"error": {"code": 403, "message": "Permission denied on resource project x.",
                             "status": "PERMISSION_DENIED"}}), "Permission denied on resource"),
        (Response({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
         "Not Found"),
        (Response({"error": "invalid_token", "error_description": "Invalid Value"}),
         "Invalid Value"),
        (Response(None, "<html>502</html>"), "<html>502</html>"),
    ],
)  # fmt: skip
def test_an_error_answer_becomes_its_message(response, message):
    assert message in api._error_message(response)


def test_the_github_token_comes_from_the_environment_first(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_from_env")
    assert api._github_token() == "ghp_from_env"


def test_only_the_seam_imports_network_or_credential_libraries():
    pattern = re.compile(
        r"^\s*(import|from)\s+(requests|google\.auth|urllib|http\.client|subprocess)\b", re.M
    )
    offenders = [
        p.name for p in DOCTOR.glob("*.py") if p.name != "api.py" and pattern.search(p.read_text())
    ]
    assert offenders == []


def test_without_credentials_the_doctor_says_what_to_run(monkeypatch, capsys):
    def no_credentials():
        raise RuntimeError("Your default credentials were not found")

    monkeypatch.setattr(api, "LiveApi", no_credentials)
    assert doctor.main(["--stack", "staging"]) == 2
    assert "gcloud auth application-default login" in capsys.readouterr().err


class FakeHttp:
    """Stands in for requests and AuthorizedSession: records each request, answers JSON."""

    def __init__(self, payload: dict, status: int = 200):
        self.payload, self.status, self.requests = payload, status, []

    def __call__(self, method, url, **kwargs):
        self.requests.append((method, url, kwargs))
        response = Response(self.payload)
        response.status_code, response.content = self.status, b"{}"
        return response


def test_the_live_seam_sends_each_request_with_the_callers_credentials(monkeypatch):
    import google.auth
    import google.auth.transport.requests as transport
    import requests

    class Credentials:
        token, service_account_email = "ya29.token", "deployer@p.iam.gserviceaccount.com"

        def refresh(self, request):
            pass

    google_http, plain_http = FakeHttp({"name": "projects/1"}), FakeHttp({"expires_in": "3599"})
    monkeypatch.setattr(google.auth, "default", lambda scopes: (Credentials(), "p"))
    monkeypatch.setattr(transport, "AuthorizedSession", lambda c: type("S", (), {
        "request": lambda self, m, u, **kw: google_http(m, u, **kw)})())  # fmt: skip
    monkeypatch.setattr(requests, "get", lambda url, **kw: plain_http("GET", url, **kw))
    monkeypatch.setattr(requests, "request", plain_http)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_x")
    live = api.LiveApi()
    assert live.call("GET", api.TOKENINFO)["email"] == Credentials.service_account_email
    assert plain_http.requests[-1][2]["params"] == {"access_token": "ya29.token"}
    live.call("GET", f"{api.GITHUB}/repos/o/r")
    assert plain_http.requests[-1][2]["headers"]["Authorization"] == "Bearer ghp_x"
    body = {"permissions": ["a.b.c"]}
    live.call("POST", "https://cloudresourcemanager.googleapis.com/v1/projects/p:x", body)
    assert google_http.requests[-1][0] == "POST" and google_http.requests[-1][2]["json"] == body
    google_http.status = 403
    with pytest.raises(api.ApiError, match="HTTP 403"):
        live.call("GET", "https://cloudresourcemanager.googleapis.com/v3/projects/p")
