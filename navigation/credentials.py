"""Credentials for flows: a private store, and a redactor that keeps values out of output.

Why: a flow says ``{"secret": "alice_password"}`` and the value must reach
the page and nothing else — not a log line, an error, a result, an artifact
name or test output.  So:

* values live only inside :class:`CredentialStore`, wrapped so that even a
  debugger's dump or ``repr`` of the store shows ``<secret>``;
* the store refuses a credential file that group or others can access
  (``mode & 0o077``), naming the file and its mode, never its contents;
* every error names the *secret* (or the file), never a value, and is
  raised outside the ``except`` block that caught a decoder error, so no
  exception context holds the file's bytes;
* :class:`Redactor` replaces every known value (and its JSON-escaped,
  URL-encoded and HTML-escaped forms) with ``***`` in strings and nested
  data — the one masking implementation: the runner's masker and the
  screenshot redaction (:mod:`navigation.redaction`, via ``forms``) use
  it too — and
  :class:`RedactingFilter` applies it to log records (message, extra
  fields, exception text) before any handler formats them.

Sources: a JSON file ``{"NAME": "value", ...}`` and environment variables
``DROVER_SECRET_<NAME>`` (the suffix is the name, case-sensitive).  When a
name is in both, the environment wins and that is logged (names only) to
the audit stream.
"""
from __future__ import annotations

import html
import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus

import orjson

from coordination.telemetry_context import stream_logger
from navigation.errors import CredentialError
from navigation.flow.records import SECRET_NAME, SecretRef

_audit = stream_logger("audit", __name__)

ENV_PREFIX = "DROVER_SECRET_"
MAX_FILE_BYTES = 1024 * 1024
MAX_SECRETS = 1000
MAX_VALUE_CHARS = 10_000
MASK = "***"
_MAX_DATA_DEPTH = 32


def _kind(value: object) -> str:
    """A value's JSON type name: what error messages say instead of the value."""
    if value is None:
        return "null"
    for kind, types in (("boolean", bool), ("number", (int, float)), ("string", str), ("list", list),
                        ("object", dict)):
        if isinstance(value, types):
            return kind
    return type(value).__name__


class _Secret:
    """A value that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __reduce__(self) -> object:
        raise TypeError("secret values are not picklable")


def _check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
        raise CredentialError(f"{where} is not a valid secret name "
                              "(1-64 letters, digits or _, not starting with a digit)")
    return name


def _check_value(name: str, value: object, where: str) -> str:
    if not isinstance(value, str):
        raise CredentialError(f"secret {name!r} in {where} must be a string, got {_kind(value)}")
    if not value:
        raise CredentialError(f"secret {name!r} in {where} is empty")
    if len(value) > MAX_VALUE_CHARS:
        raise CredentialError(f"secret {name!r} in {where} is longer than {MAX_VALUE_CHARS} characters")
    return value


def _read_private_file(source: str) -> bytes:
    """The file's bytes, after checking it is a small regular file only its owner can access."""
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        raise CredentialError(f"credential file {source} does not exist") from exc
    except PermissionError as exc:
        raise CredentialError(f"credential file {source} cannot be read (permission denied)") from exc
    except OSError as exc:
        raise CredentialError(f"credential file {source} cannot be read ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CredentialError(f"credential file {source} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise CredentialError(f"credential file {source} has mode {mode:04o}; it must not be "
                                  f"accessible by group or others (chmod 600 {source})")
        if info.st_size > MAX_FILE_BYTES:
            raise CredentialError(f"credential file {source} is larger than {MAX_FILE_BYTES} bytes")
        with os.fdopen(fd, "rb") as handle:
            fd = -1  # the file object owns it now
            data = handle.read(MAX_FILE_BYTES + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise CredentialError(f"credential file {source} is larger than {MAX_FILE_BYTES} bytes")
    return data


def _decode(data: bytes, source: str) -> object:
    """JSON from the file; on failure only a position is kept (the decoder's error holds the text)."""
    failure: str | None = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        failure = f"credential file {source} is not UTF-8 text (at byte {exc.start})"
    if failure is not None:
        raise CredentialError(failure)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        failure = f"credential file {source} is not valid JSON (line {exc.lineno}, column {exc.colno})"
    raise CredentialError(failure)


class CredentialStore:
    """Named secrets for flows; ``resolve`` is the only way a value leaves.

    Not picklable on purpose: workers get it by fork or load it themselves,
    so a value never travels through a queue or lands in a result file.
    """

    __slots__ = ("_secrets", "_sources")

    def __init__(self, secrets: Mapping[str, str] | None = None, *, source: str = "memory") -> None:
        checked: dict[str, _Secret] = {}
        for name, value in (secrets or {}).items():
            _check_name(name, f"a key in {source}")
            checked[name] = _Secret(_check_value(name, value, source))
        if len(checked) > MAX_SECRETS:
            raise CredentialError(f"{source} holds {len(checked)} secrets; the limit is {MAX_SECRETS}")
        self._secrets = checked
        self._sources: tuple[str, ...] = (source,)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CredentialStore:
        """Load ``{"NAME": "value", ...}`` from a file only its owner can read."""
        source = os.fspath(path)
        data = _decode(_read_private_file(source), source)
        if not isinstance(data, dict):
            raise CredentialError(f"credential file {source} must hold a JSON object of "
                                  f"name -> value, got {_kind(data)}")
        for position, key in enumerate(data, start=1):
            _check_name(key, f"key #{position} in credential file {source}")
        return cls(data, source=f"credential file {source}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CredentialStore:
        """Collect ``DROVER_SECRET_<NAME>`` variables (``environ`` defaults to ``os.environ``)."""
        env = os.environ if environ is None else environ
        found = {}
        for key, value in env.items():
            if key.startswith(ENV_PREFIX):
                found[_check_name(key[len(ENV_PREFIX):], f"environment variable {key}")] = value
        return cls(found, source=f"environment variables {ENV_PREFIX}*")

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *,
             environ: Mapping[str, str] | None = None, use_env: bool = True) -> CredentialStore:
        """The file (when given) overlaid with the environment (when ``use_env``)."""
        layers = []
        if path is not None:
            layers.append(cls.from_file(path))
        if use_env:
            layers.append(cls.from_env(environ))
        store = cls()
        store._sources = ()
        for layer in layers:
            overridden = sorted(set(store._secrets) & set(layer._secrets))
            if overridden:
                _audit.warning("credential overridden", extra={
                    "secret_names": overridden[:50], "winner": layer._sources[0]})
            store._secrets.update(layer._secrets)
            store._sources += layer._sources
        return store

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._secrets)

    @property
    def sources(self) -> tuple[str, ...]:
        return self._sources

    def __contains__(self, name: object) -> bool:
        return name in self._secrets

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        return f"CredentialStore({len(self._secrets)} secret(s) from {', '.join(self._sources) or 'nowhere'})"

    def __reduce__(self) -> object:
        raise TypeError("CredentialStore is not picklable; load it in the process that needs it")

    def resolve(self, ref: SecretRef) -> str:
        """The value of ``ref``; :class:`CredentialError` naming only the secret when unknown."""
        if not isinstance(ref, SecretRef):
            raise TypeError(f"resolve() takes a SecretRef, got {type(ref).__name__}")
        secret = self._secrets.get(ref.name)
        if secret is None:
            where = " or ".join(self._sources) or "an empty store"
            raise CredentialError(f"unknown secret {ref.name!r}: not in {where} "
                                  f"(file key {ref.name!r} or variable {ENV_PREFIX}{ref.name})")
        return secret.reveal()

    def value_of(self, value: str | SecretRef) -> str:
        """A step value as text: literals pass through, references are resolved."""
        return self.resolve(value) if isinstance(value, SecretRef) else value

    def missing(self, names: Iterable[str]) -> tuple[str, ...]:
        """The names among ``names`` the store cannot resolve (for a pre-flight check of a flow)."""
        return tuple(sorted(set(names) - set(self._secrets)))

    def redactor(self, *extra: str) -> Redactor:
        """A :class:`Redactor` for every value here plus ``extra`` (e.g. literal ``clip`` values)."""
        return Redactor([s.reveal() for s in self._secrets.values()] + list(extra))


class Redactor:
    """Replaces every known secret value with ``***``.

    Also masks each value's JSON-escaped, URL-encoded and HTML-escaped
    forms, because logs are JSON, values end up in URLs and DOM snapshots
    are HTML.  Longest values are matched first, so a secret that contains
    another is masked whole.
    """

    __slots__ = ("_text", "_bytes", "_count", "_forms")

    def __init__(self, values: Iterable[str]) -> None:
        variants: set[str] = set()
        for value in values:
            if not isinstance(value, str) or not value:
                continue
            variants.update({value, orjson.dumps(value).decode()[1:-1], quote(value, safe=""),
                             quote_plus(value, safe=""), html.escape(value), html.escape(value, quote=False)})
        ordered = sorted(variants, key=len, reverse=True)
        self._forms = tuple(ordered)
        self._count = len(ordered)
        self._text = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bytes = (re.compile(b"|".join(re.escape(v.encode()) for v in ordered))
                       if ordered else None)

    def __repr__(self) -> str:
        return f"Redactor({self._count} pattern(s))"

    @property
    def forms(self) -> tuple[str, ...]:
        """Every form masked, longest first: clear text, for masking where a regex cannot go (a page)."""
        return self._forms

    def mask(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        if self._text is None or not text:
            return text
        return self._text.sub(MASK, text)

    def mask_bytes(self, data: bytes) -> bytes:
        if self._bytes is None or not data:
            return data
        return self._bytes.sub(MASK.encode(), data)

    def mask_data(self, value: object, _depth: int = 0) -> object:
        """A masked copy of nested data (dict keys too); other objects become their masked ``str``."""
        if isinstance(value, str):
            return self.mask(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, (bytes, bytearray)):
            return self.mask_bytes(bytes(value))
        if _depth >= _MAX_DATA_DEPTH:
            return "<redacted: nested too deep>"
        if isinstance(value, Mapping):
            return {self.mask_data(k, _depth + 1): self.mask_data(v, _depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            masked = [self.mask_data(item, _depth + 1) for item in value]
            return tuple(masked) if isinstance(value, tuple) else masked
        return self.mask(str(value))


_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """A handler filter that masks secrets in the message, the extra fields and exception text.

    Attach it to *handlers* (a logger's own filters do not see records
    from child loggers).  It formats the message once (``args`` are then
    cleared) and pre-renders exception text, because formatters such as
    python-json-logger would otherwise re-render ``exc_info`` unmasked.
    It never drops a record.  ``redactor`` may be replaced at any time,
    e.g. once the credential store is loaded.
    """

    def __init__(self, redactor: Redactor, name: str = "") -> None:
        super().__init__(name)
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor
        try:
            message = record.getMessage()
        except (TypeError, ValueError) as exc:
            message = f"{record.msg} [log arguments did not format: {type(exc).__name__}]"
        record.msg = redactor.mask(str(message))
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_FIELDS:
                record.__dict__[key] = redactor.mask_data(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.mask(record.exc_text)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redactor.mask(record.stack_info)
        return True


__all__ = ["CredentialStore", "Redactor", "RedactingFilter", "ENV_PREFIX", "MASK"]
