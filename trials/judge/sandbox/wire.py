"""The checker's wire format: one JSON object per line, values tagged where JSON has no type of
its own. Shipped into both sandboxes (the participant's and the checker's); it holds nothing
secret. The checker decodes strictly into plain built-in values, so what participant code sends
can never be an object with behaviour of its own (an ``__eq__`` that always says yes)."""

import base64
import json
import math

MAX_LINE = 1 << 20  # bytes of one message
MAX_DEPTH = 40
MAX_ITEMS = 100_000


class WireError(ValueError):
    """A message that is not well formed."""


class Opaque:
    """A value of a type the wire cannot carry: only its type name and a short repr arrive, and
    it equals only an identical opaque value."""

    __slots__ = ("text", "type_name")

    def __init__(self, type_name, text):
        self.type_name = type_name
        self.text = text

    def __eq__(self, other):
        return (
            type(other) is Opaque and other.type_name == self.type_name and other.text == self.text
        )

    def __hash__(self):
        return hash((self.type_name, self.text))

    def __repr__(self):
        return self.text


def encode(value, depth=0):
    """A JSON-ready form of ``value`` (participant side: best effort, never raises)."""
    if depth > MAX_DEPTH:
        return {"$repr": "...", "$type": "nested too deeply"}
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        value = float(value)
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, tuple):
        return {"$tuple": [encode(item, depth + 1) for item in tuple.__iter__(value)]}
    if isinstance(value, list):
        return [encode(item, depth + 1) for item in list.__iter__(value)]
    if isinstance(value, dict):
        return {
            "$dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]
        }
    if isinstance(value, frozenset):
        return {"$frozenset": [encode(item, depth + 1) for item in value]}
    if isinstance(value, set):
        return {"$set": [encode(item, depth + 1) for item in value]}
    try:
        text = repr(value)[:200]
    except Exception:
        text = "<unprintable>"
    return {"$repr": text, "$type": type(value).__name__[:100]}


def decode(data, depth=0):
    """Plain built-in values from ``encode``'s form; raises WireError for anything else."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        if len(data) > MAX_ITEMS:
            raise WireError("too many items")
        return [decode(item, depth + 1) for item in data]
    if type(data) is not dict or len(data) not in (1, 2):
        raise WireError("not a value")
    if len(data) == 2:
        if set(data) != {"$repr", "$type"}:
            raise WireError("not a value")
        if type(data["$repr"]) is not str or type(data["$type"]) is not str:
            raise WireError("not a value")
        return Opaque(data["$type"][:100], data["$repr"][:200])
    ((tag, inner),) = data.items()
    if tag == "$float":
        if inner not in ("nan", "inf", "-inf"):
            raise WireError("not a float")
        return float(inner)
    if tag == "$bytes":
        if type(inner) is not str:
            raise WireError("not bytes")
        try:
            return base64.b64decode(inner.encode("ascii"), validate=True)
        except ValueError as exc:
            raise WireError("not bytes") from exc
    if type(inner) is not list or len(inner) > MAX_ITEMS:
        raise WireError("not a value")
    if tag == "$tuple":
        return tuple(decode(item, depth + 1) for item in inner)
    if tag in ("$set", "$frozenset"):
        items = [decode(item, depth + 1) for item in inner]
        try:
            return set(items) if tag == "$set" else frozenset(items)
        except TypeError as exc:
            raise WireError("unhashable set item") from exc
    if tag == "$dict":
        result = {}
        for pair in inner:
            if type(pair) is not list or len(pair) != 2:
                raise WireError("not a dict item")
            key = decode(pair[0], depth + 1)
            try:
                result[key] = decode(pair[1], depth + 1)
            except TypeError as exc:
                raise WireError("unhashable dict key") from exc
        return result
    raise WireError("unknown tag")


def dumps(message):
    return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def loads(line):
    """One message (a JSON object) from one line; raises WireError."""
    if len(line) > MAX_LINE:
        raise WireError("message too long")
    try:
        message = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise WireError("not JSON") from exc
    if type(message) is not dict:
        raise WireError("not a message")
    return message


class LineReader:
    """Splits what arrives on a file descriptor into lines, refusing over-long ones."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data):
        self.buffer += data
        lines = []
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > MAX_LINE:
                    raise WireError("message too long")
                return lines
            lines.append(self.buffer[:end])
            self.buffer = self.buffer[end + 1 :]
