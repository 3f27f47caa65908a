from __future__ import annotations

import json

from migration_plans.core.identity import IDENTITY_HEADER
from strangler_proxy.shadow._redaction import (
    REDACTED,
    redact_request,
    redact_response,
    redact_value,
)
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


def test_clean_bodies_and_requests_are_untouched() -> None:
    request = CapturedRequest("GET", "/robots.txt", (("accept", "*/*"),), b"User-agent: *")
    assert redact_request(request) == request
    form = CapturedRequest("POST", "/search", (), b"q=lamp&page=2")
    assert redact_request(form) == form
    author = CapturedRequest("GET", "/", (("X-Author", "ann"), ("Accept", "*/*")))
    assert redact_request(author).header("x-author") == REDACTED  # a header: "auth" is enough
    assert redact_value("root['author']", "ann") == "ann"  # a field: it takes a secret's name


def test_form_bodies_json_of_any_type_and_credential_headers_are_redacted() -> None:
    """Issue #17, item 5: what the samples used to keep."""
    form = CapturedRequest(
        "POST",
        "/login",
        (("X-Auth", "a1"), ("x-access-KEY", "k2"), ("X-Client-Secret", "s3")),
        b"username=alice&password=hunter2",
    )
    safe = redact_request(form)
    assert safe.body == b"username=alice&password=[REDACTED]"
    assert [value for _, value in safe.headers] == [REDACTED] * 3
    form_type = (("content-type", "application/x-www-form-urlencoded"),)
    labelled = redact_request(CapturedRequest("POST", "/", form_type, b"pass=x&secret=y"))
    assert labelled.body == b"pass=x&secret=[REDACTED]"
    plain = CapturedResponse(
        200, (("content-type", "text/plain"),), b'{"session_id": "sid", "user": "bob"}'
    )
    assert json.loads(redact_response(plain).body) == {"session_id": REDACTED, "user": "bob"}


def test_difference_values_are_redacted_by_path_and_content() -> None:
    assert redact_value("root['data']['token']", "t0k") == REDACTED
    assert redact_value('root["Set-Cookie"][0]', "c") == REDACTED
    assert redact_value("root['data']", {"token": "t0k", "n": 1}) == {"token": REDACTED, "n": 1}
    assert redact_value("root['results'][0]['name']", "Lamp") == "Lamp"
