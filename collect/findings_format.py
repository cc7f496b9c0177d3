"""Findings (collect.changes) in the formats a CI system reads: JSON, and JUnit XML where each series
with a finding is a test case and each alarm a failure."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pandas as pd

KEYS = ["host", "model", "config_id", "kind", "run_id"]


def _records(frame: pd.DataFrame) -> list[dict]:
    rows = frame.to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in rows]


def _alarm_keys(alarmed: pd.DataFrame) -> set[tuple]:
    return {tuple(row) for row in alarmed[KEYS].itertuples(index=False)}


def as_json(run: str, found: pd.DataFrame, alarmed: pd.DataFrame) -> str:
    alarm_keys = _alarm_keys(alarmed)
    findings = [{**row, "alarm": tuple(row[k] for k in KEYS) in alarm_keys} for row in _records(found)]
    return json.dumps({"run_id": run, "alarms": len(alarmed), "findings": findings}, indent=1, default=str) + "\n"


def as_junit(run: str, found: pd.DataFrame, alarmed: pd.DataFrame) -> str:
    from collect.changes import describe

    alarm_keys = _alarm_keys(alarmed)
    suite = ET.Element("testsuite", name=f"recbench regressions {run}", tests=str(len(found)))
    suite.set("failures", str(len(alarmed)))
    for row, line in zip(found.itertuples(index=False), describe(found), strict=True):
        case = ET.SubElement(
            suite, "testcase", classname=f"{row.host}.{row.model}", name=f"{row.config_id} {row.kind} {row.run_id}"
        )
        if tuple(getattr(row, k) for k in KEYS) in alarm_keys:
            ET.SubElement(case, "failure", message=line, type=row.kind)
        else:
            ET.SubElement(case, "system-out").text = line
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="unicode", xml_declaration=True) + "\n"
