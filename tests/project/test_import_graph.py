"""The package's import graph, read from the source: no cycle between modules or between
packages, and every import goes down the layer order of docs/CONTRIBUTING.md ("Layers").

Every import counts: module-level or inside a function, ``from . import``, and a module named by
a string to ``importlib.import_module`` or ``__import__``. Importing ``a.b.c`` from outside
package ``a.b`` also runs ``a/b/__init__.py``, so it is an edge to that package too; a module's
own package is not (its ``__init__`` has always run first).
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set

import pytest

from repo_paths import ROOT as CHECKOUT

ROOT = CHECKOUT / "pytorch_kaldi_snn"
PACKAGES = ("neurons", "layers", "kernels")
# docs/CONTRIBUTING.md's layer order, lowest first: a module imports only from its own package or
# from one earlier in this list (a top-level module counts as a package of its own)
LAYERS = (
    "errors", "threads", "kaldi_ports", "cli", "io",
    "neurons", "kernels", "config", "layers", "neural_networks",
    "scoring", "corpus", "words", "features", "decoding", "gmm", "graph",
    "data", "train", "diagnostics", "report", "forward",
    "pipeline", "trained", "export", "evaluate", "transcribe", "prepare_set", "study", "sweep",
    "gpu_check", "recipes_layout",
    "run_exp",  # last: a command line only, which nothing imports (the pipeline is pipeline/)
)
LOADERS = {"import_module", "__import__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rsplit(".", 1)[0]


def _imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, by absolute name."""
    module = _module_name(path)
    package = _package_of(module, path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # submodules
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in LOADERS and node.args and isinstance(node.args[0], ast.Constant):
                yield str(node.args[0].value)


def _graph(packages=PACKAGES) -> Dict[str, Set[str]]:
    """Module -> the modules it imports, over ``packages`` (None: the whole package)."""
    paths = ROOT.rglob("*.py") if packages is None else \
        (p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))
    files = {_module_name(p): p for p in paths}
    graph: Dict[str, Set[str]] = {name: set() for name in files}
    for name, path in files.items():
        own = _package_of(name, path)
        for target in _imports(path):
            if target not in files or target == own or own.startswith(target + "."):
                # a name imported from a module, outside the packages read, or the module's
                # own package (its __init__ has always run before the module does)
                continue
            graph[name].add(target)
            parent = target.rsplit(".", 1)[0]
            if parent in files and parent != own and not own.startswith(parent + "."):
                graph[name].add(parent)  # that package's __init__ runs first
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module, or a self-import (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _top(module: str) -> str:
    """The layer a module belongs to: its package below pytorch_kaldi_snn, or itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _package_graph() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for source, targets in _graph(None).items():
        graph.setdefault(_top(source), set()).update(
            _top(t) for t in targets if _top(t) != _top(source))
    return graph


def test_neurons_layers_kernels_have_no_import_cycle():
    assert _cycles(_graph()) == []


def test_no_module_imports_itself_back():
    assert _cycles(_graph(None)) == []


def test_no_package_imports_itself_back():
    assert _cycles(_package_graph()) == []


def test_every_package_has_a_place_in_the_layer_order():
    """A new package or top-level module must be placed in LAYERS (and the docs' list)."""
    assert sorted(set(_package_graph()) - {"pytorch_kaldi_snn"}) == sorted(LAYERS)


def test_imports_go_down_the_layer_order():
    rank = {name: index for index, name in enumerate(LAYERS)}
    upward = sorted(f"{source} imports {target}" for source, targets in _graph(None).items()
                    for target in targets if _top(source) in rank and _top(target) in rank
                    and rank[_top(target)] > rank[_top(source)])
    assert upward == []


def test_the_layer_order_is_the_documented_one():
    text = (ROOT.parent / "docs" / "CONTRIBUTING.md").read_text(encoding="utf-8")
    documented = text.split("## Layers", 1)[1].split("```")[1]
    assert documented.split() == list(LAYERS)


def test_packages_import_in_one_direction():
    """neurons ← kernels ← layers: nothing below imports what is above it."""
    rank = {"neurons": 0, "kernels": 1, "layers": 2}
    for source, targets in _graph().items():
        for target in targets:
            low, high = (rank[name.split(".")[1]] for name in (target, source))
            assert low <= high, f"{source} imports {target}"


def test_config_imports_neither_layers_nor_torch():
    """config/ reads cfgs into typed specs: the names it checks (activations, schedules...) live
    in config/registry.py, and the model code takes them from there, never the other way."""
    found = sorted(f"{_module_name(path)} imports {target}"
                   for path in (ROOT / "config").rglob("*.py") for target in _imports(path)
                   if target.split(".")[0] == "torch"
                   or target.startswith("pytorch_kaldi_snn.layers"))
    assert found == []


def test_reading_a_cfg_loads_no_torch():
    """Importing every module of config/ loads no torch, through the neuron definitions it reads
    either (options, registry, surrogates): the test above sees only config/'s own imports."""
    modules = sorted(f"pytorch_kaldi_snn.config.{path.stem}"
                     for path in (ROOT / "config").glob("*.py") if path.stem != "__init__")
    code = (f"import importlib, sys\nfor name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(name for name in sys.modules if name.startswith('pytorch_kaldi_snn'))"
            " if 'torch' in sys.modules else 'torch-free')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, (str(CHECKOUT), os.environ.get("PYTHONPATH"))))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)
    assert done.stdout.strip() == "torch-free"


@pytest.mark.parametrize("source,expected", [
    ("import importlib\nimportlib.import_module('pytorch_kaldi_snn.kernels.fused')\n",
     "pytorch_kaldi_snn.kernels.fused"),
    ("from ..kernels import fused\n", "pytorch_kaldi_snn.kernels.fused"),
    ("def f():\n    from pytorch_kaldi_snn.layers import spiking\n",
     "pytorch_kaldi_snn.layers.spiking"),
])
def test_the_graph_sees_string_relative_and_lazy_imports(tmp_path, monkeypatch, source, expected):
    """The reader finds the imports a cycle used to hide behind."""
    fake_root = tmp_path / "pytorch_kaldi_snn"
    (fake_root / "layers").mkdir(parents=True)
    module = fake_root / "layers" / "spiking.py"
    module.write_text(source)
    monkeypatch.setattr(__import__(__name__), "ROOT", fake_root)
    assert expected in set(_imports(module))
