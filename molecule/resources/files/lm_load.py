"""Requests in a loop against 127.0.0.1 through nginx while a deploy runs; stdlib only.

Usage: python3 lm_load.py STOP_FILE RESULT_FILE [--clients 4] [--max-seconds 300] [--max-requests 40000]
                          [--https] [--pause 0]
With --https it talks TLS to the site's name (which /etc/hosts must point at 127.0.0.1).
Each client alternates a GET /login and a POST /upload (answered 302 by the app without a
session: a POST that must reach gunicorn, which nginx never retries on its own). A request fails
when the connection fails or the answer is not the app's (502/503/504 from nginx). Stops when
STOP_FILE exists or a bound is hit, then writes one JSON object to RESULT_FILE. --pause SECONDS
between one client's requests leaves the container's one core to the deploy the load runs beside
(without it, four clients in a tight loop slow a deploy by minutes).
"""

import argparse
import http.client
import json
import os
import ssl
import threading
import time

HOST_HEADER = "lernmanager.test"
EXPECTED = {("GET", "/login"): {200}, ("POST", "/upload"): {302}}
BODY = b"--lmload\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--lmload--\r\n"


def connect(https):
    if https:
        # The tests check the certificate elsewhere; here only "answered or not" counts.
        return http.client.HTTPSConnection(HOST_HEADER, 443, timeout=30, context=ssl._create_unverified_context())
    return http.client.HTTPConnection("127.0.0.1", 80, timeout=30)


def client(stop_file, deadline, budget, results, lock, https, pause):
    latencies, failures, count = [], [], 0
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        method, path = ("GET", "/login") if count % 2 == 0 else ("POST", "/upload")
        count += 1
        start = time.monotonic()
        try:
            conn = connect(https)
            headers = {"Host": HOST_HEADER}
            body = None
            if method == "POST":
                headers["Content-Type"] = "multipart/form-data; boundary=lmload"
                body = BODY
            conn.request(method, path, body=body, headers=headers)
            status = conn.getresponse().status
            conn.close()
            if status not in EXPECTED[(method, path)]:
                failures.append(f"{method} {path}: {status}")
        except OSError as error:
            failures.append(f"{method} {path}: {error}")
        latencies.append(time.monotonic() - start)
        if pause:
            time.sleep(pause)
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
    args = parser.parse_args()
    results, lock, budget = {"latencies": [], "failures": []}, threading.Lock(), [args.max_requests]
    deadline = time.monotonic() + args.max_seconds
    threads = [threading.Thread(target=client, args=(args.stop_file, deadline, budget, results, lock, args.https,
                                                        args.pause))
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
