"""The import contracts (pyproject.toml, [tool.importlinter]; docs/architecture.md) hold on the
tree, and they fail on a change that breaks the direction: a core module calling up into a
workflow, even from inside a function."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _root_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["root_packages"]


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_tree(to: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", to / "pyproject.toml")
    for package in _root_packages():
        shutil.copytree(
            ROOT / package, to / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return to


def test_the_tree_keeps_every_contract():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_core_module_calling_a_workflow_breaks_the_contracts(tmp_path):
    tree = _copy_tree(tmp_path)
    services = tree / "orders" / "services.py"
    # The old shape of order capture: the order's own service running compliance, its import
    # hidden inside the function.
    services.write_text(
        services.read_text()
        + "\n\ndef _checked(order_ids, actor, as_of):\n"
        + "    from compliance.services import compliance_check_orders\n\n"
        + "    return compliance_check_orders(order_ids=order_ids, actor=actor, as_of=as_of)\n"
    )
    result = _lint_imports(tree)
    assert result.returncode != 0, result.stdout
    assert "orders.services is not allowed to import compliance.services" in result.stdout
    assert "No cycles are allowed" not in result.stdout  # a layering break, not an app cycle


def test_a_new_cycle_inside_an_app_breaks_the_contracts(tmp_path):
    tree = _copy_tree(tmp_path)
    outbound = tree / "fixgateway" / "outbound.py"
    outbound.write_text(outbound.read_text() + "\n\nfrom . import sessions  # noqa: E402,F401\n")
    result = _lint_imports(tree)
    assert result.returncode != 0, result.stdout
    assert "No cycles are allowed in fixgateway" in result.stdout
