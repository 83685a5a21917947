"""The floor of the webhook benchmark: a bare WSGI callable, no framework.

It reads the body, parses the JSON, and answers an AdmissionReview in the request's version with the
request's uid and a fixed small patch: the least any Python webhook under the same gunicorn settings
has to do. The real webhook's figures are compared with this one's, taken in the same run.
"""

from __future__ import annotations

import base64
import json

PATCH = base64.b64encode(b'[{"op":"replace","path":"/spec/replicas","value":3}]').decode()


def application(environ, start_response):
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
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
