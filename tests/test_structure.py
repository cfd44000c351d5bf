"""The code's shape: no import cycle among alignment_node's modules, small node modules.

The import graph is read from the source (every ``import``, including those inside functions, since a lazy
import that closes a cycle is still a cycle of dependencies). ``from pkg import name`` is an edge to the
submodule ``pkg.name`` when there is one, else to ``pkg`` itself.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "alignment_node"
PACKAGE = "alignment_node"
NODE_MODULE_MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(current: str, is_package: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _imports_of(source: str, filename: str) -> list[list]:
    """The import statements of ``source``: [kind, level, module, names] each."""
    import ast

    return [[type(node).__name__, getattr(node, "level", 0), getattr(node, "module", None),
             [a.name for a in node.names]]
            for node in ast.walk(ast.parse(source, filename)) if isinstance(node, (ast.Import, ast.ImportFrom))]


def _imports(path: Path) -> list[list]:
    """``_imports_of`` the file, in this process or, when CPython 3.11's parser fails on its recursion bookkeeping
    ("AST constructor recursion depth mismatch": a state a test earlier in this worker can leave), in a fresh one."""
    source = path.read_text(encoding="utf-8")
    try:
        return _imports_of(source, str(path))
    except SystemError:
        code = (inspect.getsource(_imports_of) + "\nimport json, sys\n"
                "print(json.dumps(_imports_of(open(sys.argv[1], encoding='utf-8').read(), sys.argv[1])))\n")
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for kind, level, module, names in _imports(path):
            if kind == "Import":
                targets = list(names)
            else:
                base = _resolve(name, is_package, level, module)
                targets = [f"{base}.{n}" if f"{base}.{n}" in modules else base for n in names]
            for t in targets:
                # an import of a.b.c names the deepest module of ours it reaches
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t.startswith(PACKAGE) and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve(tmp_path):
    pkg = tmp_path / "alignment_node"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .one import x\n")
    (pkg / "sub" / "one.py").write_text("def f():\n    from ..two import y\n")
    (pkg / "two.py").write_text("from .sub import one\n")
    modules = {".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"): p
               for p in pkg.rglob("*.py")}
    graph = import_graph(modules)
    assert graph["alignment_node.sub"] == {"alignment_node.sub.one"}
    assert graph["alignment_node.sub.one"] == {"alignment_node.two"}
    assert graph["alignment_node.two"] == {"alignment_node.sub.one"}
    assert find_cycles(graph) == [["alignment_node.sub.one", "alignment_node.two"]]


def test_no_import_cycles():
    cycles = find_cycles(import_graph(_modules()))
    assert cycles == [], "import cycles among alignment_node modules:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", sorted((ROOT / "node").glob("*.py")), ids=lambda p: p.name)
def test_node_modules_are_small(path: Path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= NODE_MODULE_MAX_LINES, f"{path.name} has {lines} lines (at most {NODE_MODULE_MAX_LINES})"


def test_the_running_node_does_not_import_what_its_workers_carry():
    """`alignment-node start` builds the whole command line (devnet commands included) and the node: none of the
    heavy libraries the audit workers and the devnet use may come along (the node has 64 MB)."""
    import subprocess
    import sys

    code = ("import sys, alignment_node.cli as c; c.build_parser(); import alignment_node.node.node; "
            "from alignment_node.audits import build_auditors; "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=ROOT.parent).stdout.split())
    heavy = {"grpc", "google", "torch", "numpy", "scipy", "mcl", "mclbn256", "py_ecc", "tokenizers", "web3"}
    assert loaded & heavy == set()
