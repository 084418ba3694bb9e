"""Every script in benchmarks/ has a quick mode that checks its invariants, and CI runs them all."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def _string_calls(tree: ast.AST, function: str) -> list[list[str]]:
    """The string arguments of every call to ``<anything>.function(...)`` or ``function(...)``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        if name == function:
            found.append([a.value for a in node.args if isinstance(a, ast.Constant)])
    return found


def test_there_are_benchmarks() -> None:
    assert len(BENCHMARKS) >= 7, [p.name for p in BENCHMARKS]


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_has_a_quick_mode_that_checks_invariants(path: Path) -> None:
    tree = ast.parse(path.read_text())
    arguments = _string_calls(tree, "add_argument")
    assert any("--quick" in args for args in arguments), f"{path.name} has no --quick argument"
    assert "--quick" in (ast.get_docstring(tree) or ""), f"{path.name}'s docstring omits --quick"
    # passed() prints the line CI looks for, after the invariants were checked.
    assert _string_calls(tree, "passed"), f"{path.name} never reports its invariants as checked"
    assert _string_calls(tree, "require") or _string_calls(tree, "check_metrics"), path.name


def test_ci_runs_every_quick_mode() -> None:
    ci = (ROOT / ".ci/run").read_text()
    assert "for bench in benchmarks/[!_]*.py; do" in ci
    assert 'python "$bench" --quick' in ci
    assert 'grep -q "invariants hold"' in ci


def _checks():
    spec = importlib.util.spec_from_file_location("_checks", ROOT / "benchmarks/_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_violated_invariant_exits_with_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    checks = _checks()
    checks.require(True, "never printed")
    with pytest.raises(SystemExit) as exit_info:
        checks.require(False, "rows differ")
    assert exit_info.value.code == 1
    assert "INVARIANT VIOLATED: rows differ" in capsys.readouterr().err


@pytest.mark.parametrize(
    "metrics",
    [{"P@0.5": 1.2}, {"mean_iou": float("nan")}, {"P@0.5": 0.2, "P@0.6": 0.3}],
    ids=["above 1", "nan", "P@K rises"],
)
def test_check_metrics_rejects(metrics: dict[str, float]) -> None:
    with pytest.raises(SystemExit):
        _checks().check_metrics("row", metrics)


def test_check_metrics_accepts_a_valid_row() -> None:
    _checks().check_metrics(
        "row", {"P@0.5": 0.5, "P@0.6": 0.4, "P@0.9": 0.0, "mean_iou": 0.45, "num_samples": 12.0}
    )
