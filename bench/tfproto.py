"""TF-Serving's gRPC messages, as far as a load generator needs them, in protobuf's wire format by hand:
a PredictRequest to send, and the input signature read from a GetModelMetadataResponse. Standard
library only, so that the LoadGen SUT (bench.loadgen_run) needs nothing on a host but grpcio (which
TensorFlow brings) and LoadGen itself, not TensorFlow Serving's API package.

Field numbers are those of tensorflow_serving/apis/{predict,model,get_model_metadata}.proto and
tensorflow/core/framework/{tensor,tensor_shape,types}.proto, and of meta_graph.proto's SignatureDef.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

PREDICT = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
DT_FLOAT, DT_INT32, DT_STRING, DT_INT64 = 1, 3, 7, 9
DTYPES = {"float": DT_FLOAT, "int32": DT_INT32, "string": DT_STRING, "int64": DT_INT64}


class ProtoError(ValueError):
    """Bytes that are not the message expected."""


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64 as protobuf writes it: ten bytes of two's complement
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


@dataclass(frozen=True)
class TensorSpec:
    """One input of a signature: its dtype (a types.proto number) and its shape (-1: any size)."""

    dtype: int
    shape: tuple[int, ...]


def tensor(spec: TensorSpec, batch: int, values: list | None = None) -> bytes:
    """A TensorProto of SPEC with its first unknown dimension BATCH, filled with VALUES (repeated to
    fill it) or with zeros (empty strings)."""
    shape = [batch if d < 0 else d for d in spec.shape] or [batch]
    count = 1
    for d in shape:
        count *= d
    dims = b"".join(_field(2, _varint_field(1, d)) for d in shape)
    out = _varint_field(1, spec.dtype) + _field(2, dims)
    pool = values or [b"" if spec.dtype == DT_STRING else 0]
    items = [pool[i % len(pool)] for i in range(count)]
    if spec.dtype == DT_STRING:
        return out + b"".join(_field(8, v if isinstance(v, bytes) else str(v).encode()) for v in items)
    if spec.dtype == DT_FLOAT:
        return out + _field(5, struct.pack(f"<{count}f", *map(float, items)))
    if spec.dtype in (DT_INT64, DT_INT32):
        return out + _field(10 if spec.dtype == DT_INT64 else 7, b"".join(_varint(int(v)) for v in items))
    raise ProtoError(f"input dtype {spec.dtype} is not one recbench sends (float, int32, int64, string)")


def predict_request(model: str, inputs: dict[str, bytes], signature: str = "serving_default") -> bytes:
    """A PredictRequest of MODEL's SIGNATURE with INPUTS (name -> TensorProto bytes)."""
    spec = _field(1, model.encode()) + _field(3, signature.encode())
    entries = b"".join(_field(2, _field(1, name.encode()) + _field(2, value)) for name, value in inputs.items())
    return _field(1, spec) + entries


def metadata_request(model: str) -> bytes:
    """A GetModelMetadataRequest of MODEL's signature_def metadata."""
    return _field(1, _field(1, model.encode())) + _field(2, b"signature_def")


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(number, wire type, value) of each field of a message."""
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = _read_varint(data, i)
            yield number, kind, value
        elif kind == 2:
            length, i = _read_varint(data, i)
            if i + length > len(data):
                raise ProtoError("a field runs past the end of the message")
            yield number, kind, data[i : i + length]
            i += length
        elif kind in (1, 5):
            width = 8 if kind == 1 else 4
            yield number, kind, data[i : i + width]
            i += width
        else:
            raise ProtoError(f"wire type {kind} is not one these messages use")


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise ProtoError("a number runs past the end of the message")
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i


def _map_entries(data: bytes, number: int) -> Iterator[tuple[str, bytes]]:
    for n, _, entry in _fields(data):
        if n == number and isinstance(entry, bytes):
            key, value = "", b""
            for k, _, v in _fields(entry):
                if k == 1 and isinstance(v, bytes):
                    key = v.decode()
                elif k == 2 and isinstance(v, bytes):
                    value = v
            yield key, value


def signature_inputs(response: bytes, signature: str = "serving_default") -> dict[str, TensorSpec]:
    """The inputs of SIGNATURE in a GetModelMetadataResponse (its signature_def metadata)."""
    for key, any_message in _map_entries(response, 2):
        if key != "signature_def":
            continue
        packed = next((v for n, _, v in _fields(any_message) if n == 2 and isinstance(v, bytes)), b"")
        for name, signature_def in _map_entries(packed, 1):
            if name != signature:
                continue
            inputs = {}
            for input_name, info in _map_entries(signature_def, 1):
                dtype, shape = DT_FLOAT, []
                for n, _, v in _fields(info):
                    if n == 2 and isinstance(v, int):
                        dtype = v
                    elif n == 3 and isinstance(v, bytes):
                        for d, _, dim in _fields(v):
                            if d == 2 and isinstance(dim, bytes):
                                size = next((s for k, _, s in _fields(dim) if k == 1 and isinstance(s, int)), 0)
                                shape.append(size - (1 << 64) if size >= 1 << 63 else size)
                inputs[input_name] = TensorSpec(dtype, tuple(shape))
            return inputs
    raise ProtoError(f"the model's metadata has no signature {signature!r}")
