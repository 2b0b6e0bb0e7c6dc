"""Every error class in coordination, navigation and engine, found by walking the packages.

Why walk: an error added next month must obey the same two rules without
anyone remembering to list it here — it survives pickling with its type,
message, category and every public attribute (errors cross process
boundaries: forked workers, pools, Ray actors), and a timeout error is a
builtin ``TimeoutError`` too.  A class may pickle through the root's
``__reduce__`` or its own (filelock style); either way its fields must
arrive.
"""
from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil

import pytest

import coordination
import engine
import navigation
from coordination.errors import DroverError

_MISSING = object()


def _modules() -> list[str]:
    names = []
    for package in (coordination, navigation, engine):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if not info.name.endswith("__main__"):  # engine/__main__.py runs the CLI when imported
                names.append(info.name)
    return names


def _error_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == name:
                found[f"{name}.{obj.__qualname__}"] = obj
    return [found[k] for k in sorted(found)]


ERRORS = _error_classes()


def _sample(name: str, annotation: object, i: int) -> object:
    """A distinctive value of the annotated type, so a field lost or swapped in transit shows."""
    text = str(annotation)
    if "tuple" in text:
        return (f"{name}-a", f"{name}-b")
    if "list" in text:
        return [f"{name} problem 1", f"{name} problem 2"]
    if text.startswith("int"):
        return 40 + i
    if text.startswith("float"):
        return 1.25 + i
    if text.startswith("str"):
        return f"{name}-{i}"
    return {"field": name, "n": i}  # object / unannotated: any picklable value


def build(cls: type[BaseException]) -> BaseException:
    """An instance with every constructor argument set, defaults too, each to a distinctive value."""
    if inspect.isfunction(cls.__init__):  # a constructor written in Python, i.e. ours; the builtin ones take a message
        params = [p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return cls(**{p.name: _sample(p.name, p.annotation, i) for i, p in enumerate(params)})
    return cls(f"{cls.__name__} happened")


def public_state(err: BaseException) -> dict[str, object]:
    """Every public, non-method attribute; one that raises on access (OSError.characters_written) as a marker."""
    out = {}
    for name in dir(err):
        if name.startswith("_"):
            continue
        try:
            value = getattr(err, name)
        except AttributeError:
            value = _MISSING
        if not callable(value):
            out[name] = value
    return out


def test_the_walk_finds_the_errors_of_all_three_packages():
    names = {c.__name__ for c in ERRORS}
    assert {"DroverError", "LockTimeout", "InvalidTransition", "CDPResponseError", "CDPTimeout",
            "FlowValidationError", "StepTimeout", "BatchInputError", "ResultsStoreError", "DuplicateOutcome",
            "SoakBusy", "MissingVariable"} <= names, sorted(names)
    assert len(ERRORS) >= 35


@pytest.mark.parametrize("cls", ERRORS, ids=[f"{c.__module__}.{c.__qualname__}" for c in ERRORS])
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_every_error_survives_pickling_with_its_type_message_category_and_fields(cls, protocol):
    err = build(cls)
    copy = pickle.loads(pickle.dumps(err, protocol=protocol))
    assert type(copy) is cls
    assert str(copy) == str(err)
    assert copy.args == err.args
    assert getattr(type(copy), "category", None) == getattr(cls, "category", None)
    assert public_state(copy) == public_state(err)


def test_every_timeout_error_is_a_builtin_timeout_error():
    timeouts = [c for c in ERRORS if issubclass(c, DroverError) and c.category == "timeout"]
    assert {c.__name__ for c in timeouts} >= {"CDPTimeout", "StepTimeout", "LockTimeout"}
    for cls in timeouts:
        assert issubclass(cls, TimeoutError), cls
        with pytest.raises(TimeoutError):
            raise build(cls)
