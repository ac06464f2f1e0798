#!/usr/bin/env python3
"""The app's own ceiling: its WSGI callable driven in this process, on one core, with no sockets
and no server, by the same logged-in sessions and requests as the load test.

Usage (in the app's directory, with the app's environment and venv):
  python3 inprocess.py [--school school.json] [--workloads dashboard,class,login] [--requests 300]
                       [--clients 30] [--cpu 0] [--app real|standin]

Each client logs in as a browser does (GET /login for the CSRF token, POST the credentials) and
keeps its own session; the requests of a workload go to the clients in turn. Prints one JSON object:
per workload the requests, seconds, requests per second, p50/p99 in ms, failures and statuses.
--school is school_seed.py's output (pupils and classes); without it (the stand-in) every client
is the admin. init_app() runs first, as in every worker, so the analytics thread records page views.
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

# What each workload asks, by app: (who, method, path). {klasse} is a class id of the school.
WORKLOADS = {
    "real": {
        "dashboard": ("pupil", "GET", "/schueler"),  # a pupil's dashboard
        "class": ("admin", "GET", "/admin/klasse/{klasse}"),  # a teacher's class overview
        "login": ("pupil", "POST", "/login"),
    },
    "standin": {
        "dashboard": ("admin", "GET", "/dashboard"),
        "login": ("admin", "POST", "/login"),
    },
}
# The answer that counts as success: a page, or the login's redirect.
EXPECTED = {"GET": 200, "POST": 302}


def csrf_token(page):
    field = re.search(r'<input[^>]*name="csrf_token"[^>]*>', page)
    return re.search(r'value="([^"]*)"', field.group(0)).group(1)


class Client:
    """One browser: its own cookie jar (Flask's test client keeps it) and credentials. It has the
    login form (its CSRF token) and, unless `log_in` is false, has logged in."""

    def __init__(self, wsgi_app, username, password, log_in=True):
        self.http = wsgi_app.test_client()
        self.form = {"username": username, "password": password}
        self.form["csrf_token"] = csrf_token(self.http.get("/login").get_data(as_text=True))
        if log_in:
            answer = self.http.post("/login", data=self.form)
            if answer.status_code != 302 or answer.headers["Location"].rstrip("/").endswith("/login"):
                raise SystemExit(f"inprocess: {username} could not log in ({answer.status_code})")

    def ask(self, method, path):
        if method == "POST":
            return self.http.post(path, data=self.form)
        return self.http.get(path)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(clients, classes, method, path, requests):
    latencies, statuses = [], {}
    start = time.perf_counter()
    for number in range(requests):
        client = clients[number % len(clients)]
        began = time.perf_counter()
        answer = client.ask(method, path.format(klasse=classes[number % len(classes)] if classes else 0))
        latencies.append(time.perf_counter() - began)
        answer.close()
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    seconds = time.perf_counter() - start
    return {"requests": requests, "seconds": round(seconds, 3), "rps": round(requests / seconds, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 2), "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "failures": requests - statuses.get(EXPECTED[method], 0), "statuses": statuses}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--school", help="school_seed.py's JSON (the real app)")
    parser.add_argument("--app", choices=sorted(WORKLOADS), help="default: real with --school, else standin")
    parser.add_argument("--workloads", help="comma-separated; default: all of the app's")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    parser.add_argument("--admin-password", default=os.environ.get("LERNMANAGER_ADMIN_PASSWORD", "admin"))
    args = parser.parse_args()
    kind = args.app or ("real" if args.school else "standin")
    names = args.workloads.split(",") if args.workloads else list(WORKLOADS[kind])
    unknown = [name for name in names if name not in WORKLOADS[kind]]
    if unknown:
        raise SystemExit(f"inprocess: no workload {', '.join(unknown)} for the {kind} app; it has {', '.join(WORKLOADS[kind])}")
    school = {"pupils": [], "classes": [], "password": ""}
    if args.school:
        with open(args.school, encoding="utf-8") as handle:
            school = json.load(handle)
    os.sched_setaffinity(0, {args.cpu})
    sys.path.insert(0, os.getcwd())
    import app as lernmanager  # pylint: disable=import-outside-toplevel  (the app's directory is known only now)
    lernmanager.init_app()
    wsgi_app = lernmanager.app
    admin = [Client(wsgi_app, "admin", args.admin_password)]
    # Pupils spread over the classes: every n-th of the school.
    spread = school["pupils"][::max(1, len(school["pupils"]) // args.clients)][:args.clients]
    pupils = [Client(wsgi_app, pupil["username"], school["password"]) for pupil in spread] or admin
    results = {}
    warm_up = min(20, args.requests)
    for name in names:
        who, method, path = WORKLOADS[kind][name]
        clients = pupils if who == "pupil" else admin
        if path == "/login":
            # A login is one POST of a form a browser has just fetched (an app may clear the session,
            # and its CSRF token, on login): a fresh browser per request, its GET outside the timing.
            accounts = [(c.form["username"], c.form["password"]) for c in clients]
            fresh = [Client(wsgi_app, *accounts[n % len(accounts)], log_in=False) for n in range(warm_up + args.requests)]
            warm_clients, clients = fresh[:warm_up], fresh[warm_up:]
        else:
            warm_clients = clients
        run(warm_clients, school["classes"], method, path, warm_up)  # caches, lazy imports
        results[name] = run(clients, school["classes"], method, path, args.requests)
    print(json.dumps({"app": kind, "clients": len(pupils), "cpu": args.cpu, "workloads": results}))


if __name__ == "__main__":
    main()
