"""One bad result never blocks another: every kind of broken file is named with its path and skipped,
the good results of its run and of every other run are stored, and the exit code says "some results
skipped" (never the alarm code). A store that an earlier version filled with such a record is read
around it by every command that answers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from collect.errors import EXIT_ALARM, EXIT_SKIPPED
from collect.store import Store
from tests.conftest import collect_cli
from tests.results_tree import place_run, two_run_store

pytestmark = pytest.mark.unit


def metadata_files(root: Path, run: str) -> list[Path]:
    return sorted((root / run).rglob("metadata.json"))


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def broken_tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Run 2026-11-01 with one instance broken each way (and the rest whole), run 2026-11-02 whole.
    Returns the tree and, per broken metadata.json, what its problem must say."""
    root = tmp_path / "results"
    place_run(root, "2026-11-01")
    place_run(root, "2026-11-02")
    # more instances of run 1 to break: copies of its first one under other instance names
    (first,) = metadata_files(root, "2026-11-01")[:1]
    kinds = ["abc", "huge", "list", "latin1", "surrogate", "oversized", "fifo", "outside", "dirlink"]
    for kind in kinds:
        twin = first.parent.with_name(kind)
        os.makedirs(twin)
        for name in os.listdir(first.parent):
            (twin / name).write_bytes((first.parent / name).read_bytes())
        edit(twin / "metadata.json", lambda m, k=kind: m["instance"].update(name=k))
    expected = {}
    meta = {kind: first.parent.with_name(kind) / "metadata.json" for kind in kinds}
    edit(meta["abc"], lambda m: m["config"].update(batch_size="abc"))
    expected["abc"] = "config.batch_size: must be an integer, not 'abc'"
    edit(meta["huge"], lambda m: m["config"].update(batch_size=10**12))
    expected["huge"] = "config.batch_size: must be in 1..65536"
    edit(meta["list"], lambda m: m.update(config=[1, 2]))
    expected["list"] = "config: must be a JSON object, not list"
    latin1 = json.loads(meta["latin1"].read_text()) | {"note": "café"}
    meta["latin1"].write_bytes(json.dumps(latin1, ensure_ascii=False).encode("latin-1"))
    expected["latin1"] = "not UTF-8 text"
    meta["surrogate"].write_text(meta["surrogate"].read_text().replace("{", '{"odd": "\\ud800", ', 1))
    expected["surrogate"] = "odd: holds text that is not valid Unicode"
    edit(meta["oversized"], lambda m: m.update(padding="x" * (5 * 1024 * 1024)))
    expected["oversized"] = "more than a result file may hold"
    meta["fifo"].unlink()
    os.mkfifo(meta["fifo"])
    expected["fifo"] = "not a regular file"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "metadata.json").write_bytes(meta["outside"].read_bytes())
    meta["outside"].unlink()
    meta["outside"].symlink_to(elsewhere / "metadata.json")
    expected["outside"] = "a link leading out of the results tree"
    outside_dir = tmp_path / "outside-dir"
    meta["dirlink"].parent.rename(outside_dir)
    meta["dirlink"].parent.symlink_to(outside_dir, target_is_directory=True)
    expected["dirlink"] = "leads out of the results tree"
    return root, expected


def test_every_broken_file_is_named_and_skipped_and_every_good_result_is_stored(tmp_path: Path) -> None:
    root, expected = broken_tree(tmp_path)
    db = tmp_path / "store.duckdb"
    done = collect_cli("ingest", str(root), "--db", str(db))  # a FIFO read would hang: the timeout bounds it
    assert done.returncode == EXIT_SKIPPED != EXIT_ALARM, done.stderr
    lines = done.stderr.splitlines()
    for kind, says in expected.items():
        (line,) = [
            line
            for line in lines
            if f"/{kind}/metadata.json" in line or line.rstrip().endswith(f"/{kind}") or f"/{kind}:" in line
        ]
        assert says in line, (kind, line)
        assert len(line) < 400, line
    with Store.existing(db) as store:
        per_run = dict(store.rows("SELECT run_id, count(*) FROM instances GROUP BY run_id ORDER BY run_id"))
        kept = {i for (i,) in store.rows("SELECT DISTINCT instance FROM instances")}
    whole = len(metadata_files(tmp_path / "results", "2026-11-02"))
    assert per_run == {"2026-11-01": whole, "2026-11-02": whole}  # every good one of both runs
    assert not kept & set(expected)


def poison(db: Path) -> None:
    """Add to run 2026-11-02 what an ingest before the contract would have stored: a metadata text the
    engine's JSON functions reject (a lone surrogate escape), one cut short, and one that is JSON but has
    a string where a mapping belongs and started first (so twins reads it for its host)."""
    odd = json.dumps({"started_at": "0000", "versions": "abc", "host_facts": {"numa_nodes": [1, 2], "cores": "x"}})
    texts = {
        "surrogate": '{"host_facts": {"x": "\\ud800"}, "search": {"kind": "capacity", "valid": true}}',
        "cut-short": '{"host_facts": {"cores": 2}, "search": {"kind": "capac',
        "odd-shapes": odd,
    }
    with Store(db) as store, store.transaction():
        for name, text in texts.items():
            store.execute(
                "INSERT INTO instances SELECT * REPLACE (? AS instance, ? AS metadata) "
                "FROM instances WHERE run_id = '2026-11-02' LIMIT 1",
                [name, text],
            )


@pytest.mark.parametrize(
    "command",
    [
        ["best", "--run", "2026-11-02"],
        ["best", "--run", "2026-11-02", "--p99-budget-ms", "50"],
        ["compare", "--run", "2026-11-02"],
        ["twins", "--run", "2026-11-02"],
        ["regressions", "--run", "2026-11-02"],
        ["report", "--run", "2026-11-02", "--out", "{tmp}/reports"],
    ],
    ids=lambda c: " ".join(c[:1] + c[3:4]),
)
def test_a_store_holding_a_record_the_engine_rejects_still_answers(tmp_path: Path, command: list[str]) -> None:
    db = two_run_store(tmp_path)
    poison(db)
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    done = collect_cli(*args, "--db", str(db))
    assert done.returncode in (0, EXIT_ALARM), done.stderr
    assert "Traceback" not in done.stderr and "Malformed JSON" not in done.stderr, done.stderr


def test_twins_reads_around_metadata_of_the_wrong_shape() -> None:
    from collect.twins import changed_during_run, explaining, fingerprint

    odd = {"versions": "abc", "host_facts": {"numa_nodes": [1, {"memory_mb": "lots"}], "cores": "x"}}
    assert fingerprint(odd)["numa_layout"] == [(None, 0)] and fingerprint(odd)["tensorflow"] is None
    assert fingerprint(["not", "a", "mapping"])["cores"] is None
    assert explaining("abc") == {} and changed_during_run({"host_facts_start": "abc"}, {}) == []
