"""Load test of the collector: sustained ingestion with durable acknowledgements.

Starts ``shopfunnel serve`` on a free 127.0.0.1 port with a fresh store in a temporary
folder, sends batches of canonical events from ``--clients`` keep-alive connections
for ``--seconds`` (closed loop: each client sends its next batch when the previous one
is acknowledged), then waits for the writer to drain and checks that the store holds
exactly the acknowledged events (zero loss, no duplicates). Loopback only; bounded in
time; writes a Markdown summary.

    python benchmarks/collector_load.py --seconds 60 --out benchmarks/results/collector.md
    python benchmarks/collector_load.py --durability transaction --seconds 20
    python benchmarks/collector_load.py --shape segment --seconds 60   # analytics.js-shaped messages
    python benchmarks/collector_load.py --shape sdk --batch 250 --clients 8 --rate 20000 --seconds 30

``--shape segment`` sends what Segment's analytics.js and RudderStack send (page, identify,
and e-commerce track calls with context.page, userAgent, campaign, products); ``--rate``
holds a fixed offered load (events per second over all clients, open loop per client)
instead of the closed loop, so latency is measured at that rate.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "benchmark-admin-password"
EVENTS = ("page_view", "view_item", "view_item", "add_to_cart", "begin_checkout", "purchase")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-m", "shopfunnel", *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def batch_body(client: int, seq: int, size: int) -> bytes:
    now = time.time()
    parts = []
    for i in range(size):
        n = seq * size + i
        event = EVENTS[n % len(EVENTS)]
        person = f"anon-{client}-{(n // 12) % 5000}"
        extra = (f',"order_id":"o-{client}-{n}","value":{10 + n % 90}.5,"currency":"EUR"'
                 if event == "purchase" else "")
        parts.append(
            f'{{"event_id":"c{client}-{n}","ts":{now + i * 1e-3:.3f},"event":"{event}",'
            f'"anonymous_id":"{person}","page":"https://shop.example/p/{n % 300}",'
            f'"utm_source":"newsletter","utm_medium":"email"{extra}}}'
        )
    return ('{"batch":[' + ",".join(parts) + "]}").encode()


USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
)
SEQ = "@@SEQ@@"  # replaced by the request's number, so every messageId is new


def segment_message(client: int, n: int, now: float) -> dict[str, object]:
    """One analytics.js-shaped message (the n-th of a client's template batch)."""
    person = f"anon-{client}-{n // 12}-{SEQ}"
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{n % 1000:03d}Z"
    url = f"https://shop.example/p/{n % 300}" + ("?utm_source=newsletter&utm_medium=email" if n % 40 == 0 else "")
    ctx = {"library": {"name": "analytics.js", "version": "next-1.64.0"}, "locale": "en-US",
           "page": {"path": f"/p/{n % 300}", "referrer": "https://www.google.com/", "title": "Mug", "url": url},
           "userAgent": USER_AGENTS[n // 12 % 4], "ip": "203.0.113.9"}
    base = {"messageId": f"m-{client}-{SEQ}-{n}", "anonymousId": person, "timestamp": ts, "context": ctx,
            "integrations": {}, "sentAt": ts}
    kind = n % 12
    if kind in (0, 6):
        return {**base, "type": "page", "name": "Product",
                "properties": {"url": url, "path": f"/p/{n % 300}", "title": "Mug"}}
    if kind in (1, 2, 7, 8):
        return {**base, "type": "track", "event": "Product Viewed", "properties": {
            "product_id": f"sku-{n % 300}", "name": "Mug", "category": "Kitchen", "price": 12.5,
            "currency": "eur", "brand": "Acme"}}
    if kind in (3, 9):
        return {**base, "type": "track", "event": "Product Added", "properties": {
            "product_id": f"sku-{n % 300}", "name": "Mug", "price": 12.5, "quantity": 2}}
    if kind == 4:
        return {**base, "type": "track", "event": "Checkout Started", "properties": {
            "order_id": f"o-{client}-{SEQ}-{n}", "revenue": 25.0, "currency": "EUR",
            "products": [{"product_id": "sku-1", "name": "Mug", "price": 12.5, "quantity": 2}]}}
    if kind == 5:
        return {**base, "type": "identify", "userId": f"user-{person}",
                "traits": {"email": f"{person}@example.com"}}
    if kind == 10:
        return {**base, "type": "track", "event": "Order Completed", "userId": f"user-{person}", "properties": {
            "order_id": f"o-{client}-{SEQ}-{n}", "revenue": 25.0, "shipping": 4.9, "tax": 2.1, "total": 32.0,
            "currency": "EUR", "coupon": "SPRING", "products": [
                {"product_id": "sku-1", "name": "Mug", "category": "Kitchen", "price": 12.5, "quantity": 2},
                {"product_id": "sku-2", "name": "Plate", "price": 8, "quantity": 1}]}}
    return {**base, "type": "track", "event": "Signed Up", "properties": {"method": "email"}}


def segment_template(client: int, size: int) -> bytes:
    """A batch body whose ids hold :data:`SEQ` (one ``bytes.replace`` makes each request new)."""
    now = time.time()
    return json.dumps({"batch": [segment_message(client, n, now) for n in range(size)],
                       "sentAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}).encode()


def sdk_template(size: int) -> bytes:
    """A batch body as segment-analytics-python uploads it (its own serialiser, its message
    fields: ``integrations``, ``context.library``, ``null`` user ids, ``sentAt`` and
    ``writeKey`` in the body), the messages of ``collector_sdk.py``'s producers; ids hold
    :data:`SEQ`. Replayed by ``--shape sdk``: the server sees the SDK's bytes while the
    client spends almost no CPU, so the server's CPU per event is measured alone."""
    import segment.analytics.request as request
    from collector_sdk import message_calls
    from segment.analytics import Client

    bodies: list[bytes] = []

    class Answer:
        status_code = 200
        headers: dict[str, str] = {}

        def json(self) -> dict[str, int]:
            return {"accepted": size}

    def keep(url: str, data: str | bytes = b"", **kwargs: object) -> Answer:
        bodies.append(data if isinstance(data, bytes) else data.encode())
        return Answer()

    post, request._session.post = request._session.post, keep
    try:
        client = Client("key", host="http://127.0.0.1:9", upload_size=size, thread=1,
                        max_queue_size=size * 2)
        for n in range(size):
            message_calls(client, 0, n)
        client.flush()
        client.join()
    finally:
        request._session.post = post
    body = json.loads(bodies[0])
    for n, message in enumerate(body["batch"]):
        message["messageId"] = f"m-{SEQ}-{n}"
        message["anonymousId"] = f"{message['anonymousId']}-{SEQ}"
    return json.dumps(body).encode()


def wait_until_up(port: int, server: subprocess.Popen, seconds: float) -> None:
    """Wait until the server answers /v1/health (its workers are warm by then)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/v1/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("the server did not start: " + (server.stderr.read() if server.stderr else ""))
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far (Linux /proc) of a process, all its threads, and its
    live child processes (the server's conversion workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if entry.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds so far per thread name of a process (Linux /proc), and of its live child
    processes (as "workers"): where the server spends its time."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}

    def ticks(stat: Path) -> tuple[str, list[str]] | None:
        try:
            name, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            return None
        return name.split("(", 1)[1], rest.split()

    for task in Path(f"/proc/{pid}/task").iterdir():
        found = ticks(task / "stat")
        if found is not None:
            name = found[0].rstrip("0123456789_-") or found[0]
            out[name] = out.get(name, 0.0) + (int(found[1][11]) + int(found[1][12])) / tick
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = ticks(entry / "stat")
            if found is not None and found[1][1] == str(pid):
                out["workers"] = out.get("workers", 0.0) + (int(found[1][11]) + int(found[1][12])) / tick
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    start_load = round(os.getloadavg()[0], 1)
    work = Path(tempfile.mkdtemp(prefix="sf-bench-"))
    db = str(work / "bench.duckdb")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SHOPFUNNEL_ADMIN_PASSWORD": PASSWORD}
    key = cli("keys", "create", "--db", db, env=env)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "shopfunnel", "serve", "--db", db, "--port", str(port),
         "--durability", args.durability, "--rate", "1000000", "--workers", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
            "Content-Type": "application/json"}
    admin = {"Authorization": f"Bearer {PASSWORD}"}
    try:
        wait_until_up(port, server, 120)

        latencies: list[float] = []
        acked = [0]
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds

        template = (segment_template(0, args.batch) if args.shape == "segment"
                    else sdk_template(args.batch) if args.shape == "sdk" else b"")
        interval = args.clients * args.batch / args.rate if args.rate else 0.0

        def client(cid: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            seq = 0
            mine: list[float] = []
            ok = 0
            next_at = time.monotonic() + cid * interval / args.clients
            while time.monotonic() < stop_at:
                if interval:  # open loop: hold the offered rate, whatever the answers take
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    next_at += interval
                if args.shape in ("segment", "sdk"):
                    body = template.replace(SEQ.encode(), f"{cid}x{seq}".encode())
                else:
                    body = batch_body(cid, seq, args.batch)
                t0 = time.perf_counter()
                conn.request("POST", "/v1/batch", body=body, headers=auth)
                resp = conn.getresponse()
                payload = resp.read()
                mine.append(time.perf_counter() - t0)
                with lock:
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 200:
                    ok += json.loads(payload)["accepted"]
                    seq += 1
                elif resp.status in (429, 503):
                    time.sleep(float(resp.getheader("Retry-After", "1")))
            with lock:
                latencies.extend(mine)
                acked[0] += ok

        cpu_before = cpu_seconds(server.pid)
        threads_before = cpu_by_thread(server.pid)
        own_before = time.process_time()
        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        own_cpu = time.process_time() - own_before  # this script's clients, on the same cores
        # drain: wait for the writer to load every acknowledged event
        drain_start = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            c.request("GET", "/v1/health")
            pending = json.loads(c.getresponse().read())["pending_events"]
            if pending == 0:
                break
            if time.monotonic() - drain_start > 300:
                raise RuntimeError(f"the writer did not drain within 300 s ({pending} events pending)")
            time.sleep(0.2)
        drain = time.monotonic() - drain_start
        server_cpu = cpu_seconds(server.pid) - cpu_before
        by_thread = {k: round((v - threads_before.get(k, 0.0)) / max(acked[0], 1) * 1e6, 1)
                     for k, v in cpu_by_thread(server.pid).items()}
        c.request("GET", "/v1/info", headers=admin)
        stored = json.loads(c.getresponse().read())["events"]
    finally:
        server.terminate()
        server.wait(30)
    lat = sorted(latencies)
    return {
        "shape": args.shape, "offered_rate": args.rate or "closed loop",
        "durability": args.durability, "seconds": round(elapsed, 1), "clients": args.clients,
        "batch": args.batch, "acknowledged": acked[0], "stored": stored,
        "events_per_second": round(acked[0] / elapsed),
        "p50_ms": round(statistics.median(lat) * 1000, 1),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 1),
        "requests": len(lat), "statuses": statuses, "drain_seconds": round(drain, 1),
        "loss": acked[0] - stored,
        # the server's own CPU per acknowledged event, writer included (load on the machine
        # stretches wall time, much less this)
        "server_cpu_us_per_event": round(server_cpu / max(acked[0], 1) * 1e6, 1),
        "server_cpu_us_per_event_by_thread": {k: v for k, v in by_thread.items() if v > 0},
        # the load generator's own CPU (it shares the 2 cores with the server)
        "load_generator_cpu_us_per_event": round(own_cpu / max(acked[0], 1) * 1e6, 1),
        "load_average_1min_at_start": start_load,
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--durability", choices=("spool", "transaction"), default="spool")
    parser.add_argument("--shape", choices=("canonical", "segment", "sdk"), default="canonical",
                        help="canonical events, Segment/RudderStack messages (analytics.js-shaped), or "
                             "the bodies segment-analytics-python uploads (use --batch 250, its upload_size)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered events per second over all clients (0: closed loop, as fast as acknowledged)")
    parser.add_argument("--workers", type=int, default=2, help="the server's --workers (conversion processes)")
    parser.add_argument("--out", type=Path, help="append a Markdown row of results here")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.out:
        new = not args.out.exists()
        with open(args.out, "a", encoding="utf-8") as fh:
            if new:
                fh.write("# Collector load benchmark\n\n`python benchmarks/collector_load.py` — loopback, "
                         "closed loop, durable acknowledgements; loss = acknowledged − stored after the writer drained.\n\n"
                         "| date | machine | durability | seconds | clients × batch | acknowledged | events/s | p50 ms | p99 ms | drain s | loss | load avg |\n"
                         "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
            fh.write(f"| {time.strftime('%Y-%m-%d')} | {os.cpu_count()} cores, {platform.python_version()} | "
                     f"{result['durability']}, {result['shape']}"
                     f"{', offered ' + format(int(args.rate), ',') + '/s' if args.rate else ''} | {result['seconds']} | {result['clients']} × {result['batch']} | "
                     f"{result['acknowledged']:,} | {result['events_per_second']:,} | {result['p50_ms']} | "
                     f"{result['p99_ms']} | {result['drain_seconds']} | {result['loss']} | "
                     f"{result['load_average_1min_at_end']} |\n")


if __name__ == "__main__":
    main()
