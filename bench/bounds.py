"""The gateway's memory bounds, measured: a pre-authentication flood and inspection of large statements.

Used by bench.py against a gateway with the default limits (limits.max_unauthenticated_connections
128, of them 32 per source address, the first typed frame before login at most 16 KiB, statement text
inspected up to 1 MiB).
Figures only: what the gateway did is recorded, nothing here passes or fails.
"""
import os
import selectors
import socket
import struct
import subprocess
import threading
import time

MIB = 1 << 20
# What the flood's messages claim to be: far over every limit the gateway has before login.
CLAIMED_LENGTH = 200 * MIB
JUNK = memoryview(bytes(64 * 1024))


def rss_kib(pid):
    """The process's resident set size (VmRSS), KiB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakRSS:
    """Samples a process's resident memory every `interval` seconds on a thread; keeps the highest."""

    def __init__(self, pid, interval=0.005):
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
                self.samples += 1
            except OSError:  # the process ended: nothing more to sample
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = rss_kib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        try:
            self.peak = max(self.peak, rss_kib(self.pid))
        except OSError:
            pass


def startup_packet(user, database, application):
    params = f"user\0{user}\0database\0{database}\0application_name\0{application}\0\0".encode()
    return struct.pack("!ii", 8 + len(params), 196608) + params


def frames(buffer):
    """Complete backend frames at the front of `buffer`: ([(type, body)], rest)."""
    found = []
    while len(buffer) >= 5:
        length = struct.unpack("!i", buffer[1:5])[0]
        if len(buffer) < 1 + length:
            break
        found.append((buffer[0:1], buffer[5:1 + length]))
        buffer = buffer[1 + length:]
    return found, buffer


def error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1].decode()] = part[1:].decode(errors="replace")
    return fields


class Peer:
    """One flooding connection and what became of it."""

    def __init__(self, sock, first, junk):
        self.sock, self.pending, self.junk = sock, memoryview(first), junk
        self.sent = 0
        self.inbox = b""
        self.asked_password = False  # the gateway answered the startup with an AuthenticationRequest
        self.sqlstate = None  # the ErrorResponse's code, when the gateway sent one
        self.closed = False  # the gateway closed (or reset) the connection

    @property
    def writing(self):
        return len(self.pending) > 0 or self.junk > 0


# What each flooding connection sends. "junk" is how many bytes it goes on sending after `first`, up to
# the flood's per-connection budget, whatever the gateway does.
def flood_variants(token_user, database):
    start = startup_packet(token_user, database, "bench-flood")
    wrong_password = b"wrong-token-for-bench\0"
    return [
        ("connect, send nothing", lambda: (b"", False)),
        ("startup, then silence", lambda: (start, False)),
        ("startup, then a 200 MiB password message", lambda: (start + b"p" + struct.pack("!i", CLAIMED_LENGTH), True)),
        ("startup, wrong password, then a 200 MiB query",
         lambda: (start + b"p" + struct.pack("!i", 4 + len(wrong_password)) + wrong_password
                  + b"Q" + struct.pack("!i", CLAIMED_LENGTH), True)),
    ]


class RealSession(threading.Thread):
    """A real client (psql, signing in with a token) running one statement while the flood goes on."""

    def __init__(self, psql, port, user, token, database):
        super().__init__(daemon=True)
        self.cmd = [psql, "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", database,
                    "-c", "select 1"]
        self.env = dict(os.environ, PGPASSWORD=token, PGSSLMODE="disable", PGCONNECT_TIMEOUT="10")
        self.result = None

    def run(self):
        began = time.monotonic()
        try:
            out = subprocess.run(self.cmd, env=self.env, capture_output=True, text=True, timeout=30)
            worked = out.returncode == 0 and out.stdout.strip() == "1"
            detail = "" if worked else (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        except subprocess.TimeoutExpired:
            worked, detail = False, "timed out after 30 s"
        self.result = {"worked": worked, "ms": round((time.monotonic() - began) * 1000, 1)}
        if detail:
            self.result["error"] = detail


def flood(pid, port, first_and_junk, connections, junk_bytes, hold_seconds, real_session, source="127.0.0.2"):
    """Opens `connections` connections from `source` (another loopback address than the real session's,
    127.0.0.1), 20 at a time, interleaved with sending, each sending its first
    bytes and then up to `junk_bytes` more; holds them `hold_seconds` after the last one opened; samples the
    gateway's memory throughout. A real session runs when half are open (no more open until it is done) and
    again once all are."""
    selector = selectors.DefaultSelector()
    peers, refused_connects = [], 0
    checks = {}
    deadline = None
    before = rss_kib(pid)
    began = time.monotonic()

    def finish(peer):
        peer.closed = True
        selector.unregister(peer.sock)
        peer.sock.close()

    with PeakRSS(pid) as peak:
        while True:
            # Open the next few connections, unless the real session at half is still under way.
            opened = len(peers) + refused_connects
            pausing = "half_open" in checks and checks["half_open"].is_alive()
            for _ in range(0 if pausing else min(20, connections - opened)):
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
                except OSError:
                    refused_connects += 1
                    continue
                sock.setblocking(False)
                first, junk = first_and_junk()
                peer = Peer(sock, first, junk_bytes if junk else 0)
                peers.append(peer)
                selector.register(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.writing else 0), peer)
            opened = len(peers) + refused_connects
            if opened >= connections // 2 and "half_open" not in checks:
                checks["half_open"] = real_session()
                checks["half_open"].start()
            if opened >= connections and deadline is None:
                checks["all_open"] = real_session()
                checks["all_open"].start()
                deadline = time.monotonic() + hold_seconds
            if deadline is not None and (time.monotonic() >= deadline or not selector.get_map()):
                break
            for key, events in selector.select(timeout=0.01):
                peer = key.data
                if events & selectors.EVENT_READ:
                    try:
                        data = peer.sock.recv(65536)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        finish(peer)
                        continue
                    if data == b"":
                        finish(peer)
                        continue
                    if data:
                        found, peer.inbox = frames(peer.inbox + data)
                        for kind, body in found:
                            if kind == b"R":
                                peer.asked_password = True
                            elif kind == b"E":
                                peer.sqlstate = error_fields(body).get("C", "?")
                if events & selectors.EVENT_WRITE and not peer.closed:
                    if not peer.pending and peer.junk:
                        peer.pending = JUNK[:min(len(JUNK), peer.junk)]
                        peer.junk -= len(peer.pending)
                    try:
                        n = peer.sock.send(peer.pending)
                        peer.sent += n
                        peer.pending = peer.pending[n:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        finish(peer)
                        continue
                    if not peer.writing:
                        selector.modify(peer.sock, selectors.EVENT_READ, peer)
        flood_seconds = time.monotonic() - began
        held = [p for p in peers if not p.closed and not p.sqlstate]
        for p in peers:
            if not p.closed:
                selector.unregister(p.sock)
                p.sock.close()
        for check in checks.values():
            check.join(timeout=35)
    time.sleep(1)
    after = rss_kib(pid)
    sqlstates = {}
    for p in peers:
        if p.sqlstate:
            sqlstates[p.sqlstate] = sqlstates.get(p.sqlstate, 0) + 1
    return {
        "connections": connections,
        "connect_failed": refused_connects,
        "asked_for_password": sum(1 for p in peers if p.asked_password),
        "error_response": sum(1 for p in peers if p.sqlstate),
        "error_sqlstates": sqlstates,
        "closed_without_error": sum(1 for p in peers if p.closed and not p.sqlstate),
        "held_to_the_end": len(held),
        "bytes_sent": sum(p.sent for p in peers),
        "seconds": round(flood_seconds, 2),
        "rss_before_kib": before,
        "rss_peak_kib": peak.peak,
        "rss_after_kib": after,
        "rss_samples": peak.samples,
        "real_session_half_open": checks["half_open"].result if "half_open" in checks else None,
        "real_session_all_open": checks["all_open"].result if "all_open" in checks else None,
    }


def statement(shape, size):
    """A statement of exactly `size` bytes: an AND chain (`SELECT 1 WHERE 1=1 AND 1=1 …`) or an IN list."""
    if shape == "AND chain":
        head, term = "SELECT 1 WHERE 1=1", " AND 1=1"
        text = head + term * ((size - len(head)) // len(term))
    else:
        parts, length, n = ["SELECT 1 WHERE 1 IN (0"], 22, 1
        while length + len(str(n)) + 2 <= size:
            parts.append(f",{n}")
            length += len(str(n)) + 1
            n += 1
        text = "".join(parts) + ")"
    return text + " " * (size - len(text))


def simple_query(sock, sql):
    """Sends one Query; waits for ReadyForQuery. Returns (seconds, error message or None)."""
    payload = sql.encode() + b"\0"
    began = time.monotonic()
    sock.sendall(b"Q" + struct.pack("!i", 4 + len(payload)) + payload)
    buffer, error = b"", None
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return time.monotonic() - began, error or "the gateway closed the session"
        found, buffer = frames(buffer + chunk)
        for kind, body in found:
            if kind == b"E" and error is None:
                fields = error_fields(body)
                error = f"{fields.get('C', '?')}: {fields.get('M', '')}"
            elif kind == b"Z":
                return time.monotonic() - began, error


def direct_ms(psql, direct, sql, work):
    """The same statement straight to PostgreSQL (psql's \\timing): what the database itself takes."""
    path = os.path.join(work, "statement.sql")
    with open(path, "w") as f:
        f.write("\\timing on\n" + sql + ";\n")
    out = subprocess.run([psql, "-X", "-q", "-h", "127.0.0.1", "-p", str(direct["port"]), "-U", direct["user"],
                          "-d", direct["database"], "-f", path], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PGPASSWORD=direct["password"], PGSSLMODE="disable"))
    for line in out.stdout.splitlines():
        if line.startswith("Time: "):
            return float(line.split()[1])
    return None


class Bystanders:
    """Other sessions running `select 1` over and over while a large statement is judged: the longest
    round trip any of them saw (inspection runs on the event loop of the session that sent the text)."""

    def __init__(self, open_session, count):
        self.socks = [open_session() for _ in range(count)]
        self.worst = 0.0
        self.statements = 0
        self._stop = threading.Event()
        self._threads = []

    def _run(self, sock):
        while not self._stop.is_set():
            seconds, _ = simple_query(sock, "select 1")
            self.worst = max(self.worst, seconds)
            self.statements += 1

    def __enter__(self):
        self.worst, self.statements = 0.0, 0
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in self.socks]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def close(self):
        for s in self.socks:
            s.close()


def inspection(pid, open_session, psql, direct, work, sizes, shapes=("AND chain", "IN list"), at_once=4,
               bystanders=4):
    """Statements of growing size through one session with the simple protocol: the gateway's peak memory
    while each is judged and relayed, the time each took, and the longest `select 1` of other sessions
    meanwhile; then the largest accepted AND chain from `at_once` sessions at the same moment."""
    rows = []
    sessions = [open_session() for _ in range(at_once)]
    others = Bystanders(open_session, bystanders)
    try:
        for shape in shapes:
            for size in sizes:
                sql = statement(shape, size)
                before = rss_kib(pid)
                with PeakRSS(pid) as peak, others:
                    seconds, error = simple_query(sessions[0], sql)
                # Over the limit the database's own time is not what is measured (and is long): skipped.
                direct_time = direct_ms(psql, direct, sql, work) if size <= (1 << 20) else None
                rows.append({"shape": shape, "bytes": size, "sessions": 1, "gateway_ms": round(seconds * 1000, 1),
                             "direct_ms": direct_time, "rss_before_kib": before, "rss_peak_kib": peak.peak,
                             "rss_after_kib": rss_kib(pid), "rss_samples": peak.samples,
                             "bystander_worst_ms": round(others.worst * 1000, 1), "outcome": error or "ran"})
        sql = statement("AND chain", 1 << 20)
        outcomes = [None] * at_once

        def send(i):
            outcomes[i] = simple_query(sessions[i], sql)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(at_once)]
        before = rss_kib(pid)
        began = time.monotonic()
        with PeakRSS(pid) as peak, others:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        errors = sorted({error for _, error in outcomes if error})
        rows.append({"shape": "AND chain", "bytes": 1 << 20, "sessions": at_once,
                     "gateway_ms": round((time.monotonic() - began) * 1000, 1), "direct_ms": None,
                     "rss_before_kib": before, "rss_peak_kib": peak.peak, "rss_after_kib": rss_kib(pid),
                     "rss_samples": peak.samples, "bystander_worst_ms": round(others.worst * 1000, 1),
                     "outcome": "; ".join(errors) if errors else "ran"})
    finally:
        for s in sessions:
            s.close()
        others.close()
    return rows
