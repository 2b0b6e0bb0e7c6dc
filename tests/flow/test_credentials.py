"""The credential store: private files only, env vars, clear errors, and values that never leak."""
from __future__ import annotations

import io
import logging
import pickle
from pathlib import Path

import orjson
import pytest
from pythonjsonlogger.json import JsonFormatter

from navigation.credentials import CredentialStore, RedactingFilter, Redactor
from navigation.errors import CredentialError
from navigation.flow import SecretRef, parse_flow

PASSWORD = "hunter2-Ü\"quote\\slash&amp=1"
PIN = "4711"
SECRETS = {"alice_password": PASSWORD, "alice_pin": PIN}


def _write(path: Path, content: bytes | str, mode: int = 0o600) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    path.chmod(mode)
    return path


@pytest.fixture
def creds_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "creds.json", orjson.dumps(SECRETS))


def _assert_clean(text: str) -> None:
    for value in SECRETS.values():
        assert value not in text
    assert "hunter2" not in text


def test_private_file_loads_and_resolves(creds_file: Path) -> None:
    store = CredentialStore.from_file(creds_file)
    assert store.resolve(SecretRef("alice_password")) == PASSWORD
    assert store.value_of(SecretRef("alice_pin")) == PIN and store.value_of("literal") == "literal"
    assert store.names == {"alice_password", "alice_pin"} and len(store) == 2 and "alice_pin" in store
    _assert_clean(repr(store) + str(store))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700 | 0o020])
def test_group_or_world_access_is_refused_naming_file_and_mode(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "creds.json", orjson.dumps(SECRETS), mode)
    with pytest.raises(CredentialError) as info:
        CredentialStore.from_file(path)
    message = str(info.value)
    assert str(path) in message and f"mode {mode:04o}" in message and "chmod 600" in message
    _assert_clean(message)
    assert type(info.value).category == "auth"


@pytest.mark.parametrize("content, expected", [
    ('{"alice_password": "hunter2-x",}', "is not valid JSON (line 1, column 33)"),
    (b'{"alice_password": "hunter2-\xff"}', "is not UTF-8 text (at byte 28)"),
    ('["hunter2-x"]', "must hold a JSON object of name -> value, got list"),
    ('{"alice_password": ["hunter2-x"]}', "secret 'alice_password' in credential file"),
    ('{"alice_password": ""}', "is empty"),
    ('{"hunter2 x": "hunter2-x"}', "key #1 in credential file"),
])
def test_bad_files_give_errors_without_contents(tmp_path: Path, content: str | bytes, expected: str) -> None:
    path = _write(tmp_path / "creds.json", content)
    with pytest.raises(CredentialError) as info:
        CredentialStore.from_file(path)
    assert expected in str(info.value) and str(path) in str(info.value)
    assert "hunter2" not in str(info.value)
    # no exception context holds the decoder's copy of the file
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="does not exist"):
        CredentialStore.from_file(tmp_path / "nope.json")
    with pytest.raises(CredentialError, match="is not a regular file"):
        CredentialStore.from_file(tmp_path)


def test_environment_variables() -> None:
    env = {"DROVER_SECRET_alice_pin": PIN, "DROVER_SECRET_API_TOKEN": "tok-123", "HOME": "/root"}
    store = CredentialStore.from_env(env)
    assert store.names == {"alice_pin", "API_TOKEN"}
    assert store.resolve(SecretRef("API_TOKEN")) == "tok-123"
    with pytest.raises(CredentialError, match="environment variable DROVER_SECRET_bad-name is not a valid secret name"):
        CredentialStore.from_env({"DROVER_SECRET_bad-name": "x"})


def test_file_plus_environment_and_the_override_is_audited(creds_file: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store = CredentialStore.load(creds_file, environ={"DROVER_SECRET_alice_pin": "9999", "DROVER_SECRET_extra": "e"})
    assert store.resolve(SecretRef("alice_pin")) == "9999"
    assert store.resolve(SecretRef("alice_password")) == PASSWORD
    assert len(store.sources) == 2
    (record,) = [r for r in caplog.records if r.name.startswith("drover.audit.")]
    assert record.secret_names == ["alice_pin"]  # type: ignore[attr-defined]
    assert "9999" not in str(record.__dict__) and PIN not in str(record.__dict__)


def test_unknown_name_names_the_secret_only(creds_file: Path) -> None:
    store = CredentialStore.from_file(creds_file)
    with pytest.raises(CredentialError) as info:
        store.resolve(SecretRef("bob_password"))
    assert "unknown secret 'bob_password'" in str(info.value)
    assert "DROVER_SECRET_bob_password" in str(info.value)
    _assert_clean(str(info.value))
    assert store.missing(["alice_pin", "bob_password"]) == ("bob_password",)


def test_store_and_values_do_not_pickle(creds_file: Path) -> None:
    store = CredentialStore.from_file(creds_file)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(store)


def test_redactor_masks_plain_json_escaped_and_url_encoded_forms(creds_file: Path) -> None:
    redactor = CredentialStore.from_file(creds_file).redactor("literal-clip-value")
    from urllib.parse import quote
    text = (f"login with {PASSWORD} then pin {PIN}; json {orjson.dumps(PASSWORD).decode()} "
            f"url ?p={quote(PASSWORD, safe='')} clip literal-clip-value")
    masked = redactor.mask(text)
    _assert_clean(masked)
    assert "literal-clip-value" not in masked
    assert masked.count("***") == 5
    data = {"user": "alice", PIN: [PASSWORD, (1, f"x{PIN}x")], "n": 3, "b": PASSWORD.encode()}
    masked_data = redactor.mask_data(data)
    assert masked_data == {"user": "alice", "***": ["***", (1, "x***x")], "n": 3, "b": b"***"}


def test_redactor_prefers_the_longest_secret() -> None:
    redactor = Redactor(["abc", "abcdef"])
    assert redactor.mask("xabcdefx abc") == "x***x ***"
    assert Redactor([]).mask("anything") == "anything"


def test_logging_filter_masks_message_args_extra_and_exception(creds_file: Path) -> None:
    store = CredentialStore.from_file(creds_file)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(store.redactor()))
    log = logging.getLogger("drover.operational.test_credentials")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("typed %s into the form", PASSWORD, extra={"value": PASSWORD, "nested": {"pin": PIN}})
        try:
            raise ValueError(f"page rejected {PASSWORD}")
        except ValueError:
            log.exception("step failed with pin %s", PIN)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    output = stream.getvalue()
    assert output.count("***") >= 5
    _assert_clean(output)
    assert "ValueError" in output  # the traceback survives, masked


def test_secret_bytes_never_appear_in_reprs_errors_or_flow_records(creds_file: Path) -> None:
    store = CredentialStore.from_file(creds_file)
    flow = parse_flow({"title": "t", "steps": [
        {"type": "change", "selectors": [["#pw"]], "value": {"secret": "alice_password"}},
        {"type": "clip", "value": {"secret": "alice_password"}},
        {"type": "keyDown", "key": {"secret": "alice_pin"}}]}, source="f.json")
    texts = [repr(store), str(store), repr(flow), str(flow), repr(store.redactor())]
    texts += [repr(step) for step in flow.steps]
    texts += [repr(s) for s in store._secrets.values()]  # noqa: SLF001 - the wrapper must not print itself
    for bad in ({"alice_password": PASSWORD, "x": 1}, {"bad name": PASSWORD}):
        with pytest.raises(CredentialError) as info:
            CredentialStore(bad, source="inline")  # type: ignore[arg-type]
        texts.append(str(info.value))
    with pytest.raises(CredentialError) as unknown:
        store.resolve(SecretRef("nobody"))
    texts.append(str(unknown.value))
    joined = "\n".join(texts)
    assert PIN not in joined and "hunter2" not in joined
