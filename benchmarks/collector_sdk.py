"""Load test of the collector with the real Segment SDK (segment-analytics-python).

Starts ``shopfunnel serve`` on a free 127.0.0.1 port with a fresh store, then runs
``--processes`` producer processes, each with its own ``segment.analytics.Client``
(only ``host`` and ``write_key`` set as a store would, plus ``upload_size``), calling
``page``/``track``/``identify`` with e-commerce properties at ``--rate`` events per
second in all for ``--seconds``. Each producer times every upload the SDK makes (its
HTTP session's ``post``) and counts the events in the uploads answered 200; after the
writer drained, the store must hold exactly those events. The producers run on the
same machine as the server: on a small machine the SDK's own CPU (it serialises every
message twice) bounds the rate as much as the server.

    python benchmarks/collector_sdk.py --seconds 30 --rate 20000 --processes 4
    python benchmarks/collector_sdk.py --seconds 60 --rate 20000 --store big.duckdb [--src DIR]

``--store`` starts the server on a copy of that store (a store that already holds events: the
writer's loads look new events up among the stored ones); ``--src`` runs the server from
another checkout's ``src`` (a before/after pair). ``drained_after_offer_s`` is how long after
the offer ended the writer had loaded every acknowledged event.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collector_load import PASSWORD, ROOT, cli, cpu_seconds, free_port, wait_until_up  # noqa: E402

PRODUCTS = [{"product_id": f"sku-{i}", "name": f"Product {i}", "category": "Kitchen", "price": 5.0 + i % 40}
            for i in range(300)]


AGENT = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1")


def message_calls(client, index: int, n: int) -> None:
    """The n-th message of producer ``index``: a page, identify or e-commerce track call."""
    person = f"anon-{index}-{n // 12}"
    context = {"userAgent": AGENT, "page": {"url": f"https://shop.example/p/{n % 300}",
                                             "referrer": "https://www.google.com/"}}
    product = PRODUCTS[n % 300]
    kind = n % 12
    if kind in (0, 6):
        client.page(anonymous_id=person, name="Product", context=context,
                    properties={"url": context["page"]["url"], "title": product["name"]})
    elif kind == 5:
        client.identify(user_id=f"user-{person}", anonymous_id=person, context=context,
                        traits={"email": f"{person}@example.com"})
    elif kind == 10:
        client.track(user_id=f"user-{person}", anonymous_id=person, event="Order Completed",
                     context=context, properties={"order_id": f"o-{index}-{n}", "revenue": 25.0,
                                                  "currency": "EUR", "products": [product]})
    elif kind in (3, 9):
        client.track(anonymous_id=person, event="Product Added", context=context,
                     properties={**product, "quantity": 2})
    else:
        client.track(anonymous_id=person, event="Product Viewed", context=context,
                     properties={**product, "currency": "eur"})


WARM_UP = 5.0  # seconds left out of the sustained rate at the start


def producer(index: int, url: str, key: str, rate: float, seconds: float, upload_size: int,
             threads: int, out: multiprocessing.Queue) -> None:
    import segment.analytics.request as request
    from segment.analytics import Client

    latencies: list[float] = []
    acks: list[tuple[float, int]] = []  # (monotonic time, events) of each upload answered 200
    delivered = [0]
    session_post = request._session.post

    def timed_post(*args, **kwargs):
        t0 = time.perf_counter()
        response = session_post(*args, **kwargs)
        latencies.append(time.perf_counter() - t0)
        if response.status_code == 200:
            accepted = response.json()["accepted"]
            delivered[0] += accepted
            acks.append((time.monotonic(), accepted))
        return response

    request._session.post = timed_post
    client = Client(key, host=url, upload_size=upload_size, max_queue_size=1_000_000, max_retries=3,
                    thread=threads)
    sent, started = 0, time.monotonic()
    stop_at = started + seconds
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        due = int((now - started) * rate) - sent
        if due <= 0:
            time.sleep(0.002)
            continue
        for _ in range(min(due, 200)):
            message_calls(client, index, sent)
            sent += 1
    client.flush()
    client.join()
    out.put({"sent": sent, "delivered": delivered[0], "latencies": latencies, "acks": acks,
             "started": started, "seconds": time.monotonic() - started})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=20_000, help="events per second over all producers")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--upload-size", type=int, default=250, help="the SDK's upload_size (events per request)")
    parser.add_argument("--threads", type=int, default=2, help="the SDK's upload threads per producer")
    parser.add_argument("--workers", type=int, default=2, help="the server's --workers")
    parser.add_argument("--store", type=Path, help="start on a copy of this store (and the files beside it)")
    parser.add_argument("--src", type=Path, help="the src folder the server runs from")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sf-sdk-"))
    db = str(work / "bench.duckdb")
    if args.store:  # the store and the files beside it (its timeline, its delta)
        for path in [args.store, *args.store.parent.glob(args.store.name + ".*")]:
            target = db + path.name[len(args.store.name):]
            (shutil.copytree if path.is_dir() else shutil.copy)(path, target)
    src = args.src.resolve() if args.src else ROOT / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "SHOPFUNNEL_ADMIN_PASSWORD": PASSWORD}
    key = cli("keys", "create", "--db", db, env=env)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "shopfunnel", "serve", "--db", db, "--port", str(port), "--rate", "1000000",
         "--workers", str(args.workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(port, server, 120)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/v1/info", headers={"Authorization": f"Bearer {PASSWORD}"})
        base = json.loads(c.getresponse().read())["events"]  # a --store's events
        out: multiprocessing.Queue = multiprocessing.Queue()
        cpu_before = cpu_seconds(server.pid)
        start_load = round(os.getloadavg()[0], 1)
        import resource

        producers_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        procs = [multiprocessing.Process(target=producer, args=(
            i, f"http://127.0.0.1:{port}", key, args.rate / args.processes, args.seconds, args.upload_size, args.threads, out))
            for i in range(args.processes)]
        for p in procs:
            p.start()
        results = [out.get(timeout=args.seconds + 600) for _ in procs]
        for p in procs:
            p.join()
        # the producers (reaped children; the server is still running, so not in it)
        producers = resource.getrusage(resource.RUSAGE_CHILDREN)
        producers_cpu = (producers.ru_utime + producers.ru_stime
                         - producers_before.ru_utime - producers_before.ru_stime)
        offer_ended = min(r["started"] for r in results) + args.seconds
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # the first one idled out
        while True:
            c.request("GET", "/v1/health")
            if json.loads(c.getresponse().read())["pending_events"] == 0:
                break
            time.sleep(0.2)
        drained = time.monotonic() - offer_ended  # the producers' clock (CLOCK_MONOTONIC)
        server_cpu = cpu_seconds(server.pid) - cpu_before
        c.request("GET", "/v1/info", headers={"Authorization": f"Bearer {PASSWORD}"})
        stored = json.loads(c.getresponse().read())["events"] - base
    finally:
        server.terminate()
        server.wait(30)
    latencies = sorted(x for r in results for x in r["latencies"])
    sent = sum(r["sent"] for r in results)
    delivered = sum(r["delivered"] for r in results)
    elapsed = max(r["seconds"] for r in results)
    # sustained: the events acknowledged per second from WARM_UP s after the start to the end
    # of the offered load (the first uploads and the SDK's final flush left out: the flush
    # drains what its queue still holds once offering stops, which "events_per_second",
    # dividing by the whole time, counts as slowness)
    begin = min(r["started"] for r in results) + WARM_UP
    end = min(r["started"] for r in results) + args.seconds
    in_window = sum(n for r in results for t, n in r["acks"] if begin <= t < end)
    last_ack = max((t for r in results for t, _ in r["acks"]), default=end)
    print(json.dumps({
        "client": "segment-analytics-python", "processes": args.processes, "upload_size": args.upload_size, "threads": args.threads,
        "server_workers": args.workers, "offered_rate": args.rate, "seconds": round(elapsed, 1),
        "sent": sent, "delivered": delivered, "stored": stored, "loss": delivered - stored,
        "events_per_second": round(delivered / elapsed),
        "sustained_events_per_second": round(in_window / max(end - begin, 1e-9)),
        "last_ack_after_offer_ended_s": round(last_ack - end, 2),
        "drained_after_offer_s": round(drained, 1),
        "store": str(args.store or ""), "events_in_store_before": base, "src": str(src),
        "uploads": len(latencies), "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1),
        "server_cpu_us_per_event": round(server_cpu / max(delivered, 1) * 1e6, 1),
        "producers_cpu_us_per_event": round(producers_cpu / max(sent, 1) * 1e6, 1),
        "load_average_1min_at_start": start_load,
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
    }, indent=2))


if __name__ == "__main__":
    main()
