"""The import layering of covercast (issue 17): no module imports a layer above its own.

Every module of the package is read with :mod:`ast` (nothing is imported), and every
``covercast.*`` import it makes -- absolute or relative, at module level or inside a function
-- is checked against :data:`ALLOWED`. A failure names the file, the line and the import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import covercast

PACKAGE_DIR = Path(covercast.__file__).parent

#: Helpers at the very bottom, importable from anywhere; they import nothing of covercast.
BOTTOM = frozenset({"_io", "_lazy"})

#: The layers each layer may import besides its own and :data:`BOTTOM`. A layer is the first
#: component below ``covercast`` (a subpackage or a top-level module); ``""`` is
#: ``covercast/__init__.py`` itself, which registers the environment ids.
ALLOWED: dict[str, frozenset[str]] = {
    "_io": frozenset(),
    "_lazy": frozenset(),
    "covers": frozenset(),
    "simulators": frozenset({"covers"}),
    "generators": frozenset({"covers"}),
    "envs": frozenset({"simulators", "covers", "generators"}),
    "testing": frozenset({"envs", "simulators", "covers"}),
    "agents": frozenset({"envs", "simulators", "covers"}),
    "ope": frozenset({"agents", "envs", "simulators", "covers"}),
    "experiments": frozenset({"", "ope", "agents", "envs", "generators", "simulators",
                              "covers", "testing"}),
    "": frozenset({"envs"}),
}

#: Upward imports known and not fixed yet: (importing module, imported module). Each entry
#: must still be needed (see ``test_every_known_exception_is_still_needed``).
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    """Dotted name of a module file under the package folder ``root``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """The layer of a dotted ``covercast`` module name (``""`` for ``covercast`` itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def covercast_imports(tree: ast.AST, module: str, is_package: bool
                      ) -> Iterator[tuple[int, str, str]]:
    """``(line, imported module, import as written)`` for every covercast import in ``tree``.

    ``from covercast.x import y`` yields ``covercast.x``; ``from covercast import envs`` yields
    ``covercast.envs`` (an import of the ``envs`` layer), ``from covercast import __version__``
    yields ``covercast``.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "covercast" or alias.name.startswith("covercast."):
                    yield node.lineno, alias.name, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                if node.level > 1:
                    anchor = anchor[:-(node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base != "covercast" and not base.startswith("covercast."):
                continue
            written = f"from {'.' * node.level}{node.module or ''} import " + ", ".join(
                a.name for a in node.names)
            targets = []
            for alias in node.names:
                sub = PACKAGE_DIR / alias.name
                is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                target = f"{base}.{alias.name}" if base == "covercast" and is_module else base
                if target not in targets:
                    targets.append(target)
            for target in targets:
                yield node.lineno, target, written


def violations(source: str, module: str, path: str, *, is_package: bool = False,
               exceptions: frozenset[tuple[str, str]] = KNOWN_EXCEPTIONS) -> list[str]:
    """``"path:line: module imports target (layer a -> layer b): the import"`` for every
    import of ``source`` (the text of ``module``) that the layering forbids."""
    own = layer_of(module)
    allowed = ALLOWED.get(own)
    if allowed is None:
        return [f"{path}:1: {module} is in no layer; add {own!r} to ALLOWED in "
                "tests/test_layering.py"]
    found = []
    for line, target, written in covercast_imports(ast.parse(source, path), module, is_package):
        other = layer_of(target)
        if other in (own, *BOTTOM) or other in allowed:
            continue
        if any(module == m and (target == t or target.startswith(t + "."))
               for m, t in exceptions):
            continue
        found.append(f"{path}:{line}: {module} imports {target} (layer {own or 'covercast'} "
                     f"-> {other or 'covercast'}): {written}")
    return found


def package_modules() -> list[tuple[Path, str]]:
    return [(p, module_name(p)) for p in sorted(PACKAGE_DIR.rglob("*.py"))]


def test_the_walk_sees_every_layer():
    layers = {layer_of(m) for _, m in package_modules()}
    assert {"", "_io", "covers", "simulators", "generators", "envs", "agents", "ope",
            "experiments"} <= layers
    assert layers <= set(ALLOWED), f"layers missing from ALLOWED: {layers - set(ALLOWED)}"


def test_no_module_imports_a_layer_above_its_own():
    found = []
    for path, module in package_modules():
        found += violations(path.read_text(encoding="utf-8"), module,
                            str(path.relative_to(PACKAGE_DIR.parent)),
                            is_package=path.name == "__init__.py")
    assert not found, "upward imports:\n" + "\n".join(found)


def test_every_known_exception_is_still_needed():
    used = set()
    for path, module in package_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for _, target, _ in covercast_imports(tree, module, path.name == "__init__.py"):
            used |= {(m, t) for m, t in KNOWN_EXCEPTIONS
                     if m == module and (target == t or target.startswith(t + "."))}
    assert not KNOWN_EXCEPTIONS - used, \
        f"fixed, remove from KNOWN_EXCEPTIONS: {sorted(KNOWN_EXCEPTIONS - used)}"


@pytest.mark.parametrize("source, line, target", [
    ("import numpy\nfrom covercast.envs.base import UserEnv\n", 2, "covercast.envs.base"),
    ("def f():\n    import covercast.agents.base\n", 2, "covercast.agents.base"),
    ("from covercast import generators\n", 1, "covercast.generators"),
    ("class A:\n    def f(self):\n        from ..ope import data\n", 3, "covercast.ope"),
    ("import covercastle\nfrom covercastle import envs\n", 0, None),  # another package
])
def test_a_synthetic_upward_import_is_flagged(source, line, target):
    found = violations(source, "covercast.simulators.fake", "covercast/simulators/fake.py")
    if target is None:
        assert found == []
        return
    assert len(found) == 1, found
    assert found[0].startswith(f"covercast/simulators/fake.py:{line}: covercast.simulators.fake "
                               f"imports {target} (layer simulators -> ")
    assert found[0].endswith(": " + source.splitlines()[line - 1].strip())


def test_allowed_imports_and_known_exceptions_pass():
    ok = ("from covercast._io import atomic_write_text\nfrom covercast.covers.bank import "
          "CoverBank\nfrom . import params\nfrom .population import Population\n")
    assert violations(ok, "covercast.simulators.fake", "fake.py") == []
    bad = "from covercast.experiments.stats import summarize\n"
    known = frozenset({("covercast.agents.train", "covercast.experiments.stats")})
    assert violations(bad, "covercast.agents.train", "train.py", exceptions=known) == []
    assert len(violations(bad, "covercast.agents.train", "train.py")) == 1
    assert len(violations(bad, "covercast.agents.bandits", "bandits.py")) == 1
    assert violations("import covercast.generators\n", "covercast.covers.x", "x.py") != []
