"""Sweep definitions: the seed's values by default, a tiny ci profile, validation, stable config ids."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from bench.controller.sweeps import SWEEP_DIR, SweepError, configs_for, expand, load_definition, main

pytestmark = pytest.mark.unit

# The seed benchmark's table (Kunpeng 920, whole machine, TF-Serving 2.15, intra 0, inter 0).
SEED = {
    "wide_and_deep": ("40:64:4", 64),
    "dlrm": ("44:68:4", 256),
    "deepfm": ("28:48:4", 256),
    "dffm": ("24:44:4", 128),
    "dssm": ("36:56:4", 512),
}


@pytest.mark.parametrize("model", list(SEED))
def test_defaults_are_the_seeds(model: str) -> None:
    (config,) = configs_for([model])
    concurrency, batch = SEED[model]
    assert (config.concurrency_range, config.batch_size) == (concurrency, batch)
    assert (config.mode, config.intra, config.inter, config.xla, config.onednn) == ("entire", 0, 0, False, False)
    assert (config.latency_threshold_ms, config.percentile, config.request_distribution) == (300, 99, "poisson")
    assert (config.stability_percentage, config.max_trials, config.measurement_interval_ms) == (10, 10, 5000)
    assert config.input_data == "random"


def test_the_ci_profile_is_tiny_and_covers_both_modes() -> None:
    configs = configs_for(list(SEED), profile="ci")
    assert len(configs) == 10
    assert {c.mode for c in configs} == {"single", "entire"}
    assert all(c.concurrency_levels == [1, 2] and c.measurement_interval_ms <= 1000 for c in configs)


def test_the_product_of_the_axes_is_expanded() -> None:
    definition = load_definition("dlrm") | {"batch_sizes": [64, 256], "intra": [0, 8], "xla": [False, True]}
    configs = expand(definition)
    assert len(configs) == 8
    assert len({c.config_id for c in configs}) == 8
    servers = expand(definition | {"instances_per_node": [1, 2]})
    assert len({c.config_id for c in servers}) == 16 and {c.config_id for c in configs} < {c.config_id for c in servers}
    assert "instances_per_node" not in configs[0].as_record() and servers[1].as_record()["instances_per_node"] == 2


def test_config_ids_are_stable_and_follow_every_knob() -> None:
    (config,) = configs_for(["dlrm"])
    assert config.config_id == "dlrm-entire-b256-1b89101ea0"  # a changed id would orphan stored results
    (searched,) = configs_for(["dlrm"], profile="capacity")
    assert searched.config_id == "dlrm-entire-b256-cap300ms-a396733615"  # says it is a search, and its budget
    for knobs in (config, searched):
        for name, value in knobs.knobs().items():
            bump = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v + 1, str: lambda v: v + "x"}
            changed = dataclasses.replace(knobs, **{name: bump[type(value)](value)})
            assert changed.config_id != knobs.config_id, name


def test_a_capacity_search_covers_1_to_max_concurrency_under_a_budget_per_model(tmp_path: Path) -> None:
    configs = configs_for(list(SEED), profile="capacity")
    assert [c.search for c in configs] == ["capacity"] * 5
    assert all(c.p99_budget_ms == 300 and c.percentile == 99 and c.concurrency_range == "1:256" for c in configs)
    for name in SEED:
        write(tmp_path, name)
    (tmp_path / "profiles").mkdir()
    sla = {"search": "capacity", "p99_budget_ms": 300, "max_concurrency": 64, "models": {"dlrm": {"p99_budget_ms": 60}}}
    (tmp_path / "profiles" / "sla.yml").write_text(yaml.safe_dump(sla))
    budgets = {c.model: (c.p99_budget_ms, c.concurrency_levels[-1]) for c in configs_for(list(SEED), "sla", tmp_path)}
    assert budgets["dlrm"] == (60, 64) and budgets["dssm"] == (300, 64)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"search": "capacity"}, "search: capacity needs a positive p99_budget_ms"),
        ({"search": "capacity", "p99_budget_ms": "60"}, "p99_budget_ms must be a float, not '60'"),
        ({"search": "hill"}, "search must be grid or capacity, not 'hill'"),
        ({"p99_budget_ms": 60}, "p99_budget_ms only mean something with search: capacity"),
        ({"search": "capacity", "p99_budget_ms": 60, "max_concurrency": 0}, "max_concurrency must be 1 to 1024"),
        ({"instances_per_node": [0]}, "instances_per_node must be 1 to 10"),
        ({"instances_per_node": 2}, "instances_per_node must be a non-empty list of ints"),
        ({"knob_search": "coordinate"}, "knob_search: coordinate searches capacities: it needs search: capacity"),
    ],
)
def test_bad_search_keys_are_named(tmp_path: Path, changes: dict, message: str) -> None:
    write(tmp_path, "dlrm", changes)
    with pytest.raises(SweepError, match=message.replace("(", r"\(")):
        load_definition("dlrm", directory=tmp_path)


def write(directory: Path, name: str, changes: dict | None = None) -> None:
    data = yaml.safe_load((SWEEP_DIR / f"{name}.yml").read_text()) | (changes or {})
    (directory / f"{name}.yml").write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_sizes": []}, "batch_sizes must be a non-empty list"),
        ({"batch_sizes": ["64"]}, "batch_sizes holds '64', not a int"),
        ({"concurrency_ranges": ["64:40:4"]}, "needs 1 <= start <= end"),
        ({"concurrency_ranges": ["40-64"]}, "is not start:end[:step]"),
        ({"modes": ["half"]}, "modes must be among single, entire"),
        ({"percentile": 100}, "percentile must be in 1..99"),
        ({"input_data": "zeros"}, "input_data must be random or real"),
        ({"concurency_ranges": ["1:2"]}, "unknown key(s) concurency_ranges"),
        ({"model": "deepfm"}, "model must be 'dlrm'"),
    ],
)
def test_bad_definitions_name_file_and_key(tmp_path: Path, changes: dict, message: str) -> None:
    write(tmp_path, "dlrm", changes)
    with pytest.raises(SweepError) as caught:
        load_definition("dlrm", directory=tmp_path)
    assert str(caught.value).startswith(str(tmp_path / "dlrm.yml"))
    assert message in str(caught.value)


def test_a_profile_may_not_change_the_model_and_must_exist(tmp_path: Path) -> None:
    write(tmp_path, "dlrm")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "odd.yml").write_text("model: dssm\n")
    with pytest.raises(SweepError, match="may not change the model"):
        load_definition("dlrm", profile="odd", directory=tmp_path)
    with pytest.raises(SweepError, match="no such sweep profile"):
        load_definition("dlrm", profile="nope", directory=tmp_path)
    with pytest.raises(SweepError, match="no sweep definition for model 'bert'"):
        load_definition("bert", directory=tmp_path)


def test_the_cli_prints_the_configs_the_sweep_role_reads(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--profile", "ci", "dlrm", "dssm"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["mode"]) for r in records] == [
        ("dlrm", "single"),
        ("dlrm", "entire"),
        ("dssm", "single"),
        ("dssm", "entire"),
    ]
    assert all(r["config_id"].startswith(f"{r['model']}-{r['mode']}-b8-") for r in records)


def test_the_cli_names_a_bad_profile_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--profile", "nosuch", "dlrm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sweeps: ") and "no such sweep profile" in err[0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"search": "capacity", "p99_budget_ms": float("nan")}, "p99_budget_ms must be a finite number, not nan"),
        ({"search": "capacity", "p99_budget_ms": float("inf")}, "p99_budget_ms must be a finite number, not inf"),
        ({"search": "capacity", "p99_budget_ms": -5.0}, "needs a positive p99_budget_ms"),
        ({"search": "capacity", "p99_budget_ms": 60, "min_gain_percent": float("nan")}, "must be a finite number"),
        ({"search": "capacity", "p99_budget_ms": 60, "max_concurrency": 100_000}, "max_concurrency must be 1 to 1024"),
        ({"concurrency_ranges": ["1:1000000:1"]}, "goes past 1024, the most recbench measures"),
        ({"concurrency_ranges": ["1:1000:2"]}, "has more than 256 levels"),
        ({"concurrency_ranges": ["\u0661:\u0664"]}, "is not start:end[:step]"),  # Arabic-Indic digits
        ({"batch_sizes": [10**12]}, "batch_sizes must be 1 to 65536"),
        ({"intra": [10**9]}, "intra and inter are 0 (TF decides) to 4096"),
        ({"measurement_interval_ms": 10**12}, "measurement_interval_ms: must be in 1..3600000"),
    ],
)
def test_numbers_are_numbers_within_stated_bounds(tmp_path: Path, changes: dict, message: str) -> None:
    write(tmp_path, "dlrm", changes)
    with pytest.raises(SweepError) as caught:
        configs_for(["dlrm"], directory=tmp_path)
    assert message in str(caught.value)


def test_an_alias_laden_file_gives_a_short_message_and_names_are_checked_before_paths(tmp_path: Path) -> None:
    # a few hundred bytes of YAML whose value expands to millions of items when printed
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    (tmp_path / "dlrm.yml").write_text(bomb + "model: dlrm\nbatch_sizes: *i\n")
    with pytest.raises(SweepError) as caught:
        load_definition("dlrm", directory=tmp_path)
    assert len(str(caught.value)) < 400
    for hostile in ("../dlrm", "/etc/passwd", "dlrm\n", ""):
        with pytest.raises(SweepError, match="is not a name"):
            load_definition(hostile, directory=tmp_path)
    with pytest.raises(SweepError, match=r"profile '\.\./ci' is not a name"):
        load_definition("dlrm", profile="../ci", directory=tmp_path)
