"""Load runs with wrk and response sizes with curl, both from the load container."""

import json

from .containers import LOAD, run

HOST = "lernmanager.test"  # the role's site answers only to its server_name
ACCEPT = "gzip, br"        # what browsers send: lets each stack pick its best encoding

# name -> (path, what it stands for)
WORKLOADS = {
    "css": "/static/css/style.css",
    "js": "/static/js/app.js",
    "login": "/login",
    "slow": "/slow",
}


def wrk(url, seconds, connections=30, warmup=2, sessions=None, upload=None, meter=None):
    """One bounded wrk run (after a discarded warm-up), returned as numbers.

    With METER (a callable: {what: CPU seconds so far}, e.g. the app's unit and nginx), read
    before and after the timed run: the CPU each spent per request, in milliseconds.

    Anonymous (the default): one wrk thread, as the load container has a single core and more
    threads on it would only compete with each other. With SESSIONS (a file in the load container,
    files/sessions.py's lines): one thread per connection, each a logged-in browser of its own
    (files/sessions.lua); with UPLOAD (a file there too) each request POSTs it as a form upload.
    --timeout 5s: a request slower than that counts as failed.
    """
    base = ["docker", "exec"]
    threads, script = 1, "/bench/report.lua"
    if sessions:
        threads, script = connections, "/bench/sessions.lua"
        base += ["-e", f"WRK_SESSIONS={sessions}", "-e", f"WRK_UPLOAD={upload or ''}"]
    base += [LOAD, "wrk", f"-t{threads}", f"-c{connections}", "--timeout", "5s",
             "--latency", "-s", script, "-H", f"Host: {HOST}", "-H", f"Accept-Encoding: {ACCEPT}"]
    if warmup:
        # Warm-up: fills connection pools, page cache and lazily imported code paths.
        run(base + [f"-d{warmup}s", url], timeout=warmup + 60)
    return metered(lambda: summary(run(base + [f"-d{seconds}s", url], timeout=seconds + 60).stdout, url,
                                   connections), meter)


def metered(timed_run, meter):
    """TIMED_RUN's numbers, with the CPU per request METER saw spent during it (no METER: as they are)."""
    if not meter:
        return timed_run()
    before = meter()
    result = timed_run()
    result["cpu_ms_per_request"] = cpu_per_request(before, meter(), result["requests"])
    return result


def cpu_per_request(before, after, requests):
    """{what: ms} of CPU per request from two METER readings; "total" sums them."""
    spent = {what: (after[what] - before[what]) * 1000 / requests if requests else None for what in after}
    spent["total"] = sum(value for value in spent.values() if value is not None) if requests else None
    return {what: round(value, 3) if value is not None else None for what, value in spent.items()}


def summary(out, url, connections):
    """The numbers of one run from its BENCH_JSON line (files/report.lua, or sessions.py logins)."""
    line = next((l for l in out.splitlines() if l.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"no summary for {url}:\n{out}")
    raw = json.loads(line.split(" ", 1)[1])
    seconds_run = raw["duration_us"] / 1e6
    socket_errors = raw["err_connect"] + raw["err_read"] + raw["err_write"] + raw["err_timeout"]
    return {
        "url": url,
        # The host's 1-minute load average right after the run: other people's containers share
        # this machine, and a high value flags a run that was disturbed.
        "host_loadavg_1m": float(open("/proc/loadavg").read().split()[0]),
        "connections": connections,
        "seconds": round(seconds_run, 2),
        "requests": raw["requests"],
        "rps": raw["requests"] / seconds_run if seconds_run else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "failed": raw["err_status"] + socket_errors,
        "failed_status": raw["err_status"],
        "failed_socket": socket_errors,
        # Headers included: what one response costs on the wire on average.
        "wire_bytes_per_response": raw["bytes"] / raw["requests"] if raw["requests"] else 0,
    }


def logins(url, seconds, accounts, connections=30, warmup=2, meter=None):
    """Sustained login POSTs by CONNECTIONS browsers (files/sessions.py logins): wrk cannot
    fetch the fresh CSRF token each login needs. ACCOUNTS is a file in the load container.
    METER as for wrk (the untimed GET of each login's form is in its count)."""
    base = ["docker", "exec", LOAD, "python3", "/bench/sessions.py", "logins", "--base", url,
            "--host-header", HOST, "--accounts", accounts, "--clients", str(connections)]
    if warmup:
        run(base + ["--seconds", str(warmup)], timeout=warmup + 90)
    return metered(lambda: summary(run(base + ["--seconds", str(seconds)], timeout=seconds + 90).stdout,
                                   url + "/login", connections), meter)


def response_size(url, accept=ACCEPT, cookie=None):
    """Body bytes of one response as sent (curl does not decode without --compressed),
    its Content-Encoding and status; with COOKIE, a logged-in browser's."""
    argv = ["docker", "exec", LOAD, "curl", "-s", "-o", "/dev/null", "-D", "-",
            "-w", "BENCH %{size_download} %{http_code}", "-H", f"Host: {HOST}"]
    if cookie:
        argv += ["-H", f"Cookie: {cookie}"]
    if accept:
        argv += ["-H", f"Accept-Encoding: {accept}"]
    out = run(argv + [url]).stdout
    encoding = "identity"
    for line in out.splitlines():
        if line.lower().startswith("content-encoding:"):
            encoding = line.split(":", 1)[1].strip()
    size, status = out.rsplit("BENCH ", 1)[1].split()
    return {"body_bytes": int(size), "status": int(status), "encoding": encoding}
