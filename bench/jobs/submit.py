#!/usr/bin/env python3
"""One job-throughput measurement against a running transnotes server (see bench/README.md,
"Job throughput").

Creates N notes of 3-5 English sentences (not timed), opens the caller's event stream
(GET /api/v1/events/), then sends the N translate requests at once, one thread and one
connection each, and waits for every job's `succeeded` event on the stream. Completion is read
from the stream rather than by polling, so the measurement adds no load while jobs run.

Prints one line:
  BENCH scenario=jobs n=N notes_s=.. p50_ms=.. p90_ms=.. max_ms=.. wall_ms=.. cpu_ms_per_note=..
        server_cpu_ms_per_note=.. engine_cpu_ms_per_note=.. machine_busy_pct=.. server_p50_ms=..
        failed=K
notes_s: N / (last `succeeded` event - first 202); latency: a note's 202 to its `succeeded`
event (client clock); server_p50_ms: finished_at - created_at from the jobs themselves;
cpu_ms_per_note: CPU time of the server and all its descendants (the Apertium pipelines) over
the run, divided by N, split into the server process itself and its descendants (clock-tick
resolution, 10 ms: meaningless at N = 1); machine_busy_pct: all CPUs, from /proc/stat, over the
run (100: the machine had no idle time left).
"""
import argparse
import http.client
import json
import os
import random
import socket
import sys
import threading
import time

SENTENCES = [
    "The meeting was moved to Thursday because the room was not free.",
    "Please bring the report and the new figures.",
    "We will discuss the budget for next year.",
    "After lunch the team visits the factory near the river.",
    "Thank you all for your patience this week.",
    "The new manager starts on Monday morning.",
    "Our customers asked for a cheaper version of the product.",
    "The train to the airport leaves every twenty minutes.",
    "She wrote a long letter to her old friends in the city.",
    "It rained all day, so the children played inside the house.",
    "The doctor said that he must rest for two weeks.",
    "We need more time to finish the translation of the book.",
]


def machine_busy_ticks():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def descendants_cpu_seconds(root):
    """(utime+stime of `root` itself, of every live process below it), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent_of, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parent_of[pid] = int(fields[1])
        cpu[pid] = int(fields[11]) + int(fields[12])
    below = 0
    for pid, ticks_used in cpu.items():
        if pid == root:
            continue
        p, depth = pid, 0
        while p > 1 and p != root and depth < 64:
            p, depth = parent_of.get(p, 0), depth + 1
        if p == root:
            below += ticks_used
    return cpu.get(root, 0) / ticks, below / ticks


class Api:
    def __init__(self, base, token):
        host_port = base.split("//", 1)[1].rstrip("/")
        self.host, port = host_port.split(":")
        self.port = int(port)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = "Bearer " + token

    def connect(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def post(self, conn, path, body):
        conn.request("POST", path, json.dumps(body), self.headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")


def open_stream(api):
    sock = socket.create_connection((api.host, api.port))
    request = "GET /api/v1/events/ HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
    if "Authorization" in api.headers:
        request += "Authorization: " + api.headers["Authorization"] + "\r\n"
    sock.sendall((request + "\r\n").encode())
    return sock


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int((len(ordered) - 1) * q + 0.5))]


def iso_seconds(stamp):
    clock = stamp.split("T", 1)[1].rstrip("Z")
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--target", default="es")
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    api = Api(args.base, os.environ.get("BENCH_TOKEN", ""))
    rng = random.Random(args.seed)

    conn = api.connect()
    note_ids = []
    for i in range(args.n):
        text = " ".join(rng.sample(SENTENCES, rng.randint(3, 5)))
        status, note = api.post(conn, "/api/v1/notes/",
                                {"title": f"jobs {i}", "original_text": text,
                                 "original_language": "en"})
        if status != 201:
            sys.exit(f"submit.py: create answered {status}: {note}")
        note_ids.append(note["id"])

    # One connection per request, opened before the clock starts.
    connections = [api.connect() for _ in note_ids]
    for c in connections:
        c.connect()
    sock = open_stream(api)
    time.sleep(0.2)  # the stream's subscription is in place before the first job exists

    wanted, finished_at, accepted_at = set(), {}, {}
    lock = threading.Lock()
    done = threading.Event()
    start_gate = threading.Barrier(len(note_ids) + 1)
    errors = []

    def submit(index):
        start_gate.wait()
        try:
            status, body = api.post(connections[index], f"/api/v1/notes/{note_ids[index]}/translate/",
                                    {"target_language": args.target})
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(repr(error))
            return
        now = time.monotonic()
        if status != 202:
            errors.append(f"translate answered {status}: {body}")
            return
        job_id = body["translation"]["id"]
        with lock:
            wanted.add(job_id)
            accepted_at[job_id] = now
            if len(finished_at) == len(wanted) == len(note_ids):
                done.set()

    cpu_before = descendants_cpu_seconds(args.server_pid) if args.server_pid else (0.0, 0.0)
    busy_before = machine_busy_ticks()
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(note_ids))]
    for t in threads:
        t.start()
    # Wanted ids are known only after each 202; the reader keeps finals of unknown ids aside.
    pending = {}

    def reader():
        buffer = b""
        while not done.is_set():
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            now = time.monotonic()
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                kind = data = None
                for line in event.split(b"\n"):
                    if line.startswith(b"event: "):
                        kind = line[7:].strip()
                    elif line.startswith(b"data: "):
                        data = line[6:]
                if kind != b"job" or data is None:
                    continue
                job = json.loads(data)
                if job.get("status") not in ("succeeded", "failed", "cancelled"):
                    continue
                with lock:
                    pending.setdefault(job["id"], (now, job["status"], job))
                    for job_id in list(wanted):
                        if job_id in pending and job_id not in finished_at:
                            finished_at[job_id] = pending[job_id]
                    if len(wanted) == len(note_ids) and len(finished_at) == len(wanted):
                        done.set()

    reader_thread = threading.Thread(target=reader, daemon=True)
    reader_thread.start()
    start_gate.wait()
    for t in threads:
        t.join()
    if errors:
        sys.exit("submit.py: " + "; ".join(errors[:3]))
    with lock:  # finals that arrived before their 202 was read
        for job_id in wanted:
            if job_id in pending and job_id not in finished_at:
                finished_at[job_id] = pending[job_id]
        if len(finished_at) == len(wanted):
            done.set()
    if not done.wait(args.timeout):
        sys.exit(f"submit.py: only {len(finished_at)} of {len(wanted)} jobs finished")
    cpu_after = descendants_cpu_seconds(args.server_pid) if args.server_pid else (0.0, 0.0)
    busy_after = machine_busy_ticks()
    sock.close()

    latencies = [(finished_at[j][0] - accepted_at[j]) * 1000 for j in wanted]
    server = [(iso_seconds(finished_at[j][2]["finished_at"]) -
               iso_seconds(finished_at[j][2]["created_at"])) * 1000 for j in wanted]
    failed = sum(1 for j in wanted if finished_at[j][1] != "succeeded")
    wall = max(f[0] for f in finished_at.values()) - min(accepted_at.values())
    print(f"BENCH scenario=jobs n={args.n} notes_s={args.n / wall:.1f} "
          f"p50_ms={percentile(latencies, 0.5):.1f} p90_ms={percentile(latencies, 0.9):.1f} "
          f"max_ms={max(latencies):.1f} wall_ms={wall * 1000:.1f} "
          f"cpu_ms_per_note={(sum(cpu_after) - sum(cpu_before)) * 1000 / args.n:.2f} "
          f"server_cpu_ms_per_note={(cpu_after[0] - cpu_before[0]) * 1000 / args.n:.2f} "
          f"engine_cpu_ms_per_note={(cpu_after[1] - cpu_before[1]) * 1000 / args.n:.2f} "
          f"machine_busy_pct={(busy_after[0] - busy_before[0]) * 100 / max(1, busy_after[1] - busy_before[1]):.0f} "
          f"server_p50_ms={percentile(server, 0.5):.1f} failed={failed}")


if __name__ == "__main__":
    main()
