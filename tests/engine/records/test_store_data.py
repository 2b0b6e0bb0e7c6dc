"""Extracted data in the results store: written with the final outcome, fenced, exported, migrated from schema 2."""
from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import StaleLease
from engine.execution.cluster.coordinator import Coordinator
from engine.records.schema import SCHEMA, SCHEMA_VERSION
from engine.records.store import DuplicateOutcome, Lease, ResultsStore

REPO = Path(__file__).resolve().parents[3]
RUN = "r-data"
PRICE = {"amount": 12.5, "currency": "EUR", "tags": ["a", None]}


def new_store(tmp_path: Path, jobs: int = 3) -> ResultsStore:
    store = ResultsStore(tmp_path / "results.sqlite")
    store.create_run(RUN, batch="/b.jsonl", mode="parallel", workers=2, run_dir=str(tmp_path / RUN),
                     jobs=[(f"j{i}", i + 1, "flow.json", {"id": f"j{i}"}) for i in range(jobs)])
    return store


def leased(store: ResultsStore, job: str, attempt: int, lease: Lease, data, *, outcome: str = "passed",
           final: bool = True) -> None:
    store.start_attempt(RUN, job, attempt, "w0", lease=lease)
    store.finish_attempt(RUN, job, attempt, lease, outcome=outcome, final=final, worker="w0", data=data)


def test_data_goes_with_the_final_outcome_and_a_retried_attempts_data_is_not_kept(tmp_path):
    with new_store(tmp_path) as store:
        gen = store.begin_generation(RUN, ["slot:0"])
        lease = Lease("slot:0", gen.epoch_floor)
        leased(store, "j0", 1, lease, {"price": 1}, outcome="retry", final=False)
        leased(store, "j0", 2, lease, {"price": PRICE, "title": "Shop"})
        leased(store, "j1", 1, lease, None, outcome="failed")
        rows = {r["job_id"]: r for r in store.export_rows(RUN)}
        assert rows["j0"]["data"] == {"price": PRICE, "title": "Shop"} and rows["j0"]["attempts"] == 2
        assert rows["j1"]["data"] == {} and rows["j2"]["data"] == {} and rows["j2"]["outcome"] == "pending"


def test_a_stale_or_duplicate_writer_stores_no_data(tmp_path):
    with new_store(tmp_path) as store:
        first = store.begin_generation(RUN, ["slot:0"])
        old = Lease("slot:0", first.epoch_floor)
        store.start_attempt(RUN, "j0", 1, "w0", lease=old)
        second = store.begin_generation(RUN, ["slot:0"])  # a resume: the old lease is below the fence now
        with pytest.raises(StaleLease):
            store.finish_attempt(RUN, "j0", 1, old, outcome="passed", final=True, worker="w0", data={"stale": 1})
        new = Lease("slot:0", second.epoch_floor)
        leased(store, "j0", 2, new, {"fresh": 2})
        store.start_attempt(RUN, "j0", 3, "w1", lease=new)
        with pytest.raises(DuplicateOutcome):
            store.finish_attempt(RUN, "j0", 3, new, outcome="passed", final=True, worker="w1", data={"dup": 3})
        assert store.export_rows(RUN)[0]["data"] == {"fresh": 2}
        raw = sqlite3.connect(store.path)
        assert raw.execute("SELECT data FROM outcomes").fetchall() == [('{"fresh":2}',)]


def test_the_ray_coordinator_passes_the_data_to_the_fenced_store_write(tmp_path):
    """The Ray worker's store (CoordinatorStore) ships finish_attempt's keywords as they are; the coordinator
    actor hands them to the store's one fenced transaction.  The actor's class, called in-process here."""
    new_store(tmp_path).close()
    with ResultsStore(tmp_path / "results.sqlite") as store:
        floor = store.begin_generation(RUN, ["slot:0"]).epoch_floor
    coordinator = Coordinator(str(tmp_path / "results.sqlite"), RUN, floor, ttl=30.0)
    try:
        grant = coordinator.acquire("slot:0", "node-a/w0")
        assert grant is not None
        lease = Lease("slot:0", grant.epoch)
        coordinator.start_attempt(RUN, "j0", 1, "w0", lease, "node-a/w0")
        coordinator.finish_attempt(RUN, "j0", 1, lease, "node-a/w0", outcome="passed", final=True, worker="w0",
                                   data={"price": PRICE})
    finally:
        coordinator.close()
    with ResultsStore(tmp_path / "results.sqlite") as store:
        assert store.export_rows(RUN)[0]["data"] == {"price": PRICE}


def test_csv_has_one_json_column_per_extracted_name_and_jsonl_one_object_per_job(tmp_path):
    with new_store(tmp_path) as store:
        lease = Lease("slot:0", store.begin_generation(RUN, ["slot:0"]).epoch_floor)
        leased(store, "j0", 1, lease, {"price": PRICE, "title": 'a "quoted", title'})
        leased(store, "j1", 1, lease, {"count": 3})

    def results(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "engine", "results", RUN, *args, "--state-dir", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)

    res = results("--format", "csv")
    assert res.returncode == 0, res.stderr
    parsed = list(csv.DictReader(io.StringIO(res.stdout)))
    assert list(parsed[0])[-3:] == ["data.price", "data.title", "data.count"]
    assert json.loads(parsed[0]["data.price"]) == PRICE and json.loads(parsed[0]["data.title"]) == 'a "quoted", title'
    assert parsed[0]["data.count"] == "" and parsed[1]["data.count"] == "3" and parsed[2]["data.price"] == ""
    res = results("--format", "jsonl")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(j["run_id"], j["job_id"], j["outcome"], j["data"]) for j in lines] == [
        (RUN, "j0", "passed", {"price": PRICE, "title": 'a "quoted", title'}), (RUN, "j1", "passed", {"count": 3}),
        (RUN, "j2", "pending", {})]
    res = results("--format", "json")
    assert [j["data"] for j in json.loads(res.stdout)["jobs"]] == [lines[0]["data"], {"count": 3}, {}]


def _schema_2_store(path: Path) -> None:
    """A store as schema 2 made it: no ``outcomes.data``, meta saying 2, a run with a passed and a failed job."""
    old = SCHEMA.replace("    data        TEXT NOT NULL DEFAULT '{}',\n", "")
    assert "data " not in old.split("CREATE TABLE IF NOT EXISTS outcomes")[1].split(");")[0]
    raw = sqlite3.connect(path)
    raw.executescript(old)
    raw.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '2')")
    raw.execute("INSERT INTO runs(run_id, batch, mode, workers, started_at, run_dir) VALUES "
                "(?, '/b.jsonl', 'parallel', 1, 1.0, '/runs/old')", (RUN,))
    for i, outcome in enumerate(("passed", "failed")):
        raw.execute("INSERT INTO jobs(run_id, job_id, line, flow, spec) VALUES (?,?,?,?,?)",
                    (RUN, f"j{i}", i + 1, "flow.json", "{}"))
        raw.execute("INSERT INTO attempts(run_id, job_id, attempt, worker, epoch, started_at, ended_at, outcome) "
                    "VALUES (?,?,1,'w0',5,1.0,2.0,?)", (RUN, f"j{i}", outcome))
        raw.execute("INSERT INTO outcomes(run_id, job_id, outcome, attempts, worker, recorded_at, epoch, category, "
                    "error) VALUES (?,?,?,1,'w0',2.0,5,?,?)",
                    (RUN, f"j{i}", outcome, None if outcome == "passed" else "navigation",
                     None if outcome == "passed" else "boom"))
    raw.commit()
    raw.close()


def test_a_schema_2_store_is_migrated_on_open_and_keeps_its_rows(tmp_path):
    path = tmp_path / "results.sqlite"
    _schema_2_store(path)
    assert SCHEMA_VERSION == 3
    with ResultsStore(path) as store:
        rows = store.export_rows(RUN)
        assert [(r["job_id"], r["outcome"], r["category"], r["error"], r["data"]) for r in rows] == [
            ("j0", "passed", None, None, {}), ("j1", "failed", "navigation", "boom", {})]
        assert store.max_epoch(RUN) == 5 and len(store.attempts(RUN)) == 2
        # the migrated store takes new data like a new one
        store.add_jobs(RUN, [("j2", 3, "flow.json", {})])
        lease = Lease("slot:0", store.begin_generation(RUN, ["slot:0"]).epoch_floor)
        leased(store, "j2", 1, lease, {"price": 7})
        assert store.export_rows(RUN)[2]["data"] == {"price": 7}
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    assert "data" in {r[1] for r in raw.execute("PRAGMA table_info(outcomes)")}
