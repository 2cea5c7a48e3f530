"""The layout shows the architecture: handler/bridge/ holds the orchestration and the small shared pieces, and one
sub-package per outside thing (webhook/, pagerduty/, devin/, result/). Read from the code's own imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.events import ROOT

BRIDGE = ROOT / "handler" / "bridge"
SUB_PACKAGES = ("webhook", "pagerduty", "devin", "result")
# The small pieces every layer may use: they import none of the sub-packages, nor the orchestration.
SHARED = ("config", "errors", "http", "timing", "credentials", "text", "tracing")


def _module_name(path: Path) -> str:
    parts = path.relative_to(BRIDGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module imported, name imported or "") for every import of a bridge module in `path`, made absolute."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                found.append((module, alias.name))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, "") for alias in node.names)
    return [(module, name) for module, name in found if module == "bridge" or module.startswith("bridge.")]


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(BRIDGE.rglob("*.py"))}


def _targets(module: str, name: str, modules: dict[str, Path]) -> str:
    """The module an import reaches: `from bridge.result import schema` reaches bridge.result.schema."""
    return f"{module}.{name}" if f"{module}.{name}" in modules else module


def _package(module: str) -> str:
    """The sub-package a module belongs to, or the module itself for the top level (bridge.ledger)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_each_sub_package_exists_and_its_init_says_in_one_line_what_lives_there() -> None:
    for name in SUB_PACKAGES:
        init = BRIDGE / name / "__init__.py"
        lines = init.read_text(encoding="utf-8").splitlines()

        assert len(lines) == 1, f"{init} holds more than its one line"
        assert re.fullmatch(r'""".+\."""', lines[0]), f"{init} is not one docstring line"


def test_the_shared_modules_import_no_sub_package_and_no_orchestration() -> None:
    modules = _modules()
    for name in SHARED:
        imported = {_targets(m, n, modules) for m, n in _imports(BRIDGE / f"{name}.py")}

        assert all(target.removeprefix("bridge.") in SHARED for target in imported), (name, imported)


def test_the_sub_packages_form_no_cycle_among_themselves() -> None:
    modules = _modules()
    edges: dict[str, set[str]] = {f"bridge.{name}": set() for name in SUB_PACKAGES}
    for module, path in modules.items():
        source = _package(module)
        if source not in edges:
            continue
        for imported, name in _imports(path):
            target = _package(_targets(imported, name, modules))
            if target in edges and target != source:
                edges[source].add(target)

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in edges[start])

    cycles = [package for package in edges if reaches(package, package)]
    assert not cycles, edges


def test_no_module_imports_a_private_name_from_another_package() -> None:
    modules = _modules()
    crossings = []
    for module, path in modules.items():
        for imported, name in _imports(path):
            target = _targets(imported, name, modules)
            if name.startswith("_") and _package(target) != _package(module):
                crossings.append(f"{module} imports {name} from {target}")

    assert not crossings


def test_no_two_modules_of_the_bridge_import_each_other_even_indirectly() -> None:
    modules = _modules()
    edges = {
        module: {_targets(m, n, modules) for m, n in _imports(path)} & set(modules) for module, path in modules.items()
    }
    # Parents of a module are imported with it; they are not an edge of the code's own making.
    edges = {module: {t for t in targets if not module.startswith(t + ".")} for module, targets in edges.items()}

    order: list[str] = []
    state: dict[str, str] = {}

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert state.get(module) != "open", " → ".join((*path, module))
        if state.get(module) == "done":
            return
        state[module] = "open"
        for target in sorted(edges[module]):
            visit(target, (*path, module))
        state[module] = "done"
        order.append(module)

    for module in sorted(modules):
        visit(module, ())
    assert len(order) == len(modules)


def test_the_layout_in_the_docs_names_every_module_of_the_function() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    layout = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    files = [
        path
        for path in sorted(BRIDGE.rglob("*"))
        if path.suffix in (".py", ".json") and path.name != "__init__.py" and "__pycache__" not in path.parts
    ]

    missing = [str(path.relative_to(BRIDGE)) for path in files if path.name not in layout]
    assert not missing
