#!/usr/bin/env python3
"""B7: cold start to registered against a real registrar (called by scripts/bench.sh).

Starts Kamailio on loopback with TLS and Digest (the configuration of tests/real_registrar.rs,
with a test PKI made here with the openssl CLI), then runs each client in turn, in alternating
order, from process start to its first "registered" line:

  ue CLI      target/release/examples/ue --json        line with "event":"registered"
  C example   examples/c/ue.c on target/release/libimstls.so   the same line
              (the C library: cargo build --release --features capi)
  baresip     Debian baresip-core, TLS account to the same Kamailio   "200 OK" on stdout

Per run: wall time from just before fork/exec to that line (the client is SIGKILLed then),
CPU and peak RSS. CPU is perf's task-clock (`perf stat -e task-clock`, a separate run, so perf
does not sit in the timed path) when perf can count, else utime + stime from wait4(2) — both
come from the scheduler's nanosecond runtime, not 10 ms ticks. Peak RSS is VmHWM from
/proc/PID/status when the line came (wait4's ru_maxrss would count the pages of the Python
process that forked it). Medians per client, ratios against baresip per block of alternating runs, verdict
by the spread of the block ratios: met when every block is at or under the target, missed
when every block is over it, inconclusive otherwise.

usage: coldstart.py OUT_DIR UE_BINARY C_BINARY [BLOCKS] [RUNS_PER_BLOCK]
writes OUT_DIR/b7.md and OUT_DIR/b7.tsv (one line per run).
"""

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MODULE_DIRS = ["/usr/lib/x86_64-linux-gnu/kamailio/modules",
               "/usr/lib/aarch64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules"]
PASSWORD = "alice-secret"
SERVER_NAME = "pcscf.ims.test"
DEADLINE_S = 10.0


def run(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def make_pki(d):
    """A root and a leaf for pcscf.ims.test (and 127.0.0.1, for clients that check the IP)."""
    ext = os.path.join(d, "leaf.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1\n"
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    p = lambda n: os.path.join(d, n)
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2",
         "-subj", "/CN=imstls bench root", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", p("leaf.key"), "-out", p("leaf.csr"), "-subj", f"/CN={SERVER_NAME}"])
    run(["openssl", "x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.pem"), "-CAkey",
         p("ca.key"), "-CAcreateserial", "-out", p("leaf.pem"), "-days", "2", "-extfile", ext])
    return p("leaf.pem"), p("leaf.key"), p("ca.pem")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_kamailio(d):
    kamailio = next((p for p in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio")
                     if os.path.exists(p)), None)
    modules = next((p for p in MODULE_DIRS if os.path.exists(os.path.join(p, "tls.so"))), None)
    if not kamailio or not modules:
        sys.exit("B7 needs kamailio and kamailio-tls-modules")
    leaf, key, ca = make_pki(d)
    port = free_port()
    tls = os.path.join(d, "tls.cfg")
    with open(tls, "w") as f:
        f.write(f"[server:default]\nmethod = TLSv1.2+\ncertificate = {leaf}\nprivate_key = {key}\n"
                "verify_certificate = no\nrequire_certificate = no\n")
    cfg = os.path.join(d, "kamailio.cfg")
    with open(cfg, "w") as f:
        f.write(f"""#!KAMAILIO
debug=1
log_stderror=yes
children=1
tcp_children=2
auto_aliases=no
enable_tls=yes
listen=tls:127.0.0.1:{port}
alias="ims.test"
mpath="{modules}/"
loadmodule "tls.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("tls", "config", "{tls}")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 3600)
modparam("auth", "algorithm", "MD5")
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("REGISTER")) {{
        if (!pv_auth_check("$fd", "{PASSWORD}", "0", "0")) {{
            auth_challenge("$fd", "1");
            exit;
        }}
        consume_credentials();
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    sl_send_reply("404", "Not Here");
}}
""")
    os.makedirs(os.path.join(d, "run"), exist_ok=True)
    child = subprocess.Popen([kamailio, "-f", cfg, "-DD", "-E", "-m", "64", "-Y",
                              os.path.join(d, "run")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or child.poll() is not None:
                sys.exit("Kamailio did not open its TLS port")
            time.sleep(0.05)
    return child, port, ca


def baresip_config(d, name, port, ca):
    conf = os.path.join(d, name)
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "config"), "w") as f:
        # No audio, video or UI modules: SIP, TLS and the account only.
        f.write("poll_method\t\tepoll\n"
                f"sip_cafile\t\t{ca}\nsip_verify_server\tyes\n"
                "module_path\t\t/usr/lib/baresip/modules\nmodule_app\t\taccount.so\n")
    with open(os.path.join(conf, "accounts"), "w") as f:
        f.write(f"<sip:alice@ims.test;transport=tls>;auth_user=alice@ims.test;"
                f"auth_pass={PASSWORD};outbound=\"sip:127.0.0.1:{port};transport=tls\";"
                "regint=3600\n")
    with open(os.path.join(conf, "contacts"), "w") as f:
        f.write("")
    return ["baresip", "-f", conf]


def baresip_verifies(d, port):
    """Whether baresip refuses Kamailio when given a CA that did not sign its certificate."""
    foreign = os.path.join(d, "foreign-pki")
    os.makedirs(foreign, exist_ok=True)
    _, _, foreign_ca = make_pki(foreign)
    cmd = baresip_config(d, "baresip-foreign-ca", port, foreign_ca)
    global DEADLINE_S
    saved, DEADLINE_S = DEADLINE_S, 3.0
    try:
        return one_run(cmd, b"200 OK", dict(os.environ)) is None
    finally:
        DEADLINE_S = saved


def clients(d, port, ca, ue_bin, c_bin):
    password_file = os.path.join(d, "password")
    with open(password_file, "w") as f:
        f.write(PASSWORD + "\n")
    imstls_args = ["--pcscf", f"127.0.0.1:{port}", "--server-name", SERVER_NAME, "--ca", ca,
                   "--impi", "alice@ims.test", "--impu", "sip:alice@ims.test",
                   "--password-file", password_file, "--hold", "30", "--json"]
    return [
        ("ue CLI (Rust)", [ue_bin] + imstls_args, b'"event":"registered"'),
        ("C example (ue.c)", [c_bin] + imstls_args, b'"event":"registered"'),
        ("baresip 1.0", baresip_config(d, "baresip", port, ca), b"200 OK"),
    ]


def perf_works():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "--", "true"],
                       capture_output=True, text=True)
    return r.returncode == 0 and "task-clock" in r.stderr


def one_run(cmd, marker, env, perf_file=None):
    """(seconds to the marker, CPU seconds, peak RSS KiB) of one run; None when it failed."""
    argv = cmd if perf_file is None else \
        ["perf", "stat", "-x,", "-e", "task-clock", "-o", perf_file, "--"] + cmd
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, env=env)
    elapsed = None
    deadline = start + DEADLINE_S
    buf = b""
    os.set_blocking(child.stdout.fileno(), False)
    while time.perf_counter() < deadline:
        try:
            chunk = os.read(child.stdout.fileno(), 65536)
        except BlockingIOError:
            chunk = None
        if chunk:
            buf += chunk
            if marker in buf:
                elapsed = time.perf_counter() - start
                break
        elif chunk == b"" or child.poll() is not None:
            break
        else:
            time.sleep(0.0002)
    target = child.pid
    if perf_file is not None:  # the client is perf's child
        try:
            with open(f"/proc/{child.pid}/task/{child.pid}/children") as f:
                target = int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            pass
    peak_kib = peak_rss_kib(target)
    try:
        os.kill(target, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, _, usage = os.wait4(child.pid, 0)
    child.stdout.close()
    if elapsed is None:
        return None
    cpu = usage.ru_utime + usage.ru_stime
    if perf_file is not None:
        cpu = None
        for line in open(perf_file):
            fields = line.strip().split(",")
            if len(fields) > 2 and fields[2].startswith("task-clock") and fields[0]:
                cpu = float(fields[0]) / 1000
        if cpu is None:
            return None
    if peak_kib is None:
        return None
    return elapsed, cpu, peak_kib


def peak_rss_kib(pid):
    """VmHWM of a live process (wait4's ru_maxrss would count the forking Python's pages)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    out, ue_bin, c_bin = sys.argv[1:4]
    blocks = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    per_block = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    d = tempfile.mkdtemp(prefix="imstls-b7-")
    kamailio, port, ca = start_kamailio(d)
    try:
        measure(out, d, port, ca, ue_bin, c_bin, blocks, per_block)
    finally:
        os.killpg(kamailio.pid, signal.SIGTERM)
        kamailio.wait()
        shutil.rmtree(d, ignore_errors=True)


def measure(out, d, port, ca, ue_bin, c_bin, blocks, per_block):
    runs = clients(d, port, ca, ue_bin, c_bin)
    env = dict(os.environ)
    use_perf = perf_works()
    names = [name for name, _, _ in runs]
    wall = {n: [[] for _ in range(blocks)] for n in names}
    cpu = {n: [[] for _ in range(blocks)] for n in names}
    rss = {n: [[] for _ in range(blocks)] for n in names}
    failures = {n: 0 for n in names}
    # Warm the page cache and Kamailio (one unrecorded run each).
    for name, cmd, marker in runs:
        if one_run(cmd, marker, env) is None:
            sys.exit(f"B7: {name} did not register: {' '.join(cmd)}")
    verifies = baresip_verifies(d, port)
    tsv = open(os.path.join(out, "b7.tsv"), "w")
    perf_file = os.path.join(d, "perf.txt")
    for block in range(blocks):
        for i in range(per_block):
            order = runs if (block * per_block + i) % 2 == 0 else list(reversed(runs))
            for name, cmd, marker in order:
                timed = one_run(cmd, marker, env)
                counted = one_run(cmd, marker, env, perf_file if use_perf else None)
                if timed is None or counted is None:
                    failures[name] += 1
                    continue
                wall[name][block].append(timed[0])
                cpu[name][block].append(counted[1])
                rss[name][block].append(timed[2])
                tsv.write(f"{block}\t{name}\t{timed[0]:.6f}\t{counted[1]:.6f}\t{timed[2]}\n")
    tsv.close()
    report(out, names, wall, cpu, rss, failures, blocks, per_block, use_perf, verifies)


def median_all(series):
    return statistics.median([v for block in series for v in block])


def spread_verdict(ratios, target):
    if not ratios:
        return "inconclusive (no runs)"
    if max(ratios) <= target:
        return "met"
    if min(ratios) > target:
        return "missed"
    return "inconclusive"


def report(out, names, wall, cpu, rss, failures, blocks, per_block, use_perf, verifies):
    base = names[-1]  # baresip
    lines = ["## B7 — cold start to registered, against baresip on the same Kamailio\n"]
    lines.append(
        f"Kamailio (Debian, TLS + Digest MD5, loopback, started once) and three clients, "
        f"each started afresh for every run: {blocks} blocks × {per_block} alternating runs per client (order reversed "
        "every other run), after one unrecorded warm-up run each. **to registered**: from "
        "just before fork/exec to the client's first registered line (a REGISTER answered "
        "401, then 200 OK after Digest), then the client is killed. **CPU**: "
        + ("perf's task-clock of the whole process (`perf stat -e task-clock`, in separate "
           "runs so that perf is not in the timed path)" if use_perf else
           "utime + stime from wait4(2) (the scheduler's nanosecond runtime)")
        + ". **peak RSS**: VmHWM from `/proc/PID/status` when the line came. Ratios are against baresip, per block; the verdict is "
        "*met* when every block's ratio is at or under the target, *missed* when every one is "
        "over it, *inconclusive* otherwise. The imstls clients verify Kamailio's certificate "
        "against the test root and its name; baresip, configured with the same root and "
        "`sip_verify_server yes`, "
        + ("refused a Kamailio whose certificate that root did not sign (checked each run)."
           if verifies else
           "**registered with a CA that did not sign Kamailio's certificate** (checked each "
           "run): it does not verify the server here, so it does less work than the imstls "
           "clients.") + "\n")
    lines.append("| client | to registered (median) | CPU (median) | peak RSS (median) | "
                 "time ratio vs baresip (blocks min–max) | CPU ratio | RSS ratio | "
                 "target: time ≤ 1.00× | failed runs |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        if not any(wall[name]):
            continue
        block_ratios = [statistics.median(wall[name][b]) / statistics.median(wall[base][b])
                        for b in range(blocks) if wall[name][b] and wall[base][b]]
        time_ratio = median_all(wall[name]) / median_all(wall[base])
        cpu_ratio = median_all(cpu[name]) / median_all(cpu[base])
        rss_ratio = median_all(rss[name]) / median_all(rss[base])
        if name == base:
            ratio_cells = "1 (reference) | 1 | 1 | — "
        else:
            ratio_cells = (f"{time_ratio:.2f}× ({min(block_ratios):.2f}–{max(block_ratios):.2f}) | "
                           f"{cpu_ratio:.2f}× | {rss_ratio:.2f}× | "
                           f"**{spread_verdict(block_ratios, 1.0)}** ")
        lines.append(f"| {name} | {median_all(wall[name]) * 1000:.1f} ms | "
                     f"{median_all(cpu[name]) * 1000:.1f} ms | "
                     f"{median_all(rss[name]) / 1024:.1f} MiB | {ratio_cells}| {failures[name]} |")
    lines.append("")
    with open(os.path.join(out, "b7.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
