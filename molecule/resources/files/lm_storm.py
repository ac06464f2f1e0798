#!/usr/bin/env python3
"""A class logging in at once: N clients fetch the login form, then all POST it at the same moment.

Standard library only: it runs inside the test containers and the benchmark's load container.

    python3 lm_storm.py [--base http://127.0.0.1] [--host-header lernmanager.test] --clients 60 \
        [--user admin] [--password admin] [--wrong] [--sources 1] [--first-source 1] [--probe] [--timeout 120]
        [--flood /admin/passwort [--cookie session=forged]] [--forwarded-for 2001:db8:64::]

Each client opens its own connections from one of --sources loopback addresses (127.0.0.1, then
127.0.0.2, ...: every 127/8 address is local, so nginx sees that many client addresses; with
--first-source K they start at 127.0.0.K, apart from other runs' per-address limits), GETs
/login for its session cookie and CSRF token, waits at a barrier, and POSTs the form. With
--wrong every POST carries a wrong password. With --probe a separate client GETs /login one
request after another during the storm and reports its latencies (is the site still usable?).
With --flood PATH the clients fetch no form: each POSTs a form to PATH at the barrier, with the
--cookie given or none (a script hammering an admin's password path without a session). With
--forwarded-for PREFIX client i's requests say `X-Forwarded-For: PREFIX<i in hex>` (one IPv6 /64
behind a proxy the site trusts: its source address must be in lernmanager_trusted_proxies).

A valid login succeeds when the app redirects (302/303); a wrong one when the app answers it
(any status but nginx's 502/503/504). Prints one JSON object and exits 0 whenever it ran:
the caller judges the numbers. All traffic goes to --base, which must be a loopback address.
"""

import argparse
import http.client
import json
import re
import statistics
import threading
import time
import urllib.parse

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
NGINX_ERRORS = {502, 503, 504}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1")
    parser.add_argument("--host-header", default="lernmanager.test")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--wrong", action="store_true", help="every POST carries a wrong password")
    parser.add_argument("--sources", type=int, default=1, help="loopback source addresses to spread over")
    parser.add_argument("--first-source", type=int, default=1, help="last byte of the first source address")
    parser.add_argument("--probe", action="store_true", help="GET /login in a loop during the storm")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request")
    parser.add_argument("--flood", metavar="PATH", help="POST a form to PATH without fetching one first")
    parser.add_argument("--cookie", help="the Cookie header of every --flood POST")
    parser.add_argument("--forwarded-for", metavar="PREFIX", help="X-Forwarded-For: PREFIX<client number in hex>")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.base)
    if not (url.hostname == "localhost" or url.hostname.startswith("127.") or url.hostname == "::1"):
        parser.error("--base must be a loopback address: the storm never leaves this host")
    if not 1 <= args.sources <= 250 or not 1 <= args.first_source <= 251 - args.sources:
        parser.error("--sources and --first-source must keep the addresses within 127.0.0.1-250")
    return args


class Site:
    def __init__(self, args):
        url = urllib.parse.urlsplit(args.base)
        self.host, self.port = url.hostname, url.port or 80
        self.host_header = args.host_header
        self.timeout = args.timeout

    def request(self, method, path, source, body=None, cookie=None, forwarded_for=None):
        """One request on a new connection from `source`; returns (status, headers, body text)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout,
                                          source_address=(source, 0))
        headers = {"Host": self.host_header}
        if forwarded_for:
            headers["X-Forwarded-For"] = forwarded_for
        if cookie:
            headers["Cookie"] = cookie
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read().decode("utf-8", "replace")
        finally:
            conn.close()


def session_cookie(headers):
    cookies = [value.split(";", 1)[0] for name, value in headers if name.lower() == "set-cookie"]
    return "; ".join(cookies) or None


def client(site, args, source, forwarded_for, barrier, outcome):
    """Fetch the form, wait for everyone, POST it; fills `outcome` with what happened."""
    path, cookie, body = args.flood or "/login", args.cookie, "current_password=x&new_password=y"
    try:
        if not args.flood:
            body, cookie = login_form(site, args, source, forwarded_for)
    except Exception as error:  # noqa: BLE001  reported, never raised: the caller judges
        outcome["error"] = f"form: {error}"
        barrier.abort()
        return
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        outcome.setdefault("error", "another client could not fetch the form")
        return
    start = time.monotonic()
    try:
        status, _, _ = site.request("POST", path, source, body=body, cookie=cookie, forwarded_for=forwarded_for)
        outcome["status"] = status
    except Exception as error:  # noqa: BLE001
        outcome["error"] = f"POST {path}: {type(error).__name__}: {error}"
    outcome["seconds"] = time.monotonic() - start
    outcome["end"] = time.monotonic()


def login_form(site, args, source, forwarded_for):
    """GET /login: the form's body to POST (with its CSRF token) and the session cookie."""
    status, headers, body = site.request("GET", "/login", source, forwarded_for=forwarded_for)
    match = CSRF.search(body)
    if status != 200:
        raise RuntimeError(f"GET /login: {status}")
    form = {"username": args.user, "password": args.password + ("-wrong" if args.wrong else "")}
    if match:
        form["csrf_token"] = match.group(1) or match.group(2)
    return urllib.parse.urlencode(form), session_cookie(headers)


def probe(site, source, stop, latencies, failures):
    """GET /login one after another while the storm runs: what a pupil arriving late sees."""
    while not stop.is_set():
        start = time.monotonic()
        try:
            status, _, _ = site.request("GET", "/login", source)
            if status != 200:
                failures.append(f"GET /login: {status}")
        except Exception as error:  # noqa: BLE001
            failures.append(f"GET /login: {type(error).__name__}: {error}")
        latencies.append(time.monotonic() - start)
        stop.wait(0.05)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else None


def main():
    args = parse_args()
    site = Site(args)
    barrier = threading.Barrier(args.clients + 1)
    outcomes = [{} for _ in range(args.clients)]
    threads = [threading.Thread(target=client, daemon=True,
                                args=(site, args, f"127.0.0.{args.first_source + i % args.sources}",
                                      f"{args.forwarded_for}{i + 1:x}" if args.forwarded_for else None,
                                      barrier, outcomes[i]))
               for i in range(args.clients)]
    for thread in threads:
        thread.start()
    stop, latencies, probe_failures = threading.Event(), [], []
    prober = threading.Thread(target=probe, args=(site, f"127.0.0.{args.first_source}", stop, latencies, probe_failures), daemon=True)
    try:
        barrier.wait(timeout=args.timeout)
    except threading.BrokenBarrierError:
        pass
    start = time.monotonic()
    if args.probe:
        prober.start()
    for thread in threads:
        thread.join(args.timeout + 10)
    stop.set()
    if args.probe:
        prober.join(args.timeout + 10)

    statuses = {}
    for outcome in outcomes:
        if "status" in outcome:
            statuses[str(outcome["status"])] = statuses.get(str(outcome["status"]), 0) + 1
    if args.wrong:
        ok = [o for o in outcomes if "status" in o and o["status"] not in NGINX_ERRORS]
    else:
        ok = [o for o in outcomes if o.get("status") in (302, 303)]
    ends = [o["end"] - start for o in outcomes if "end" in o]
    result = {
        "clients": args.clients,
        "sources": args.sources,
        "wrong_password": args.wrong,
        "succeeded": len(ok),
        "failed": args.clients - len(ok),
        "statuses": statuses,
        "errors": sorted({o["error"] for o in outcomes if "error" in o})[:10],
        # From the moment everyone POSTs to the last answer: the time to log in the whole class.
        "last_s": round(max(ends), 3) if ends else None,
        "median_s": round(statistics.median(ends), 3) if ends else None,
    }
    if args.probe:
        result["probe"] = {
            "requests": len(latencies),
            "failed": len(probe_failures),
            "failures": probe_failures[:10],
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
            "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
