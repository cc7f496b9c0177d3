"""The inputs every model receives: raw columns by name, already placed in the graph."""

from __future__ import annotations

from dataclasses import dataclass

from modelzoo.schema import Dataset
from modelzoo.tfcompat import tf


@dataclass
class Features:
    dataset: Dataset
    columns: dict[str, tf.Tensor]  # name -> [B] float32 (dense) or string (sparse)

    def dense(self) -> list[tf.Tensor]:
        return [self.columns[name] for name in self.dataset.dense]

    def sparse(self, names: list[str] | None = None) -> list[tf.Tensor]:
        return [self.columns[name] for name in (names or self.dataset.sparse)]
