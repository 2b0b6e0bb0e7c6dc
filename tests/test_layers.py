"""Imports point down only: engine -> navigation -> coordination, and inside engine records <- execution <- evidence,
soak <- cli (engine/errors.py and engine/config.py are the ground floor).  Checked from the source, so a new
upward import fails here before it becomes a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"coordination": 0, "navigation": 1, "engine": 2, "bench": 3}
ENGINE_FLOORS = {"errors": 0, "config": 0, "records": 1, "execution": 2, "evidence": 3, "soak": 4, "cli": 5}
# evidence and soak: the soak loop builds evidence (soak may import evidence, never the reverse)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def _violations(root: Path = ROOT) -> list[str]:
    bad = []
    for package, floor in PACKAGES.items():
        for path in (root / package).rglob("*.py"):
            rel = path.relative_to(root)
            for module in _imports(path):
                top = module.split(".")[0]
                if top in PACKAGES and PACKAGES[top] > floor:
                    bad.append(f"{rel} imports {module} (a higher floor)")
                if package == "engine" and top == "engine" and len(rel.parts) > 1:
                    mine = rel.parts[1] if len(rel.parts) > 2 else rel.stem
                    theirs = module.split(".")[1] if "." in module else None
                    if mine in ENGINE_FLOORS and theirs in ENGINE_FLOORS and \
                            ENGINE_FLOORS[theirs] > ENGINE_FLOORS[mine]:
                        bad.append(f"{rel} imports {module} (engine/{theirs} is above engine/{mine})")
    return bad


def test_imports_point_down_only():
    assert _violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    fake = tmp_path / "engine" / "records"
    fake.mkdir(parents=True)
    (tmp_path / "coordination").mkdir()
    (tmp_path / "navigation").mkdir()
    (tmp_path / "bench").mkdir()
    (fake / "bad.py").write_text("from engine.cli.main import main\nimport navigation\n")
    (tmp_path / "coordination" / "worse.py").write_text("from engine.config import Settings\n")
    found = _violations(tmp_path)
    assert any("engine/cli is above engine/records" in v for v in found), found
    assert any("coordination/worse.py imports engine.config" in v for v in found), found
