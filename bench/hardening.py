#!/usr/bin/env python3
"""Hostile loads on the release build, loopback only, bounded in count and time.

    cargo build --release --locked && python3 bench/hardening.py

1. h2c: 100 connections each send the HTTP/2 preface and 200 HEADERS frames of
   unfinished 64 KiB uploads; peak RSS of the server.
2. endless headers: 2,000 connections each send header lines without end (up to
   256 KiB each); peak RSS of the server, and whether /healthz still answers.
3. tenants: authenticated lookups per second (wrk, 10 s) with 1 and with 100,000
   tenants, with the right token and with a wrong one, and the start-up time.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BIN = "./target/release/ordergate"


def start(workdir, *args, keys=None):
    log = open(os.path.join(workdir, "server.log"), "w+")
    cmd = [BIN, "serve", "--listen", "127.0.0.1:0", "--database", f"sqlite://{workdir}/h.db"]
    if keys:
        cmd += ["--api-keys-file", keys]
    started = time.monotonic()
    proc = subprocess.Popen(cmd + list(args), stderr=log, env={**os.environ, "RUST_LOG": "warn,ordergate::server=info"})
    while True:
        log.seek(0)
        found = re.search(r"addr=([0-9.:]+)", log.read())
        if found:
            return proc, found.group(1), time.monotonic() - started
        if proc.poll() is not None:
            sys.exit("server exited")
        time.sleep(0.01)


def rss_mib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def healthz(addr):
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            return s.recv(64).split(b"\r\n")[0].decode()
    except OSError as e:
        return f"no answer ({e})"


def h2c(workdir):
    proc, addr, _ = start(workdir)
    host, port = addr.rsplit(":", 1)
    before = rss_mib(proc.pid)
    frame_header = lambda length, kind, flags, stream: length.to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big")
    socks = []
    for _ in range(100):
        s = socket.create_connection((host, int(port)))
        s.setblocking(False)
        data = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame_header(0, 4, 0, 0)
        for stream in range(1, 401, 2):
            block = b"\x83\x86\x84\x41\x01x"  # :method POST, :scheme http, :path /, :authority x
            data += frame_header(len(block), 1, 4, stream) + block  # HEADERS, END_HEADERS, no END_STREAM
        try:
            s.send(data)
        except OSError:
            pass
        socks.append(s)
    time.sleep(2)
    peak = rss_mib(proc.pid, "VmHWM")
    print(f"h2c, 100 connections x 200 streams: RSS {before:.1f} MiB before, peak {peak:.1f} MiB; /healthz: {healthz(addr)}")
    for s in socks:
        s.close()
    proc.terminate()
    proc.wait()


def endless_headers(workdir):
    proc, addr, _ = start(workdir)
    host, port = addr.rsplit(":", 1)
    before = rss_mib(proc.pid)
    socks = []
    line = b"x-more: " + b"b" * 1000 + b"\r\n"
    refused = 0
    for _ in range(2000):
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            refused += 1
            continue
        s.setblocking(False)
        try:
            s.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        except OSError:
            pass
        socks.append(s)
    deadline = time.monotonic() + 10
    sent = 0
    while time.monotonic() < deadline and sent < 256:
        for s in socks:
            try:
                s.send(line)
            except OSError:
                pass
        sent += 1
    peak = rss_mib(proc.pid, "VmHWM")
    print(f"endless headers, {len(socks)} connections ({refused} not accepted in 5 s) x up to 256 KiB: RSS {before:.1f} MiB before, peak {peak:.1f} MiB; /healthz during: {healthz(addr)}")
    for s in socks:
        s.close()
    proc.terminate()
    proc.wait()


def wrk_rps(addr, token, path):
    out = subprocess.run(
        ["wrk", "-t1", "-c32", "-d10s", "-H", f"Authorization: Bearer {token}", f"http://{addr}{path}"],
        capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))


def tenants(workdir):
    for count in (1, 100_000):
        keys = os.path.join(workdir, f"keys-{count}")
        with open(keys, "w") as f:
            for i in range(count):
                f.write(f"tenant{i}:token-{i:08d}-{'x' * 24}\n")
        proc, addr, startup = start(workdir, keys=keys)
        right = f"token-{count - 1:08d}-{'x' * 24}"
        found = wrk_rps(addr, right, "/orders?idempotencyKey=nothing-here")
        wrong = wrk_rps(addr, "not-a-token", "/orders?idempotencyKey=nothing-here")
        print(f"{count:>7} tenants: start-up {startup * 1000:.0f} ms; lookups {found:,.0f}/s with the right token, {wrong:,.0f}/s with a wrong one")
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as workdir:
        h2c(workdir)
        endless_headers(workdir)
        tenants(workdir)
