#!/usr/bin/env python3
"""Logged-in browsers for the load container: sessions for wrk, and a sustained login load.

Standard library only (it runs in the benchmark's load container). Two commands:

  python3 sessions.py cookies --base http://127.0.0.1 --accounts accounts.json [--form-page PATH] > sessions.tsv
      Logs every account of accounts.json ([{"username", "password", "path"}]) in as a browser does
      (GET /login for the session and CSRF token, POST the form; the redirect must lead away from
      /login), each from its own loopback address (--source-net), then, with --form-page, GETs that page for the form token a logged-in POST needs (it
      may renew the session cookie). Prints one line per account for files/sessions.lua:
      cookie header, CSRF token, path (tab-separated).

  python3 sessions.py logins --base http://127.0.0.1 --accounts accounts.json --seconds 10 [--clients 30]
      Sustained logins: each client, from its own loopback address (127.0.0.11, .12, ...: the role's
      per-address login limit is for one guesser, not for a class), fetches the form as a new browser
      and POSTs it, again and again; only the POST is timed. Prints one JSON object shaped like the
      wrk summary that bench/benchlib/load.py reads (requests, duration, percentiles, errors).
"""

import argparse
import http.client
import json
import re
import sys
import threading
import time
import urllib.parse

CSRF_FIELD = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
VALUE = re.compile(r'value="([^"]*)"')


def form_token(page):
    """The CSRF token of the page's form (Flask-WTF's hidden field), or None. inprocess.py uses it too."""
    field = CSRF_FIELD.search(page)
    return VALUE.search(field.group(0)).group(1) if field else None


class Browser:
    """One browser: a cookie jar of name -> value, one connection per request, from `source`."""

    def __init__(self, base, host_header, source="127.0.0.1", timeout=30):
        url = urllib.parse.urlsplit(base)
        self.address = (url.hostname, url.port or 80)
        self.host_header, self.source, self.timeout = host_header, source, timeout
        self.jar = {}

    def cookie(self):
        return "; ".join(f"{name}={value}" for name, value in self.jar.items())

    def request(self, method, path, form=None):
        conn = http.client.HTTPConnection(*self.address, timeout=self.timeout, source_address=(self.source, 0))
        headers = {"Host": self.host_header}
        if self.jar:
            headers["Cookie"] = self.cookie()
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            conn.close()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                self.jar[key.strip()] = val.strip()
        return response.status, response.getheader("Location") or "", text

    def csrf_token(self, path):
        status, _, page = self.request("GET", path)
        token = form_token(page)
        if status != 200 or token is None:
            raise RuntimeError(f"GET {path}: {status}, {'a form' if token else 'no csrf_token field'}")
        return token

    def log_in(self, username, password):
        token = self.csrf_token("/login")
        status, location, _ = self.request("POST", "/login", {"username": username, "password": password,
                                                               "csrf_token": token})
        if status not in (302, 303) or urllib.parse.urlsplit(location).path.rstrip("/") == "/login":
            raise RuntimeError(f"{username} could not log in: POST /login -> {status}"
                               + (f", to {location}" if location else " (wrong password?)"))


def cookies(args, accounts):
    for number, account in enumerate(accounts):
        browser = Browser(args.base, args.host_header, f"{args.source_net}.{number + 1}")
        browser.log_in(account["username"], account["password"])
        token = browser.csrf_token(args.form_page) if args.form_page else ""
        print(f"{browser.cookie()}\t{token}\t{account.get('path', '')}")


def logins(args, accounts):
    stop_at = time.monotonic() + args.seconds
    latencies, errors = [], {"status": 0, "socket": 0}
    lock = threading.Lock()

    def client(number):
        account = accounts[number % len(accounts)]
        source = f"127.0.0.{11 + number}"
        while time.monotonic() < stop_at:
            browser = Browser(args.base, args.host_header, source, timeout=5)
            try:
                token = browser.csrf_token("/login")
                began = time.monotonic()
                status, location, _ = browser.request("POST", "/login", {
                    "username": account["username"], "password": account["password"], "csrf_token": token})
                took = time.monotonic() - began
                failed = status not in (302, 303) or urllib.parse.urlsplit(location).path.rstrip("/") == "/login"
                with lock:
                    latencies.append(took)
                    errors["status"] += failed
            except (OSError, RuntimeError, http.client.HTTPException):
                with lock:
                    errors["socket"] += 1
                time.sleep(0.1)

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.seconds + 30)
    duration = time.monotonic() - began
    ordered = sorted(latencies) or [0.0]

    def micro(fraction):
        return int(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e6)
    # The wrk summary's shape (files/report.lua); a failed login is a status error.
    print("BENCH_JSON " + json.dumps({
        "requests": len(latencies), "duration_us": int(duration * 1e6), "bytes": 0,
        "err_connect": errors["socket"], "err_read": 0, "err_write": 0, "err_status": errors["status"],
        "err_timeout": 0, "p50_us": micro(0.5), "p90_us": micro(0.9), "p99_us": micro(0.99),
        "max_us": int(ordered[-1] * 1e6), "mean_us": sum(ordered) / len(ordered) * 1e6}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("cookies", "logins"))
    parser.add_argument("--base", default="http://127.0.0.1")
    parser.add_argument("--host-header", default="lernmanager.test")
    parser.add_argument("--accounts", required=True, help='JSON: [{"username", "password", "path"}]')
    parser.add_argument("--form-page", help="cookies: the page whose form token the sessions need")
    parser.add_argument("--source-net", default="127.0.0",
                        help="cookies: account n logs in from <source-net>.<n+1> (the role limits logins per address)")
    parser.add_argument("--seconds", type=float, default=10, help="logins: how long")
    parser.add_argument("--clients", type=int, default=30, help="logins: browsers at once")
    args = parser.parse_args()
    with open(args.accounts, encoding="utf-8") as handle:
        accounts = json.load(handle)
    if not accounts:
        raise SystemExit("sessions: no accounts")
    try:
        (cookies if args.command == "cookies" else logins)(args, accounts)
    except RuntimeError as error:
        raise SystemExit(f"sessions: {error}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
