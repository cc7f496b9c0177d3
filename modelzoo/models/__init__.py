"""The five models. Each module has build(features, config) -> logits [B]."""

from __future__ import annotations

from collections.abc import Callable

from modelzoo.models import deepfm, dffm, dlrm, dssm, wide_and_deep
from modelzoo.models.features import Features

BUILDERS: dict[str, Callable[[Features, dict], object]] = {
    "wide_and_deep": wide_and_deep.build,
    "dlrm": dlrm.build,
    "deepfm": deepfm.build,
    "dffm": dffm.build,
    "dssm": dssm.build,
}
