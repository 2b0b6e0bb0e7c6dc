"""The ``extract`` step on real Chromium: a JSON value per name, secrets masked, size capped, clear errors."""
from __future__ import annotations

import json

import pytest

from navigation.credentials import MASK, CredentialStore
from navigation.errors import FlowValidationError
from navigation.flow import parse_flow
from navigation.runner import FlowRunner
from navigation.steps.builtin import MAX_EXTRACTED_BYTES, ExtractStrategy, default_registry

SECRET = "Tr0ub4dor&3-extract"
STORE = CredentialStore({"shop_password": SECRET})


def run(conn, site, tmp_path, steps, runner: FlowRunner | None = None):
    flow = parse_flow({"title": "extract", "steps": [
        {"type": "navigate", "url": site.url("/echo.html?frame=/frame.html")}, *steps]}, source="extract.json")
    runner = runner or FlowRunner(resolve_secret=STORE.resolve)
    return runner.run(flow, conn, artifacts_dir=tmp_path / "artifacts")


@pytest.mark.chromium
def test_extract_keeps_the_awaited_json_value_and_a_later_extract_of_a_name_overwrites(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        {"type": "extract", "name": "title", "expression": "document.title"},
        {"type": "extract", "name": "price", "expression": "1"},
        {"type": "extract", "name": "price",
         "expression": "new Promise(r => setTimeout(() => r({amount: 12.5, currency: 'EUR', tags: ['a', null]}), 50))"},
        {"type": "extract", "name": "nothing", "expression": "undefined"},
        {"type": "waitForExpression", "expression": "!!document.querySelector('#frame').contentDocument.body"},
        {"type": "extract", "name": "in_frame", "frame": [0], "expression": "document.title"},
    ])
    assert result.ok, result.error
    assert result.data == {"title": "Drover echo", "price": {"amount": 12.5, "currency": "EUR", "tags": ["a", None]},
                           "nothing": None, "in_frame": "Drover frame"}
    assert list(result.data) == ["title", "price", "nothing", "in_frame"]


@pytest.mark.chromium
def test_a_secret_typed_in_the_flow_and_echoed_into_an_extracted_value_is_masked(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [
        {"type": "extract", "name": "before", "expression": "'nothing typed yet'"},
        {"type": "change", "selectors": [["#typed"]], "value": {"secret": "shop_password"}},
        {"type": "waitForExpression", "expression": "document.querySelector('#echo').textContent.length > 0"},
        {"type": "extract", "name": "echo",
         "expression": "({text: 'you typed ' + document.querySelector('#echo').textContent,"
                       " deep: [[{v: document.querySelector('#typed').value}]]})"},
    ])
    assert result.ok, result.error
    assert SECRET not in json.dumps(result.data)
    assert result.data["echo"] == {"text": f"you typed {MASK}", "deep": [[{"v": MASK}]]}
    assert result.data["before"] == "nothing typed yet"


@pytest.mark.chromium
def test_over_the_cap_the_step_fails_naming_step_and_size_and_keeps_nothing_of_it(conn, site, tmp_path):
    big = MAX_EXTRACTED_BYTES + 10
    result = run(conn, site, tmp_path, [
        {"type": "extract", "name": "small", "expression": "'ok'"},
        {"type": "extract", "name": "huge", "expression": f"'x'.repeat({big})"},
    ])
    assert not result.ok and result.failed_step == 2 and result.error_category == "input"
    assert result.error.startswith(f'step 2 (extract): extract "huge": the value is {big + 2} bytes of JSON; '
                                   f"the cap is {MAX_EXTRACTED_BYTES} bytes per job"), result.error
    assert result.data == {"small": "ok"}
    # the cap is on the job's data as a whole: two values that fit alone do not fit together
    registry = default_registry()
    registry.register(ExtractStrategy(max_bytes=100), first=True)
    result = run(conn, site, tmp_path, [
        {"type": "extract", "name": "a", "expression": "'y'.repeat(60)"},
        {"type": "extract", "name": "b", "expression": "'z'.repeat(60)"},
    ], FlowRunner(registry))
    assert not result.ok and result.failed_step == 2 and result.error_category == "input"
    assert "the job's extracted data would be 135 bytes of JSON; the cap is 100 bytes per job" in result.error
    assert result.data == {"a": "y" * 60}


@pytest.mark.chromium
def test_an_expression_that_throws_or_cannot_be_encoded_fails_the_step_clearly(conn, site, tmp_path):
    result = run(conn, site, tmp_path, [{"type": "extract", "name": "bad", "expression": "no_such_name.x"}])
    assert not result.ok and result.error_category == "navigation"
    assert 'step 1 (extract): extract "bad": the expression failed in the page: ReferenceError' in result.error
    result = run(conn, site, tmp_path, [{"type": "extract", "name": "cyclic",
                                         "expression": "(() => { const o = {}; o.o = o; return o; })()"}])
    assert not result.ok and 'extract "cyclic": the expression failed in the page: TypeError' in result.error
    # a page that replaced JSON.stringify cannot smuggle in something that is not JSON
    result = run(conn, site, tmp_path, [{"type": "extract", "name": "forged",
                                         "expression": "(JSON.stringify = () => '{not json', 1)"}])
    assert not result.ok and result.error_category == "navigation"
    assert 'extract "forged": the page returned text that is not JSON' in result.error, result.error


def test_extract_fields_are_validated_with_file_and_step_named():
    with pytest.raises(FlowValidationError) as info:
        parse_flow({"title": "t", "steps": [
            {"type": "extract", "name": "price", "expression": "1"},
            {"type": "extract", "name": "1st price", "expresion": "1", "frame": "top"},
            {"type": "extract", "name": 5, "expression": ["x"]},
        ]}, source="shop.json")
    assert info.value.problems == [
        "step 1 (extract): \"frame\" must be a list of at most 32 child-frame indexes (whole numbers >= 0)",
        "step 1 (extract): \"name\" must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or '_' "
        "(it names a JSON field and a CSV column)",
        'step 1 (extract): "expression" is required (a string)',
        'step 1 (extract): "expresion" is not a field of an extract step (name, expression, frame, target, '
        "timeout, phase, assertedEvents)",
        'step 2 (extract): "name" must be a string, got number',
        'step 2 (extract): "expression" must be a string, got list',
    ]
    assert str(info.value).startswith("shop.json: 6 problem(s)")
