"""The TF-Serving stand-in parses the real server's command line the way TensorFlow's parser does."""

from __future__ import annotations

import pytest

from sim.tfserving_standin.server import FlagError, parse_flags, usage

pytestmark = pytest.mark.unit


def test_the_seed_flags_parse() -> None:
    flags, unknown = parse_flags(
        [
            "--port=8600",
            "--model_name=dlrm",
            "--model_base_path=/m/dlrm",
            "--tensorflow_intra_op_parallelism=4",
            "--tensorflow_inter_op_parallelism=2",
            "--xla_cpu_compilation_enabled",
            "--enable_batching=false",
        ]
    )
    assert unknown == []
    assert flags["port"] == 8600
    assert flags["model_name"] == "dlrm"
    assert flags["tensorflow_intra_op_parallelism"] == 4
    assert flags["tensorflow_inter_op_parallelism"] == 2
    assert flags["xla_cpu_compilation_enabled"] is True
    assert flags["enable_batching"] is False
    assert flags["file_system_poll_wait_seconds"] == 1  # the real default


def test_unknown_arguments_are_returned_not_fatal() -> None:
    _, unknown = parse_flags(["--model_base_path=/m", "--no_such_flag=1", "positional"])
    assert unknown == ["--no_such_flag=1", "positional"]


@pytest.mark.parametrize("bad", ["--port=eighty", "--enable_batching=maybe", "--port"])
def test_a_bad_value_is_a_flag_error(bad: str) -> None:
    with pytest.raises(FlagError):
        parse_flags([bad])


def test_usage_lists_every_flag_the_roles_use() -> None:
    text = usage("tensorflow_model_server")
    for flag in (
        "port",
        "rest_api_port",
        "grpc_socket_path",
        "model_name",
        "model_base_path",
        "model_config_file",
        "tensorflow_intra_op_parallelism",
        "tensorflow_inter_op_parallelism",
        "tensorflow_session_parallelism",
        "enable_batching",
        "batching_parameters_file",
        "enable_model_warmup",
        "xla_cpu_compilation_enabled",
        "grpc_max_threads",
        "enable_grpc_healthcheck_service",
        "version",
    ):
        assert f"--{flag}=" in text
