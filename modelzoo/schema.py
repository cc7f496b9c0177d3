"""Column layouts of the two data sets the models train on."""

from __future__ import annotations

from dataclasses import dataclass

CRITEO_DENSE = [f"I{i}" for i in range(1, 14)]
CRITEO_SPARSE = [f"C{i}" for i in range(1, 27)]
CRITEO_COLUMNS = ["label", *CRITEO_DENSE, *CRITEO_SPARSE]

TAOBAO_USER = [
    "user_id",
    "cms_segid",
    "cms_group_id",
    "final_gender_code",
    "age_level",
    "pvalue_level",
    "shopping_level",
    "occupation",
    "new_user_class_level",
]
TAOBAO_DROPPED = ["tag_category_list", "tag_brand_list"]
# EasyRec's Taobao layout, in file order. The two list-valued tag columns are dropped for DSSM, like the seed.
TAOBAO_COLUMNS = [
    "clk",
    "buy",
    "pid",
    "adgroup_id",
    "cate_id",
    "campaign_id",
    "customer",
    "brand",
    *TAOBAO_USER,
    *TAOBAO_DROPPED,
    "price",
]
TAOBAO_ITEM = ["pid", "adgroup_id", "cate_id", "campaign_id", "customer", "brand", "price"]


@dataclass(frozen=True)
class Dataset:
    """What a model sees of a data set: its label, numeric inputs and string inputs, in order."""

    name: str
    columns: list[str]
    label: str
    dense: list[str]
    sparse: list[str]
    ignored: list[str]

    @property
    def inputs(self) -> list[str]:
        return [*self.dense, *self.sparse]


CRITEO = Dataset("criteo", CRITEO_COLUMNS, "label", CRITEO_DENSE, CRITEO_SPARSE, [])
TAOBAO = Dataset("taobao", TAOBAO_COLUMNS, "clk", [], [*TAOBAO_USER, *TAOBAO_ITEM], ["buy", *TAOBAO_DROPPED])
DATASETS = {d.name: d for d in (CRITEO, TAOBAO)}
