"""A WSGI app for tests/webhook/test_worker.py: answers which thread of which process served it."""

import json
import os
import threading


def application(environ, start_response):
    body = json.dumps({"main_thread": threading.current_thread() is threading.main_thread(), "pid": os.getpid()})
    payload = body.encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
