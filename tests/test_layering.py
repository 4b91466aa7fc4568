"""The direction of imports: nirvana -> api | worker -> db, and api | worker -> lottery.

Read from the source with ``ast`` (imports inside functions count too), so a forbidden
import fails here even if no test happens to execute it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "lottery": {"db", "api", "worker", "nirvana", "fastapi", "sqlalchemy", "psycopg"},
    "db": {"api", "worker", "nirvana", "lottery", "torch", "fastapi"},
    "api": {"worker", "nirvana"},
    "worker": {"api", "nirvana", "fastapi"},
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_may(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    violations = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package]) for path in files
    }
    violations = {path: names for path, names in violations.items() if names}
    assert violations == {}, f"{package} must not import {sorted(FORBIDDEN[package])}: {violations}"


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from api.app import create_app\n    import torch.nn\n")
    assert imported_roots(module) == {"api", "torch"}
