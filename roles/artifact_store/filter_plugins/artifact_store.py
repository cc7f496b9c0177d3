"""Filters of the artifact_store role: the default wheelhouses of every target architecture."""

from __future__ import annotations


def artifact_store_wheelhouses(
    arches: list[str], versions: dict, tensorflow_requirements: dict, loadgen_arches: list[str] | None = None
) -> list[dict]:
    """Per arch: TensorFlow (+ the serving API protos the readiness probe and the stand-in use, without
    their dependencies), perf_analyzer (the tritonclient wheel and the CUDA runtime it links) and PyYAML;
    and MLPerf LoadGen where PyPI has its wheel (LOADGEN_ARCHES). VERSIONS holds tensorflow,
    tritonclient, cuda_runtime, pyyaml and python, and loadgen when LOADGEN_ARCHES is given."""
    houses = []
    for arch in arches:
        if arch not in tensorflow_requirements:
            raise ValueError(f"artifact_store: no TensorFlow requirements for arch {arch!r}")
        common = {"arch": arch, "python": versions["python"]}
        houses += [
            {
                "component": "tensorflow",
                "version": versions["tensorflow"],
                **common,
                "requirements": list(tensorflow_requirements[arch]),
                "no_deps": [f"tensorflow-serving-api=={versions['tensorflow']}"],
            },
            {
                "component": "perf_analyzer",
                "version": versions["tritonclient"],
                **common,
                "requirements": [],
                "no_deps": [
                    f"tritonclient=={versions['tritonclient']}",
                    f"nvidia-cuda-runtime-cu12=={versions['cuda_runtime']}",
                ],
            },
            {
                "component": "pyyaml",
                "version": versions["pyyaml"],
                **common,
                "requirements": [f"pyyaml=={versions['pyyaml']}"],
                "no_deps": [],
            },
        ]
        if arch in (loadgen_arches or []):
            houses.append(
                {
                    "component": "loadgen",
                    "version": versions["loadgen"],
                    **common,
                    "requirements": [],
                    "no_deps": [f"mlcommons-loadgen=={versions['loadgen']}"],
                }
            )
    return houses


class FilterModule:
    def filters(self) -> dict:
        return {"artifact_store_wheelhouses": artifact_store_wheelhouses}
