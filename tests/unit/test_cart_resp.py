"""The Redis wire format as the service's lean client writes and reads it (RESP2)."""

from __future__ import annotations

import pytest

from targets.cart.resp import LeanRedis, ReplyError, _Incomplete, encode, parse


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert encode(("SET", "k", b"v\r\n", 7)) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$1\r\n7\r\n"


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (b"+OK\r\n", "OK"),
        (b":42\r\n", 42),
        (b"$5\r\nhe\r\nl\r\n", b"he\r\nl"),
        (b"$-1\r\n", None),
        (b"*2\r\n$1\r\na\r\n:1\r\n", [b"a", 1]),
        (b"*-1\r\n", None),
    ],
    ids=["simple", "integer", "bulk-with-crlf", "nil", "array", "nil-array"],
)
def test_replies_parse_to_python_values(wire: bytes, value: object) -> None:
    assert parse(wire, 0) == (value, len(wire))


def test_an_error_reply_is_returned_as_an_error_value() -> None:
    value, _ = parse(b"-NOSCRIPT No matching script\r\n", 0)
    assert isinstance(value, ReplyError) and str(value).startswith("NOSCRIPT")


@pytest.mark.parametrize("wire", [b"$5\r\nhel", b"*2\r\n$1\r\na\r\n", b":4"])
def test_a_reply_cut_short_asks_for_more_bytes(wire: bytes) -> None:
    with pytest.raises(_Incomplete):
        parse(wire, 0)


def test_replies_back_to_back_parse_in_order() -> None:
    wire = b"$1\r\na\r\n:2\r\n"
    first, pos = parse(wire, 0)
    second, end = parse(wire, pos)
    assert (first, second, end) == (b"a", 2, len(wire))


def test_url_gives_host_port_database_and_password() -> None:
    client = LeanRedis("redis://:s%40cret@127.0.0.5:6380/4")
    assert (client.host, client.port, client.db, client.password) == ("127.0.0.5", 6380, 4, "s@cret")
