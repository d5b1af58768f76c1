"""Hostile input for the contract's second pass (scripts/contract.sh): every string the
fuzzer generates may come with a NUL in it, or become very long, in bodies, queries and
paths alike. The only check then is that the server never answers 5xx.

The choice is a function of the value (a CRC), so a case generates the same way when
Hypothesis replays it.
"""

import zlib

import schemathesis

LONG = {"body": 200_000, "query": 20_000, "path_parameters": 4_000}


def _spoil(value, part):
    if isinstance(value, str):
        choice = zlib.crc32(value.encode("utf-8", "surrogatepass")) % 4
        if choice == 0:
            return value + "\x00"
        if choice == 1:
            return "\x00" + value
        if choice == 2:
            return value + "é" * LONG[part]
        return value
    if isinstance(value, dict):
        # A body's keys too; a query's or a path's names are the operation's own.
        return {(_spoil(k, part) if part == "body" else k): _spoil(v, part) for k, v in value.items()}
    if isinstance(value, list):
        return [_spoil(v, part) for v in value]
    return value


@schemathesis.hook
def map_body(ctx, body):
    return _spoil(body, "body")


@schemathesis.hook
def map_query(ctx, query):
    return _spoil(query, "query")


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    return _spoil(path_parameters, "path_parameters")
