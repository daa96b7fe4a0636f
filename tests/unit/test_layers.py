"""The dependency rules between bitshare's parts hold: `lint-imports` keeps every contract in pyproject.toml."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_every_import_contract_is_kept() -> None:
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: install the dev extra (pip install -e '.[dev]')"
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "pyproject.toml"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"lint-imports found a broken contract:\n{result.stdout}{result.stderr}"
    # Every contract declared was checked (none was dropped or misread).
    declared = (ROOT / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", result.stdout)
    assert kept and int(kept.group(1)) == declared >= 8, result.stdout


def private_imports(root: Path) -> list[str]:
    """Each ``from module import _name`` under root: a private name reached into from another module."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root.parent)}:{node.lineno} imports {alias.name}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    # What is shared between modules is public in the module that defines it.
    for top in ("bitshare", "tests"):
        assert private_imports(ROOT / top) == []
