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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
IDLE_SESSIONS = int(os.environ.get("BENCH_IDLE_SESSIONS", "1000"))
# For tuning: only workloads whose label contains this text, only these targets, and a perf profile of the
# gateway (perf record -g) written to bench/results/perf-*.data while it runs.
ONLY = os.environ.get("BENCH_ONLY", "")
TARGETS = [t for t in os.environ.get("BENCH_TARGETS", "direct,pgbouncer,gatehouse").split(",") if t]
PERF = os.environ.get("BENCH_PERF", "") == "1"
# More gateway configuration (YAML), e.g. BENCH_GATEHOUSE_EXTRA="audit: {commit_interval: 50ms}"
GATEHOUSE_EXTRA = os.environ.get("BENCH_GATEHOUSE_EXTRA", "")
BENCH_PASSWORD = "bench-password-not-secret-1"


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


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


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

        # Gatehouse with the starter rule pack enforcing.
        gh_dir = os.path.join(work, "gatehouse")
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
# The idle-session measurement opens more sessions than the per-user and per-connection defaults allow.
limits: {{max_sessions_per_user: 5000, max_sessions_per_connection: 5000, max_unauthenticated_connections: 5000}}
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
        if ONLY or TARGETS != ["direct", "pgbouncer", "gatehouse"]:
            for row in results:
                print(row, file=sys.stderr)
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
