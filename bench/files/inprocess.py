#!/usr/bin/env python3
"""The app's own ceiling: its WSGI callable driven in this process, on one core, with no sockets
and no server, by the same logged-in sessions and requests as the load test.

Usage (in the app's directory, with the app's environment and venv):
  python3 inprocess.py [--school school.json] [--workloads dashboard,class,login] [--requests 300]
                       [--clients 30] [--threads 30] [--cpu 0] [--app real|standin]

Each client logs in as a browser does (GET /login for the CSRF token, POST the credentials) and
keeps its own session; 30 threads ask at once (--threads), each with its client, as wrk's 30
connections do, with the same Accept-Encoding. Prints one JSON object:
per workload the requests, seconds, requests per second, p50/p99 in ms, failures and statuses.
--school is school_seed.py's output (pupils and classes); without it (the stand-in) every client
is the admin. init_app() runs first, as in every worker, so the analytics thread records page views.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time

from sessions import form_token  # beside this file, here and in the VPS

# What each workload asks, by app: (who, method, path). {klasse} is a class id of the school.
WORKLOADS = {
    "real": {
        "dashboard": ("pupil", "GET", "/schueler"),  # a pupil's dashboard
        "class": ("admin", "GET", "/admin/klasse/{klasse}"),  # a teacher's class overview
        "login": ("pupil", "POST", "/login"),
        # The teacher adds a 200 KB PDF to a topic's materials (the form of /admin/thema/<id>).
        "upload": ("admin", "UPLOAD", "/admin/thema/{topic}/material-upload"),
    },
    "standin": {
        "dashboard": ("admin", "GET", "/dashboard"),
        "login": ("admin", "POST", "/login"),
    },
}
# The answer that counts as success: a page, or the login's redirect.
EXPECTED = {"GET": 200, "POST": 302, "UPLOAD": 302}
ACCEPT = {"Accept-Encoding": "gzip, br"}
# Random bytes, as a scanned PDF is already compressed; made once, outside the timing.
UPLOAD = b"%PDF-1.4\n" + os.urandom(200 * 1024 - 9)


class Client:
    """One browser: its own cookie jar (Flask's test client keeps it) and credentials. It has the
    login form (its CSRF token) and, unless `log_in` is false, has logged in."""

    def __init__(self, wsgi_app, username, password, log_in=True):
        self.http = wsgi_app.test_client()
        self.form = {"username": username, "password": password}
        self.upload = None
        self.form["csrf_token"] = form_token(self.http.get("/login").get_data(as_text=True))
        if log_in:
            answer = self.http.post("/login", data=self.form)
            if answer.status_code != 302 or answer.headers["Location"].rstrip("/").endswith("/login"):
                raise SystemExit(f"inprocess: {username} could not log in ({answer.status_code})")

    def ask(self, method, path):
        """One timed request, with what wrk and browsers send: the app compresses as for them."""
        if method == "POST":
            return self.http.post(path, data=self.form, headers=ACCEPT)
        if method == "UPLOAD":
            # The form with the token the topic's page hands this session, encoded once (as
            # wrk's is, files/sessions.lua): the timing is the app's, not the encoding's.
            if self.upload is None:
                page = self.http.get(path.rsplit("/", 1)[0]).get_data(as_text=True)
                self.upload = multipart(form_token(page))
            content_type, body = self.upload
            return self.http.post(path, content_type=content_type, headers=ACCEPT, data=body)
        return self.http.get(path, headers=ACCEPT)


def multipart(token):
    """The upload form as a browser sends it, the same fields and boundary as files/sessions.lua."""
    boundary = "----benchboundary7e3f"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"beschreibung\"\r\n\r\nbench upload\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n")
    return f"multipart/form-data; boundary={boundary}", head.encode() + UPLOAD + f"\r\n--{boundary}--\r\n".encode()


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(clients, school, method, path, requests, threads):
    """REQUESTS requests by THREADS threads at once (as many as a server gets from that many
    connections): request n is asked by clients[n % len(clients)] in thread n % THREADS, so with
    one client per thread no client is shared. One core and the GIL: the threads overlap only
    where the app waits (its database's fsync, the analytics thread), as a server's threads do."""
    classes, topics = school["classes"], school.get("topics") or [0]
    threads = max(1, min(threads, len(clients), requests))
    latencies, statuses, lock = [], {}, threading.Lock()

    def work(first):
        for number in range(first, requests, threads):
            klasse = classes[number % len(classes)] if classes else 0
            began = time.perf_counter()
            answer = clients[number % len(clients)].ask(method, path.format(klasse=klasse, topic=topics[0]))
            took = time.perf_counter() - began
            answer.close()
            with lock:
                latencies.append(took)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

    workers = [threading.Thread(target=work, args=(first,)) for first in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - start
    return {"requests": requests, "threads": threads, "seconds": round(seconds, 3), "rps": round(requests / seconds, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 2), "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "failures": requests - statuses.get(EXPECTED[method], 0), "statuses": statuses}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--school", help="school_seed.py's JSON (the real app)")
    parser.add_argument("--app", choices=sorted(WORKLOADS), help="default: real with --school, else standin")
    parser.add_argument("--workloads", help="comma-separated; default: all of the app's")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=30, help="sessions of pupils, and of the admin")
    parser.add_argument("--threads", type=int, default=30,
                        help="requests at once (default: one per client, as wrk's connections); 1: one after another")
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
    # One session per client, as in the load test: the admin (the teacher) logged in N times, and
    # pupils spread over the classes (every n-th of the school).
    admin = [Client(wsgi_app, "admin", args.admin_password) for _ in range(args.clients)]
    spread = school["pupils"][::max(1, len(school["pupils"]) // args.clients)][:args.clients]
    pupils = [Client(wsgi_app, pupil["username"], school["password"]) for pupil in spread] or admin
    results = {}
    for name in names:
        who, method, path = WORKLOADS[kind][name]
        clients = pupils if who == "pupil" else admin
        # Untimed first: each client once (caches, lazy imports, the upload form's token).
        warm_up = min(max(20, len(clients)), args.requests)
        if path == "/login":
            # A login is one POST of a form a browser has just fetched (an app may clear the session,
            # and its CSRF token, on login): a fresh browser per request, its GET outside the timing.
            accounts = [(c.form["username"], c.form["password"]) for c in clients]
            fresh = [Client(wsgi_app, *accounts[n % len(accounts)], log_in=False) for n in range(warm_up + args.requests)]
            warm_clients, clients = fresh[:warm_up], fresh[warm_up:]
        else:
            warm_clients = clients
        # Logins one at a time: a hash is pure CPU (threads gain nothing on one core), and 30 scrypt
        # hashes at once take 30 × 16 MiB, which killed this process on the 1 GB VPS: the role's
        # gunicorn.conf.py bounds the hashes at once for that reason.
        threads = 1 if path == "/login" else args.threads
        run(warm_clients, school, method, path, warm_up, threads)
        results[name] = run(clients, school, method, path, args.requests, threads)
    print(json.dumps({"app": kind, "clients": len(pupils), "threads": args.threads, "cpu": args.cpu,
                      "workloads": results}))


if __name__ == "__main__":
    main()
