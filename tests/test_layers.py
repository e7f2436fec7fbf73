"""Imports point down the layers, and no two packages import each other.

The layer table below is the one definition of the layering (``docs/architecture.md``
draws it). Every ``import`` in every module of ``prefgym`` counts -- at module level,
inside functions and classes, relative or absolute -- and so does a lazy lookup by name
(a string constant that names a ``prefgym`` module, as in the ``__getattr__`` tables of
``prefgym.llm`` and ``prefgym.agents.llm``). Only imports under ``if TYPE_CHECKING:``
(annotations, never run) are skipped; the exceptions are listed in ``ALLOWED`` with
their reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "prefgym"

#: layers from the bottom up: a module may import its own layer and the layers before it.
#: Entries are top-level modules or packages of ``prefgym`` ("" is the package's ``__init__``).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundations", ("errors", "fileio", "optional", "serialization", "simplex", "logger", "hyperparams",
                     "sb3_files", "validation")),
    ("preferences", ("preferences", "teachers")),
    ("games", ("games",)),
    ("algorithms", ("algorithms",)),
    ("language", ("llm", "data", "judges")),
    ("environments", ("envs",)),
    ("agents", ("agents", "selfplay")),
    ("evaluation", ("evaluation", "plotting", "llm_tasks", "reproductions")),
    ("command line", ("cli_common", "cli_llm", "cli_sb3", "cli", "__main__", "")),
)
#: (importer, imported) -> why the upward import is there
ALLOWED: dict[tuple[str, str], str] = {
    ("prefgym.agents.llm.tasks", "prefgym.llm_tasks"):
        "compatibility re-export: the CLI's LLM tasks moved up to prefgym.llm_tasks; old path still works",
}

LAYER_OF = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}
_MODULE_NAME = re.compile(r"^prefgym(\.[A-Za-z_]\w*)*$")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                skipped.update(id(n) for n in ast.walk(stmt))
    return skipped


def _imports(path: Path) -> set[str]:
    """Every ``prefgym`` module that the module at ``path`` imports (see the module docstring)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # ``from prefgym import envs`` imports the module prefgym.envs
                sub = f"{module}.{alias.name}"
                out.add(sub if _is_module(sub) else module)
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and _MODULE_NAME.match(node.value) and "." in node.value and _is_module(node.value)):
            out.add(node.value)  # a lazy lookup by name
    return {m for m in out if m == "prefgym" or m.startswith("prefgym.")} - {name}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


GRAPH = _graph()


def test_every_module_has_a_layer():
    missing = sorted({_unit(m) for m in GRAPH} - set(LAYER_OF))
    assert not missing, f"add these top-level modules / packages to LAYERS: {missing}"


def test_the_walker_sees_function_level_relative_and_lazy_imports():
    # spot checks against known imports of each kind, so the walker cannot silently see nothing
    assert "prefgym.llm.kl" in GRAPH["prefgym.llm.policy"]  # inside a method
    assert "prefgym.llm.sampling" in GRAPH["prefgym.llm"]  # a lazy lookup by name
    assert "prefgym.envs" in GRAPH["prefgym"]  # ``from prefgym import envs``
    assert "prefgym.judges.base" not in GRAPH["prefgym.llm.sampling"]  # under TYPE_CHECKING only
    assert sum(len(v) for v in GRAPH.values()) > 300


def test_imports_point_down():
    upward = []
    for importer, targets in GRAPH.items():
        for target in targets:
            if LAYER_OF[_unit(target)] > LAYER_OF[_unit(importer)] and (importer, target) not in ALLOWED:
                upward.append(f"{importer} ({LAYERS[LAYER_OF[_unit(importer)]][0]}) imports {target} "
                              f"({LAYERS[LAYER_OF[_unit(target)]][0]})")
    assert not upward, "imports that run up the layers:\n" + "\n".join(sorted(upward))


def test_allowed_exceptions_are_still_needed():
    for importer, target in ALLOWED:
        assert target in GRAPH[importer], f"{importer} no longer imports {target}: drop it from ALLOWED"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for importer, targets in GRAPH.items():
        for target in targets:
            if (importer, target) in ALLOWED or _unit(importer) == _unit(target):
                continue
            edges.setdefault(_unit(importer), set()).add(_unit(target))
    assert not _cycles(edges), f"packages that import each other: {_cycles(edges)}"


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": {"c"}}, []),
])
def test_cycle_finder(edges, expected):
    assert _cycles(edges) == expected


def test_architecture_page_draws_the_table():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    assert [row.split("|")[1].strip() for row in rows] == [name for name, _ in LAYERS]
    for (name, units), row in zip(LAYERS, rows, strict=True):
        for unit in units:
            if unit:
                assert f"`{unit}" in row or f"`prefgym/{unit}" in row, f"{unit!r} not in the {name!r} row"


#: the modules of ``prefgym.data.control`` from the bottom up: each imports only those before it
CONTROL_ORDER = ("episodes", "policies", "minari_io", "expert", "rollouts", "preferences", "cli")


def test_control_package_modules_point_down():
    package = "prefgym.data.control"
    modules = {m for m in GRAPH if m.startswith(package + ".") and m != f"{package}.__main__"}
    assert modules == {f"{package}.{name}" for name in CONTROL_ORDER}, "update CONTROL_ORDER"
    upward = [f"{m} imports {t}" for m in sorted(modules) for t in GRAPH[m]
              if t == package or (t in modules and CONTROL_ORDER.index(t.rpartition(".")[2])
                                  >= CONTROL_ORDER.index(m.rpartition(".")[2]))]
    assert not upward, "imports inside prefgym.data.control that do not point down:\n" + "\n".join(upward)
