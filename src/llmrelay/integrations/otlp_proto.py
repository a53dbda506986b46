"""OTLP trace export requests as protobuf bytes, written directly (sans-I/O).

:func:`encode_spans` turns finished spans (the SDK's ``ReadableSpan``, or anything with the same
read-only properties) into the bytes of an ``ExportTraceServiceRequest`` — the same message the
OpenTelemetry exporter builds through generated protobuf classes, at a fraction of the CPU (the
generated classes cost ~55 µs per span; this ~6). The span processor's thread runs it, but its
CPU is the gateway's too. ``tests/callbacks/test_otlp_proto.py`` checks it against the SDK's
encoder field for field.

Wire format reference: opentelemetry-proto ``trace/v1/trace.proto``, ``common/v1/common.proto``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["encode_spans", "gateway_span"]

_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack
_HAS_IS_REMOTE = 0x100  # SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_SMALL = [bytes((i,)) for i in range(128)]


def _varint(n: int) -> bytes:
    if n < 0:
        n &= 0xFFFFFFFFFFFFFFFF  # int64: two's complement, ten bytes
    elif n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field (tag already encoded)."""
    n = len(data)
    return tag + (_SMALL[n] if n < 128 else _varint(n)) + data


_KEYS: dict[str, bytes] = {}


def _key(key: str) -> bytes:
    """KeyValue.key (field 1), cached: attribute names repeat on every span."""
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _field(b"\x0a", key.encode())
        if len(_KEYS) < 4096:
            _KEYS[key] = encoded
    return encoded


def _value(value: Any) -> bytes:
    """An AnyValue message's bytes."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if type(value) in (list, tuple) or isinstance(value, Sequence):
        return _field(b"\x2a", b"".join([_field(b"\x0a", _value(v)) for v in value]))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join([_field(b"\x0a", _key(str(k)) + _field(b"\x12", _value(v)))
                                         for k, v in value.items()]))
    raise TypeError(f"Invalid type {type(value)} of value {value!r}")


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated KeyValue ``attributes`` under ``tag`` (the common value types inline)."""
    if not attributes:
        return b""
    out = []
    for k, v in attributes.items():
        t = type(v)
        if t is str or t is int or t is bool:  # most values repeat from span to span: cached
            if t is not str or len(v) <= 64:
                cached = _KV.get((k, v, t))
                if cached is None:
                    cached = _kv(k, v)
                    if len(_KV) < 8192:
                        _KV[(k, v, t)] = cached
                out.append(tag + cached)
                continue
        elif t is list and len(v) == 1 and type(v[0]) is str and len(v[0]) <= 64:  # e.g. finish reasons
            cached = _KV.get((k, v[0], t))
            if cached is None:
                cached = _kv(k, v)
                if len(_KV) < 8192:
                    _KV[(k, v[0], t)] = cached
            out.append(tag + cached)
            continue
        if t is str:
            b = v.encode()
            n = len(b)
            value = b"\x0a" + (_SMALL[n] if n < 128 else _varint(n)) + b
        elif t is int:
            value = b"\x18" + (_SMALL[v] if 0 <= v < 128 else _varint(v))
        elif t is float:
            value = b"\x21" + _pack_d(v)
        elif t is bool:
            value = b"\x10\x01" if v else b"\x10\x00"
        else:
            value = _value(v)
        key = _KEYS.get(k) or _key(k)
        n = len(value)
        kv = key + b"\x12" + (_SMALL[n] if n < 128 else _varint(n)) + value
        n = len(kv)
        out.append(tag + (_SMALL[n] if n < 128 else _varint(n)) + kv)
    return b"".join(out)


_KV: dict[tuple, bytes] = {}


def _kv(key: str, value: Any) -> bytes:
    """A KeyValue message with its length prefix (what follows the field's tag)."""
    kv = (_KEYS.get(key) or _key(key)) + _field(b"\x12", _value(value))
    n = len(kv)
    return (_SMALL[n] if n < 128 else _varint(n)) + kv


_FLAGS_LOCAL = b"\x85\x01" + _pack_i(_HAS_IS_REMOTE)  # field 16 (fixed32): the parent is not remote
_FLAGS_REMOTE = b"\x85\x01" + _pack_i(_HAS_IS_REMOTE | _IS_REMOTE)
_NO_STATUS = b"\x7a\x00"  # an UNSET status without description: an empty Status message


def _span(span: Any) -> bytes:
    ctx = span.context
    parent = span.parent
    name = span.name.encode()
    n = len(name)
    out = [b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"), b"\x12\x08", ctx.span_id.to_bytes(8, "big")]
    state = ctx.trace_state
    if state:
        out.append(_field(b"\x1a", ",".join(f"{k}={v}" for k, v in state.items()).encode()))
    if parent is not None:
        out += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
    out += (b"\x2a", _SMALL[n] if n < 128 else _varint(n), name, b"\x30", _SMALL[span.kind.value + 1])
    start, end = span.start_time, span.end_time
    if start:
        out += (b"\x39", _pack_q(start))
    if end:
        out += (b"\x41", _pack_q(end))
    out.append(_attributes(b"\x4a", span.attributes))
    dropped = span.dropped_attributes
    if dropped:
        out += (b"\x50", _varint(dropped))
    events = span.events
    if events:
        for event in events:
            body = b"\x09" + _pack_q(event.timestamp) if event.timestamp else b""
            body += _field(b"\x12", event.name.encode()) + _attributes(b"\x1a", event.attributes)
            if event.dropped_attributes:
                body += b"\x20" + _varint(event.dropped_attributes)
            out.append(_field(b"\x5a", body))
    dropped = span.dropped_events
    if dropped:
        out += (b"\x60", _varint(dropped))
    links = span.links
    if links:
        for link in links:
            lctx = link.context
            body = b"\x0a\x10" + lctx.trace_id.to_bytes(16, "big") + b"\x12\x08" + lctx.span_id.to_bytes(8, "big")
            # (no trace_state on links: the SDK's encoder sends none either)
            body += _attributes(b"\x22", link.attributes)
            if link.dropped_attributes:
                body += b"\x28" + _varint(link.dropped_attributes)
            body += b"\x35" + _pack_i(_HAS_IS_REMOTE | (_IS_REMOTE if lctx.is_remote else 0))
            out.append(_field(b"\x6a", body))
    dropped = span.dropped_links
    if dropped:
        out += (b"\x70", _varint(dropped))
    status = span.status
    if status is not None:
        code = status.status_code.value
        description = status.description
        if not code and not description:
            out.append(_NO_STATUS)
        else:
            body = _field(b"\x12", description.encode()) if description else b""
            out.append(_field(b"\x7a", body + (b"\x18" + _varint(code) if code else b"")))
    out.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    return _field(b"\x12", b"".join(out))  # (a ScopeSpans.spans entry)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    out = _field(b"\x0a", scope.name.encode()) if scope.name else b""
    if scope.version:
        out += _field(b"\x12", scope.version.encode())
    return out + _attributes(b"\x1a", scope.attributes)


_BYTES_ONLY = {bytes}


def encode_spans(spans: Sequence[Any], gateway: tuple[Any, Any] | None = None) -> bytes:
    """An OTLP ``ExportTraceServiceRequest`` holding ``spans``, grouped by resource and
    instrumentation scope as the SDK's encoder groups them. A span may also be a gateway span
    record (a tuple, see :func:`gateway_span`) or a gateway span's entry written already (bytes,
    see :func:`request_entries`), of ``gateway``'s (resource, scope)."""
    # grouped by resource (compared by identity first: hashing a Resource serializes it)
    groups: dict[int, tuple[Any, dict[Any, list[bytes]]]] = {}
    records: list[bytes] | None = None  # the gateway group's list (looked up once, not per record)
    pending: Any = None  # a request's upstream span record, when its request span may follow
    if gateway is not None and spans and set(map(type, spans)) == _BYTES_ONLY:
        # the gateway's common batch: entries written already, each as it is (the loop's case
        # of bytes, without a turn of the loop per span)
        records = _group(groups, *gateway)
        records += spans
        spans = ()
    for span in spans:
        if type(span) is bytes:  # a gateway span's entry, written already (request_entries)
            if records is None:
                records = _group(groups, *gateway)  # type: ignore[misc]
            if pending is not None:
                records.append(_gateway_spans(pending, True, False)[0])
                pending = None
            records.append(span)
            continue
        if type(span) is tuple:
            if records is None:
                records = _group(groups, *gateway)  # type: ignore[misc]
            upstream, fields = span
            if pending is not None:
                if not upstream and fields is pending:  # the pair (they are queued together): at once
                    try:
                        records.append(_pair(fields) or b"".join(_gateway_spans(fields, True, True)))
                    except TypeError:  # (an unhashable value: see _converted)
                        records.append(b"".join(_gateway_spans(_converted(fields), True, True)))
                    pending = None
                    continue
                records.append(_gateway_spans(pending, True, False)[0])
                pending = None
            if upstream:
                pending = fields
            else:
                records.append(_gateway_spans(fields, False, True)[1])
            continue
        if pending is not None:
            records.append(_gateway_spans(pending, True, False)[0])
            pending = None
        _group(groups, span.resource, span.instrumentation_scope).append(_span(span))
    if pending is not None:
        records.append(_gateway_spans(pending, True, False)[0])  # type: ignore[union-attr]
    # the messages around the spans are written as their heads (tag, length) beside the spans'
    # bytes, all joined once at the end (not each message copied into its parent's)
    out: list[bytes] = []
    seen: set[int] = set()
    for resource, by_scope in groups.values():
        if id(by_scope) in seen:
            continue
        seen.add(id(by_scope))
        parts = [_field(b"\x0a", _attributes(b"\x0a", resource.attributes))]
        size = len(parts[0])
        for scope, encoded in by_scope.items():
            head = _field(b"\x0a", _scope(scope))
            tail = _field(b"\x1a", scope.schema_url.encode()) if scope is not None and scope.schema_url else b""
            n = len(head) + sum(map(len, encoded)) + len(tail)
            length = _varint(n)
            parts += (b"\x12", length, head)
            parts += encoded
            parts.append(tail)
            size += 1 + len(length) + n
        if resource.schema_url:
            parts.append(_field(b"\x1a", resource.schema_url.encode()))
            size += len(parts[-1])
        out += (b"\x0a", _varint(size))
        out += parts
    return b"".join(out)


def _group(groups: dict[int, tuple[Any, dict[Any, list[bytes]]]], resource: Any, scope: Any) -> list[bytes]:
    """The list of (field-wrapped) spans of ``resource`` and ``scope`` in ``groups``."""
    group = groups.get(id(resource))
    if group is None:
        group = next((g for g in groups.values() if g[0] == resource), None) or (resource, {})
        groups[id(resource)] = group
    by_scope = group[1]
    scope = scope or None
    encoded = by_scope.get(scope)
    if encoded is None:
        encoded = by_scope[scope] = []
    return encoded


# ---------------------------------------------------------------------- the gateway's spans
# The gateway's two spans of a request are handed to the batch processor as plain tuples (no SDK
# objects on the request path; atomic values only, so that the garbage collector soon stops
# tracking them) and written here, in the export thread, as ``_span`` writes the ReadableSpan
# the SDK path makes of the same request (checked in tests/callbacks/test_otlp_proto.py). What
# repeats from request to request (names, the model's attributes) is encoded once.

#: what ``OpenTelemetryLogger.request_end`` puts in a record, in order (the ids as big-endian bytes;
#: the request model, system, response model and finish reasons may be values to convert with
#: ``str``, the request model's "" when false, the others' None)
GATEWAY_FIELDS = (
    "trace_id", "span_id", "upstream_id", "parent_id", "trace_state", "name", "start", "end", "upstream_start",
    "upstream_end", "request_model", "input_tokens", "output_tokens", "system", "response_model", "response_id",
    "finish_reasons", "error_type", "error", "params", "cost", "status_code", "stream", "first_token",
    "input_messages", "output_messages",
)
_KIND_SERVER = b"\x30\x02"  # SpanKind.SERVER (1) + 1
_KIND_CLIENT = b"\x30\x03"  # SpanKind.CLIENT (2) + 1
_NAMES: dict[tuple[str, bool], bytes] = {}
_ATTR = b"\x4a"
_FIRST_TOKEN = _field(b"\x12", b"gen_ai.first_token")


def _name(name: str, upstream: bool) -> bytes:
    """The name field (and the kind after it) of a gateway span, cached."""
    encoded = _NAMES.get((name, upstream))
    if encoded is None:
        data = (name + " upstream" if upstream else name).encode()
        encoded = _field(b"\x2a", data) + (_KIND_CLIENT if upstream else _KIND_SERVER)
        if len(_NAMES) < 4096:
            _NAMES[(name, upstream)] = encoded
    return encoded


_RUNS: dict[tuple, bytes] = {}


def _run(values: tuple) -> bytes:
    """A run of a gateway span's attributes that repeats from request to request, by what it
    is and its values: ("model", request model), ("system", system, response model),
    ("finish", finish reasons, error type), ("status", status code, stream) – cached."""
    encoded = _RUNS.get(values)
    if encoded is None:
        what = values[0]
        if what == "model":
            names = ("gen_ai.operation.name", "gen_ai.request.model")
            values = (what, "chat", values[1])
        elif what == "system":
            names = ("gen_ai.system", "gen_ai.response.model")
        elif what == "finish":
            names = ("gen_ai.response.finish_reasons", "error.type")
        else:
            names = ("http.response.status_code", "llmrelay.stream")
        attributes = {name: list(value) if type(value) is tuple else value
                      for name, value in zip(names, values[1:]) if value is not None and value is not False}
        encoded = _attributes(_ATTR, attributes)
        if len(_RUNS) < 4096:
            _RUNS[values if what != "model" else (what, values[2])] = encoded
    return encoded


_INPUT_TOKENS = _key("gen_ai.usage.input_tokens") + b"\x12"
_OUTPUT_TOKENS = _key("gen_ai.usage.output_tokens") + b"\x12"
_RESPONSE_ID = _key("gen_ai.response.id") + b"\x12"
_COST = _ATTR + _SMALL[len(_key("llmrelay.cost_usd")) + 11] + _key("llmrelay.cost_usd") + b"\x12\x09\x21"


def _int_kv(key: bytes, value: int) -> bytes:
    """An int attribute; ``key``: its key and the value's tag."""
    data = b"\x18" + (_SMALL[value] if 0 <= value < 128 else _varint(value))
    kv = key + _SMALL[len(data)] + data
    n = len(kv)
    return _ATTR + (_SMALL[n] if n < 128 else _varint(n)) + kv


_TOKENS: dict[tuple[int, int], bytes] = {}


def _tokens(input_tokens: int, output_tokens: int) -> bytes:
    """The two token-count attributes (cached by their values: counts repeat)."""
    encoded = _TOKENS.get((input_tokens, output_tokens))
    if encoded is None:
        encoded = _int_kv(_INPUT_TOKENS, input_tokens) + _int_kv(_OUTPUT_TOKENS, output_tokens)
        if len(_TOKENS) < 16384:
            _TOKENS[(input_tokens, output_tokens)] = encoded
    return encoded


_SHAPES: dict[tuple, tuple[bytes, ...]] = {}


def _shape(key: tuple) -> tuple[bytes, ...]:
    """What a request's gateway spans share with every request of its kind (``key``: name,
    request model, system, response model, finish reasons, error type, params, status code,
    stream), each encoded once: (the upstream span's name and kind, the request span's, the
    request model's run, the system's run, the finish reasons' run, the same and the request's
    parameters, the status code's run)."""
    shape = _SHAPES.get(key)
    if shape is None:
        name, request_model, system, response_model, reasons, error_type, params, status_code, stream = key
        # (the values as the SDK path's attributes have them: a record may hold them unconverted)
        request_model = str(request_model or "")
        system = str(system) if system else None
        response_model = str(response_model) if response_model else None
        reasons = tuple([str(reason) for reason in reasons]) if reasons else None
        finish = _run(("finish", reasons, error_type)) if reasons is not None or error_type is not None else b""
        shape = (_name(name, True), _name(name, False), _run(("model", request_model)),
                 _run(("system", system, response_model)), finish,
                 finish + _attributes(_ATTR, dict(params)) if params is not None else finish,
                 _run(("status", status_code, stream)))
        if len(_SHAPES) < 4096:
            _SHAPES[key] = shape
    return shape


_pack_times = struct.Struct("<BQBQ").pack  # start (field 7) and end (field 8), fixed64
_FIRST_TOKEN_HEAD = b"\x5a" + _SMALL[9 + len(_FIRST_TOKEN)] + b"\x09"
_HEADS: dict[int, bytes] = {}


def _entry(data: bytes) -> bytes:
    """A span as an entry of ScopeSpans.spans (field 2, length-delimited)."""
    n = len(data)
    head = _HEADS.get(n)
    if head is None:
        head = b"\x12" + _varint(n)
        if len(_HEADS) < 65536:
            _HEADS[n] = head
    return head + data


def _response_id_head(n: int) -> bytes:
    """The ``gen_ai.response.id`` attribute up to its value (a string of ``n`` bytes)."""
    value = b"\x0a" + _varint(n)
    kv = _RESPONSE_ID + _varint(len(value) + n) + value
    return _ATTR + _varint(len(kv) + n) + kv


def gateway_span(item: tuple) -> bytes:
    """The Span message of a gateway span record: ``(upstream, fields)``, ``fields`` as named by
    :data:`GATEWAY_FIELDS`; ``upstream`` true for the upstream call's span (the request span's
    child, with the request's common attributes), false for the request's."""
    upstream, fields = item
    entry = _gateway_spans(fields, upstream, not upstream)[0 if upstream else 1]
    i = 1  # past the entry's tag and length
    while entry[i] & 0x80:
        i += 1
    return entry[i + 1:]


def _converted(f: tuple) -> tuple:
    """A record with the values its writer may leave unconverted (see :data:`GATEWAY_FIELDS`)
    converted, as the SDK path's attributes have them (e.g. an unhashable finish reason)."""
    f = list(f)
    f[10] = str(f[10] or "")
    f[13] = str(f[13]) if f[13] else None
    f[14] = str(f[14]) if f[14] else None
    f[16] = tuple([str(reason) for reason in f[16]]) if f[16] else None
    return tuple(f)


def _gateway_spans(f: tuple, upstream: bool, request: bool) -> tuple[bytes, bytes]:
    """(the upstream span's entry, the request span's) of one request's record (``b""`` for the
    one not asked for)."""
    try:
        return _spans_of(f, upstream, request)
    except TypeError:  # (an unhashable value: see _converted)
        return _spans_of(_converted(f), upstream, request)


def _spans_of(f: tuple, upstream: bool, request: bool) -> tuple[bytes, bytes]:
    """:func:`_gateway_spans`, of a record whose values are hashable."""
    response_id, cost, first_token = f[15], f[20], f[23]
    rid = response_id.encode() if response_id is not None else None
    up, req = _span_parts(f, f[0], f[1], f[2] if upstream else None,
                          _pack_times(0x39, f[8], 0x41, f[9]) if upstream else None, _pack_times(0x39, f[6], 0x41, f[7]),
                          _tokens(f[11], f[12]), rid, None if cost is None else _pack_d(cost),
                          None if first_token is None else _pack_q(first_token), upstream, request)
    return (_entry(b"".join(up)) if upstream else b""), (_entry(b"".join(req)) if request else b"")


def _span_parts(f: tuple, trace: bytes, span: bytes, upstream_id: bytes | None, upstream_times: bytes | None,
                times: bytes, tokens: bytes, rid: bytes | None, cost: bytes | None, first: bytes | None,
                upstream: bool, request: bool) -> tuple[list[bytes], list[bytes]]:
    """The parts of the two spans' messages (each joined, it is the span): the record ``f``'s
    fields, with its varying values given encoded (ids, times, token counts, response id, cost,
    first token's time; None when absent). :func:`_pair_template` passes placeholders for them."""
    (_, _, _, parent_id, state, name, _, _, _, _, request_model, _, _, system, response_model, _, reasons,
     error_type, error, params, _, status_code, stream, _, input_messages, output_messages) = f
    # the attributes both spans have (OpenTelemetryLogger._common's, in its order), then the
    # request's own (its _request's); what repeats from request to request is cached (_shape)
    upstream_name, request_name, model_run, system_run, finish, finish_params, status_run = _shape(
        (name, request_model, system, response_model, reasons, error_type, params, status_code, stream))
    common = [model_run, tokens, system_run]
    if rid is not None:
        common += (_response_id_head(len(rid)), rid)
    status = _NO_STATUS if error is None else _field(
        b"\x7a", (_field(b"\x12", error.encode()) if error else b"") + b"\x18\x02")
    state = _field(b"\x1a", state.encode()) if state else b""
    up: list[bytes] = []
    req: list[bytes] = []
    if upstream:
        up = [b"\x0a\x10", trace, b"\x12\x08", upstream_id, state, b"\x22\x08", span, upstream_name,  # type: ignore[list-item]
              upstream_times, *common, finish, status, _FLAGS_LOCAL]  # type: ignore[list-item]
    if request:
        req = [b"\x0a\x10", trace, b"\x12\x08", span, state]
        if parent_id is not None:
            req += (b"\x22\x08", parent_id)
        req += (request_name, times, *common, finish_params)
        if cost is not None:
            req += (_COST, cost)
        req.append(status_run)
        if input_messages is not None:
            req.append(_attributes(_ATTR, {"gen_ai.input.messages": input_messages,
                                           "gen_ai.output.messages": output_messages}))
        if first is not None:
            req += (_FIRST_TOKEN_HEAD, first, _FIRST_TOKEN)
        req += (status, _FLAGS_REMOTE if parent_id is not None else _FLAGS_LOCAL)
    return up, req


# A request's two spans written together, in the common case (no parent, trace state, error or
# content): the bytes between the varying values are the same for every request of a kind and
# the same lengths of those values, so they are made once (:func:`_pair_template`) and a pair is
# one ``struct.pack`` of those constant runs and the values (the times and the cost packed by it
# too, not each apart and then joined).
_PAIRS: dict[tuple, tuple[Any, ...]] = {}
#: the varying values of a pair, in the order they are written
_SLOTS = ("trace", "upstream_id", "span", "upstream_times", "tokens", "rid", "trace", "span", "times", "tokens",
          "rid", "cost", "first")


def request_entries(trace_id: bytes, span_id: bytes, upstream_id: bytes, name: str, start: int, end: int,
                    upstream_start: int, upstream_end: int, request_model: Any, input_tokens: int,
                    output_tokens: int, system: Any, response_model: Any, response_id: str | None,
                    reasons: tuple | None, cost: float, status_code: int, stream: bool,
                    first_token: int | None) -> tuple[bytes, bytes]:
    """The upstream span's entry and the request span's (each an entry of ScopeSpans.spans, as
    :func:`encode_spans` writes them) of a request without parent, trace state, error, request
    parameters or content: the values of its record (:data:`GATEWAY_FIELDS`), written at once
    from its kind's template (:func:`_pair`). Raises TypeError for an unhashable value.

    The gateway queues these for the batch processor instead of the record in this case (the
    common one): written as the request ends, one ``struct.pack`` from values at hand, what waits
    in the queue is two bytes objects – no tuples for the garbage collector to walk and for the
    export thread to take apart, key and free."""
    tokens = _TOKENS.get((input_tokens, output_tokens)) or _tokens(input_tokens, output_tokens)
    rid = b"" if response_id is None else response_id.encode()
    key = (name, request_model, system, response_model, reasons, None, None, status_code, stream,
           len(tokens), -1 if response_id is None else len(rid), False, first_token is None)
    template = _PAIRS.get(key)
    if template is None:
        template = _pair_template(key, (
            trace_id, span_id, upstream_id, None, None, name, start, end, upstream_start, upstream_end, request_model,
            input_tokens, output_tokens, system, response_model, response_id, reasons, None, None, None, cost,
            status_code, stream, first_token, None, None))
    pack, split, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13 = template
    pair = pack(c0, trace_id, c1, upstream_id, c2, span_id, c3, 0x39, upstream_start, 0x41, upstream_end, c4, tokens,
                c5, rid, c6, trace_id, c7, span_id, c8, 0x39, start, 0x41, end, c9, tokens, c10, rid, c11, cost, c12,
                b"" if first_token is None else first_token, c13)
    return pair[:split], pair[split:]


def pair_template(name: str, request_model: Any, system: Any, response_model: Any, reasons: tuple | None,
                  status_code: int, stream: bool, n_tokens: int, n_rid: int, first_token: bool) -> tuple[Any, ...]:
    """The template :func:`request_entries` writes a pair of this kind with (``n_tokens``: the
    length of the token counts' bytes, ``n_rid`` the response id's or -1 without one,
    ``first_token`` whether there is a first token's time): ``(pack, split, c0, … c13)``, to
    write a pair as ``pack(c0, trace_id, c1, upstream_id, …)`` (the call of
    :func:`request_entries`) and cut it at ``split``. For a caller that keeps it per kind."""
    key = (name, request_model, system, response_model, reasons, None, None, status_code, stream, n_tokens, n_rid,
           False, not first_token)
    return _PAIRS.get(key) or _pair_template(key, (
        None, None, None, None, None, name, 0, 0, 0, 0, request_model, 0, 0, system, response_model,
        None if n_rid < 0 else "", reasons, None, None, None, 0.0, status_code, stream, 0 if first_token else None,
        None, None))


def _pair(f: tuple) -> bytes | None:
    """The two entries (upstream span, request span) of a request's record ``f`` at once, or None
    when it is not the common case (then :func:`_gateway_spans` writes it)."""
    (trace_id, span_id, upstream_id, parent_id, state, name, start, end, upstream_start, upstream_end,
     request_model, input_tokens, output_tokens, system, response_model, response_id, reasons, error_type,
     error, params, cost, status_code, stream, first_token, input_messages, _) = f
    if parent_id is not None or state or error is not None or input_messages is not None:
        return None
    tokens = _TOKENS.get((input_tokens, output_tokens)) or _tokens(input_tokens, output_tokens)
    rid = b"" if response_id is None else response_id.encode()
    key = (name, request_model, system, response_model, reasons, error_type, params, status_code, stream,
           len(tokens), -1 if response_id is None else len(rid), cost is None, first_token is None)
    pack, _, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13 = _PAIRS.get(key) or _pair_template(key, f)
    return pack(c0, trace_id, c1, upstream_id, c2, span_id, c3, 0x39, upstream_start, 0x41, upstream_end, c4, tokens,
                c5, rid, c6, trace_id, c7, span_id, c8, 0x39, start, 0x41, end, c9, tokens, c10, rid, c11,
                b"" if cost is None else cost, c12, b"" if first_token is None else first_token, c13)


def _pair_template(key: tuple, f: tuple) -> tuple[Any, ...]:
    """The ``struct.pack``, the length of the upstream span's entry and the constant runs of a
    pair of ``key``'s kind (see :func:`_pair`):
    written by :func:`_span_parts` with placeholders for the varying values, cut at them."""
    n_tokens, n_rid, no_cost, no_first = key[-4:]
    marks = {name: bytes(bytearray(size)) for name, size in (
        ("trace", 16), ("upstream_id", 8), ("span", 8), ("upstream_times", 18), ("times", 18),
        ("tokens", n_tokens), ("rid", max(n_rid, 0)), ("cost", 8), ("first", 8))}
    up, req = _span_parts(f, marks["trace"], marks["span"], marks["upstream_id"], marks["upstream_times"],
                          marks["times"], marks["tokens"], None if n_rid < 0 else marks["rid"],
                          None if no_cost else marks["cost"], None if no_first else marks["first"], True, True)
    parts = [b"\x12" + _varint(sum(map(len, up))), *up, b"\x12" + _varint(sum(map(len, req))), *req]
    split = len(parts[0]) + sum(map(len, up))  # (the upstream span's entry: its values' lengths are the key's)
    by_id = {id(mark): name for name, mark in marks.items() if mark}  # (an empty id is no placeholder)
    runs: list[bytes] = []
    run: list[bytes] = []
    slot = 0
    for part in parts:
        name = by_id.get(id(part))
        if name is None:
            run.append(part)
            continue
        while _SLOTS[slot] != name:  # (an absent value: an empty run before its empty slot)
            runs.append(b"".join(run))
            run = []
            slot += 1
        runs.append(b"".join(run))
        run = []
        slot += 1
    while slot < len(_SLOTS):
        runs.append(b"".join(run))
        run = []
        slot += 1
    runs.append(b"".join(run))
    # the format: the runs as bytes, the values between them; times (fields 7 and 8, fixed64)
    # as their tag byte and value each
    values = {"trace": "16s", "upstream_id": "8s", "span": "8s", "upstream_times": "BQBQ", "times": "BQBQ",
              "tokens": f"{n_tokens}s", "rid": f"{max(n_rid, 0)}s", "cost": "0s" if no_cost else "d",
              "first": "0s" if no_first else "Q"}
    fmt = "<" + "".join(f"{len(run)}s{values[what]}" for run, what in zip(runs, _SLOTS)) + f"{len(runs[-1])}s"
    template = (struct.Struct(fmt).pack, split, *runs)
    if len(_PAIRS) < 4096:
        _PAIRS[key] = template
    return template
