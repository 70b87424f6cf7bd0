#!/usr/bin/env python3
"""Gatehouse against PostgreSQL direct and PgBouncer, in one run, on this machine.

Started by bench/run, which builds the release binaries first. Prints a table and saves it as JSON
and Markdown under bench/results/. Figures only: nothing here passes or fails.
"""
import datetime
import json
import os
import platform
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

import bounds
from bounds import rss_kib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
IDLE_SESSIONS = int(os.environ.get("BENCH_IDLE_SESSIONS", "1000"))
# For tuning: only workloads (and memory-bound sections) whose label contains this text, only these targets,
# and a perf profile of the gateway (perf record -g) written to bench/results/perf-*.data while it runs.
ONLY = os.environ.get("BENCH_ONLY", "")
TARGETS = [t for t in os.environ.get("BENCH_TARGETS", "direct,pgbouncer,gatehouse").split(",") if t]
PERF = os.environ.get("BENCH_PERF", "") == "1"
# More gateway configuration (YAML), e.g. BENCH_GATEHOUSE_EXTRA="audit: {commit_interval: 50ms}"
GATEHOUSE_EXTRA = os.environ.get("BENCH_GATEHOUSE_EXTRA", "")
BENCH_PASSWORD = "bench-password-not-secret-1"
# The memory-bound sections: how many connections flood the gateway before login, how many bytes each
# sends after its first message, how long they are held once all are open; the statement sizes inspected.
FLOOD_CONNECTIONS = int(os.environ.get("BENCH_FLOOD_CONNECTIONS", "200"))
FLOOD_BYTES = int(float(os.environ.get("BENCH_FLOOD_MIB", "4")) * (1 << 20))
FLOOD_HOLD_SECONDS = float(os.environ.get("BENCH_FLOOD_HOLD", "2"))
INSPECTION_SIZES = [64 << 10, 256 << 10, 1 << 20, 4 << 20]
FLOOD_LABEL = "memory bound: pre-authentication flood"
INSPECTION_LABEL = "memory bound: inspection"


def run(cmd, env=None, check=True, capture=True, **kw):
    merged = dict(os.environ)
    merged.update(env or {})
    result = subprocess.run(cmd, env=merged, capture_output=capture, text=True, **kw)
    if check and result.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env(path):
    values = {}
    for line in open(path):
        key, _, value = line.strip().partition("=")
        values[key] = value.strip("'")
    return values


def as_postgres(cmd):
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"bench: nothing listens on port {port}")


def pgbench(bindir, target, args, seconds=SECONDS):
    cmd = [f"{bindir}/pgbench", "-n", "-T", str(seconds), "-h", "127.0.0.1", "-p", str(target["port"]),
           "-U", target["user"]] + args + [target["database"]]
    out = run(cmd, env={"PGPASSWORD": target["password"], "PGSSLMODE": target.get("sslmode", "disable")}, check=False)
    text = out.stdout + out.stderr
    tps = re.search(r"tps = ([0-9.]+) \((?:without|including)", text)
    latency = re.search(r"latency average = ([0-9.]+) ms", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    if out.returncode != 0 or not tps:
        return {"error": text.strip().splitlines()[-1] if text.strip() else f"exit {out.returncode}"}
    return {"tps": float(tps.group(1)), "latency_ms": float(latency.group(1)) if latency else None,
            "failed": int(failed.group(1)) if failed else 0}


def gateway_metrics(http_port, home):
    """The gateway's own view from /metrics: decisions and audit commits, as measured inside it."""
    import urllib.request
    token = json.load(open(os.path.join(home, "credentials.json")))["token"]
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/metrics", headers={"Authorization": f"Bearer {token}"})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    result = {}
    for name, key in (("gatehouse_decision_duration_seconds", "decision"), ("gatehouse_audit_write_duration_seconds", "audit_commit")):
        buckets, total, count = [], 0.0, 0
        for line in text.splitlines():
            if line.startswith(name + "_bucket{"):
                bound = line.split('le="')[1].split('"')[0]
                buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
            elif line.startswith(name + "_sum "):
                total = float(line.split()[1])
            elif line.startswith(name + "_count "):
                count = int(float(line.split()[1]))
        if count:
            median = next((bound for bound, seen in buckets if seen >= count / 2), None)
            result[key] = {"count": count, "mean_us": round(total / count * 1e6, 1),
                           "median_bucket_us": None if median in (None, float("inf")) else round(median * 1e6, 1)}
    for line in text.splitlines():
        if line.startswith("gatehouse_audit_events_total "):
            result["audit_events"] = int(float(line.split()[1]))
    return result


def cpu_seconds(pid):
    """User plus system CPU time a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_idle_session(port, user, token, database):
    """A minimal protocol-3 client: startup, cleartext password (the token), wait for ReadyForQuery."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    params = f"user\0{user}\0database\0{database}\0application_name\0bench-idle\0\0".encode()
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    buffer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("gateway closed the idle session")
        buffer += chunk
        while len(buffer) >= 5:
            kind = buffer[0:1]
            length = struct.unpack("!i", buffer[1:5])[0]
            if len(buffer) < 1 + length:
                break
            body = buffer[5:1 + length]
            buffer = buffer[1 + length:]
            if kind == b"R" and struct.unpack("!i", body[:4])[0] == 3:
                password = token.encode() + b"\0"
                sock.sendall(b"p" + struct.pack("!i", 4 + len(password)) + password)
            elif kind == b"E":
                raise RuntimeError(body.decode(errors="replace"))
            elif kind == b"Z":
                return sock


def start_gateway(gatehouse, gh_dir, direct, processes, limits):
    """Gatehouse enforcing the starter rule pack in front of `direct`, with `limits` (a YAML line), signed in
    as the bench user: (process, target, client environment, HTTP port)."""
    os.makedirs(gh_dir)
    gh_pg, gh_http = free_port(), free_port()
    password_hash = run([gatehouse, "hash-password", "--password-stdin"], input=BENCH_PASSWORD + "\n").stdout.strip()
    starter = open(os.path.join(ROOT, "examples/starter-policy.yaml")).read()
    # Office hours all week, so the after-hours step-up rule is evaluated but never holds a write.
    policy = starter[starter.index("policy:"):].replace(
        'outside: {days: [mon-fri], hours: "08:00-19:00", timezone: UTC}', "outside: {days: [mon-sun]}")
    with open(os.path.join(gh_dir, "gatehouse.yaml"), "w") as f:
        f.write(f"""listen:
  postgres: 127.0.0.1:{gh_pg}
  http: 127.0.0.1:{gh_http}
data_dir: {gh_dir}/data
tokens: {{access_ttl: 2h, max_access_ttl: 12h}}
{limits}
groups: [developer, dba]
users:
  - name: bench
    groups: [dba, auditors]
    password_hash: "{password_hash}"
connections:
  - name: app
    host: 127.0.0.1
    port: {direct['port']}
    database: app
    user: gh_scram
    password_env: BENCH_PG_PASSWORD
{policy}
{GATEHOUSE_EXTRA}
""")
    gh_log = open(os.path.join(gh_dir, "gatehouse.log"), "w")
    gateway = subprocess.Popen([gatehouse, "serve", "--config", os.path.join(gh_dir, "gatehouse.yaml"),
                                "--log-level", "warning"],
                               env=dict(os.environ, BENCH_PG_PASSWORD=direct["password"]), stdout=gh_log, stderr=gh_log)
    processes.append(gateway)
    wait_port(gh_pg)
    wait_port(gh_http)
    home = {"GATEHOUSE_HOME": os.path.join(gh_dir, "home"), "GATEHOUSE_SERVER": f"http://127.0.0.1:{gh_http}"}
    run([gatehouse, "login", "--user", "bench", "--password-stdin"], env=home, input=BENCH_PASSWORD + "\n")
    token = run([gatehouse, "token", "--ttl", "2h"], env=home).stdout.strip()
    gate = {"name": "gatehouse", "port": gh_pg, "user": "bench", "password": token, "database": "app",
            "pid": gateway.pid}
    return gateway, gate, home, gh_http


def memory_bounds(gatehouse, work, direct, bindir, processes):
    """Both memory-bound sections, against a gateway of their own with the default limits (a fresh process,
    so its memory is its own): the sections BENCH_ONLY selects, or both."""
    gateway, gate, _, _ = start_gateway(gatehouse, os.path.join(work, "gatehouse-bounds"), direct, processes,
                                        "# limits: the defaults")
    psql = os.path.join(bindir, "psql")
    time.sleep(1)
    result = {"rss_at_start_kib": rss_kib(gateway.pid)}
    try:
        if not ONLY or ONLY in FLOOD_LABEL:
            result["flood"] = {"connections": FLOOD_CONNECTIONS, "bytes_per_connection": FLOOD_BYTES,
                               "hold_seconds": FLOOD_HOLD_SECONDS, "variants": []}
            for label, first_and_junk in bounds.flood_variants(gate["user"], gate["database"]):
                print(f"bench: {FLOOD_LABEL}: {label}", file=sys.stderr)
                figures = bounds.flood(
                    gateway.pid, gate["port"], first_and_junk, FLOOD_CONNECTIONS, FLOOD_BYTES, FLOOD_HOLD_SECONDS,
                    lambda: bounds.RealSession(psql, gate["port"], gate["user"], gate["password"], gate["database"]))
                figures["gateway_running"] = gateway.poll() is None
                result["flood"]["variants"].append(dict(sends=label, **figures))
                if gateway.poll() is not None:
                    return result
        if not ONLY or ONLY in INSPECTION_LABEL:
            print(f"bench: {INSPECTION_LABEL}", file=sys.stderr)
            result["inspection"] = bounds.inspection(
                gateway.pid, lambda: open_idle_session(gate["port"], gate["user"], gate["password"], gate["database"]),
                psql, direct, work, INSPECTION_SIZES)
            result["inspection_gateway_running"] = gateway.poll() is None
        return result
    finally:
        result["gateway_exit"] = gateway.poll()
        processes.remove(gateway)
        gateway.terminate()
        try:
            gateway.wait(timeout=15)
        except subprocess.TimeoutExpired:
            gateway.kill()


def main():
    bench_bin = sys.argv[1]
    gatehouse = sys.argv[2]
    work = tempfile.mkdtemp(prefix="gatehouse-bench.")
    os.chmod(work, 0o755)
    processes = []
    try:
        cluster = os.path.join(work, "pg")
        run([os.path.join(ROOT, "scripts/pg-cluster"), "start", cluster],
            env={"PGCLUSTER_MAX_CONNECTIONS": str(IDLE_SESSIONS + 200)}, capture=False)
        pg = read_env(os.path.join(cluster, "env"))
        bindir = pg["PGCLUSTER_BINDIR"]
        direct = {"name": "direct", "port": int(pg["PGCLUSTER_PORT"]), "user": "gh_scram",
                  "password": pg["PGCLUSTER_SCRAM_PASSWORD"], "database": "app"}
        print("bench: initialising pgbench tables (scale 10)", file=sys.stderr)
        run([f"{bindir}/pgbench", "-i", "-q", "-s", "10", "-h", "127.0.0.1", "-p", str(direct["port"]),
             "-U", "gh_scram", "app"], env={"PGPASSWORD": direct["password"]})

        # PgBouncer, session pooling, as the postgres user (it refuses to run as root).
        bouncer_dir = os.path.join(work, "pgbouncer")
        os.makedirs(bouncer_dir)
        bouncer_port = free_port()
        with open(os.path.join(bouncer_dir, "userlist.txt"), "w") as f:
            f.write(f'"gh_scram" "{direct["password"]}"\n')
        with open(os.path.join(bouncer_dir, "pgbouncer.ini"), "w") as f:
            f.write(f"""[databases]
app = host=127.0.0.1 port={direct['port']} dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {bouncer_port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {bouncer_dir}/userlist.txt
pool_mode = session
max_client_conn = 500
default_pool_size = 50
logfile = {bouncer_dir}/pgbouncer.log
pidfile = {bouncer_dir}/pgbouncer.pid
""")
        if os.geteuid() == 0:
            shutil.chown(bouncer_dir, "postgres")
            for name in os.listdir(bouncer_dir):
                shutil.chown(os.path.join(bouncer_dir, name), "postgres")
        processes.append(subprocess.Popen(as_postgres(["pgbouncer", os.path.join(bouncer_dir, "pgbouncer.ini")]),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(bouncer_port)
        bouncer_pid = None
        for _ in range(50):
            try:
                bouncer_pid = int(open(os.path.join(bouncer_dir, "pgbouncer.pid")).read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        bouncer = dict(direct, name="pgbouncer", port=bouncer_port, pid=bouncer_pid)

        # Gatehouse with the starter rule pack enforcing. The idle-session measurement opens more sessions than
        # the per-user and per-connection defaults allow.
        gateway, gate, home, gh_http = start_gateway(
            gatehouse, os.path.join(work, "gatehouse"), direct, processes,
            "limits: {max_sessions_per_user: 5000, max_sessions_per_connection: 5000, "
            "max_unauthenticated_connections: 5000, max_unauthenticated_per_source: 5000}")
        gh_pg, token = gate["port"], gate["password"]

        workloads = [
            ("select-only, simple, 1 client", ["-S", "-M", "simple", "-c", "1", "-j", "1"]),
            ("select-only, simple, 8 clients", ["-S", "-M", "simple", "-c", "8", "-j", "2"]),
            ("select-only, prepared, 1 client", ["-S", "-M", "prepared", "-c", "1", "-j", "1"]),
            ("select-only, prepared, 8 clients", ["-S", "-M", "prepared", "-c", "8", "-j", "2"]),
            ("TPC-B-like, simple, 8 clients", ["-M", "simple", "-c", "8", "-j", "2"]),
            ("select-only, connect per transaction, 8 clients", ["-S", "-C", "-c", "8", "-j", "2"]),
        ]
        results = []
        for label, args in workloads:
            if ONLY and ONLY not in label:
                continue
            row = {"workload": label}
            for target in (direct, bouncer, gate):
                if target["name"] not in TARGETS:
                    row[target["name"]] = {"error": "not measured"}
                    continue
                print(f"bench: {label} → {target['name']}", file=sys.stderr)
                profiler = None
                if PERF and target is gate:
                    stamp = re.sub(r"[^a-z0-9]+", "-", label.lower())
                    profiler = subprocess.Popen(
                        ["perf", "record", "-e", "cpu-clock", "-g", "-p", str(gateway.pid), "-o",
                         os.path.join(ROOT, "bench", "results", f"perf-{stamp}.data")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                proxy_pid = target.get("pid")
                before_cpu = cpu_seconds(proxy_pid) if proxy_pid else None
                result = pgbench(bindir, target, args)
                if proxy_pid and "tps" in result:
                    # The proxy's own CPU per transaction: what it costs, whatever the machine's load.
                    used = cpu_seconds(proxy_pid) - before_cpu
                    result["proxy_cpu_us_per_txn"] = round(used / (result["tps"] * SECONDS) * 1e6, 1)
                row[target["name"]] = result
                if profiler:
                    profiler.send_signal(2)
                    profiler.wait(timeout=30)
            results.append(row)
        limits = None
        if "gatehouse" in TARGETS and (not ONLY or ONLY in FLOOD_LABEL or ONLY in INSPECTION_LABEL):
            limits = memory_bounds(gatehouse, work, direct, bindir, processes)
        if ONLY or TARGETS != ["direct", "pgbouncer", "gatehouse"]:
            for row in results:
                print(row, file=sys.stderr)
            if limits:
                print(json.dumps(limits), file=sys.stderr)
                print("\n".join(memory_bounds_markdown(limits)))
            try:
                print({"gateway_metrics": gateway_metrics(gh_http, home["GATEHOUSE_HOME"])}, file=sys.stderr)
            except Exception as error:  # noqa: BLE001 - reported, not fatal
                print({"gateway_metrics": str(error)}, file=sys.stderr)
            return

        try:
            inside = gateway_metrics(gh_http, home["GATEHOUSE_HOME"])
        except Exception as error:  # noqa: BLE001 - reported, not fatal
            inside = {"error": str(error)}

        # Resident memory per idle proxied session.
        time.sleep(1)
        before = rss_kib(gateway.pid)
        sockets = []
        failures = 0
        for _ in range(IDLE_SESSIONS):
            try:
                sockets.append(open_idle_session(gh_pg, "bench", token, "app"))
            except Exception as error:  # noqa: BLE001 - counted and reported
                failures += 1
                last_error = str(error)
        time.sleep(2)
        after = rss_kib(gateway.pid)
        for s in sockets:
            s.close()
        memory = {"sessions": len(sockets), "failed": failures, "rss_before_kib": before, "rss_after_kib": after,
                  "kib_per_session": round((after - before) / max(1, len(sockets)), 1)}
        if failures:
            memory["last_error"] = last_error

        micro = {}
        for rules in (10, 50, 500):
            micro[f"inspect_{rules}_rules"] = run([bench_bin, "inspect", "--rules", str(rules), "--iterations", "20000"]).stdout
        micro["audit"] = run([bench_bin, "audit", "--events", "100000"]).stdout

        report = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "system": platform.platform()},
            "seconds_per_run": SECONDS,
            "pgbench": results,
            "idle_sessions": memory,
            "memory_bounds": limits,
            "gateway_metrics": inside,
            "micro": micro,
        }
        write_report(report)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        run([os.path.join(ROOT, "scripts/pg-cluster"), "stop", os.path.join(work, "pg")], check=False)
        shutil.rmtree(work, ignore_errors=True)


def cell(result, key):
    if "error" in result:
        return "error"
    value = result.get(key)
    return "-" if value is None else (f"{value:,.0f}" if key == "tps" else f"{value:.3f}")


def ratio(a, b):
    if "error" in a or "error" in b or not b.get("tps"):
        return "-"
    return f"{a['tps'] / b['tps']:.2f}"


def mib(kib):
    return f"{kib / 1024:.1f}"


def real_session(check):
    if not check:
        return "-"
    return f"yes ({check['ms']:.0f} ms)" if check["worked"] else f"no ({check.get('error', '')})"


def memory_bounds_markdown(limits):
    """The memory-bound sections of the report, as Markdown lines."""
    lines = ["", "## Memory bounds", "",
             f"A gateway of its own with the default limits (at most 128 clients authenticating, 32 from one address, the first message "
             f"before login at most 16 KiB, statement text inspected up to 1 MiB); resident memory (VmRSS) sampled "
             f"every 5 ms; {mib(limits['rss_at_start_kib'])} MiB at its start."]
    if limits.get("gateway_exit") not in (None, -15, 0):
        lines += ["", f"**The gateway exited during the section (status {limits['gateway_exit']}).**"]
    flood = limits.get("flood")
    if flood:
        lines += [
            "",
            f"Pre-authentication flood: {flood['connections']} connections from one address (127.0.0.2) opened at once (20 at a time), each sending "
            f"what the row says and then up to {flood['bytes_per_connection'] >> 20} MiB more, held "
            f"{flood['hold_seconds']:g} s once all were open. A real session (psql with a token, `select 1`, from 127.0.0.1) runs when "
            "half are open and again when all are.",
            "",
            "| each connection sends | asked for a password | ErrorResponse (SQLSTATE) | closed without one | held to the "
            "end | MiB sent | RSS MiB before / peak / after | real session, half open | real session, all open |",
            "|---|---:|---|---:|---:|---:|---|---|---|",
        ]
        for v in flood["variants"]:
            states = ", ".join(f"{code} ×{n}" for code, n in sorted(v["error_sqlstates"].items())) or "-"
            lines.append(
                f"| {v['sends']} | {v['asked_for_password']} | {v['error_response']} ({states}) | "
                f"{v['closed_without_error']} | {v['held_to_the_end']} | {v['bytes_sent'] / (1 << 20):.1f} | "
                f"{mib(v['rss_before_kib'])} / {mib(v['rss_peak_kib'])} / {mib(v['rss_after_kib'])} | "
                f"{real_session(v['real_session_half_open'])} | {real_session(v['real_session_all_open'])} |")
    inspection = limits.get("inspection")
    if inspection:
        lines += [
            "",
            "Inspection: statements of growing size, simple protocol; the gateway's peak memory while each is "
            "inspected, judged and relayed, the round trip (the same statement straight to PostgreSQL for "
            "comparison, psql's \\timing; not for texts over the limit), and the longest `select 1` of four other "
            "sessions meanwhile. The last row sends the 1 MiB AND chain from several sessions at the same moment.",
            "",
            "| statement | KiB | sessions | through the gateway ms | direct ms | others' longest select 1, ms "
            "| RSS MiB before / peak / after | outcome |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for row in inspection:
            direct = "-" if row["direct_ms"] is None else f"{row['direct_ms']:.1f}"
            outcome = row["outcome"].replace("|", "\\|")
            lines.append(
                f"| {row['shape']} | {row['bytes'] >> 10} | {row['sessions']} | {row['gateway_ms']:.1f} | {direct} | "
                f"{row['bystander_worst_ms']:.1f} | "
                f"{mib(row['rss_before_kib'])} / {mib(row['rss_peak_kib'])} / {mib(row['rss_after_kib'])} | {outcome} |")
    return lines


def write_report(report):
    lines = [
        f"# Gatehouse benchmark, {report['date']}",
        "",
        f"{report['machine']['cpus']} CPUs, {report['machine']['system']}; pgbench -T {report['seconds_per_run']} s per run, "
        "scale 10, everything on this machine over loopback. Gatehouse enforces the starter rule pack on every statement and "
        "audits every decision.",
        "",
        "| workload | direct TPS | PgBouncer TPS | Gatehouse TPS | GH/direct | GH/PgBouncer | latency ms direct / PgB / GH "
        "| proxy CPU µs/txn PgB / GH |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in report["pgbench"]:
        d, b, g = row["direct"], row["pgbouncer"], row["gatehouse"]
        lines.append(
            f"| {row['workload']} | {cell(d, 'tps')} | {cell(b, 'tps')} | {cell(g, 'tps')} | {ratio(g, d)} | {ratio(g, b)} | "
            f"{cell(d, 'latency_ms')} / {cell(b, 'latency_ms')} / {cell(g, 'latency_ms')} | "
            f"{b.get('proxy_cpu_us_per_txn', '-')} / {g.get('proxy_cpu_us_per_txn', '-')} |")
    m = report["idle_sessions"]
    lines += [
        "",
        f"Idle sessions: {m['sessions']} open ({m['failed']} failed); gateway resident memory {m['rss_before_kib']} KiB → "
        f"{m['rss_after_kib']} KiB: **{m['kib_per_session']} KiB per idle session**.",
        "",
        f"Inside the gateway over all runs (its /metrics): {report.get('gateway_metrics')}. A decision is inspection, "
        "policy and the audit record for one statement; an audit commit is one group of events made durable.",
    ]
    if report.get("memory_bounds"):
        lines += memory_bounds_markdown(report["memory_bounds"])
    lines += [
        "",
        "## Micro-benchmarks",
        "",
    ]
    for key, text in report["micro"].items():
        lines += ["```", text.strip(), "```", ""]
    markdown = "\n".join(lines)
    print(markdown)
    results = os.path.join(ROOT, "bench", "results")
    os.makedirs(results, exist_ok=True)
    stamp = report["date"].replace(":", "").replace("+0000", "Z")
    with open(os.path.join(results, f"{stamp}.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(results, f"{stamp}.md"), "w") as f:
        f.write(markdown + "\n")
    print(f"\nSaved bench/results/{stamp}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    main()
