"""One name, one import path: no module re-exports a name of another of our modules,
and nobody imports a name from a module that merely imported it.

Read from the source with ``ast``. The one exception is the package ``nirvana``
itself, whose ``Client`` and ``NirvanaError`` are the library's front door
(``from nirvana import Client``, as ``huggingface_hub`` does).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nirvana", "api", "db", "worker", "service", "tests", "bench", "migrations")
FRONT_DOOR = {"nirvana": {"Client", "NirvanaError"}}


@dataclass
class Module:
    path: Path
    defined: set[str] = field(default_factory=set)
    imported: dict[str, str] = field(default_factory=dict)  # local name -> source module
    exported: list[str] = field(default_factory=list)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_modules() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = modules.setdefault(module_name(path), Module(path))
            for node in ast.parse(path.read_text(), filename=str(path)).body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    module.defined.add(node.name)
                elif isinstance(node, ast.Assign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if isinstance(target, ast.Name):
                            module.defined.add(target.id)
                            if target.id == "__all__" and isinstance(node.value, ast.List | ast.Tuple):
                                module.exported = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    module.imported.update({a.asname or a.name: node.module for a in node.names})
    return modules


def borrowed(modules: dict[str, Module], name: str, module: str) -> bool:
    """``name`` in ``module`` comes from another of our modules, not from itself."""
    found = modules[module]
    if f"{module}.{name}" in modules:  # a submodule (``from db.models import tickets``)
        return False
    return name not in found.defined and found.imported.get(name) in modules and name not in FRONT_DOOR.get(module, set())


def test_no_all_list_reexports_another_modules_name() -> None:
    modules = read_modules()
    reexports = {m: [n for n in mod.exported if borrowed(modules, n, m)] for m, mod in modules.items()}
    assert {m: names for m, names in reexports.items() if names} == {}


def test_every_import_names_the_module_that_defines_it() -> None:
    modules = read_modules()
    detours: list[str] = []
    for mod in modules.values():
        for node in ast.walk(ast.parse(mod.path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
                detours += [
                    f"{mod.path.relative_to(ROOT)}:{node.lineno} {a.name} from {node.module} (defined in {modules[node.module].imported[a.name]})"
                    for a in node.names
                    if borrowed(modules, a.name, node.module)
                ]
    # protocol.py is being rewritten elsewhere (issue 9); its Recipe import moves with it.
    assert [d for d in detours if "verification/protocol.py" not in d] == []
