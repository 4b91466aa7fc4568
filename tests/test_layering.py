"""The direction of imports, read from the source with ``ast`` (imports inside functions
count too), so a forbidden import fails here even if no test happens to execute it.

Two audiences, two installs. The library (``nirvana``: the ML core under
``nirvana.lottery``, the client, the CLI) is what a researcher installs; it never imports
the service. The service (``api``, ``db``, ``worker``, ``service``) is built on it:
``service -> api | worker -> db``, ``api | worker -> nirvana.lottery``. The one seam from
the CLI to the service, ``nirvana.commands.server``, imports it by name at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SERVICE = {"api", "db", "worker", "service", "fastapi", "starlette", "sqlalchemy", "psycopg", "alembic", "uvicorn", "pgserver", "pydantic_settings"}
CLIENT_SIDE = {"nirvana.client", "nirvana.cli", "nirvana.commands", "nirvana.cache", "nirvana.transport", "nirvana.waiting", "nirvana.loading", "nirvana.errors", "nirvana.progress", "nirvana.paths",
               "nirvana.hub_types", "nirvana.hub_export", "nirvana.downloads", "nirvana.decoding", "nirvana.cache_admin", "nirvana.datasets"}

# package folder -> module prefixes it must not import
FORBIDDEN: dict[str, set[str]] = {
    # The core: pure PyTorch; nothing of the client or the service, no HTTP, no CLI.
    "nirvana/lottery": SERVICE | {"nirvana", "httpx", "typer"},
    # The client side of the library: nothing of the service.
    "nirvana": SERVICE,
    # db: persistence; of the library only its paths, and no torch.
    "db": {"api", "worker", "service", "torch", "fastapi", "nirvana.lottery"} | CLIENT_SIDE - {"nirvana.paths"},
    "api": {"worker", "service"} | CLIENT_SIDE,
    "worker": {"api", "service", "fastapi"} | CLIENT_SIDE,
}
# Prefixes a package may import although a broader forbidden prefix covers them.
ALLOWED = {"nirvana/lottery": {"nirvana.lottery"}}
# A rule on a package skips its subpackages that have a stricter rule of their own.
OWN_RULES = {"nirvana": ["nirvana/lottery"]}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            # ``from nirvana import paths`` imports nirvana.paths
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def matches(module: str, prefixes: set[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def violations_of(package: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if any(relative.startswith(sub + "/") for sub in OWN_RULES.get(package, [])):
            continue
        bad = sorted(
            module
            for module in imported_modules(path)
            if matches(module, FORBIDDEN[package]) and not matches(module, ALLOWED.get(package, set()))
        )
        if bad:
            found[relative] = bad
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_may(package: str) -> None:
    assert list((ROOT / package).rglob("*.py")), f"{package}/ has no modules"
    assert violations_of(package) == {}, f"{package} must not import {sorted(FORBIDDEN[package])}"


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from api.app import create_app\n    import torch.nn\n")
    assert imported_modules(module) == {"api.app", "api.app.create_app", "torch.nn"}


def test_the_library_wheel_holds_only_the_nirvana_namespace() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["nirvana*"]
    assert not any(matches(dep.split(">")[0].split("[")[0].replace("-", "_"), SERVICE) for dep in config["project"]["dependencies"])


def test_the_core_reads_no_environment_variable() -> None:
    # Its callers (the server's settings, the CLI's options) read the environment and
    # pass what they found, e.g. ``load_task(name, data_dir)``.
    readers = {"environ", "getenv", "environb", "getenvb"}
    found = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "nirvana" / "lottery").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if (isinstance(node, ast.Attribute) and node.attr in readers) or (isinstance(node, ast.Name) and node.id in readers)
    )
    assert found == []


# The one home of each table's statements (docs/architecture.md, "One home per table").
STATEMENT_HOMES = {
    "db/repositories/tickets.py",  # tickets
    "db/repositories/blobs.py",  # blobs
    "db/repositories/verifications.py",  # verifications: reads for display
    "db/queue.py",  # verifications: the job's lifecycle (enqueue, claim, heartbeat, finish, cancel)
    "db/tokens.py",  # users, api_tokens
    "api/routes/health.py",  # SELECT 1: touches no table
}
STATEMENT_BUILDERS = {"select", "insert", "update", "delete", "text", "union", "exists"}


def test_sql_statements_live_in_their_tables_homes() -> None:
    builders_imported = sorted(
        path.relative_to(ROOT).as_posix()
        for package in ("api", "db", "worker", "service", "nirvana")
        for path in (ROOT / package).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy")
        and {a.name for a in node.names} & STATEMENT_BUILDERS
    )
    # The schema (db/base.py, db/models/) uses text() for server defaults, not statements.
    schema = {p for p in builders_imported if p == "db/base.py" or p.startswith("db/models/")}
    assert sorted(set(builders_imported) - STATEMENT_HOMES - schema) == []


# The client side of the library: what ``import nirvana`` and ``Client`` load.
CLIENT_MODULES = (
    "__init__", "client", "downloads", "decoding", "hub_types", "states", "cache", "transport", "loading", "waiting",
    "errors", "paths", "progress",
)


def _module_level_imports(path: Path) -> set[str]:
    """Imports run when the module is imported: its top level, not functions and not
    ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    body = [n for n in tree.body if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))]
    found: set[str] = set()
    for node in body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("name", CLIENT_MODULES)
def test_the_client_needs_no_cli_and_loads_torch_only_when_used(name: str) -> None:
    path = ROOT / "nirvana" / f"{name}.py"
    cli = sorted(m for m in imported_modules(path) if matches(m, {"typer", "nirvana.cli", "nirvana.commands"}))
    eager = sorted(m for m in _module_level_imports(path) if matches(m, {"torch", "numpy", "safetensors", "nirvana.lottery"}))
    assert (cli, eager) == ([], [])
