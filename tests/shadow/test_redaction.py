from __future__ import annotations

import json

from migration_plans.core.identity import IDENTITY_HEADER
from strangler_proxy.shadow._redaction import REDACTED, redact_request, redact_response
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse


def test_request_credentials_are_redacted() -> None:
    body = {"user": "alice", "password": "hunter2", "nested": [{"api_key": "k", "n": 1}]}
    request = CapturedRequest(
        "POST",
        "/api/v1/login/?token=abc&page=2",
        (
            ("Authorization", "Token s3cret"),
            ("Cookie", "sessionid=xyz"),
            (IDENTITY_HEADER, "payload.mac"),
            ("X-Api-Key", "k"),
            ("Accept", "application/json"),
            ("content-type", "application/json"),
        ),
        json.dumps(body).encode(),
    )
    safe = redact_request(request)
    assert safe.header("authorization") == REDACTED
    assert safe.header("cookie") == REDACTED
    assert safe.header(IDENTITY_HEADER) == REDACTED
    assert safe.header("x-api-key") == REDACTED
    assert safe.header("accept") == "application/json"
    assert "abc" not in safe.path and "page=2" in safe.path
    assert json.loads(safe.body) == {
        "user": "alice",
        "password": REDACTED,
        "nested": [{"api_key": REDACTED, "n": 1}],
    }
    assert "s3cret" not in json.dumps(safe.to_dict())


def test_response_cookies_and_token_fields_are_redacted() -> None:
    response = CapturedResponse(
        200,
        (("Set-Cookie", "sessionid=xyz; HttpOnly"), ("content-type", "application/json")),
        json.dumps({"token": "t0k", "id": 7}).encode(),
    )
    safe = redact_response(response)
    assert safe.header("set-cookie") == REDACTED
    assert json.loads(safe.body) == {"token": REDACTED, "id": 7}


def test_non_json_bodies_and_clean_requests_are_untouched() -> None:
    request = CapturedRequest("GET", "/robots.txt", (("accept", "*/*"),), b"password=x")
    assert redact_request(request) == request
