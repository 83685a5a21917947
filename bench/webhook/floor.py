"""The floor of the webhook benchmark: a bare WSGI callable, no framework.

It reads the body, parses the JSON, and answers an AdmissionReview in the request's version with the
request's uid and a fixed small patch: the least any Python webhook under the same gunicorn settings
has to do. The real webhook's figures are compared with this one's, taken in the same run.

With ``KD_BENCH_COUNT_DIR`` set, each worker keeps its number of answers in an 8-byte file
``floor_<pid>.bin`` there (one ``struct.pack_into`` per request), so the benchmark can report each
worker's share, as it does for the webhook from its Prometheus multiprocess files.
"""

from __future__ import annotations

import base64
import json
import mmap
import os
import struct

PATCH = base64.b64encode(b'[{"op":"replace","path":"/spec/replicas","value":3}]').decode()

_counter: mmap.mmap | None = None
_count = 0
if os.environ.get("KD_BENCH_COUNT_DIR"):  # imported by each gunicorn worker after the fork
    with open(os.path.join(os.environ["KD_BENCH_COUNT_DIR"], f"floor_{os.getpid()}.bin"), "w+b") as _file:
        _file.write(b"\0" * 8)
        _file.flush()
        _counter = mmap.mmap(_file.fileno(), 8)


def application(environ, start_response):
    global _count
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    try:
        review = json.loads(body)
        request = review["request"]
        answer = {
            "apiVersion": review["apiVersion"],
            "kind": "AdmissionReview",
            "response": {"uid": request["uid"], "allowed": True, "patchType": "JSONPatch", "patch": PATCH},
        }
        status, payload = "200 OK", json.dumps(answer).encode()
    except (ValueError, KeyError, TypeError):
        status, payload = "400 Bad Request", b'{"detail": "not an AdmissionReview"}'
    if _counter is not None:
        _count += 1
        struct.pack_into("q", _counter, 0, _count)
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
