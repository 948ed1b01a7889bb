"""Per-op templates (harness/templating.py): placeholders checked when compiled, filled per op, data rows."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from harness.protocol import Op
from harness.templating import NAMES, DataRows, OpVars, Row, Template, TemplateError, load_rows


def op_vars(seq: int = 3, row: dict[str, str] | None = None) -> OpVars:
    op = Op(17, "get", None, intended_ns=123_456_789)
    return OpVars(op, seq, process=1, run_id="20261202T000000Z-demo", row=Row(row) if row is not None else None)


def render(text: str, row: dict[str, str] | None = None, columns: set[str] | None = None) -> str:
    return Template(text, "target_options.path", columns).render(op_vars(row=row))


def template_error(text: str, columns: set[str] | None = None) -> str:
    with pytest.raises(TemplateError) as info:
        Template(text, "target_options.path", columns)
    return str(info.value)


# -- compiling and filling --------------------------------------------------------------------------


def test_a_string_without_placeholders_is_static_and_returned_as_it_is() -> None:
    template = Template("/health", "target_options.path")
    assert (template.static, template.fields) == (True, [])
    assert template.render(op_vars()) == "/health"


def test_op_placeholders_are_filled_from_the_op_and_the_process() -> None:
    assert render("/{kind}/{id}?seq={seq}&p={process}&run={run_id}&t={intended_ns}") == (
        "/get/17?seq=3&p=1&run=20261202T000000Z-demo&t=123456789")


def test_a_format_spec_applies_to_a_placeholder() -> None:
    assert render("acct-{seq:05d}") == "acct-00003"


def test_doubled_braces_are_literal_braces() -> None:
    assert render('{{"id": {id}}}') == '{"id": 17}'


def test_uuid_is_a_fresh_uuid_each_time() -> None:
    template = Template("{uuid}", "body")
    first, second = template.render(op_vars()), template.render(op_vars())
    assert uuid.UUID(first) != uuid.UUID(second)


def test_rand_is_an_integer_below_two_to_the_31() -> None:
    values = [int(render("{rand}")) for _ in range(50)]
    assert all(0 <= v < 2**31 for v in values)
    assert len(set(values)) > 1


def test_now_ms_is_the_wall_clock_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = int(render("{now_ms}"))
    assert before <= value <= time.time_ns() // 1_000_000


def test_a_row_column_is_read_from_the_data_row() -> None:
    assert render("/accounts/{row.account}", row={"account": "A-7"}, columns={"account"}) == "/accounts/A-7"


def test_the_known_placeholders_are_the_documented_ones() -> None:
    assert {"id", "seq", "kind", "process", "uuid", "rand", "intended_ns", "now_ms", "run_id", "row"} == NAMES


# -- refused when compiled, naming the field ----------------------------------------------------------


def test_an_unknown_placeholder_is_refused_naming_the_field_and_the_known_ones() -> None:
    message = template_error("/x/{user}")
    assert message.startswith("target_options.path: unknown placeholder {user}; known: ")
    assert "intended_ns" in message and "row.COLUMN" in message


def test_a_row_placeholder_without_a_data_file_is_refused() -> None:
    assert template_error("/{row.account}") == "target_options.path: {row.account} needs a data_file"


def test_a_column_the_data_file_lacks_is_refused_naming_the_columns_it_has() -> None:
    assert template_error("/{row.acount}", {"account", "amount"}) == (
        "target_options.path: the data file has no column 'acount'; it has account, amount")


def test_an_unbalanced_brace_is_refused_saying_how_to_write_a_literal_one() -> None:
    message = template_error("/x/{id")
    assert message.startswith("target_options.path: ")
    assert "{{ and }}" in message


def test_a_missing_column_at_fill_time_says_which() -> None:
    with pytest.raises(AttributeError, match="no column 'b'"):
        _ = Row({"a": 1}).b


# -- data files -------------------------------------------------------------------------------------


def test_a_csv_file_gives_one_row_per_line_under_its_header(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("account,amount\nA-1,10\nA-2,20\n", encoding="utf-8")
    assert load_rows(path, "data_file") == [{"account": "A-1", "amount": "10"}, {"account": "A-2", "amount": "20"}]


def test_a_json_lines_file_gives_one_row_per_object_skipping_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "accounts.jsonl"
    path.write_text('{"account": "A-1", "amount": 10}\n\n{"account": "A-2"}\n', encoding="utf-8")
    assert load_rows(path, "data_file") == [{"account": "A-1", "amount": 10}, {"account": "A-2"}]


def test_a_json_line_that_is_not_json_is_refused_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(TemplateError, match=rf"^data_file: {path}:2: not JSON: "):
        load_rows(path, "data_file")


def test_a_json_line_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r":1: each line must be a JSON object$"):
        load_rows(path, "data_file")


def test_a_data_file_without_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("account,amount\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="has no rows"):
        load_rows(path, "data_file")


def test_a_data_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing.csv"
    with pytest.raises(TemplateError, match=rf"^data_file: cannot read {path}: "):
        load_rows(path, "data_file")


def test_rows_are_handed_out_in_order_cycling() -> None:
    rows = DataRows([{"a": "1"}, {"a": "2"}, {"a": "3"}])
    assert [rows.pick(seq).a for seq in range(7)] == ["1", "2", "3", "1", "2", "3", "1"]


def test_random_rows_are_the_same_for_the_same_seed_and_not_in_order() -> None:
    data = [{"a": str(i)} for i in range(20)]
    picks, again = DataRows(data, "random", seed=4), DataRows(data, "random", seed=4)
    drawn = [picks.pick(i).a for i in range(30)]
    assert drawn == [again.pick(i).a for i in range(30)]
    assert drawn != [data[i % 20]["a"] for i in range(30)]


def test_the_columns_are_those_of_every_row() -> None:
    assert DataRows([{"a": 1}, {"b": 2}]).columns == {"a", "b"}
