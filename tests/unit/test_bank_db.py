"""The SQL a namespaced run sends names its own schema, and only the shared registry beside it."""

from __future__ import annotations

import re

import pytest

from targets.bank.apply import statements
from targets.bank.db import checked, ddl


def _schemas(sql: str) -> set[str]:
    return set(re.findall(r"\b(bancaire\w*)\.\w+", sql))


def test_a_namespaced_ledger_is_created_in_its_own_schema_beside_the_shared_registry() -> None:
    assert _schemas(ddl("bancaire_run_1")) == {"bancaire_run_1", "bancaire"}
    assert re.findall(r"\bbancaire\.\w+", ddl("bancaire_run_1")) == ["bancaire.schema_registry"]


def test_every_statement_of_a_batch_names_the_runs_schema() -> None:
    sql = statements("bancaire_run_1")
    for text in (sql.claim, sql.earlier, sql.lock, sql.write):
        assert _schemas(text) == {"bancaire_run_1"}


@pytest.mark.parametrize("bad", ['bancaire"; DROP SCHEMA public; --', "Bancaire", "bancaire-x", "", "a" * 64])
def test_a_schema_name_that_would_need_quoting_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        checked(bad)
