"""The tfserving_build role's recipe: bazel arguments per arch and option, Bazel pin, artifact key."""

from __future__ import annotations

import pytest

from tests.conftest import load_plugin

pytestmark = pytest.mark.unit

filters = load_plugin("roles/tfserving_build/filter_plugins/tfserving_build.py")
TARGET = "//tensorflow_serving/model_servers:tensorflow_model_server"


@pytest.mark.parametrize(
    ("arch", "onednn", "expected"),
    [
        ("x86_64", False, ["build", "-c", "opt", "--config=release", TARGET]),
        ("x86_64", True, ["build", "-c", "opt", "--config=release", "--config=mkl", TARGET]),
        ("aarch64", False, ["build", "-c", "opt", TARGET]),
        ("aarch64", True, ["build", "-c", "opt", "--config=mkl_aarch64", TARGET]),
    ],
)
def test_bazel_arguments_per_arch_and_onednn(arch: str, onednn: bool, expected: list[str]) -> None:
    assert filters.tfserving_bazel_args(arch, onednn) == expected


def test_release_config_is_never_used_on_arm() -> None:
    assert not any("release" in a for a in filters.tfserving_bazel_args("aarch64", True, release=True))


def test_jobs_and_extra_options_come_before_the_target() -> None:
    args = filters.tfserving_bazel_args("x86_64", False, jobs=16, release=False, extra=["--copt=-O3"])
    assert args == ["build", "-c", "opt", "--jobs=16", "--copt=-O3", TARGET]


def test_unknown_arch_is_refused() -> None:
    with pytest.raises(ValueError, match="riscv64"):
        filters.tfserving_bazel_args("riscv64", False)


def test_bazel_pin_is_read_from_workspace() -> None:
    workspace = 'load("@bazel_skylib//lib:versions.bzl", "versions")\nversions.check(minimum_bazel_version = "6.4.0")\n'
    assert filters.tfserving_bazel_version(workspace) == "6.4.0"
    with pytest.raises(ValueError, match=r"versions\.check"):
        filters.tfserving_bazel_version('workspace(name = "tf_serving")\n')


def test_artifact_key() -> None:
    assert (
        filters.tfserving_artifact_name("2.15.1", "aarch64", True)
        == "tensorflow_model_server-2.15.1-aarch64-onednn.tar.gz"
    )
    assert (
        filters.tfserving_artifact_name("2.15.1", "x86_64", False)
        == "tensorflow_model_server-2.15.1-x86_64-plain.tar.gz"
    )
