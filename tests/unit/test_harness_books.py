"""Per-kind books: every scheduled op has exactly one outcome, and books from processes add up."""

from __future__ import annotations

import copy
from typing import Any

from harness.books import KindBooks, add_counts, balanced


def counts(scheduled: int, ok: int, error: int = 0, timeout: int = 0, not_sent: int = 0, **kw: Any
           ) -> dict[str, Any]:
    books = KindBooks("k")
    books.scheduled, books.ok, books.error, books.timeout, books.not_sent = scheduled, ok, error, timeout, not_sent
    books.warmup = kw.get("warmup", 0)
    books.m_scheduled, books.m_ok = kw.get("m_scheduled", scheduled), kw.get("m_ok", ok)
    books.m_error, books.m_timeout = kw.get("m_error", error), kw.get("m_timeout", timeout)
    books.m_not_sent = kw.get("m_not_sent", not_sent)
    for name, n in kw.get("errors", {}).items():
        books.errors[name] += n
    for name, n in kw.get("not_sent_reasons", {}).items():
        books.not_sent_reasons[name] += n
    return books.as_dict()


def test_fresh_books_are_all_zero_and_balanced() -> None:
    fresh = KindBooks("echo").as_dict()
    assert fresh == {
        "scheduled": 0, "ok": 0, "error": 0, "timeout": 0, "not_sent": 0, "errors": {},
        "not_sent_reasons": {}, "warmup": 0,
        "measured": {"scheduled": 0, "ok": 0, "error": 0, "timeout": 0, "not_sent": 0},
    }
    assert balanced(fresh)


def test_books_balance_when_the_outcomes_sum_to_the_scheduled_count() -> None:
    assert balanced(counts(10, ok=6, error=2, timeout=1, not_sent=1))


def test_books_do_not_balance_with_an_op_missing() -> None:
    assert not balanced(counts(10, ok=6, error=2, timeout=1, not_sent=0))


def test_books_do_not_balance_with_an_op_counted_twice() -> None:
    assert not balanced(counts(10, ok=7, error=2, timeout=1, not_sent=1))


def test_add_counts_into_empty_copies_the_other() -> None:
    other = counts(5, ok=4, error=1, errors={"http_503": 1}, warmup=2)
    total = add_counts({}, other)
    assert total == other
    total["errors"]["http_503"] += 10
    total["measured"]["ok"] += 10
    assert other["errors"] == {"http_503": 1} and other["measured"]["ok"] == 4, "no aliasing of the first input"


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
    bad = add_counts(add_counts({}, counts(4, ok=4)), counts(6, ok=3, timeout=2))
    assert balanced(good)
    assert not balanced(bad)
