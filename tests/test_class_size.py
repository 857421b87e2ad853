"""No class in the toolkit is over 400 lines (issue 14): one class, one responsibility."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hil", "instruments", "fixtures", "reports")
MAX_LINES = 400


def class_sizes() -> dict[tuple[str, str], int]:
    """(module path, qualified class name) -> lines from ``class`` to its last line."""
    sizes: dict[tuple[str, str], int] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=module)
            _collect(tree, module, "", sizes)
    return sizes


def _collect(node: ast.AST, module: str, prefix: str, sizes: dict[tuple[str, str], int]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            name = f"{prefix}{child.name}"
            assert child.end_lineno is not None
            sizes[(module, name)] = child.end_lineno - child.lineno + 1
            _collect(child, module, f"{name}.", sizes)
        else:
            _collect(child, module, prefix, sizes)


def test_the_walk_finds_the_packages_classes() -> None:
    sizes = class_sizes()
    assert {module.split("/")[0] for module, _ in sizes} == set(PACKAGES)
    assert ("hil/config/benchfile.py", "_BenchReader") in sizes
    assert ("reports/pdf.py", "ReportWriter") in sizes


def test_no_class_is_over_the_limit() -> None:
    too_long = [
        f"{module}: class {name} is {lines} lines (limit {MAX_LINES})"
        for (module, name), lines in sorted(class_sizes().items())
        if lines > MAX_LINES
    ]
    assert not too_long, "\n".join(too_long)
