"""Schemathesis hooks for walkv's contract test (tests/contract.rs).

`POST /v1/bulk` takes JSON lines (`application/x-ndjson`), which OpenAPI 3.0 has no schema
for. docs/openapi.json describes that body as an array of line objects, as OpenAPI 3.2's
`itemSchema` does; this serializer sends such an array as the lines it stands for. A value that
is not an array (Schemathesis's negative cases) is sent as one line of its JSON.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode()


# The condition headers: `*` or a list of quoted ETags, written as clients write them. (Without
# a strategy of its own, Schemathesis 4.32's coverage phase sends a bare 0 for a header whose
# pattern needs characters other than letters and digits.)
from hypothesis import strategies as st

_tag = st.integers(min_value=0, max_value=10**19 - 1).map(lambda n: f'"{n}"')
_weak = st.tuples(st.booleans(), _tag).map(lambda w: ("W/" if w[0] else "") + w[1])
_separator = st.sampled_from([",", ", ", " ,", "\t,\t"])


def _tags(tag):
    return st.tuples(st.lists(tag, min_size=1, max_size=4), _separator).map(lambda t: t[1].join(t[0]))


schemathesis.openapi.format("walkv-if-match", st.one_of(st.just("*"), _tags(_tag)))
schemathesis.openapi.format("walkv-if-none-match", st.one_of(st.just("*"), _tags(_weak)))


def _blocks_long(query):
    """A valid blocking read that may wait more than a second (a key read with `index` or
    `wait`, and a `wait` over 1 s, or none: 60 s)."""
    import re

    index, wait = query.get("index"), query.get("wait")
    if index is not None and not re.fullmatch(r"[0-9]{1,19}", str(index)):
        return False
    if wait is None:
        return index is not None
    m = re.fullmatch(r"([0-9]{1,15}(\.[0-9]{1,9})?)([sm]?)", str(wait))
    return m is not None and float(m[1]) * (60 if m[3] == "m" else 1) > 1


@schemathesis.hook
def filter_query(ctx, query):
    """With `encoding=base64` a listing reads `after` as base64 (as `next` comes back), a rule
    between two parameters that OpenAPI 3.0 cannot state; such queries with an `after` that is
    not base64 are not sent. A change feed that follows (`follow` on) never ends by design, and a
    blocking read may wait up to 10 minutes, so neither is sent (a blocking read waiting at most
    a second is): tests/watch.rs tests them."""
    if isinstance(query, dict) and query.get("follow") in ("", "1", "true", True):
        return False
    if isinstance(query, dict) and _blocks_long(query):
        return False
    if not isinstance(query, dict) or query.get("encoding") != "base64":
        return True
    after = query.get("after")
    if not isinstance(after, str):
        return True
    import base64
    import binascii

    try:
        return base64.b64encode(base64.b64decode(after, validate=True)).decode() == after
    except (binascii.Error, ValueError):
        return False


def _txn_key(op):
    import base64
    import binascii

    if isinstance(op.get("key"), str):
        return op["key"].encode()
    try:
        return base64.b64decode(op.get("key_base64", ""), validate=True)
    except (binascii.Error, ValueError, TypeError):
        return None


@schemathesis.hook
def filter_body(ctx, body):
    """A transaction that writes one key twice is refused (400), a rule across items that
    OpenAPI cannot state; such bodies are not sent as valid ones."""
    if not isinstance(body, dict) or not isinstance(body.get("then"), list):
        return True
    keys = [_txn_key(op) for op in body["then"] if isinstance(op, dict)]
    known = [k for k in keys if k is not None]
    return len(known) == len(set(known))
