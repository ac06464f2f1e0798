#!/usr/bin/env python3
"""Peak memory of one request: how much a gunicorn worker grows while it answers it.

Runs inside the VPS container as root (it reads /proc of the service's processes); standard
library only. For each workload it restarts lernmanager.service (a fresh worker: memory that an
earlier request left in Python's or glibc's free lists would hide the peak), logs in, resets the
kernel's high-water mark of every process of the unit (clear_refs 5), sends the request once and
reads VmHWM again. Peak = VmHWM after − VmRSS before, for the process that grew most.

    request_peak.py [--base http://127.0.0.1] [--host-header lernmanager.test] [--user admin]
                    [--password admin] [--reps 3] WORKLOAD...

A WORKLOAD is NAME=METHOD:PATH[:UPLOAD_MIB[:FIELD[:FILENAME]]], e.g.
    login=LOGIN                         the login POST itself (one password check)
    report=GET:/report.pdf
    upload=POST:/upload:63:file:big.bin (a multipart body with a file of 63 MiB of random bytes and
                                        the CSRF token of --form-page)
Prints one JSON object: {name: {"peak_mib": max over reps, "runs": [...], "status": last}}.
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import time
import urllib.parse
import uuid

SERVICE = "lernmanager.service"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def unit_pids(unit):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cgroup") as handle:
                    if any(line.strip().rsplit(":", 1)[-1].endswith("/" + unit) for line in handle):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Browser:
    """A browser with one cookie jar, talking to nginx on loopback."""

    def __init__(self, base, host_header):
        url = urllib.parse.urlsplit(base)
        self.host, self.port, self.host_header, self.cookies = url.hostname, url.port or 80, host_header, {}

    def request(self, method, path, body=None, content_type=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        headers = {"Host": self.host_header}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if content_type:
            headers["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        conn.close()
        return response.status, data

    def login_form(self, user, password):
        status, page = self.request("GET", "/login")
        match = CSRF.search(page.decode("utf-8", "replace"))
        form = {"username": user, "password": password}
        if match:
            form["csrf_token"] = match.group(1) or match.group(2)
        self.csrf = form.get("csrf_token")
        return urllib.parse.urlencode(form)

    def login(self, user, password):
        return self.request("POST", "/login", self.login_form(user, password),
                            "application/x-www-form-urlencoded")[0]


def multipart(field, filename, size_mib, csrf):
    boundary = uuid.uuid4().hex
    parts = []
    if csrf:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                 'Content-Type: application/octet-stream\r\n\r\n'.encode())
    parts.append(os.urandom(size_mib * 1024 * 1024))
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def wait_ready(browser):
    for _ in range(120):
        try:
            if browser.request("GET", "/login")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit("the site did not answer GET /login within 30 s after a restart")


def one_run(args, spec):
    method, _, rest = spec.partition(":")
    subprocess.run(["systemctl", "restart", SERVICE], check=True)
    browser = Browser(args.base, args.host_header)
    wait_ready(browser)
    if method == "LOGIN":
        body = browser.login_form(args.user, args.password)
        send = lambda: browser.request("POST", "/login", body, "application/x-www-form-urlencoded")  # noqa: E731
    else:
        if browser.login(args.user, args.password) not in (302, 303):
            raise SystemExit(f"login as {args.user} failed: check --user/--password")
        path, _, upload = rest.partition(":")
        if upload:
            # A form's CSRF token of the logged-in session (the login starts a new session).
            page = browser.request("GET", args.form_page)[1].decode("utf-8", "replace")
            match = CSRF.search(page)
            browser.csrf = (match.group(1) or match.group(2)) if match else None
            size, _, more = upload.partition(":")
            field, _, filename = more.partition(":")
            body, content_type = multipart(field or "file", filename or "upload.bin", int(size), browser.csrf)
        else:
            body, content_type = None, None
        send = lambda: browser.request(method, path, body, content_type)  # noqa: E731
    time.sleep(1)  # let start-up work (the analytics writer's first batch) settle
    pids = unit_pids(SERVICE)
    before = {}
    for pid in pids:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current RSS
        before[pid] = status_kib(pid, "VmRSS")
    status, _ = send()
    growth = {pid: status_kib(pid, "VmHWM") - rss for pid, rss in before.items() if os.path.exists(f"/proc/{pid}")}
    return status, max(growth.values()) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1")
    parser.add_argument("--host-header", default="lernmanager.test")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--form-page", default="/dashboard",
                        help="a page with a form of the logged-in user, for an upload's CSRF token")
    parser.add_argument("workloads", nargs="+")
    args = parser.parse_args()
    results = {}
    for item in args.workloads:
        name, _, spec = item.partition("=")
        runs = [one_run(args, spec) for _ in range(args.reps)]
        results[name] = {"peak_mib": round(max(peak for _, peak in runs), 1),
                         "runs_mib": [round(peak, 1) for _, peak in runs],
                         "status": runs[-1][0]}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
