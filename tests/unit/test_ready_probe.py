"""The tfserving role's readiness probe builds its GetModelMetadata request by hand (importing the
generated classes would import TensorFlow): the bytes must be the ones the real classes produce."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TEMPLATE = Path(__file__).resolve().parents[2] / "roles/tfserving/templates/recbench-tfserving-ready.py.j2"


@pytest.fixture(scope="module")
def probe() -> types.ModuleType:
    # The first two lines are Jinja (interpreter and the managed-file comment); the rest is plain Python.
    source = "".join(TEMPLATE.read_text().splitlines(keepends=True)[2:])
    assert "{{" not in source and "{%" not in source
    module = types.ModuleType("recbench_tfserving_ready")
    exec(compile(source, str(TEMPLATE), "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("model", ["dlrm", "wide_and_deep", "m" * 300])  # 300: a two-byte length
def test_the_hand_built_request_is_what_the_generated_class_serializes(probe: types.ModuleType, model: str) -> None:
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model
    request.metadata_field.append("signature_def")
    assert probe.metadata_request(model) == request.SerializeToString()
    parsed = get_model_metadata_pb2.GetModelMetadataRequest.FromString(probe.metadata_request(model))
    assert parsed.model_spec.name == model and list(parsed.metadata_field) == ["signature_def"]


def test_the_method_is_the_prediction_services(probe: types.ModuleType) -> None:
    from tensorflow_serving.apis import prediction_service_pb2

    service = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"]
    method = service.methods_by_name["GetModelMetadata"]
    assert (probe.METHOD, method.name) == (f"/{service.full_name}/GetModelMetadata", "GetModelMetadata")
