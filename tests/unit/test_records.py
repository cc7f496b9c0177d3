"""The results contract (bench.records): every record round-trips, refuses a wrong type or range
naming the field, its JSON Schema is the one in docs/ and accepts exactly what the records accept,
and a tree written before the contract had an owner still ingests to the same rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from bench.records import (
    Attempt,
    CapacitySearch,
    ConfigRecord,
    ExportRecord,
    InstanceRecord,
    KnobSearchRecord,
    Level,
    ModelCard,
    RecordError,
    TrainRecord,
    best_point,
    json_schema,
    load,
    machine_capacity,
    search_path,
)
from collect.capacity import machine_capacity as machines_of
from collect.ingest import ingest
from collect.store import BEST_COLUMNS, INSTANCE_COLUMNS, POINT_COLUMNS, V1_COLUMNS, Store
from tests.conftest import REPO

pytestmark = pytest.mark.unit

PRE = REPO / "tests" / "fixtures" / "tree_v1_pre_records"
V1 = REPO / "tests" / "fixtures" / "tree_v1" / "tree"
SCHEMA_FILE = REPO / "docs" / "results-format.schema.json"
KINDS = {"metadata.json": InstanceRecord, "export.json": ExportRecord}


def kind_of(path: Path) -> type:
    if path.name.startswith("knob-search-"):
        return KnobSearchRecord
    if path.parent.name == "train":
        return KINDS.get(path.name, TrainRecord)
    return KINDS[path.name]


def record_files() -> list[Path]:
    return sorted([*PRE.joinpath("tree").rglob("*.json"), *V1.rglob("*.json")])


@pytest.mark.parametrize("path", record_files(), ids=lambda p: str(p.relative_to(REPO / "tests" / "fixtures")))
def test_every_record_file_reads_and_writes_back_what_it_read(path: Path) -> None:
    text = path.read_text()
    record = load(kind_of(path), text)
    again = type(record).from_json(json.loads(record.to_text()))
    assert again == record and again.to_json() == record.to_json()
    short_failed_search = isinstance(record, InstanceRecord) and record.search and not record.search.curve
    if not short_failed_search:  # the old short `search` of a never-ready server reads with its defaults
        assert record.to_json() == json.loads(text)


def test_records_built_by_the_writers_round_trip() -> None:
    level = Level(8, 8000.0, 8000.0, 16000.0, 24000, 1)
    search = CapacitySearch(
        kind="capacity", valid=True, p99_budget_ms=300.0, capacity=8000.0, level=level, curve=[level], seconds=1.5
    )
    assert CapacitySearch.from_json(search.to_json()) == search
    assert search.to_json()["level"] == {
        "level": 8,
        "throughput": 8000.0,
        "p50_us": 8000.0,
        "p99_us": 16000.0,
        "requests": 24000,
        "windows": 1,
    }
    assert Attempt.from_json({"attempt": 1, "command": ["pa"]}).extra == {"command": ["pa"]}
    card = ModelCard.from_json({"model": "dlrm", "version": 3, "inputs": {"I1": {"dtype": "float32"}}})
    assert card.extra["inputs"] == {"I1": {"dtype": "float32"}} and ModelCard.from_json(card.to_json()) == card


def a_metadata() -> dict:
    (path,) = sorted((V1 / "old-run" / "host-a").rglob("metadata.json"))
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m["config"].update(batch_size="abc"), "config.batch_size: must be an integer, not 'abc'"),
        (lambda m: m["config"].update(batch_size=10**12), "config.batch_size: must be in 1..65536"),
        (lambda m: m.update(config=["a list"]), "config: must be a JSON object, not list"),
        (
            lambda m: m["config"].update(concurrency_range="1:1000000:1"),
            "config.concurrency_range: concurrency range '1:1000000:1' goes past 1024",
        ),
        (lambda m: m["config"].update(concurrency_range="\u0661:4"), "config.concurrency_range: concurrency range"),
        (lambda m: m.update(host="../../etc"), "host: '../../etc' does not match"),
        (lambda m: m.update(status="great"), "status: must be one of complete, partial, failed"),
        (lambda m: m.update(levels_reached=[0]), "levels_reached[0]: must be in 1..1024"),
        (lambda m: m["host_facts"].update(cores=float("nan")), "host_facts.cores: must be a finite number"),
        (lambda m: m["host_facts"].update(name="\ud800"), "host_facts.name: holds text that is not valid Unicode"),
        (lambda m: m.update(schema=2), "schema: must be one of 1"),
        (lambda m: m.pop("config_id"), "config_id: missing"),
    ],
)
def test_a_wrong_type_or_range_is_refused_naming_the_field(change, named: str) -> None:
    metadata = a_metadata()
    change(metadata)
    with pytest.raises(RecordError, match="^" + named.split(":")[0].replace("[", r"\[")) as err:
        InstanceRecord.from_json(metadata)
    assert named in str(err.value)
    assert len(str(err.value)) < 200  # a message never grows with the input


def test_a_message_never_grows_with_the_input() -> None:
    metadata = a_metadata()
    metadata["config"]["mode"] = "x" * 10_000_000
    with pytest.raises(RecordError) as err:
        InstanceRecord.from_json(metadata)
    assert len(str(err.value)) < 200


def test_nan_where_a_number_belongs_is_not_json() -> None:
    with pytest.raises(RecordError, match="NaN is not a number JSON knows"):
        load(ConfigRecord, '{"batch_size": NaN}')


def test_the_rules_written_once() -> None:
    class P:
        def __init__(self, concurrency: int, throughput: float) -> None:
            self.concurrency, self.throughput = concurrency, throughput

    points = [P(1, 10.0), P(2, 30.0), P(4, 30.0), P(8, 20.0)]
    assert best_point(None, points).concurrency == 2  # a grid: the highest throughput, the lower level of equals
    level = Level(8, 20.0, 1.0, 2.0, 1000)
    valid = CapacitySearch(kind="capacity", valid=True, capacity=20.0, level=level, p99_budget_ms=5.0)
    assert best_point(valid, points).concurrency == 8  # a search: its capacity's level, not the fastest
    invalid = CapacitySearch(kind="capacity", valid=False, reason="too few requests", capacity=20.0, level=level)
    assert best_point(invalid, points) is None
    assert machine_capacity([(10.0, True), (5.5, True)]) == 15.5
    assert machine_capacity([(10.0, True), (5.5, False)]) is None
    assert machine_capacity([(10.0, True), (None, True)]) is None
    assert machine_capacity([]) is None
    assert search_path("level", "requests") == "$.search.level.requests"
    with pytest.raises(KeyError, match="CapacitySearch has no field 'capcity'"):
        search_path("capcity")


def test_the_json_schema_in_docs_is_the_one_the_records_make() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), (
        "docs/results-format.schema.json drifted: `python -m bench.records schema > docs/results-format.schema.json`"
    )


def test_the_schema_accepts_every_record_file_and_refuses_what_the_records_refuse() -> None:
    schema = json_schema()
    for path in record_files():
        definition = {**schema, "$ref": f"#/$defs/{kind_of(path).__name__}"}
        definition.pop("anyOf")
        jsonschema.Draft202012Validator(definition).validate(json.loads(path.read_text()))
    definition = {**schema, "$ref": "#/$defs/InstanceRecord"}
    definition.pop("anyOf")
    validator = jsonschema.Draft202012Validator(definition)
    for change in (
        lambda m: m["config"].update(batch_size="abc"),
        lambda m: m["config"].update(batch_size=10**12),
        lambda m: m.update(host="../x"),
        lambda m: m.pop("status"),
    ):
        metadata = a_metadata()
        change(metadata)
        assert list(validator.iter_errors(metadata)), metadata
        with pytest.raises(RecordError):
            InstanceRecord.from_json(metadata)


def stored_rows(store: Store, columns_of: dict[str, list[str]] | None = None) -> dict:
    """The store's rows (of COLUMNS_OF's columns per table; default: all but the file's provenance)."""
    skip = {"metadata", "source", "sha256", "ingested_at"}
    tables = columns_of or {"instances": list(INSTANCE_COLUMNS) + list(BEST_COLUMNS), "points": list(POINT_COLUMNS)}
    columns = [c for c in tables["instances"] if c not in skip]
    instances = store.query(f"SELECT {', '.join(columns)} FROM instances ORDER BY ALL").to_dict("records")
    points = store.query(f"SELECT {', '.join(tables['points'])} FROM points ORDER BY ALL").to_dict("records")
    clean = [{k: (None if v != v else v) for k, v in row.items()} for row in instances]  # NaN -> None
    return json.loads(json.dumps({"instances": clean, "points": points}, default=str))


def test_a_tree_written_before_the_contract_ingests_to_the_same_rows(tmp_path: Path) -> None:
    expected = json.loads((PRE / "rows.json").read_text())
    tree = tmp_path / "tree"
    shutil.copytree(PRE / "tree", tree)
    with Store(tmp_path / "store.duckdb") as store:
        report = ingest(tree, store)
        assert (report.added, report.problems) == (6, [])
        # the columns of the store when the fixture was pinned; what came after says "closed loop"
        rows = stored_rows(store, V1_COLUMNS)
        added = store.rows("SELECT DISTINCT load, client, best_request_rate FROM instances")
        rates = store.rows("SELECT DISTINCT request_rate FROM points")
        machines = machines_of(store, "pre-records", {}, 300.0).to_dict("records")
    assert rows["instances"] == expected["instances"]
    assert rows["points"] == expected["points"]
    assert (added, rates) == ([(None, None, None)], [(None,)])
    clean = [{k: (None if v != v else v) for k, v in row.items()} for row in machines]
    pinned = [{k: row[k] for k in want} for row, want in zip(clean, expected["machines"], strict=True)]
    assert json.loads(json.dumps(pinned, default=str)) == expected["machines"]
    assert {row["load"] for row in clean} == {"closed"}


def test_the_best_point_is_the_same_whether_ingest_or_the_store_computes_it(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(PRE / "tree", tree)
    with Store(tmp_path / "a.duckdb") as ingested:
        ingest(tree, ingested)
        instances = ingested.query(f"SELECT {', '.join(INSTANCE_COLUMNS)} FROM instances")
        points = ingested.query("SELECT * FROM points")
        expected = stored_rows(ingested)
    with Store(tmp_path / "b.duckdb") as rebuilt:
        with rebuilt.transaction():
            rebuilt.add_frames(instances, points)  # no best columns: the store applies the rule
        assert stored_rows(rebuilt) == expected


def test_the_field_tables_in_docs_are_the_ones_the_records_make() -> None:
    from bench.records import fields_markdown

    page = (REPO / "docs" / "results-format.md").read_text()
    section = page.split("<!-- BEGIN FIELDS (python -m bench.records fields) -->\n")[1].split("\n<!-- END FIELDS -->")[
        0
    ]
    assert section == fields_markdown().rstrip(), (
        "docs/results-format.md drifted: paste `python -m bench.records fields`"
    )


def test_keys_are_text_the_store_reads_and_messages_stay_short() -> None:
    metadata = a_metadata()
    metadata["\ud800"] = 1
    with pytest.raises(RecordError, match="not valid Unicode"):
        InstanceRecord.from_json(metadata)
    metadata = a_metadata()
    metadata["host_facts"]["\udcff" + "k" * 100_000] = 1
    with pytest.raises(RecordError, match="not valid Unicode") as err:
        InstanceRecord.from_json(metadata)
    assert len(str(err.value)) < 200
    for text in ("1:" + "9" * 4000, "1:4\n", "1:" + "9" * 8):
        metadata = a_metadata()
        metadata["config"]["concurrency_range"] = text
        with pytest.raises(RecordError, match="concurrency_range") as err:
            InstanceRecord.from_json(metadata)
        assert len(str(err.value)) < 200, text
    metadata = a_metadata()
    metadata["levels_failed"] = list(range(1, 1001))
    with pytest.raises(RecordError, match="levels_failed: more than 256 entries"):
        InstanceRecord.from_json(metadata)


def test_a_record_of_another_schema_is_named_as_such() -> None:
    metadata = a_metadata() | {"schema": 2, "status": "renamed-in-schema-2"}
    metadata.pop("config")
    with pytest.raises(RecordError, match=r"^schema: must be one of 1, not 2"):
        InstanceRecord.from_json(metadata)


def test_a_stored_search_the_contract_refuses_has_no_best_point() -> None:
    import pandas as pd

    from collect.best import best_rows

    key = ["run_id", "host", "model", "config_id", "instance"]
    ids = ["r", "h", "dlrm", "c", "numa0"]
    points = pd.DataFrame(
        [[*ids, level, 100.0 * level, 1.0, 1.0, 1.0, None] for level in (1, 2)],
        columns=[*key, "concurrency", "throughput", "p50_us", "p90_us", "p99_us", "request_rate"],
    )
    for metadata, best in (
        ("{}", 200.0),  # a grid: its fastest level
        ('{"search": {"kind": "capacity", "valid": "yes"}}', None),  # refused: none, not the fastest
        ('{"search": {"kind": "capac', None),  # cut short
    ):
        instances = pd.DataFrame([[*ids, metadata]], columns=[*key, "metadata"])
        found = best_rows(instances, points, key)["best_throughput"].iloc[0]
        assert (None if pd.isna(found) else found) == best, metadata


def test_only_ascii_digits_are_numbers_in_a_perf_analyzer_csv(tmp_path: Path) -> None:
    from collect.perfcsv import PerfCsvError, parse_perf_csv

    header = "Concurrency,Inferences/Second,p50 latency,p90 latency,p95 latency,p99 latency\n"
    path = tmp_path / "perf.csv"
    with pytest.raises(PerfCsvError, match="Inferences/Second is not a number"):
        parse_perf_csv(path, header + "1,\u0661\u0662\u0663,1,1,1,1\n")
    with pytest.raises(PerfCsvError) as err:
        parse_perf_csv(path, header + "1," + "x" * 100_000 + ",1,1,1,1\n")
    assert len(str(err.value)) < 300
    assert parse_perf_csv(path, header + "1,123,1,1,1,1\n")[0].throughput == 123.0


def test_a_record_built_in_code_is_checked_before_it_is_written(tmp_path: Path) -> None:
    from bench.layout import write_record

    good = TrainRecord(run_id="r1", host="h", model="dlrm", mode="single", status="complete", seconds=1.0)
    write_record(tmp_path / "ok.json", good)
    assert load(TrainRecord, (tmp_path / "ok.json").read_text()) == good
    for bad, named in (
        (TrainRecord(run_id="r1", host="h", model="dlrm", mode="half", status="complete"), "mode"),
        (TrainRecord(run_id="r1", host="h", model="dlrm", mode="single", status="complete", seconds=-1.0), "seconds"),
        (TrainRecord(run_id="../r", host="h", model="dlrm", mode="single", status="failed"), "run_id"),
    ):
        with pytest.raises(RecordError, match=f"^{named}:"):
            write_record(tmp_path / "bad.json", bad)
        assert not (tmp_path / "bad.json").exists()
