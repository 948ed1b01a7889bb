"""Configuration and the spec as run are shown as key/value rows and TOML-like text, not Python reprs."""

from __future__ import annotations

import html
import json

import pytest
from report_fixtures import RunShape, make_run, table_rows

from reports.build import build_report
from reports.configtext import rows, toml_text, value_text

EVIL = '<img src=x onerror="alert(1)">'


@pytest.mark.parametrize(("value", "text"), [
    (True, "true"),
    (False, "false"),
    (None, "not set"),
    (20.0, "20"),
    (0.25, "0.25"),
    (10_000, "10000"),
    ("127.0.0.1:9092", "127.0.0.1:9092"),
    (["kafka", "postgres"], "kafka, postgres"),
    ([], "none"),
    ({}, "none"),
])
def test_values_read_as_toml_does_not_as_python(value: object, text: str) -> None:
    assert value_text(value) == text


def test_nested_settings_become_dotted_keys() -> None:
    assert rows({"services": {"kafka": "k:9092", "postgres": {"dsn": "pg://x"}}, "embedded": ["kafka"]}) == [
        ("services.kafka", "k:9092"), ("services.postgres.dsn", "pg://x"), ("embedded", "kafka")]


def test_lists_of_tables_are_numbered() -> None:
    assert rows({"ops": [{"name": "deposit", "weight": 3.0}, {"name": "balance", "weight": 1.0}]}) == [
        ("ops[0].name", "deposit"), ("ops[0].weight", "3"), ("ops[1].name", "balance"), ("ops[1].weight", "1")]


def test_spec_is_written_back_in_tomls_shape() -> None:
    spec = {"name": "echo", "duration_s": 30.0, "closed_loop": False, "tags": ["a", "b"], "timeout_s": None,
            "rate": {"profile": "constant", "rate": 200.0},
            "ops": [{"name": "echo", "weight": 1.0}, {"name": "ping", "weight": 0.5, "data": {"size": 10}}]}
    assert toml_text(spec) == (
        'name = "echo"\nduration_s = 30.0\nclosed_loop = false\ntags = ["a", "b"]\n# timeout_s: not set\n'
        '\n[rate]\nprofile = "constant"\nrate = 200.0\n'
        '\n[[ops]]\nname = "echo"\nweight = 1.0\n'
        '\n[[ops]]\nname = "ping"\nweight = 0.5\n\n[ops.data]\nsize = 10\n'
    )


def test_spec_keys_that_are_not_bare_are_quoted_and_strings_escaped() -> None:
    assert toml_text({"a b": 'say "hi"\n', "inline": {"": 1}}) == (
        '"a b" = "say \\"hi\\"\\n"\n\n[inline]\n"" = 1\n')


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    run = make_run(tmp_path_factory.mktemp("runs"), RunShape())
    meta = json.loads((run / "run.json").read_text())
    meta["config"] |= {"embedded": [], "services": {"kafka": "127.0.0.1:9092", "evil": EVIL}, "timeout_s": None}
    meta["spec"]["description"] = EVIL
    (run / "run.json").write_text(json.dumps(meta))
    return build_report([run]).read_text()


def test_configuration_table_shows_readable_values(page: str) -> None:
    config = dict(r[1] for r in table_rows(page, "config"))
    assert config["closed_loop"] == "false"
    assert config["duration_s"] == "30"
    assert config["embedded"] == "none"
    assert config["timeout_s"] == "not set"
    assert config["services.kafka"] == "127.0.0.1:9092"


def test_spec_as_run_is_toml_text(page: str) -> None:
    spec = html.unescape(page[page.index('<pre id="spec">') : page.index("</pre>", page.index('<pre id="spec">'))])
    assert 'name = "echo-http"' in spec
    assert "\n[rate]\n" in spec and "\n[[ops]]\n" in spec
    assert "True" not in spec and "None" not in spec


def test_hostile_strings_in_configuration_and_spec_are_escaped(page: str) -> None:
    assert "<img" not in page
    assert page.count("&lt;img src=x onerror=") == 2  # the configuration row and the spec text
