"""Requests in a loop against 127.0.0.1 through nginx while a deploy runs; stdlib only.

Usage: python3 lm_load.py STOP_FILE RESULT_FILE [--clients 4] [--max-seconds 300] [--max-requests 40000]
                          [--https] [--pause 0] [--login USER:PASSWORD --ready-file FILE]
With --https it talks TLS to the site's name (which /etc/hosts must point at 127.0.0.1).
Each client alternates a GET /login and a POST /upload (answered 302 by the app without a
session: a POST that must reach gunicorn, which nginx never retries on its own). A request fails
when the connection fails or the answer is not the app's (502/503/504 from nginx). Stops when
STOP_FILE exists or a bound is hit, then writes one JSON object to RESULT_FILE. --pause SECONDS
between one client's requests leaves the container's one core to the deploy the load runs beside
(without it, four clients in a tight loop slow a deploy by minutes).
With --login each client first logs in (retrying while nginx's login limit refuses it), then
alternates GET /dashboard (the uploads listed from the database: 200) and a POST /upload with its
session and CSRF token (a row written: 302); READY_FILE appears once every client is logged in.
"""

import argparse
import http.client
import json
import os
import re
import ssl
import threading
import time

HOST_HEADER = "lernmanager.test"
BODY = b"--lmload\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--lmload--\r\n"


def connect(https):
    if https:
        # The tests check the certificate elsewhere; here only "answered or not" counts.
        return http.client.HTTPSConnection(HOST_HEADER, 443, timeout=30, context=ssl._create_unverified_context())
    return http.client.HTTPConnection("127.0.0.1", 80, timeout=30)


CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


class Session:
    """One logged-in browser: its session cookie and CSRF token."""

    def __init__(self, https):
        self.https, self.cookie, self.token = https, "", ""

    def request(self, method, path, body=None, content_type=None):
        conn = connect(self.https)
        headers = {"Host": HOST_HEADER}
        if self.cookie:
            headers["Cookie"] = self.cookie
        if content_type:
            headers["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        conn.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            if value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        found = CSRF.search(text)
        if found:
            self.token = found.group(1) or found.group(2)
        return response.status

    def login(self, user, password, deadline):
        while time.monotonic() < deadline:
            self.request("GET", "/login")
            form = f"csrf_token={self.token}&username={user}&password={password}".encode()
            if self.request("POST", "/login", form, "application/x-www-form-urlencoded") == 302:
                return self.request("GET", "/dashboard") == 200
            time.sleep(1)  # nginx's limit on password checks: try again
        return False


def upload_body(token):
    return (f"--lmload\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n".encode()
            + BODY)


# What each client asks for in turn, and the answers that count as served: without a session a POST
# that must reach gunicorn (nginx never retries one on its own), with one a row written.
ANONYMOUS = [("GET", "/login", None, {200}), ("POST", "/upload", lambda session: BODY, {302})]
LOGGED_IN = [("GET", "/dashboard", None, {200}), ("POST", "/upload", lambda session: upload_body(session.token), {302})]


def client(args, ready, deadline, budget, results, lock):
    session, steps = Session(args.https), ANONYMOUS
    latencies, failures, count, logged_in = [], [], 0, True
    if args.login:
        steps, logged_in = LOGGED_IN, session.login(*args.login.split(":", 1), deadline)
        if not logged_in:
            failures.append("login failed")
    ready.wait()
    while logged_in and not os.path.exists(args.stop_file) and time.monotonic() < deadline:
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        method, path, body, expected = steps[count % len(steps)]
        count += 1
        start = time.monotonic()
        try:
            status = session.request(method, path, body(session) if body else None,
                                     "multipart/form-data; boundary=lmload" if body else None)
            if status not in expected:
                failures.append(f"{method} {path}: {status}")
        except OSError as error:
            failures.append(f"{method} {path}: {error}")
        latencies.append(time.monotonic() - start)
        if args.pause:
            time.sleep(args.pause)
    with lock:
        results["latencies"].extend(latencies)
        results["failures"].extend(failures)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("stop_file")
    parser.add_argument("result_file")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--max-requests", type=int, default=40000)
    parser.add_argument("--https", action="store_true")
    parser.add_argument("--pause", type=float, default=0)
    parser.add_argument("--login", help="USER:PASSWORD: each client logs in, then reads and writes as that user")
    parser.add_argument("--ready-file", help="with --login: made once every client is logged in")
    args = parser.parse_args()
    results, lock, budget = {"latencies": [], "failures": []}, threading.Lock(), [args.max_requests]
    deadline = time.monotonic() + args.max_seconds
    # With --login every client is logged in before any starts its loop (READY_FILE says so).
    ready = threading.Barrier(args.clients,
                              action=lambda: args.ready_file and open(args.ready_file, "w", encoding="utf-8").close())
    threads = [threading.Thread(target=client, args=(args, ready, deadline, budget, results, lock))
               for _ in range(args.clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lat = sorted(results["latencies"])
    summary = {
        "requests": len(lat),
        "failed": len(results["failures"]),
        "failures": results["failures"][:20],
        "seconds": round(time.monotonic() - started, 1),
        "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 1) if lat else None,
        "max_ms": round(1000 * lat[-1], 1) if lat else None,
    }
    with open(args.result_file + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(summary, handle)
    os.rename(args.result_file + ".tmp", args.result_file)


if __name__ == "__main__":
    main()
