#!/usr/bin/env python3
"""loadtool.py: idle-connection and mixed-load tests for a TLS OCI registry (regpress serve).

Standard library only (asyncio + ssl). Used by tests/e2e/70-load.sh; docs/scale.md has what it
measured. Two phases, each optional:

  idle   Opens --idle connections (at most 60000) of the kinds in --idle-mix, one kind after the
         other in the order given (each kind's TLS handshakes finish before the next kind
         starts), holds them for --hold seconds (at most 600), and meanwhile sends a probe
         client (fresh TCP connect + TLS handshake + GET /v2/, from a separate process so this
         one's load cannot delay it) every --probe-interval seconds. A connection the server
         closes is reopened (--reopen, rate-limited). The verdict is structural, never from the
         clock: a probe *counts* when the whole set was held while it ran (every connection
         open when it started, none closed by the server until it had its answer); the phase
         passes when at least one probe counted and no probe failed (no answer 200 {}; a probe
         gives up only after --probe-timeout, a hang guard). A server locked out by idle
         connections shows as probes that are answered only after the server dropped some of
         them (not counted) or not at all (failed). Probe latencies are reported, not judged.
  mixed  --clients concurrent HTTP/1.1 clients for --duration seconds, each on its own TLS
         connection (keep-alive, reconnecting when the server closes), mixing manifest GETs
         (tag and digest), blob GETs (small and large), HEADs, Range GETs, 404s, 400s and
         garbage. Every body is checked against its sha256 digest; every status against what
         that request must get. Verdict: no 5xx, no connection reset, no truncated or wrong
         body, no unexpected status, no request left unfinished (a request that has not
         finished --request-timeout seconds after it started counts as unfinished; that is a
         hang detector, set it generously).

  --with-idle runs the mixed load while the idle set is held (the two together).

Idle kinds: tcp (connect, send nothing), tls (handshake, then nothing), partial (handshake and
an incomplete request), ka (one request, then idle keep-alive), trickle (handshake, an
incomplete request, then one more header line every --trickle seconds: a server never drops it
for being idle).

Exit status: 0 all checks passed, 1 a check failed, 2 usage or setup error (e.g. discovery
failed), 3 inconclusive: this process was too starved of CPU to hold the whole idle set during
any probe, or to run its own timers (only 'unfinished' failures while its event loop ran more
than --request-timeout/4 late). A JSON report goes to --json FILE if given.

Example:
  loadtool.py --port 5000 --cacert ca.crt --idle 3000 --idle-mix trickle:1,tcp:1 --hold 20 \
      --with-idle --clients 500 --duration 10 --server-pid PID
"""
import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import signal
import socket
import ssl
import sys
import time

# ------------------------------------------------------------------------------------------
# small helpers

MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


def now():
    return time.monotonic()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def lat_summary(values):
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": round(pct(values, 50) * 1000, 1),
            "p99_ms": round(pct(values, 99) * 1000, 1), "max_ms": round(max(values) * 1000, 1)}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class ServerStats:
    """Optional, local only: RSS of the server's processes and the listen socket's queue."""

    def __init__(self, pids, port):
        self.roots = pids or []
        self.port = port
        self.peak_rss = {}

    def _children(self):
        kids = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
                ppid = int(st[st.rindex(")") + 2:].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError):
                pass
        return kids

    def pids(self):
        if not self.roots:
            return []
        kids, out, todo = self._children(), [], list(self.roots)
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(kids.get(p, []))
        return out

    name_filter = "lighttpd"

    def rss_kib(self):
        name_filter = self.name_filter
        total = 0
        for p in self.pids():
            try:
                with open(f"/proc/{p}/status") as f:
                    txt = f.read()
                name = txt.split("\n", 1)[0].split()[-1]
                if name_filter and name_filter not in name:
                    continue
                for line in txt.splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def sample(self, label):
        if not self.roots:
            return None
        r = self.rss_kib()
        self.peak_rss[label] = max(self.peak_rss.get(label, 0), r)
        return r

    def listen_queue(self):
        """(accept queue length, backlog) of the LISTEN socket on the port, from /proc/net/tcp*."""
        for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(fn) as f:
                    next(f)
                    for line in f:
                        p = line.split()
                        if p[3] != "0A":
                            continue
                        if int(p[1].rsplit(":", 1)[1], 16) != self.port:
                            continue
                        tx, rx = p[4].split(":")
                        return int(rx, 16), int(tx, 16)
            except OSError:
                pass
        return None

    def established(self):
        """Established connections whose local port is the server port (server side)."""
        n = 0
        for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(fn) as f:
                    next(f)
                    for line in f:
                        p = line.split()
                        if p[3] == "01" and int(p[1].rsplit(":", 1)[1], 16) == self.port:
                            n += 1
            except OSError:
                pass
        return n


# ------------------------------------------------------------------------------------------
# HTTP/1.1 over asyncio streams

class ProtoError(Exception):
    pass


class Resp:
    __slots__ = ("status", "headers", "body", "sha", "length", "t_first")

    def __init__(self):
        self.status = 0
        self.headers = {}
        self.body = None
        self.sha = None
        self.length = 0
        self.t_first = None


async def read_response(reader, method, keep_body, timeout_at, progress=None):
    """Read one response. Returns Resp; raises ProtoError, ConnectionError, asyncio.TimeoutError,
    asyncio.IncompleteReadError."""
    r = Resp()

    async def rl():
        return await asyncio.wait_for(reader.readuntil(b"\n"), max(0.001, timeout_at - now()))

    line = await rl()
    r.t_first = now()
    if progress is not None:
        progress["started"] = True
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ProtoError(f"bad status line {line[:60]!r}")
    r.status = int(parts[1])
    while True:
        line = await rl()
        if line in (b"\r\n", b"\n"):
            break
        k, _, v = line.decode("latin-1").partition(":")
        r.headers[k.strip().lower()] = v.strip()
    h = hashlib.sha256()
    chunks = [] if keep_body else None
    n = 0
    if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
        pass
    elif "chunked" in r.headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await rl()
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await rl()) not in (b"\r\n", b"\n"):
                    pass
                break
            data = await asyncio.wait_for(reader.readexactly(size + 2),
                                          max(0.001, timeout_at - now()))
            data = data[:-2]
            h.update(data)
            n += len(data)
            if chunks is not None:
                chunks.append(data)
    elif "content-length" in r.headers:
        left = int(r.headers["content-length"])
        while left > 0:
            data = await asyncio.wait_for(reader.read(min(left, 1 << 18)),
                                          max(0.001, timeout_at - now()))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            h.update(data)
            n += len(data)
            left -= len(data)
            if chunks is not None:
                chunks.append(data)
    else:  # body until close
        while True:
            data = await asyncio.wait_for(reader.read(1 << 18), max(0.001, timeout_at - now()))
            if not data:
                break
            h.update(data)
            n += len(data)
            if chunks is not None:
                chunks.append(data)
        r.headers["connection"] = "close"
    r.length = n
    r.sha = "sha256:" + h.hexdigest()
    r.body = b"".join(chunks) if chunks is not None else None
    return r


def make_ctx(args):
    ctx = ssl.create_default_context(cafile=args.cacert) if args.cacert else ssl._create_unverified_context()
    if not args.cacert:
        ctx.check_hostname = False
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def open_tls(args, ctx, timeout):
    return await asyncio.wait_for(
        asyncio.open_connection(args.host, args.port, ssl=ctx, server_hostname=args.sni,
                                ssl_handshake_timeout=timeout), timeout)


def close_writer(w):
    try:
        w.close()
    except Exception:
        pass


def abort_writer(w):
    try:
        w.transport.abort()
    except Exception:
        pass


# ------------------------------------------------------------------------------------------
# discovery: what the tree serves, and the digests every body must have

async def discover(args, ctx):
    reader, writer = await open_tls(args, ctx, 10)
    deadline = lambda: now() + 30

    async def get(path, accept=None, method="GET"):
        nonlocal reader, writer
        req = f"{method} {path} HTTP/1.1\r\nHost: {args.sni}\r\nUser-Agent: loadtool-discover\r\n"
        if accept:
            req += f"Accept: {accept}\r\n"
        writer.write((req + "\r\n").encode())
        r = await read_response(reader, method, True, deadline())
        if r.headers.get("connection", "").lower() == "close":
            close_writer(writer)
            reader, writer = await open_tls(args, ctx, 10)
        return r

    r = await get("/v2/")
    if r.status != 200:
        raise SystemExit(f"discovery: GET /v2/ answered {r.status}")
    r = await get("/v2/_catalog?n=1000")
    repos = json.loads(r.body)["repositories"]
    manifests, blobs = [], {}
    for repo in repos:
        r = await get(f"/v2/{repo}/tags/list")
        tags = json.loads(r.body).get("tags") or []
        for tag in tags:
            todo = [(tag, None)]
            while todo:
                ref, want = todo.pop()
                m = await get(f"/v2/{repo}/manifests/{ref}", MANIFEST_ACCEPT)
                if m.status != 200:
                    raise SystemExit(f"discovery: {repo}:{ref} answered {m.status}")
                dcd = m.headers.get("docker-content-digest")
                if want and m.sha != want:
                    raise SystemExit(f"discovery: {repo}@{ref} body is {m.sha}")
                if dcd and dcd != m.sha:
                    raise SystemExit(f"discovery: {repo}:{ref} Docker-Content-Digest {dcd} != body {m.sha}")
                manifests.append({"repo": repo, "ref": ref, "digest": m.sha, "len": m.length,
                                  "type": m.headers.get("content-type", "")})
                if ref != m.sha:
                    manifests.append({"repo": repo, "ref": m.sha, "digest": m.sha, "len": m.length,
                                      "type": m.headers.get("content-type", "")})
                doc = json.loads(m.body)
                if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
                    for c in doc.get("manifests", []):
                        todo.append((c["digest"], c["digest"]))
                    continue
                for d in [doc.get("config")] + list(doc.get("layers", [])):
                    if d and d["digest"].startswith("sha256:"):
                        blobs.setdefault(d["digest"], {"repo": repo, "digest": d["digest"],
                                                       "len": d["size"]})
    close_writer(writer)
    return repos, manifests, list(blobs.values())


# ------------------------------------------------------------------------------------------
# idle phase

class Bucket:
    """Token bucket: at most `rate` takes per second (bounds the client's reconnect churn)."""

    def __init__(self, rate):
        self.rate = max(1.0, rate)
        self.tokens = self.rate
        self.t = now()
        self.lock = asyncio.Lock()

    async def take(self):
        async with self.lock:
            while True:
                t = now()
                self.tokens = min(self.rate, self.tokens + (t - self.t) * self.rate)
                self.t = t
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class LoopLag:
    """How late this process's event loop runs timers: a measure of client overload."""

    def __init__(self):
        self.max = 0.0
        self.task = None

    async def run(self):
        while True:
            t = now()
            await asyncio.sleep(0.05)
            self.max = max(self.max, now() - t - 0.05)

    def start(self):
        self.task = asyncio.ensure_future(self.run())

    def reset(self):
        m, self.max = self.max, 0.0
        return m


class IdleState:
    def __init__(self):
        self.held = 0           # connections currently open (by us)
        self.opened = 0         # connect() succeeded (kernel handshake)
        self.tls_ok = 0         # TLS handshakes completed (lighttpd accepted and answered)
        self.tls_pending = 0    # TCP connected, TLS handshake not finished yet (not accepted)
        self.tls_never = 0      # handshakes still unfinished when the hold ended
        self.connect_fail = 0
        self.connect_timeout = 0
        self.server_closed = 0  # the server closed one of our idle connections
        self.reopened = 0
        self.errors = {}
        self.tasks = []
        self.stop = asyncio.Event()
        self.reopen_bucket = None


async def idle_conn(args, ctx, kind, st, first_delay=0.0):
    """One idle connection slot: open, idle until stop; reopen when the server closes it (if
    --reopen). Never sends a complete request (except kind 'ka': one request, then idle)."""
    partial = (f"GET /v2/ HTTP/1.1\r\nHost: {args.sni}\r\nUser-Agent: loadtool-idle\r\n").encode()
    first = True
    while not st.stop.is_set():
        if not first:
            st.reopened += 1
            await asyncio.sleep(0.2)
            await st.reopen_bucket.take()
            if st.stop.is_set():
                break
        first = False
        writer = None
        counted = False
        try:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(args.host, args.port), args.idle_connect_timeout)
            except asyncio.TimeoutError:
                st.connect_timeout += 1
                continue
            except OSError as e:
                st.connect_fail += 1
                st.errors[type(e).__name__] = st.errors.get(type(e).__name__, 0) + 1
                await asyncio.sleep(1)
                continue
            st.opened += 1
            st.held += 1
            counted = True
            if kind in ("tls", "partial", "ka", "trickle"):
                # No timeout on the handshake: a connection the server has not accepted yet
                # waits in its accept queue for as long as we hold it (asyncio would close the
                # socket on a timeout). It counts as held either way.
                st.tls_pending += 1
                hs = asyncio.ensure_future(writer.start_tls(ctx, server_hostname=args.sni))
                stopper = asyncio.ensure_future(st.stop.wait())
                await asyncio.wait({hs, stopper}, return_when=asyncio.FIRST_COMPLETED)
                st.tls_pending -= 1
                if not hs.done():
                    hs.cancel()
                    st.tls_never += 1
                    try:
                        await hs
                    except BaseException:
                        pass
                    break
                stopper.cancel()
                if hs.exception() is not None:
                    e = hs.exception()
                    st.errors[type(e).__name__] = st.errors.get(type(e).__name__, 0) + 1
                    raise ConnectionError(str(e))
                st.tls_ok += 1
                if kind == "partial":
                    writer.write(partial)
                elif kind == "ka":
                    writer.write(f"GET /v2/ HTTP/1.1\r\nHost: {args.sni}\r\n\r\n".encode())
                    await read_response(reader, "GET", False, now() + 30)
            # idle: wait for the stop signal or for the server to close us
            trickle = kind == "trickle" and args.trickle > 0
            if trickle:
                writer.write(partial)
            eof = asyncio.ensure_future(reader.read(1 << 16))
            stopper = asyncio.ensure_future(st.stop.wait())
            while True:
                done, _ = await asyncio.wait({eof, stopper}, timeout=args.trickle if trickle else None,
                                             return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    eof.cancel()
                    break
                if eof in done:
                    stopper.cancel()
                    try:
                        data = eof.result()
                    except Exception:
                        data = b""
                    if data:   # e.g. a 408 before close: keep reading until EOF
                        eof = asyncio.ensure_future(reader.read(1 << 16))
                        stopper = asyncio.ensure_future(st.stop.wait())
                        continue
                    st.server_closed += 1
                    break
                if trickle:
                    writer.write(b"X-T: 1\r\n")
            if not args.reopen:
                break
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError, ProtoError):
            st.server_closed += 1
            if not args.reopen:
                break
        finally:
            if counted:
                st.held -= 1
            if writer is not None:
                abort_writer(writer)


async def probe_once(args, ctx):
    """A new client: TCP connect, TLS handshake, GET /v2/. Returns a dict with timings."""
    t0 = now()
    res = {"ok": False, "status": None, "connect_s": None, "tls_s": None, "total_s": None,
           "error": None}
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port),
                                                args.probe_timeout)
        res["connect_s"] = now() - t0
        left = args.probe_timeout - (now() - t0)
        await asyncio.wait_for(writer.start_tls(ctx, server_hostname=args.sni), max(0.001, left))
        res["tls_s"] = now() - t0
        writer.write(f"GET /v2/ HTTP/1.1\r\nHost: {args.sni}\r\nUser-Agent: loadtool-probe\r\n"
                     f"Connection: close\r\n\r\n".encode())
        r = await read_response(reader, "GET", True, t0 + args.probe_timeout)
        res["status"] = r.status
        res["ok"] = r.status == 200 and r.body.strip() == b"{}"
    except asyncio.TimeoutError:
        res["error"] = "timeout"
    except Exception as e:  # noqa: BLE001 - any failure is a failed probe
        res["error"] = f"{type(e).__name__}: {e}"
    finally:
        if writer is not None:
            abort_writer(writer)
    res["total_s"] = now() - t0
    return res


class ProbeAgent:
    """Probes run in a child process with its own event loop, so the load this process
    generates (thousands of sockets, hundreds of clients) cannot delay them."""

    def __init__(self, args):
        self.args = args
        self.proc = None

    async def start(self):
        a = self.args
        cmd = [sys.executable, os.path.abspath(__file__), "--probe-agent", "--host", a.host,
               "--port", str(a.port), "--sni", a.sni, "--probe-timeout", str(a.probe_timeout)]
        if a.cacert:
            cmd += ["--cacert", a.cacert]
        self.proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE)

    async def probe(self):
        self.proc.stdin.write(b"probe\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            return {"ok": False, "status": None, "total_s": float("inf"), "error": "probe agent died",
                    "connect_s": None, "tls_s": None}
        return json.loads(line)

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def probe_agent_main(args):
    loop = asyncio.new_event_loop()
    ctx = make_ctx(args)
    for line in sys.stdin:
        if line.strip() != "probe":
            continue
        res = loop.run_until_complete(probe_once(args, ctx))
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()
    loop.close()
    return 0


def kinds_for(n, mix):
    """n connection kinds by the --idle-mix weights, as [(kind, count)] in the order given."""
    weights = []
    for part in mix.split(","):
        k, _, w = part.partition(":")
        if k.strip() not in IDLE_KINDS:
            raise SystemExit(f"--idle-mix: unknown kind {k.strip()!r} (one of {', '.join(IDLE_KINDS)})")
        weights.append((k.strip(), float(w or 1)))
    total = sum(w for _, w in weights)
    out, given = [], 0
    for i, (k, w) in enumerate(weights):
        c = n - given if i == len(weights) - 1 else int(round(n * w / total))
        out.append((k, c))
        given += c
    return out


IDLE_KINDS = ("tcp", "tls", "partial", "ka", "trickle")


async def idle_phase(args, ctx, stats, mixed_coro=None):
    st = IdleState()
    st.reopen_bucket = Bucket(args.reopen_rate)
    groups = kinds_for(args.idle, args.idle_mix)
    probes = []
    report = {"target": args.idle, "mix": args.idle_mix}
    sem = asyncio.Semaphore(args.open_concurrency)

    async def start_slot(kind):
        async with sem:
            # wait until this slot's first connection attempt is over (opened or given up)
            t = asyncio.ensure_future(idle_conn(args, ctx, kind, st))
            st.tasks.append(t)
            before = st.opened + st.connect_fail + st.connect_timeout
            t_end = now() + args.idle_connect_timeout + 1
            while st.opened + st.connect_fail + st.connect_timeout == before and now() < t_end \
                    and not t.done():
                await asyncio.sleep(0.005)

    agent = ProbeAgent(args)
    await agent.start()

    async def do_probe(label):
        held, closed = st.held, st.server_closed
        p = await agent.probe()
        # Let this loop see any close that arrived before the probe's answer.
        for _ in range(3):
            await asyncio.sleep(0.02)
        p["label"] = label
        p["held_at_start"] = held
        p["held"] = st.held
        p["closed_meanwhile"] = st.server_closed - closed
        # Counts: the whole set was open when the probe started and stayed open until it had
        # its answer. A server locked out answers only once it has dropped some of the set.
        p["counts"] = p["ok"] and held >= args.idle and st.held >= args.idle and \
            p["closed_meanwhile"] == 0
        p["tls_ok"] = st.tls_ok
        p["server_established"] = stats.established() if stats.roots else None
        q = stats.listen_queue() if stats.roots else None
        p["accept_queue"] = q[0] if q else None
        p["rss_kib"] = stats.sample("idle")
        probes.append(p)
        log(f"probe[{label}] held={held}->{st.held} closed meanwhile={p['closed_meanwhile']} "
            f"server_estab={p['server_established']} acceptq={p['accept_queue']} "
            f"-> {'ok' if p['ok'] else 'FAIL'} {p['status']} {p['total_s']:.3f}s"
            f"{' counts' if p['counts'] else ''}{' ' + p['error'] if p['error'] else ''} "
            f"rss={p['rss_kib']}KiB")
        return p

    t_start = now()
    for kind, count in groups:
        await asyncio.gather(*(start_slot(kind) for _ in range(count)))
        # This kind's TLS handshakes finish before the next kind starts (bounded: a server that
        # has stopped accepting never finishes them).
        t_end = now() + args.idle_connect_timeout * 6
        while st.tls_pending and now() < t_end:
            await asyncio.sleep(0.05)
    await asyncio.sleep(args.settle)
    report["open_s"] = round(now() - t_start, 2)
    log(f"idle set opened: held={st.held} opened={st.opened} tls_ok={st.tls_ok} "
        f"tls_pending={st.tls_pending} connect_timeout={st.connect_timeout} "
        f"connect_fail={st.connect_fail} in {report['open_s']}s")

    mixed_result = None
    hold_end = now() + args.hold
    mixed_task = asyncio.ensure_future(mixed_coro) if mixed_coro is not None else None
    n = 0
    while now() < hold_end or (mixed_task and not mixed_task.done()):
        n += 1
        await do_probe(f"hold {n}")
        await asyncio.sleep(max(0.0, min(args.probe_interval, hold_end - now())))
        if now() >= hold_end and (mixed_task is None or mixed_task.done()):
            break
    if mixed_task:
        mixed_result = await mixed_task
    report["held_at_end"] = st.held
    st.stop.set()
    await asyncio.gather(*st.tasks, return_exceptions=True)
    await agent.stop()

    counted = [p for p in probes if p["counts"]]
    failed = [p for p in probes if not p["ok"]]
    report.update({
        "opened": st.opened, "tls_ok": st.tls_ok, "tls_pending_at_end": st.tls_pending,
        "tls_never_done": st.tls_never, "connect_timeout": st.connect_timeout,
        "connect_fail": st.connect_fail, "server_closed_idle": st.server_closed,
        "reopened": st.reopened, "errors": st.errors, "probes": probes,
        "probes_made": len(probes), "probes_counted": len(counted), "probes_failed": len(failed),
        "counted_probe_latency": lat_summary([p["total_s"] for p in counted]),
        "first_counted_probe_s": round(counted[0]["total_s"], 4) if counted else None,
        "probe_latency": lat_summary([p["total_s"] for p in probes if p["ok"]]),
        "peak_rss_kib": stats.peak_rss.get("idle"),
    })
    report["client_loop_lag_max_s"] = round(LAG.reset(), 3)
    report["pass"] = bool(counted) and not failed
    # The whole set was never held during a probe (this process could not keep it open, e.g.
    # starved of CPU), and no probe failed: no verdict either way.
    report["inconclusive"] = not counted and not failed
    return report, mixed_result


# ------------------------------------------------------------------------------------------
# mixed phase

class Counters:
    def __init__(self):
        self.by_kind = {}
        self.status = {}
        self.fail = {"5xx": 0, "reset": 0, "wrong_bytes": 0, "unexpected_status": 0,
                     "unfinished": 0, "protocol": 0, "connect": 0}
        self.ka_races = 0        # reused connection closed before any byte: retried
        self.requests = 0
        self.bytes = 0
        self.connections = 0
        self.examples = []
        self.lat = {}

    def failure(self, what, detail):
        self.fail[what] += 1
        if len(self.examples) < 20:
            self.examples.append(f"{what}: {detail}")


def build_plan(args, manifests, blobs):
    small = [b for b in blobs if b["len"] <= args.small_blob_max]
    large = [b for b in blobs if args.small_blob_max < b["len"] <= args.large_blob_max]
    if not large:
        large = sorted([b for b in blobs if b["len"] <= args.large_blob_max],
                       key=lambda b: -b["len"])[:1]
    if not small:
        small = sorted(blobs, key=lambda b: b["len"])[:1]
    repo0 = manifests[0]["repo"]
    fake = "sha256:" + "0" * 64
    plan = []

    def add(weight, fn):
        plan.append((weight, fn))

    add(25, lambda: dict(kind="manifest", method="GET", **pick_manifest(manifests)))
    add(5, lambda: dict(kind="manifest_head", method="HEAD", **pick_manifest(manifests)))
    add(25, lambda: dict(kind="blob_small", method="GET", **pick_blob(small)))
    if large:
        add(args.large_weight, lambda: dict(kind="blob_large", method="GET", **pick_blob(large)))
    add(5, lambda: dict(kind="blob_range", method="GET", **pick_range(small + large)))
    add(8, lambda: dict(kind="404_manifest", method="GET",
                        path=f"/v2/{repo0}/manifests/no-such-tag-{random.randrange(1 << 30)}",
                        expect=(404,)))
    add(6, lambda: dict(kind="404_blob", method="GET", path=f"/v2/{repo0}/blobs/{fake}",
                        expect=(404,)))
    add(4, lambda: dict(kind="404_repo", method="GET",
                        path=f"/v2/no/such/repo{random.randrange(1000)}/manifests/latest",
                        expect=(404,)))
    add(4, lambda: dict(kind="bad_digest", method="GET", path=f"/v2/{repo0}/blobs/sha256:xyz",
                        expect=(400, 404)))
    add(3, lambda: dict(kind="405_put", method="PUT", path=f"/v2/{repo0}/manifests/x",
                        expect=(405, 400, 411, 413), extra="Content-Length: 0\r\n"))
    add(4, lambda: dict(kind="400_request", raw=b"GET /v2/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                        expect=(400,), method="GET"))
    add(4, lambda: dict(kind="garbage", raw=random_garbage(), expect=(400, 414, 431, 505, 501, None),
                        method="GET"))
    add(2, lambda: dict(kind="bad_version", raw=b"GET /v2/ HTTP/9.9\r\nHost: a\r\n\r\n",
                        expect=(505, 400, 200), method="GET"))  # a proxy may normalise it
    add(2, lambda: dict(kind="outside_v2", method="GET", path="/etc/passwd",
                        expect=(404, 403, 400)))
    total = sum(w for w, _ in plan)
    cum, acc = [], 0
    for w, fn in plan:
        acc += w
        cum.append((acc / total, fn))
    return cum, {"small_blobs": len(small), "large_blobs": [b["len"] for b in large],
                 "manifests": len(manifests)}


def pick_manifest(manifests):
    m = random.choice(manifests)
    return {"path": f"/v2/{m['repo']}/manifests/{m['ref']}", "digest": m["digest"],
            "len": m["len"], "expect": (200,), "accept": MANIFEST_ACCEPT}


def pick_blob(blobs):
    b = random.choice(blobs)
    return {"path": f"/v2/{b['repo']}/blobs/{b['digest']}", "digest": b["digest"], "len": b["len"],
            "expect": (200,)}


def pick_range(blobs):
    b = random.choice(blobs)
    n = b["len"]
    start = random.randrange(max(1, n))
    end = min(n - 1, start + random.randrange(1, 65536))
    return {"path": f"/v2/{b['repo']}/blobs/{b['digest']}", "range": (start, end),
            "blob": b, "expect": (206,)}


def random_garbage():
    return random.choice([
        b"\x16\x03\x01garbage\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET " + b"/a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 70000 + b"\r\n\r\n",
        bytes(random.randrange(1, 256) for _ in range(200)) + b"\r\n\r\n",
    ])


async def mixed_client(cid, args, ctx, plan, deadline, C, stats):
    reader = writer = None
    reused = False
    rnd_fresh = random.Random(cid)
    while now() < deadline:
        r = random.random()
        spec = next(fn for c, fn in plan if r <= c)()
        raw = spec.get("raw")
        fresh = raw is not None or rnd_fresh.random() < args.fresh_ratio
        if fresh and writer is not None:
            close_writer(writer)
            writer = None
        attempts = 0
        while True:
            attempts += 1
            if writer is None:
                try:
                    reader, writer = await open_tls(args, ctx, args.request_timeout)
                    C.connections += 1
                    reused = False
                except asyncio.TimeoutError:
                    C.failure("unfinished", f"connect+TLS timed out ({spec['kind']})")
                    writer = None
                    break
                except (OSError, ssl.SSLError) as e:
                    if isinstance(e, ConnectionResetError):
                        C.failure("reset", f"connect: {e}")
                    else:
                        C.failure("connect", f"{type(e).__name__}: {e}")
                    writer = None
                    await asyncio.sleep(0.1)
                    break
            t0 = now()
            prog = {}
            try:
                if raw is not None:
                    writer.write(raw)
                else:
                    req = (f"{spec['method']} {spec['path']} HTTP/1.1\r\nHost: {args.sni}\r\n"
                           f"User-Agent: loadtool/{cid}\r\n")
                    if spec.get("accept"):
                        req += f"Accept: {spec['accept']}\r\n"
                    if spec.get("range"):
                        req += "Range: bytes=%d-%d\r\n" % spec["range"]
                    if spec.get("extra"):
                        req += spec["extra"]
                    if fresh:
                        req += "Connection: close\r\n"
                    writer.write((req + "\r\n").encode())
                await writer.drain()
                keep = spec.get("range") is not None or spec["kind"] in ("404_manifest",)
                prog = {}
                resp = await read_response(reader, spec["method"], keep, t0 + args.request_timeout,
                                           prog)
            except asyncio.TimeoutError:
                C.failure("unfinished", f"{spec['kind']} {spec.get('path', '')[:80]} no answer in "
                                        f"{args.request_timeout}s")
                abort_writer(writer)
                writer = None
                break
            except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError,
                    ssl.SSLError, OSError, ProtoError) as e:
                abort_writer(writer)
                writer = None
                if raw is not None and spec["kind"] == "garbage" and None in spec["expect"]:
                    # garbage may legitimately get a close instead of an answer (e.g. a TLS-ish
                    # record inside TLS): record, not a failure unless it is a RST mid-response
                    C.status["close"] = C.status.get("close", 0) + 1
                    C.by_kind.setdefault("garbage", 0)
                    C.by_kind["garbage"] += 1
                    break
                if reused and not prog.get("started") and attempts == 1 and isinstance(
                        e, (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError)):
                    # the server closed a keep-alive connection as we reused it: retry once
                    C.ka_races += 1
                    continue
                if isinstance(e, ConnectionResetError):
                    C.failure("reset", f"{spec['kind']} {spec.get('path', '')[:80]}: {e}")
                elif isinstance(e, ProtoError):
                    C.failure("protocol", f"{spec['kind']}: {e}")
                else:
                    C.failure("reset" if isinstance(e, (asyncio.IncompleteReadError, BrokenPipeError))
                              else "protocol", f"{spec['kind']} {spec.get('path', '')[:80]}: "
                                               f"{type(e).__name__} {e}")
                break
            # check the response
            dt = now() - t0
            C.requests += 1
            C.bytes += resp.length
            C.by_kind[spec["kind"]] = C.by_kind.get(spec["kind"], 0) + 1
            C.status[resp.status] = C.status.get(resp.status, 0) + 1
            C.lat.setdefault(spec["kind"], []).append(dt)
            if resp.status >= 500 and resp.status not in spec["expect"]:
                C.failure("5xx", f"{spec['kind']} {spec.get('path', '')[:80]} -> {resp.status}")
            elif resp.status not in spec["expect"]:
                C.failure("unexpected_status", f"{spec['kind']} {spec.get('path', '')[:80]} -> "
                                               f"{resp.status} (want {spec['expect']})")
            elif spec["kind"] in ("manifest", "blob_small", "blob_large"):
                if resp.sha != spec["digest"] or resp.length != spec["len"]:
                    C.failure("wrong_bytes", f"{spec['path'][:90]} got {resp.length} bytes {resp.sha}")
                dcd = resp.headers.get("docker-content-digest")
                if dcd and dcd != spec["digest"]:
                    C.failure("wrong_bytes", f"{spec['path'][:90]} Docker-Content-Digest {dcd}")
            elif spec["kind"] == "manifest_head":
                if int(resp.headers.get("content-length", -1)) != spec["len"]:
                    C.failure("wrong_bytes", f"HEAD {spec['path'][:90]} Content-Length "
                                             f"{resp.headers.get('content-length')}")
            elif spec["kind"] == "blob_range":
                a, b = spec["range"]
                want_len = b - a + 1
                cr = resp.headers.get("content-range", "")
                ok = resp.length == want_len and cr.startswith(f"bytes {a}-{b}/")
                exp = RANGE_DATA.get(spec["blob"]["digest"])
                if ok and exp is not None:
                    ok = resp.body == exp[a:b + 1]
                if not ok:
                    C.failure("wrong_bytes", f"range {a}-{b} of {spec['blob']['digest'][:20]}: "
                                             f"{resp.length} bytes, Content-Range {cr!r}")
            closing = resp.headers.get("connection", "").lower() == "close" or fresh or \
                resp.status >= 400 and raw is not None
            if closing:
                close_writer(writer)
                writer = None
            else:
                reused = True
            break
    if writer is not None:
        close_writer(writer)


RANGE_DATA = {}


async def fetch_range_data(args, ctx, blobs, limit):
    """Whole bodies of the blobs used for Range checks (small ones only, bounded)."""
    reader, writer = await open_tls(args, ctx, 10)
    for b in blobs:
        if b["len"] > limit:
            continue
        writer.write(f"GET /v2/{b['repo']}/blobs/{b['digest']} HTTP/1.1\r\nHost: {args.sni}\r\n\r\n"
                     .encode())
        r = await read_response(reader, "GET", True, now() + 60)
        if r.status == 200 and r.sha == b["digest"]:
            RANGE_DATA[b["digest"]] = r.body
        if r.headers.get("connection", "").lower() == "close":
            close_writer(writer)
            reader, writer = await open_tls(args, ctx, 10)
    close_writer(writer)


async def mixed_phase(args, ctx, manifests, blobs, stats):
    plan, info = build_plan(args, manifests, blobs)
    C = Counters()
    log(f"mixed: {args.clients} clients for {args.duration}s; {info}")
    t0 = now()
    deadline = t0 + args.duration
    sampler_stop = asyncio.Event()

    async def sampler():
        while not sampler_stop.is_set():
            stats.sample("mixed")
            try:
                await asyncio.wait_for(sampler_stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    st = asyncio.ensure_future(sampler())
    tasks = [asyncio.ensure_future(mixed_client(i, args, ctx, plan, deadline, C, stats))
             for i in range(args.clients)]
    # bounded: a client stops starting requests at the deadline; a request in flight has
    # --request-timeout to finish (then it is counted as unfinished).
    done, pending = await asyncio.wait(tasks, timeout=args.duration + args.request_timeout + 10)
    for t in pending:
        t.cancel()
        C.failure("unfinished", "client task still running after the hard deadline")
    for t in done:
        if t.exception():
            C.failure("protocol", f"client crashed: {t.exception()!r}")
    sampler_stop.set()
    await st
    elapsed = now() - t0
    rep = {
        "clients": args.clients, "duration_s": args.duration, "elapsed_s": round(elapsed, 2),
        "requests": C.requests, "connections": C.connections, "bytes": C.bytes,
        "req_per_s": round(C.requests / elapsed, 1), "MB_per_s": round(C.bytes / elapsed / 1e6, 1),
        "by_kind": C.by_kind, "status": {str(k): v for k, v in sorted(C.status.items(), key=str)},
        "failures": C.fail, "keepalive_races_retried": C.ka_races, "examples": C.examples,
        "latency": {k: lat_summary(v) for k, v in C.lat.items()},
        "peak_rss_kib": stats.peak_rss.get("mixed"), "plan": info,
    }
    lag = LAG.reset()
    rep["client_loop_lag_max_s"] = round(lag, 3)
    rep["pass"] = sum(C.fail.values()) == 0 and C.requests > 0
    only_unfinished = C.fail["unfinished"] > 0 and sum(C.fail.values()) == C.fail["unfinished"]
    # Timeouts while this process itself was too busy to run its timers say nothing about the
    # server: report them, give no verdict.
    rep["inconclusive"] = only_unfinished and lag > args.request_timeout / 4 and C.requests > 0
    return rep


# ------------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sni", default=None, help="TLS server name and Host header (default --host)")
    ap.add_argument("--cacert", help="CA to verify the server (default: no verification)")
    ap.add_argument("--phases", default="idle,mixed", help="idle, mixed, or idle,mixed (default)")
    ap.add_argument("--with-idle", action="store_true", help="run the mixed load while the idle set is held")
    g = ap.add_argument_group("idle phase")
    g.add_argument("--idle", type=int, default=3000, help="idle connections to hold (max 60000)")
    g.add_argument("--idle-mix", default="trickle:1,tcp:1",
                   help="kinds and weights, opened in this order: tcp (connect only), tls "
                        "(handshake, then nothing), partial (handshake + incomplete request), ka "
                        "(one request then idle keep-alive), trickle (partial, one header line "
                        "every --trickle s)")
    g.add_argument("--hold", type=float, default=10, help="seconds to hold the full set (max 600)")
    g.add_argument("--settle", type=float, default=0.3, help="pause after opening, before probing")
    g.add_argument("--open-concurrency", type=int, default=200, help="connection attempts in flight")
    g.add_argument("--idle-connect-timeout", type=float, default=5)
    g.add_argument("--reopen", action=argparse.BooleanOptionalAction, default=True,
                   help="reopen an idle connection the server closed (keeps the count up)")
    g.add_argument("--reopen-rate", type=float, default=300,
                   help="at most this many reopens per second (bounds client CPU)")
    g.add_argument("--trickle", type=float, default=5, help="seconds between a trickle's lines")
    g.add_argument("--probe-interval", type=float, default=1.0)
    g.add_argument("--probe-timeout", type=float, default=60.0,
                   help="a probe gives up after this (a hang guard, not a speed verdict)")
    g = ap.add_argument_group("mixed phase")
    g.add_argument("--clients", type=int, default=500)
    g.add_argument("--duration", type=float, default=10, help="seconds (max 300)")
    g.add_argument("--fresh-ratio", type=float, default=0.1,
                   help="share of requests sent on a new connection (Connection: close)")
    g.add_argument("--small-blob-max", type=int, default=256 * 1024)
    g.add_argument("--large-blob-max", type=int, default=8 * 1024 * 1024,
                   help="largest blob the load fetches (bytes)")
    g.add_argument("--large-weight", type=float, default=3)
    g.add_argument("--request-timeout", type=float, default=120,
                   help="a request not finished after this is 'unfinished' (hang detector)")
    ap.add_argument("--server-pid", type=int, action="append",
                    help="local server process (e.g. regpress serve); RSS of its lighttpd "
                         "descendants and the listen queue are reported")
    ap.add_argument("--rss-name", default="lighttpd",
                    help="sum the RSS of --server-pid processes (and descendants) whose name "
                         "contains this (default lighttpd; '' for all)")
    ap.add_argument("--json", help="write the full report as JSON here")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--probe-agent", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.sni = a.sni or a.host
    if not (0 < a.idle <= 60000) or not (0 < a.hold <= 600) or not (0 < a.duration <= 300):
        ap.error("--idle 1..60000, --hold 0..600, --duration 0..300")
    a.phases = set(p.strip() for p in a.phases.split(","))
    if not a.phases <= {"idle", "mixed"}:
        ap.error("--phases: idle, mixed")
    return a


LAG = LoopLag()


async def amain(args):
    random.seed(args.seed)
    LAG.start()
    ctx = make_ctx(args)
    stats = ServerStats(args.server_pid, args.port)
    stats.name_filter = args.rss_name
    report = {"target": f"{args.host}:{args.port}", "nofile": raise_nofile()}
    try:
        repos, manifests, blobs = await discover(args, ctx)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        log(f"discovery failed: {type(e).__name__}: {e}")
        return 2, report
    report["discovered"] = {"repos": len(repos), "manifests": len(manifests), "blobs": len(blobs),
                            "largest_blob": max((b["len"] for b in blobs), default=0)}
    if "mixed" in args.phases:
        # the bodies Range answers are checked against, fetched before any load starts
        await fetch_range_data(args, ctx, blobs, args.large_blob_max)
    log(f"discovered {report['discovered']}; server RSS {stats.sample('start')} KiB")
    report["rss_start_kib"] = stats.peak_rss.get("start")
    ok = True
    if "idle" in args.phases:
        mixed_coro = mixed_phase(args, ctx, manifests, blobs, stats) \
            if args.with_idle and "mixed" in args.phases else None
        idle_rep, mixed_rep = await idle_phase(args, ctx, stats, mixed_coro)
        report["idle"] = idle_rep
        ok &= idle_rep["pass"]
        if mixed_rep is not None:
            report["mixed"] = mixed_rep
            ok &= mixed_rep["pass"]
    if "mixed" in args.phases and "mixed" not in report:
        await asyncio.sleep(1)
        report["mixed"] = await mixed_phase(args, ctx, manifests, blobs, stats)
        ok &= report["mixed"]["pass"]
    report["pass"] = bool(ok)
    inconclusive = any(report.get(k, {}).get("inconclusive") for k in ("idle", "mixed"))
    failed = any(not report[k]["pass"] and not report[k].get("inconclusive")
                 for k in ("idle", "mixed") if k in report)
    report["verdict"] = "FAIL" if failed else "INCONCLUSIVE" if inconclusive else "PASS"
    return {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}[report["verdict"]], report


def verdict(part):
    return "PASS" if part["pass"] else "INCONCLUSIVE" if part["inconclusive"] else "FAIL"


def print_summary(rep):
    out = sys.stdout
    if "idle" in rep:
        i = rep["idle"]
        print(f"IDLE  {verdict(i)}: target {i['target']} ({i['mix']}), opened {i['opened']}, TLS "
              f"done {i['tls_ok']}, TLS never done {i['tls_never_done']}, connect timeouts "
              f"{i['connect_timeout']}, server closed {i['server_closed_idle']} (reopened "
              f"{i['reopened']}), opening took {i['open_s']}s", file=out)
        print(f"      probes {i['probes_made']}: {i['probes_counted']} answered with all "
              f"{i['target']} held, {i['probes_failed']} failed; first counted probe "
              f"{i['first_counted_probe_s']}s, counted latency {i['counted_probe_latency']}; "
              f"peak server RSS {i['peak_rss_kib']} KiB; client loop lag max "
              f"{i['client_loop_lag_max_s']}s", file=out)
    if "mixed" in rep:
        m = rep["mixed"]
        print(f"MIXED {verdict(m)}: {m['clients']} clients, {m['requests']} "
              f"requests on {m['connections']} connections in {m['elapsed_s']}s ({m['req_per_s']} "
              f"req/s, {m['MB_per_s']} MB/s), statuses {m['status']}", file=out)
        print(f"      failures {m['failures']}, keep-alive races retried "
              f"{m['keepalive_races_retried']}, peak server RSS {m['peak_rss_kib']} KiB, client loop lag "
              f"max {m['client_loop_lag_max_s']}s", file=out)
        for k, v in sorted(m["latency"].items()):
            print(f"      {k:14s} {v}", file=out)
        for e in m["examples"]:
            print(f"      ! {e}", file=out)
    print("RESULT " + rep.get("verdict", "FAIL"), file=out)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.probe_agent:
        return probe_agent_main(args)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        rc, rep = loop.run_until_complete(amain(args))
    except SystemExit as e:
        log(str(e))
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:
            pass
        loop.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=1, default=str)
    try:
        print_summary(rep)
    except BrokenPipeError:
        pass
    return rc


if __name__ == "__main__":
    sys.exit(main())
