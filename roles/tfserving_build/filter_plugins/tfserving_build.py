"""Filters of the tfserving_build role: what to ask Bazel for, and which Bazel the source pins."""

from __future__ import annotations

import re

TARGET = "//tensorflow_serving/model_servers:tensorflow_model_server"
ONEDNN_CONFIG = {"x86_64": "mkl", "aarch64": "mkl_aarch64"}


def tfserving_bazel_args(
    arch: str, onednn: bool, jobs: int = 0, release: bool = True, extra: list[str] | None = None
) -> list[str]:
    """`bazel build` arguments for ARCH. --config=release adds -mavx -msse4.2: x86_64 only, never ARM.
    oneDNN is --config=mkl on x86_64 and --config=mkl_aarch64 (oneDNN + Arm Compute Library) on aarch64."""
    if arch not in ONEDNN_CONFIG:
        raise ValueError(f"tfserving_build: no build recipe for architecture {arch!r}")
    args = ["build", "-c", "opt"]
    if jobs:
        args.append(f"--jobs={int(jobs)}")
    if release and arch == "x86_64":
        args.append("--config=release")
    if onednn:
        args.append(f"--config={ONEDNN_CONFIG[arch]}")
    args.extend(extra or [])
    args.append(TARGET)
    return args


def tfserving_bazel_version(workspace: str) -> str:
    """The Bazel version WORKSPACE pins through versions.check(minimum_bazel_version = "X")."""
    match = re.search(r'versions\.check\(\s*minimum_bazel_version\s*=\s*"([0-9][0-9.]*)"', workspace)
    if not match:
        raise ValueError("tfserving_build: WORKSPACE has no versions.check(minimum_bazel_version = ...)")
    return match.group(1)


def tfserving_artifact_name(version: str, arch: str, onednn: bool) -> str:
    return f"tensorflow_model_server-{version}-{arch}-{'onednn' if onednn else 'plain'}.tar.gz"


class FilterModule:
    def filters(self) -> dict:
        return {
            "tfserving_bazel_args": tfserving_bazel_args,
            "tfserving_bazel_version": tfserving_bazel_version,
            "tfserving_artifact_name": tfserving_artifact_name,
        }
