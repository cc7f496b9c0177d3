"""Reports and comparisons from a store with two runs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from collect.report import ReportError, build_report
from collect.store import Store
from tests.browser import html_attribute, rendered_dom
from tests.conftest import collect_cli
from tests.results_tree import two_run_store

pytestmark = pytest.mark.unit


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return two_run_store(tmp_path)


def test_report_writes_summary_html_with_plots_and_exports(store_path: Path, tmp_path: Path) -> None:
    with Store(store_path) as store:
        report = build_report(store, None, tmp_path / "reports")
    assert report.directory == tmp_path / "reports" / "2026-11-02"
    summary = (report.directory / "summary.md").read_text()
    assert "# recbench run 2026-11-02" in summary
    assert "19,519" in summary  # kp-01: 10469.8 + 9049.51, the best dlrm machine
    assert re.search(r"\|\s*p99 \(ms\)\s*\|", summary) and re.search(r"\|\s*throughput \(infer/s\)\s*\|", summary)
    assert "14.1 |" in summary and "e+0" not in summary  # latencies in ms, one decimal: never 1.412e+04
    assert "kp-02" in summary and "partial" in summary  # the point that stopped early is listed
    page = report.directory / "report.html"
    text = page.read_text()
    assert "<script src=" not in text and "<link" not in text  # self-contained: opens with no network
    dom = rendered_dom(page)
    assert html_attribute(dom, "data-script-errors") is None
    assert html_attribute(dom, "data-plots") == "3"  # overview, and per model its curves and history
    assert "kp-01" in dom and "kp-02" in dom and "dlrm" in dom
    assert "19,519" in dom  # thousands separators in the tables
    exported = pd.read_parquet(report.directory / "points.parquet")
    assert len(exported) == len(pd.read_csv(report.directory / "points.csv")) == 4 + 4 + 1


def test_an_unknown_run_is_a_clear_error(store_path: Path, tmp_path: Path) -> None:
    with Store(store_path) as store, pytest.raises(ReportError, match="run 'nope' is not in"):
        build_report(store, "nope", tmp_path / "reports")


def test_compare_prints_ratios_to_another_run_and_to_the_baseline(store_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return collect_cli("compare", "--db", str(store_path), *args)

    same = cli("--run", "2026-11-02", "--against", "2026-11-01")
    assert same.returncode == 0, same.stderr
    assert re.search(r"\|\s*dlrm\s*\|.*\|\s*1\.00\s*\|", same.stdout)  # identical results: ratio 1
    seed = cli()
    assert seed.returncode == 0, seed.stderr
    assert "2,407,724" in seed.stdout  # the seed's DLRM baseline, for people: no 2.408e+06
    missing = cli("--against", "nope")
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("collect: run 'nope' is not in")


def test_best_prints_each_models_best_machine_of_the_run(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from collect.aggregate import best_per_model
    from collect.cli import main

    with Store(store_path) as store:
        expected = best_per_model(store, "2026-11-01")
    assert main(["best", "--db", str(store_path), "--run", "2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("best throughput per model, mode and batch size, run 2026-11-01:")
    for row in expected.itertuples():
        line = next(line for line in out.splitlines() if re.match(rf"\|\s*{row.model}\s*\|", line))
        assert f"{row.throughput:,.0f}" in line and row.host in line
    assert main(["best", "--db", str(store_path), "--run", "nope"]) == 2
    assert capsys.readouterr().err.strip().startswith(f"collect: run 'nope' is not in {store_path} (runs: 2026-11-01")


def test_a_script_error_in_the_page_is_seen_by_the_browser_check(store_path: Path, tmp_path: Path) -> None:
    """The check above can fail: the same page with a broken script reports it."""
    with Store(store_path) as store:
        page = build_report(store, None, tmp_path / "reports").directory / "report.html"
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("</body>", "<script>undefinedFunction();</script></body>"))
    assert html_attribute(rendered_dom(broken), "data-script-errors") == "1"
