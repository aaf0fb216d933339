"""Scan an ONNX model before any runtime parses it: external-data references and op types.

Without onnx or onnxruntime.  Two things a forged model can do are refused
here, before a session is created:

- **External data.** A tensor may keep its data in another file
  (``data_location=EXTERNAL``); a forged model can point that at ``../secret``
  or ``/etc/passwd``.  The ORT runner asks :func:`scan` for every location
  and feeds ORT only verified bytes from the bundle.
- **Unbounded control flow.** ``Loop`` and ``Scan`` run a subgraph a
  data-dependent number of times (a forged model can loop for hours, in
  native code that ignores Ctrl-C).  An exported classifier never has them.

An ONNX tensor may keep its data in another file (``data_location=EXTERNAL``,
``external_data={"location": ...}``); a forged model can point that at
``../secret`` or ``/etc/passwd``.  onnxruntime only checks such paths in recent
versions, so the ORT runner asks this module for every location first, and
feeds ORT only verified bytes from the bundle.

A minimal protobuf wire-format walk over the messages that can hold tensors
(field numbers from onnx/onnx.proto).  stdlib only.
"""

from __future__ import annotations

from ..errors import BundleError

# message -> {field number: message type of that (length-delimited) field}
_SCHEMA: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node", 11: "attribute"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},  # 4: op_type, 7: domain (strings, read in _walk)
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
    "entry": {},
}
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_MAX_DEPTH = 64


class _Malformed(Exception):
    pass


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise _Malformed
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview):
    """(field number, wire type, value) of one message: int for varints, bytes for the rest."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            if size > n - i:
                raise _Malformed
            value, i = buf[i : i + size], i + size
        elif wire in (1, 5):
            value, i = None, i + (8 if wire == 1 else 4)
            if i > n:
                raise _Malformed
        else:  # groups (3, 4) are not used by ONNX; 6, 7 do not exist
            raise _Malformed
        if number == 0:
            raise _Malformed
        yield number, wire, value


def _walk(buf: memoryview, kind: str, depth: int, out: list[str]) -> None:
    if depth > _MAX_DEPTH:
        raise _Malformed
    schema = _SCHEMA[kind]
    external = False
    locations: list[str] = []
    for number, wire, value in _fields(buf):
        if kind == "node" and number == 4 and wire == 2:
            out.append(("op", bytes(value).decode("utf-8", "replace")))
        elif kind == "tensor" and number == 14 and wire == 0:
            external = value == _EXTERNAL
        elif kind == "entry" and wire == 2 and number in (1, 2):
            out.append((number, bytes(value)))  # key/value pairs, paired up by the caller
        elif wire == 2 and number in schema:
            sub: list = []
            _walk(value, schema[number], depth + 1, sub)
            if kind == "tensor":  # an external_data entry: keep its location
                pairs = dict(sub)
                if pairs.get(1) == b"location":
                    locations.append(pairs.get(2, b"").decode("utf-8", "replace"))
            else:
                out.extend(sub)
    if kind == "tensor":
        if external and not locations:
            locations.append("")  # EXTERNAL with no location: refused by the caller
        out.extend(("location", loc) for loc in locations)


# Ops that run a subgraph a data-dependent number of times.
UNBOUNDED_OPS = ("Loop", "Scan")


def _scan(model: bytes) -> list[tuple[str, str]]:
    out: list = []
    try:
        _walk(memoryview(model), "model", 0, out)
    except _Malformed:
        raise BundleError(
            "the ONNX model is not a well-formed protobuf file (truncated or corrupt); "
            "re-export the bundle or restore it from a trusted copy"
        ) from None
    return [x for x in out if isinstance(x, tuple) and isinstance(x[0], str)]


def external_data_locations(model: bytes) -> list[str]:
    """Every ``location`` an ONNX model's tensors point at (empty for a self-contained model).

    :class:`BundleError` if the bytes are not a well-formed protobuf message.
    """
    return [v for k, v in _scan(model) if k == "location"]


def op_types(model: bytes) -> set[str]:
    """Every op type in the model, its subgraphs and functions."""
    return {v for k, v in _scan(model) if k == "op"}


def check_bounded(model: bytes, key: str) -> None:
    """:class:`BundleError` if the graph holds ops an exported classifier never has (``Loop``, ``Scan``)."""
    bad = sorted(set(UNBOUNDED_OPS) & op_types(model))
    if bad:
        raise BundleError(
            f"{key}: the ONNX graph holds {', '.join(bad)}, which can run for an unbounded time; an exported "
            "classifier never has them, so it is refused before any session is created. Re-export the bundle"
        )
