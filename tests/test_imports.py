"""The import graph of the project's own packages: no cycle inside ``ml/`` or ``service/``, and
``ml`` never imports ``service`` (the service orchestrates the models, never the reverse).
Late imports inside functions count as edges too, so a cycle cannot hide behind one."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("ml", "service")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from ml import audio`` imports the module ml.audio; ``from ml.audio import x`` imports ml.audio
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}  # 1 on the DFS stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle_and_a_clean_graph():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_late_and_from_imports(tmp_path):
    modules = {"ml.audio": tmp_path / "a.py", "ml.labels": tmp_path / "l.py", "ml": tmp_path / "i.py"}
    src = tmp_path / "x.py"
    src.write_text("from ml import audio\n\ndef f():\n    from ml.labels import EMOTIONS\n    import os\n")
    assert imports_of(src, modules) == {"ml.audio", "ml.labels"}


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 20 and graph["service.main"], "the import graph was not read"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_ml_never_imports_service():
    offenders = {m: sorted(d for d in deps if d.split(".")[0] == "service")
                 for m, deps in import_graph().items() if m.split(".")[0] == "ml"}
    assert not {m: d for m, d in offenders.items() if d}


def test_the_ffmpeg_child_imports_no_torch():
    """The decoding child process imports ml.decoding and service.decoding (its entry point), PyAV
    and what they import: never torch, which would cost each child hundreds of megabytes."""
    import subprocess
    import sys

    code = ("import sys, ml.decoding, service.decoding, av; ml.decoding.load_ffmpeg(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ml', 'service')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "torch" not in out and "ml.decoding" in out, out
