"""Filter of the sweep role: the version of each model TF-Serving serves (bench/controller/placement.py
decides it, and where each server and client of a config runs)."""

from __future__ import annotations

from bench.controller.placement import sweep_served_versions


class FilterModule:
    def filters(self) -> dict:
        return {"sweep_served_versions": sweep_served_versions}
