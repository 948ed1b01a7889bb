"""The books (harness/books.py): every scheduled op has exactly one outcome, and books from processes add up."""

from __future__ import annotations

import copy
from typing import Any

from harness.books import OUTCOMES, Books, add_counts, balanced


def counts(scheduled: int, ok: int, error: int = 0, timeout: int = 0, not_sent: int = 0, **kw: Any
           ) -> dict[str, Any]:
    """One kind's `kind_counts()`, set directly (the measured window defaults to everything)."""
    books = Books(["k"])
    books.scheduled[0], books.ok[0], books.error[0] = scheduled, ok, error
    books.timeout[0], books.not_sent[0] = timeout, not_sent
    books.warmup[0] = kw.get("warmup", 0)
    books.m_scheduled[0] = kw.get("m_scheduled", scheduled - books.warmup[0])
    books.m_ok[0], books.m_error[0] = kw.get("m_ok", ok), kw.get("m_error", error)
    books.m_timeout[0], books.m_not_sent[0] = kw.get("m_timeout", timeout), kw.get("m_not_sent", not_sent)
    for name, n in kw.get("errors", {}).items():
        books.errors[0][name] += n
    for name, n in kw.get("not_sent_reasons", {}).items():
        books.not_sent_reasons[0][name] += n
    return books.kind_counts(0)


# -- one kind's counts ----------------------------------------------------------------------------


def test_fresh_books_are_all_zero_and_balanced() -> None:
    fresh = Books(["echo"]).kind_counts(0)
    assert fresh == {
        "scheduled": 0, "ok": 0, "error": 0, "timeout": 0, "not_sent": 0, "errors": {},
        "not_sent_reasons": {}, "warmup": 0,
        "measured": {"scheduled": 0, "ok": 0, "error": 0, "timeout": 0, "not_sent": 0},
    }
    assert balanced(fresh)


def test_the_four_outcomes_are_ok_error_timeout_and_not_sent() -> None:
    assert OUTCOMES == ("ok", "error", "timeout", "not_sent")


def test_books_balance_when_the_outcomes_sum_to_the_scheduled_count() -> None:
    assert balanced(counts(10, ok=6, error=2, timeout=1, not_sent=1))


def test_books_do_not_balance_with_an_op_missing() -> None:
    assert not balanced(counts(10, ok=6, error=2, timeout=1, not_sent=0))


def test_books_do_not_balance_with_an_op_counted_twice() -> None:
    assert not balanced(counts(10, ok=7, error=2, timeout=1, not_sent=1))


def test_books_do_not_balance_when_the_measured_window_misses_an_outcome() -> None:
    assert not balanced(counts(10, ok=10, m_ok=9))


def test_books_do_not_balance_when_warmup_and_measured_do_not_make_the_scheduled_count() -> None:
    assert not balanced(counts(10, ok=10, warmup=3, m_scheduled=8, m_ok=8))


# -- adding books of several processes --------------------------------------------------------------


def test_add_counts_into_empty_copies_the_other() -> None:
    other = counts(5, ok=4, error=1, errors={"http_503": 1}, warmup=2, m_ok=2)
    total = add_counts({}, other)
    assert total == other
    total["errors"]["http_503"] += 10
    total["measured"]["ok"] += 10
    assert other["errors"] == {"http_503": 1} and other["measured"]["ok"] == 2, "no aliasing of the first input"


def test_add_counts_sums_outcomes_warmup_and_measured() -> None:
    a = counts(10, ok=8, error=1, timeout=1, warmup=3, m_scheduled=7, m_ok=5, m_error=1, m_timeout=1)
    b = counts(12, ok=9, not_sent=3, warmup=2, m_scheduled=10, m_ok=7)
    total = add_counts(add_counts({}, a), b)
    assert {k: total[k] for k in ("scheduled", "ok", "error", "timeout", "not_sent", "warmup")} == {
        "scheduled": 22, "ok": 17, "error": 1, "timeout": 1, "not_sent": 3, "warmup": 5,
    }
    assert total["measured"] == {"scheduled": 17, "ok": 12, "error": 1, "timeout": 1, "not_sent": 3}
    assert balanced(total)


def test_add_counts_merges_error_kinds_and_not_sent_reasons_by_name() -> None:
    a = counts(5, ok=2, error=2, not_sent=1, errors={"http_503": 1, "Timeout": 1},
               not_sent_reasons={"in_flight_cap": 1})
    b = counts(4, ok=1, error=2, not_sent=1, errors={"http_503": 2}, not_sent_reasons={"backpressure": 1})
    total = add_counts(add_counts({}, a), b)
    assert total["errors"] == {"http_503": 3, "Timeout": 1}
    assert total["not_sent_reasons"] == {"in_flight_cap": 1, "backpressure": 1}


def test_add_counts_leaves_the_added_books_unchanged() -> None:
    a, b = counts(3, ok=3), counts(4, ok=3, error=1, errors={"x": 1})
    before = copy.deepcopy(b)
    add_counts(add_counts({}, a), b)
    assert b == before


def test_the_sum_of_balanced_books_is_balanced_and_of_unbalanced_is_not() -> None:
    good = add_counts(add_counts({}, counts(4, ok=4)), counts(6, ok=3, timeout=3))
    bad = add_counts(add_counts({}, counts(6, ok=3, timeout=2)), counts(4, ok=4))
    assert balanced(good)
    assert not balanced(bad)


# -- Books: the behaviour every front end uses ------------------------------------------------------


def test_a_kind_gets_an_index_on_first_sight_and_keeps_it() -> None:
    books = Books(["read"])
    assert books.kind("write") == 1
    assert books.kind("read") == 0
    assert books.kind("write") == 1
    assert books.names == ["read", "write"]
    assert books.index == {"read": 0, "write": 1}


def test_scheduling_counts_measured_ops_apart_from_warmup_ops() -> None:
    books = Books(["op"])
    books.schedule(0, measured=False)
    books.schedule(0, measured=True)
    books.schedule(0, measured=True)
    c = books.kind_counts(0)
    assert (c["scheduled"], c["warmup"], c["measured"]["scheduled"]) == (3, 1, 2)


def test_an_ok_in_the_measured_window_is_counted_and_recorded() -> None:
    books = Books(["op"])
    books.schedule(0, measured=True)
    books.record_ok(0, True, response_us=1_500, service_us=900)
    assert (books.ok[0], books.m_ok[0]) == (1, 1)
    assert (len(books.response[0]), len(books.service[0])) == (1, 1)
    assert books.balanced()


def test_a_warmup_ok_is_counted_but_not_recorded() -> None:
    books = Books(["op"])
    books.schedule(0, measured=False)
    books.record_ok(0, False, response_us=1_500, service_us=900)
    assert (books.ok[0], books.m_ok[0]) == (1, 0)
    assert (len(books.response[0]), len(books.service[0])) == (0, 0)
    assert books.balanced()


def test_an_error_is_counted_by_its_kind_without_a_latency_sample() -> None:
    books = Books(["op"])
    for _ in range(2):
        books.schedule(0, measured=True)
        books.record_error(0, True, "http_503")
    books.schedule(0, measured=False)
    books.record_error(0, False, "ConnectionRefusedError")
    c = books.kind_counts(0)
    assert (c["error"], c["measured"]["error"]) == (3, 2)
    assert c["errors"] == {"http_503": 2, "ConnectionRefusedError": 1}
    assert len(books.response[0]) == 0
    assert books.balanced()


def test_a_measured_timeout_counts_in_the_latency_at_its_time_of_expiry() -> None:
    books = Books(["op"])
    books.schedule(0, measured=True)
    books.record_timeout(0, True, response_us=300_100, service_us=299_000)
    assert (books.timeout[0], books.m_timeout[0]) == (1, 1)
    assert (len(books.response[0]), len(books.service[0])) == (1, 1)
    assert books.response[0].take().min == 300_100
    assert books.balanced()


def test_a_warmup_timeout_is_counted_but_not_recorded() -> None:
    books = Books(["op"])
    books.schedule(0, measured=False)
    books.record_timeout(0, False, response_us=300_100, service_us=299_000)
    assert (books.timeout[0], books.m_timeout[0], len(books.response[0])) == (1, 0, 0)


def test_an_op_not_sent_is_counted_with_its_reason() -> None:
    books = Books(["op"])
    for _ in range(3):
        books.schedule(0, measured=True)
        books.record_not_sent(0, True, "in_flight_cap")
    c = books.kind_counts(0)
    assert (c["not_sent"], c["measured"]["not_sent"], c["not_sent_reasons"]) == (3, 3, {"in_flight_cap": 3})
    assert books.balanced()


def test_totals_add_all_kinds_and_sent_is_scheduled_minus_not_sent() -> None:
    books = Books(["a", "b"])
    for k in (0, 0, 1, 1, 1):
        books.schedule(k, measured=True)
    books.record_ok(0, True, 10, 10)
    books.record_not_sent(0, True, "in_flight_cap")
    books.record_error(1, True, "x")
    books.record_timeout(1, True, 10, 10)
    books.record_ok(1, True, 10, 10)
    assert books.totals() == {"scheduled": 5, "ok": 2, "error": 1, "timeout": 1, "not_sent": 1, "sent": 4}


def test_books_with_an_op_of_one_kind_unfinished_do_not_balance() -> None:
    books = Books(["a", "b"])
    books.schedule(0, measured=True)
    books.record_ok(0, True, 10, 10)
    books.schedule(1, measured=True)  # in flight: no outcome yet
    assert not books.balanced()
    books.record_timeout(1, True, 10, 10)
    assert books.balanced()


def test_as_dict_has_each_kinds_counts_under_its_name() -> None:
    books = Books(["read", "write"])
    books.schedule(1, measured=True)
    books.record_ok(1, True, 10, 10)
    out = books.as_dict()
    assert list(out) == ["read", "write"]
    assert out["write"] == books.kind_counts(1)
    assert (out["read"]["scheduled"], out["write"]["ok"]) == (0, 1)
