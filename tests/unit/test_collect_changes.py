"""Change points, outliers and alarms on generated histories with planted steps and outliers, read
back from a real store; each finding checked against what was planted."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from collect.changes import ThresholdsError, alarms, change_points, load_thresholds, newest_run_drops
from collect.cli import main
from collect.store import Store
from tests.results_tree import point, stored

pytestmark = pytest.mark.unit

RUNS = [f"n{i:03d}" for i in range(40)]
SERIES = [("kp-01", "a"), ("kp-01", "b"), ("kp-02", "a"), ("kp-02", "b"), ("kp-03", "a"), ("kp-03", "b")]


def planted(last_run_drop: bool = False) -> list[dict]:
    """2 % noise everywhere; kp-02/a steps down 15 % from n025 on, kp-01/b steps up 20 % from n030,
    kp-03/b dips 40 % at n012 only; optionally kp-01/a drops 30 % in the newest run."""
    rng = random.Random(7)
    rows = []
    for i, run in enumerate(RUNS):
        for host, config in SERIES:
            value = 1000.0 * rng.uniform(0.98, 1.02)
            if (host, config) == ("kp-02", "a") and i >= 25:
                value *= 0.85
            if (host, config) == ("kp-01", "b") and i >= 30:
                value *= 1.2
            if (host, config) == ("kp-03", "b") and i == 12:
                value *= 0.6
            if last_run_drop and (host, config) == ("kp-01", "a") and i == len(RUNS) - 1:
                value *= 0.7
            rows.append(point(run, host, "dlrm", config, "numa0", 1, value))
    return rows


@pytest.fixture
def store(tmp_path: Path):
    with stored(tmp_path, planted()) as store:
        yield store


def found_as_set(found) -> set[tuple]:
    return {(r.host, r.config_id, r.kind, r.run_id) for r in found.itertuples()}


def test_each_planted_step_is_found_once_where_it_began_and_the_dip_is_an_outlier(store: Store) -> None:
    found = change_points(store, load_thresholds())
    assert found_as_set(found) == {
        ("kp-02", "a", "regression", "n025"),
        ("kp-01", "b", "improvement", "n030"),
        ("kp-03", "b", "outlier", "n012"),
    }
    step = found[found["kind"] == "regression"].iloc[0]
    assert step.before == pytest.approx(1000, rel=0.02) and step.after == pytest.approx(850, rel=0.02)
    assert (step.runs_before, step.runs_after) == (25, 15)
    assert step.pvalue < load_thresholds().max_pvalue


def test_a_history_cut_before_the_step_shows_none(store: Store) -> None:
    found = change_points(store, load_thresholds(), upto="n020")
    assert found_as_set(found) == {("kp-03", "b", "outlier", "n012")}


def test_the_newest_run_drop_is_an_alarm_and_an_old_step_is_not(tmp_path: Path) -> None:
    limits = load_thresholds()
    with stored(tmp_path, planted(last_run_drop=True)) as store:
        found = change_points(store, limits)
        drops = newest_run_drops(store, limits)
    assert found_as_set(drops) == {("kp-01", "a", "drop in the newest run", "n039")}
    raised = alarms(pd.concat([found, drops], ignore_index=True), RUNS, limits)
    assert found_as_set(raised) == {("kp-01", "a", "drop in the newest run", "n039")}
    # the same step, had it begun within the newest alarm_runs runs, would be one
    recent = found.assign(run_id=found["run_id"].where(found["kind"] != "regression", RUNS[-2]))
    assert ("kp-02", "a", "regression", RUNS[-2]) in found_as_set(alarms(recent, RUNS, limits))


def test_cli_regressions_writes_json_and_junit_and_exits_1_on_an_alarm(tmp_path: Path, capsys) -> None:
    with stored(tmp_path, planted(last_run_drop=True)) as store:
        db = store.path
    assert main(["regressions", "--db", str(db), "--format", "json", "--output", str(tmp_path / "r.json")]) == 1
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["run_id"] == "n039" and data["alarms"] == 1
    assert {(f["host"], f["kind"], f["alarm"]) for f in data["findings"]} >= {
        ("kp-01", "drop in the newest run", True),
        ("kp-02", "regression", False),
    }
    assert main(["regressions", "--db", str(db), "--format", "junit", "--output", str(tmp_path / "r.xml")]) == 1
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "1"
    failures = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert [case.get("classname") for case in failures] == ["kp-01.dlrm"]
    capsys.readouterr()
    assert main(["regressions", "--db", str(db), "--run", "n030"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run n030: 0 alarm(s)")
    assert "kp-02 dlrm a at n025: step down 15" in out


def test_thresholds_come_from_a_file_and_a_bad_one_is_one_line(store: Store, tmp_path: Path, capsys) -> None:
    text = Path(load_thresholds.__globals__["DEFAULT_THRESHOLDS"]).read_text()
    strict = tmp_path / "strict.yml"
    strict.write_text(text.replace("min_magnitude: 0.05", "min_magnitude: 0.30"))
    assert {r.kind for r in change_points(store, load_thresholds(strict)).itertuples()} == {"outlier"}
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("max_pvalue: 0.001", "max_pvalue: lots"))
    with pytest.raises(ThresholdsError, match=r"broken\.yml: missing or not a number"):
        load_thresholds(broken)
    assert main(["regressions", "--db", str(store.path), "--thresholds", str(broken)]) == 2
    assert capsys.readouterr().err.startswith(f"collect: {broken}: ")
