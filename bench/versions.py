"""What recbench installs, and for which architectures: one table, read by every role through the
`recbench_fact` filter (`('versions' | recbench_fact).tfserving`), in the manner of kubespray's table
of download versions. A deployment may still pin another version per role (tfserving_version, ...).

Checksums are not kept here: every file a host installs comes from the controller's artifact store,
whose manifest.json records its sha256 and which role artifact checks on the host before use.

Standard library only: the model zoo bundle ships bench/ to the hosts.
"""

from __future__ import annotations

# Architectures the benchmark hosts may have (ansible_facts['architecture']).
ARCHES: list[str] = ["x86_64", "aarch64"]

VERSIONS: dict[str, str] = {
    # TF-Serving: a tag of github.com/tensorflow/serving (2.15.1 is the last 2.15 release; no 2.15.0 tag).
    "tfserving": "2.15.1",
    # TensorFlow in the hosts' virtualenv: the one TF-Serving 2.15 is built on.
    "tensorflow": "2.15.1",
    # tritonclient release of the Triton 24.05 SDK (it ships perf_analyzer).
    "tritonclient": "2.46.0",
    # nvidia-cuda-runtime-cu12: perf_analyzer links libcudart.so.12 even on hosts without a GPU.
    "cuda_runtime": "12.9.79",
    # PyYAML, the model zoo's one dependency beside TensorFlow.
    "pyyaml": "6.0.3",
    # MLPerf LoadGen's Python bindings (PyPI mlcommons-loadgen), the client of `client: mlperf`.
    "loadgen": "6.0.17",
    # The Triton SDK container image of the same release (perf_analyzer's image mode).
    "triton_sdk_image": "nvcr.io/nvidia/tritonserver:24.05-py3-sdk",
}

# Architectures PyPI has a LoadGen wheel for (mlcommons-loadgen 6.0.17: cp311 manylinux x86_64 only; for
# aarch64 only its sdist, which needs a C++17 toolchain and pybind11 on a builder host: not built here).
LOADGEN_ARCHES: list[str] = ["x86_64"]
