"""The gateway's HTTP rules without I/O: W3C trace context, which headers reach a backend, CORS."""

from __future__ import annotations

from typing import Any

import pytest

from targets.bank.gateway.web import Cors, forwarded_headers, parse_traceparent, trace_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def scope(*headers: tuple[str, str], client: tuple[str, int] | None = ("10.0.0.7", 5555)) -> dict[str, Any]:
    return {"headers": [(k.lower().encode(), v.encode()) for k, v in headers], "client": client, "scheme": "http"}


def test_a_valid_traceparent_is_parsed() -> None:
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-01") == (TRACE, PARENT, "01")


@pytest.mark.parametrize("value", [
    None, "", "garbage", f"00-{TRACE}-{PARENT}", f"00-{TRACE.upper()}-{PARENT}-01", f"00-{'0' * 32}-{PARENT}-01",
    f"00-{TRACE}-{'0' * 16}-01", f"ff-{TRACE}-{PARENT}-01", f"00-{TRACE}-{PARENT}-01-extra",
])  # fmt: skip
def test_a_malformed_traceparent_is_not_trusted(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_a_request_with_a_trace_gets_a_child_span_of_it() -> None:
    t = trace_for(f"00-{TRACE}-{PARENT}-01")
    assert (t.trace_id, t.parent_id, t.flags) == (TRACE, PARENT, "01") and t.span_id != PARENT
    assert t.header == f"00-{TRACE}-{t.span_id}-01"


def test_a_request_without_a_trace_starts_a_sampled_one() -> None:
    t = trace_for(None)
    assert parse_traceparent(t.header) == (t.trace_id, t.span_id, "01") and t.parent_id is None


def test_future_trace_versions_are_accepted_by_their_known_fields() -> None:
    assert parse_traceparent(f"01-{TRACE}-{PARENT}-01-whatever") == (TRACE, PARENT, "01")


def test_every_header_but_host_reaches_the_backend_with_the_gateways_traceparent() -> None:
    t = trace_for(f"00-{TRACE}-{PARENT}-01")
    out = dict(forwarded_headers(scope(("Host", "gw:8080"), ("Authorization", "Bearer x"), ("X-Request-Id", "r1"),
                                       ("traceparent", f"00-{TRACE}-{PARENT}-01"), ("tracestate", "vendor=1")), t))
    assert "host" not in {k.lower() for k in out}
    assert out["authorization"] == "Bearer x" and out["x-request-id"] == "r1" and out["tracestate"] == "vendor=1"
    assert out["traceparent"] == t.header
    assert out["X-Forwarded-Host"] == "gw:8080" and out["X-Forwarded-For"] == "10.0.0.7"


def test_hop_by_hop_headers_and_those_connection_names_stay_at_the_gateway() -> None:
    out = {k.lower() for k, _ in forwarded_headers(scope(
        ("Connection", "keep-alive, X-Private"), ("Keep-Alive", "5"), ("X-Private", "1"), ("Upgrade", "h2c"),
        ("Transfer-Encoding", "chunked"), ("Content-Length", "3"), ("Accept", "*/*")), trace_for(None))}
    assert out & {"connection", "keep-alive", "x-private", "upgrade", "transfer-encoding", "content-length"} == set()
    assert "accept" in out


def test_a_forwarded_for_chain_is_extended() -> None:
    out = dict(forwarded_headers(scope(("X-Forwarded-For", "1.2.3.4")), trace_for(None)))
    assert out["X-Forwarded-For"] == "1.2.3.4, 10.0.0.7"


def test_an_allowed_origin_gets_cors_headers_naming_it() -> None:
    headers = dict(Cors(["http://localhost:5173"]).headers("http://localhost:5173"))
    assert headers[b"access-control-allow-origin"] == b"http://localhost:5173" and headers[b"vary"] == b"Origin"


def test_another_origin_gets_no_cors_headers() -> None:
    assert Cors(["http://localhost:5173"]).headers("http://evil.example") == []


def test_star_allows_any_origin_without_credentials() -> None:
    headers = dict(Cors(["*"]).headers("http://anything.example"))
    assert headers[b"access-control-allow-origin"] == b"*" and b"access-control-allow-credentials" not in headers


def test_a_preflight_from_an_allowed_origin_lists_methods_and_the_asked_headers() -> None:
    status, headers = Cors(["http://ui.example"]).preflight(scope(
        ("Origin", "http://ui.example"), ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type, traceparent")))
    h = dict(headers)
    assert status == 204 and b"POST" in h[b"access-control-allow-methods"]
    assert h[b"access-control-allow-headers"] == b"content-type, traceparent"


def test_a_preflight_from_another_origin_is_refused() -> None:
    status, _ = Cors(["http://ui.example"]).preflight(scope(("Origin", "http://evil.example")))
    assert status == 403
