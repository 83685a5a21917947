"""CPU time per review, in-process: the floor's WSGI callable and the webhook's, same bodies, same run.

    .venv/bin/python bench/webhook/cpu.py                  # 40 rounds × 160 reviews per target
    .venv/bin/python bench/webhook/cpu.py --rounds 100
    .venv/bin/python bench/webhook/cpu.py --profile 25     # then cProfile the webhook: top 25 functions

No server, no socket, no database: each target is called as gunicorn calls it (a prepared WSGI environ
with the body in ``wsgi.input``, the answer iterated and closed) on the bodies bench/webhook/run.py posts
(≈10 KB UPDATE reviews, CREATEs and scale reviews that all get a patch; every answer is checked). The
webhook is ``apps.webhook.wsgi.application`` — Django's handler, the webhook process's URL map, the DRF
view and the service — answering from an in-memory snapshot of the same 128 control rows run.py writes,
built with the snapshot's own factories; audit events go to a writer whose queue is emptied between rounds.
Prometheus runs in multiprocess mode (files in a scratch directory), as in run.py and production.

Time is ``time.thread_time()`` (this thread's CPU), so other jobs on a shared machine move it far less
than they move wrk's reviews/s. The targets take turns in many short rounds (each body once per round),
so a drifting background load falls on all of them alike; each figure is the minimum and the median over
the rounds (the minimum is the least disturbed: another job's load only ever adds). Besides the two WSGI
callables it times the layers of the webhook, so one run says where a review's CPU goes:

- ``json.loads``: the standard library parsing the body (what the floor does);
- ``parse_review``: the webhook's parsing and checking (``apps.webhook.admission.parse_review``);
- ``service``: ``services.admission_review_handle`` on the bytes (parse, decide, answer, audit queue, metrics);
- ``webhook``: the whole WSGI call; ``webhook − service`` is Django's handler and the DRF view;
- ``webhook, service stubbed``: the whole WSGI call with the service replaced by a constant answer (the
  view reads the body, calls it and writes the bytes): Django's handler and the view measured directly.

gunicorn's own work per request (reading the socket, parsing HTTP, writing the answer) is not in these
figures: it is the same for both targets, ≈ 300–350 µs per review on this machine under wrk.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))


def environ_for(body: bytes, path: str) -> dict[str, Any]:
    """What gunicorn hands a WSGI app for the API server's POST (``wsgi.input`` is added per call)."""
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "RAW_URI": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8443",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "51234",
        "HTTP_HOST": "kubedoor-webhook.kubedoor.svc:443",
        "HTTP_USER_AGENT": "kube-apiserver-admission",
        "HTTP_ACCEPT": "application/json, */*",
        "HTTP_ACCEPT_ENCODING": "gzip",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "https",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": None,
        "wsgi.input_terminated": True,
    }


def wsgi_call(app: Callable[..., Any]) -> Callable[[dict[str, Any], bytes], tuple[str, bytes]]:
    def call(base: dict[str, Any], body: bytes) -> tuple[str, bytes]:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def start_response(value: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            status.append(value)

        result = app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return status[0], payload

    return call


def setup_webhook() -> tuple[Callable[..., Any], Any, Any]:
    """Django set up as the webhook process, with an in-memory snapshot and a writer that never writes."""
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="kd-bench-cpu-prom-"))
    os.environ["KUBEDOOR_PROCESS"] = "webhook"
    os.environ["DJANGO_SETTINGS_MODULE"] = "kubedoor_site.settings"
    os.environ.setdefault("KUBEDOOR_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from run import CLUSTER_FIELDS, bench_microservices  # bench/webhook/run.py: the same cluster as wrk's

    from apps.control.models import Cluster
    from apps.webhook import audit_writer, snapshot
    from apps.webhook.audit_writer import AuditWriter

    cluster = Cluster(name="bench", **CLUSTER_FIELDS)
    rows = {
        (microservice.namespace, microservice.name): snapshot.control_row_from(
            microservice, apply_recommended=cluster.apply_recommended_replicas
        )
        for microservice in bench_microservices(cluster)
    }
    clusters = {"bench": snapshot.ClusterControl(settings=snapshot.cluster_settings_from(cluster), rows=rows)}
    holder = snapshot.SnapshotHolder(stamp_loader=lambda: (), loader=lambda: clusters, autostart=False)
    holder.refresh(force=True)
    snapshot.holder = holder  # before apps.webhook.wsgi binds it: no database, no refresher thread
    writer = AuditWriter(autostart=False, maxsize=10_000_000)
    audit_writer.writer = writer
    from apps.webhook import wsgi

    return wsgi.application, holder, writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=160, help="reviews per target and round (160: each body once)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--profile", type=int, default=0, help="afterwards, cProfile the webhook: top N functions")
    args = parser.parse_args()

    app, _holder, writer = setup_webhook()
    import floor
    from run import write_bodies

    from apps.webhook import admission, services

    folder = Path(tempfile.mkdtemp(prefix="kd-bench-cpu-bodies-"))
    bodies = [Path(line).read_bytes() for line in write_bodies(folder).read_text().split()]
    path = "/mutate/bench"
    prepared = [(environ_for(body, path), body) for body in bodies]

    floor_call, webhook_call = wsgi_call(floor.application), wsgi_call(app)
    for name, call in (("floor", floor_call), ("webhook", webhook_call)):
        for base, body in prepared:
            status, payload = call(base, body)
            answer = json.loads(payload)["response"]
            if not (status.startswith("200") and answer["allowed"] is True and answer["patchType"] == "JSONPatch"):
                sys.exit(f"{name} answered {status} {payload[:300]!r}")

    stub_answer = services.admission_review_handle(cluster="bench", body=bodies[0])

    def stubbed_call(base: dict[str, Any], body: bytes) -> tuple[str, bytes]:
        real = services.admission_review_handle
        services.admission_review_handle = lambda **kwargs: stub_answer  # what the view calls
        try:
            return webhook_call(base, body)
        finally:
            services.admission_review_handle = real

    targets: dict[str, Callable[[dict[str, Any], bytes], Any]] = {
        "floor": floor_call,
        "webhook": webhook_call,
        "webhook, service stubbed": stubbed_call,
        "json.loads": lambda base, body: json.loads(body),
        "parse_review": lambda base, body: admission.parse_review(body),
        "service": lambda base, body: services.admission_review_handle(cluster="bench", body=body),
    }
    work = [prepared[i % len(prepared)] for i in range(args.chunk)]
    figures: dict[str, list[float]] = {name: [] for name in targets}
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {len(bodies)} bodies", flush=True)
    for index in range(args.rounds):
        for name, call in targets.items():
            gc.collect()
            started = time.thread_time()
            for base, body in work:
                call(base, body)
            figures[name].append((time.thread_time() - started) / len(work) * 1e6)
            writer.queue.queue.clear()
        if (index + 1) % 10 == 0 or index + 1 == args.rounds:
            print(
                f"rounds 1-{index + 1}, median: "
                + "  ".join(f"{n} {statistics.median(v):.0f}" for n, v in figures.items()),
                flush=True,
            )
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| µs per review (CPU) | min | median |")
    print("|---|---|---|")
    for name, values in figures.items():
        print(f"| {name} | {min(values):.0f} | {statistics.median(values):.0f} |")
    low = {name: min(values) for name, values in figures.items()}
    print(f"| webhook − service (Django's handler + DRF view) | {low['webhook'] - low['service']:.0f} | |")
    print(f"| webhook − floor | {low['webhook'] - low['floor']:.0f} | |")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.thread_time)  # CPU, not wall time: other jobs preempt this one
        profiler.enable()
        for _ in range(10):
            for base, body in work:
                webhook_call(base, body)
        profiler.disable()
        pstats.Stats(profiler).sort_stats(os.environ.get("KD_PROFILE_SORT", "tottime")).print_stats(args.profile)


if __name__ == "__main__":
    main()
