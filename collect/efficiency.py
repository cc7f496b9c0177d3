"""Architectures compared like with like: per class (model, mode, batch size, load model, client, budget)
and host architecture, the best valid capacity per core the server used and per watt, and each
architecture's ratio to x86_64's in the same class.

Per core *used* (the server's CPU time over the level, bench.evidence), not per core owned: a Kunpeng
node of 24 cores and a Xeon socket of 40 do not serve alike per core they have, and a server that idles
half its CPUs says nothing about them. Per watt is inferences per joule (capacity / average watts over
the capacity's level), where the host had a meter (RAPL covers the packages and DRAM, a BMC the whole
system: the store's points.energy_source says which); hosts without one have no figure, never an estimate.
"""

from __future__ import annotations

import pandas as pd

from collect.capacity import RANKED_WITHIN, efficiency

REFERENCE = "x86_64"
UNRECORDED = "unrecorded"  # a host whose fact does not name its architecture
RATIOS = {"per_core_used": "per_core_vs_reference", "inferences_per_joule": "per_joule_vs_reference"}
COLUMNS = [
    *RANKED_WITHIN,
    "arch",
    "hosts",
    "per_core_used",
    "per_core_at",
    "per_core_vs_reference",
    "inferences_per_joule",
    "per_joule_at",
    "per_joule_vs_reference",
    "evidence",
]


def _best(group: pd.DataFrame, column: str) -> tuple[float | None, str | None]:
    """The highest COLUMN of GROUP and the host (and config) that reach it; (None, None) if none is known."""
    known = group.dropna(subset=[column])
    if known.empty:
        return None, None
    best = known.loc[known[column].idxmax()]
    return float(best[column]), f"{best['host']} ({best['config_id']})"


def by_architecture(machines: pd.DataFrame) -> pd.DataFrame:
    """MACHINES (collect.capacity.machine_capacity): per class and architecture, the best valid capacity
    per core used and per joule, where each is reached, and the ratio to REFERENCE's in the class.
    Architectures whose machines carry no evidence (measured before it existed) are left out."""
    if machines.empty or "arch" not in machines:
        return pd.DataFrame(columns=COLUMNS)
    valid = machines[machines["valid"]]
    valid = valid.assign(
        arch=valid["arch"].fillna(UNRECORDED), **efficiency(valid["capacity"], valid["cores_used"], valid["watts"])
    )
    rows = []
    for key, group in valid.groupby([*RANKED_WITHIN, "arch"], dropna=False, sort=True):
        per_core, core_at = _best(group, "per_core_used")
        per_joule, joule_at = _best(group, "inferences_per_joule")
        seen = bool(group["limited_by"].notna().any())
        if not seen and per_core is None and per_joule is None:
            continue  # measured before evidence: nothing to compare
        rows.append(
            {
                **dict(zip([*RANKED_WITHIN, "arch"], key, strict=True)),
                "hosts": group["host"].nunique(),
                "per_core_used": per_core,
                "per_core_at": core_at,
                "inferences_per_joule": per_joule,
                "per_joule_at": joule_at,
                "evidence": seen,
            }
        )
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.DataFrame(rows).astype({"per_core_used": "float64", "inferences_per_joule": "float64"})
    reference = frame[frame["arch"] == REFERENCE].set_index(RANKED_WITHIN)
    at = frame.set_index(RANKED_WITHIN).index
    for figure, ratio in RATIOS.items():
        theirs = reference[figure].reindex(at).to_numpy()
        frame[ratio] = frame[figure].to_numpy() / theirs
    return frame[COLUMNS]
