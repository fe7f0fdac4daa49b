"""The shape of the package, read from the source with ``ast`` (nothing is
imported): module sizes, the import layers, no import cycles, absolute imports;
and the test suite's one warnings policy."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sknn"

#: the most lines a module of sknn/ may have
MAX_LINES = 600

#: modules over MAX_LINES for now, with the reason. Each entry is temporary: the
#: test fails once a listed module is gone or fits, so that the entry is removed.
OVERSIZED = {}

#: the import layers, lowest first. A module may import modules of its own layer
#: and of lower layers, never of a higher one. An entry names a module or a
#: package (``sknn.cli`` also covers ``sknn.cli.train``); ``sknn`` is the package's
#: ``__init__`` alone, the public facade. A new module gets a row here.
LAYERS = [
    # helpers that know nothing of training or estimators: options, data
    # conversion, targets, torch modules, augmentation, docstrings, joblib/dask
    # workers, progress bars, pickling, and the public utility modules
    ("helpers", ["sknn._options", "sknn._compat", "sknn._deps", "sknn._csv",
                 "sknn._data", "sknn._targets", "sknn._modules", "sknn._losses",
                 "sknn._augment", "sknn._docstrings", "sknn._parallel",
                 "sknn._progress", "sknn._persistence", "sknn.malloc",
                 "sknn.datasets", "sknn.preprocessing", "sknn._pipeline",
                 "sknn.plotting"]),
    # the training engine: the skorch net, its callbacks, CPU threads
    ("training", ["sknn._optim", "sknn._threads", "sknn._callbacks", "sknn._fitted",
                  "sknn._net",
                  "sknn._sklearn_callbacks", "sknn._training", "sknn._stacked"]),
    # the scikit-learn estimators
    ("estimators", ["sknn._base", "sknn._mlp", "sknn._cnn", "sknn._regressor",
                    "sknn._fused", "sknn.model_selection"]),
    # what a fitted estimator becomes: ONNX graphs, safe files
    ("deployment", ["sknn._onnx", "sknn._onnx_runtime", "sknn._safe_checks",
                    "sknn._safe_classes", "sknn._safe_document", "sknn._safe"]),
    # what users call: the package facade and the command line
    ("interfaces", ["sknn", "sknn.__main__", "sknn.cli"]),
]


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


#: every module of the package: dotted name -> path
MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module):
    """The index of ``module``'s row in LAYERS, or None where it has none."""
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if module == name or (name != "sknn" and module.startswith(name + ".")):
                return index
    return None


def imports(module):
    """The sknn modules that ``module`` imports, anywhere in its file (a lazy
    import inside a function counts), as a set of dotted names; relative
    imports as ``("relative", line)`` items."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if _ours(a.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.add(("relative", node.lineno))
            elif _ours(node.module):
                for alias in node.names:
                    # ``from sknn import _parallel`` imports a module;
                    # ``from sknn import MLPClassifierTorch`` the facade
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in MODULES else node.module)
    if module == "sknn":
        # the facade imports its public names on first use, by name
        found.update(_lazy_targets(tree))
    return {_known(name) if isinstance(name, str) else name for name in found}


def _ours(name):
    return name == "sknn" or name.startswith("sknn.")


def _known(name):
    """``name``, or the package that holds it where it is not a module (an
    ``import sknn.cli.train`` names a module; ``from sknn.x import f`` too)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _lazy_targets(tree):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(getattr(t, "id", None) == "_LAZY" for t in node.targets)):
            for value in node.value.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    yield value.value


GRAPH = {module: {m for m in imports(module) if isinstance(m, str)}
         for module in MODULES}


def test_the_package_is_found():
    assert {"sknn", "sknn._base", "sknn._mlp"} <= set(MODULES)
    # the graph is read: the estimators import their base class
    assert "sknn._base" in GRAPH["sknn._mlp"]
    assert "sknn._mlp" in GRAPH["sknn"]  # the facade's lazy names


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size(module):
    relative = MODULES[module].relative_to(ROOT).as_posix()
    lines = len(MODULES[module].read_text().splitlines())
    if relative in OVERSIZED:
        assert lines > MAX_LINES, (
            f"{relative} has {lines} lines now: remove it from OVERSIZED")
    else:
        assert lines <= MAX_LINES, (
            f"{relative} has {lines} lines, above {MAX_LINES}: split it by "
            "concern (one phrase per module)")


def test_oversized_entries_name_existing_modules():
    paths = {p.relative_to(ROOT).as_posix() for p in MODULES.values()}
    stale = sorted(set(OVERSIZED) - paths)
    assert not stale, f"no such module any more, remove from OVERSIZED: {stale}"


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unplaced, f"add these modules to a row of LAYERS: {unplaced}"
    listed = [name for _, names in LAYERS for name in names]
    assert len(listed) == len(set(listed))
    stale = sorted(name for name in listed if name not in MODULES)
    assert not stale, f"no such module any more, remove from LAYERS: {stale}"


def test_no_lower_layer_imports_a_higher_one():
    upward = []
    for module, targets in GRAPH.items():
        own = layer_of(module)
        for target in targets:
            theirs = layer_of(target)
            if None not in (own, theirs) and theirs > own:
                upward.append(f"{module} ({LAYERS[own][0]}) imports {target} "
                              f"({LAYERS[theirs][0]})")
    assert not upward, "\n".join(sorted(upward))


def find_cycle(graph):
    """One import cycle of ``graph`` as a list of modules, or None."""
    state = {}  # module -> "open" while on the path, "done" after

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if target == module:
                continue
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_are_absolute():
    relative = [f"{MODULES[m].relative_to(ROOT)}:{item[1]}"
                for m in MODULES for item in imports(m) if isinstance(item, tuple)]
    assert not relative, f"use absolute imports (from sknn.x import y): {relative}"


# ------------------------------------------------------ the warnings policy
#: pyproject.toml's [tool.pytest.ini_options] filterwarnings ignores
#: ConvergenceWarning for every test; a test about it asserts it with
#: pytest.warns. Hand-written suppressions left, per file, with the reason; the
#: test fails when a file has more, or fewer (then lower its count here).
HAND_WRITTEN_SUPPRESSIONS = {
    # a dask worker process: pytest's filters do not reach it
    "test_dask.py": 1,
}

_SUPPRESSION = re.compile(
    r"""simplefilter\(\s*["']ignore["']\s*,\s*ConvergenceWarning"""
    r"""|ignore::sklearn\.exceptions\.ConvergenceWarning"""
    r"""|ignore_warnings\(\s*category\s*=\s*ConvergenceWarning""")


def test_the_policy_is_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    with open(ROOT / "pyproject.toml", "rb") as f:
        config = tomllib.load(f)
    filters = config["tool"]["pytest"]["ini_options"]["filterwarnings"]
    assert "ignore::sklearn.exceptions.ConvergenceWarning" in filters


def test_test_files_leave_convergence_warnings_to_the_policy():
    found = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        count = len(_SUPPRESSION.findall(path.read_text()))
        if count or path.name in HAND_WRITTEN_SUPPRESSIONS:
            found[path.name] = count
    assert found == HAND_WRITTEN_SUPPRESSIONS, (
        "ConvergenceWarning is ignored for every test by pyproject.toml: drop the "
        "hand-written suppressions (or, where one must stay, give its count and "
        "reason in HAND_WRITTEN_SUPPRESSIONS)")


def test_readme_module_map_matches_the_tree():
    # the README's Layout section names every module of sknn/ once, and no other
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    mapped = re.findall(r"^\s+(sknn/\S+\.py)\s+\S", section, flags=re.M)
    on_disk = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py"))
    assert len(mapped) == len(set(mapped)), "a module is mapped twice"
    assert sorted(mapped) == on_disk


def test_scikit_learn_private_names_come_through_compat():
    # one home for scikit-learn's private names (sknn/_compat.py): a release
    # that moves one is a change to that file alone
    found = []
    for module, path in MODULES.items():
        if module == "sknn._compat":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "sklearn"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private or "._" in node.module:
                    found.append(f"{module}: from {node.module} import "
                                 f"{', '.join(a.name for a in node.names)}")
    assert found == []
