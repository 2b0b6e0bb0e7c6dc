"""The public faces: each name in ``__all__`` of engine and navigation resolves to the object it documents."""
from __future__ import annotations

import importlib

import pytest

import engine
import navigation


@pytest.mark.parametrize("package", [engine, navigation, importlib.import_module("coordination")])
def test_every_exported_name_resolves(package):
    assert package.__all__, f"{package.__name__} exports nothing"
    for name in package.__all__:
        obj = getattr(package, name)
        assert obj is not None and (getattr(obj, "__name__", name) == name or not callable(obj)), name


def test_an_embedding_program_runs_a_batch_through_the_public_names_only(tmp_path, site):
    from tests.engine.execution.test_run import LIGHT_FLOW, write_batch

    batch = write_batch(tmp_path, site, 2, LIGHT_FLOW)
    req = engine.RunRequest(str(batch), engine.Settings(workers=1, state_dir=str(tmp_path / "state")))
    summary = engine.execute(req, engine.prepare(req))
    assert summary.outcomes == {"passed": 2, "failed": 0, "pending": 0}
    with engine.ResultsStore(tmp_path / "state" / "results.sqlite") as store:
        assert [r["outcome"] for r in store.export_rows(summary.run_id)] == ["passed", "passed"]


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError):
        engine.no_such_thing  # noqa: B018
    with pytest.raises(AttributeError):
        navigation.no_such_thing  # noqa: B018
