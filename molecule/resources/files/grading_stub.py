#!/usr/bin/env python3
"""A stand-in grading service: records every request it receives, one JSON line each, and answers
as the real service's job endpoints do (a job id), with two headers a hostile service could add
(a cookie for the school's origin, an X-Accel-Redirect). Standard library only; runs in the test
containers.

    python3 grading_stub.py PORT LOG

Each line of LOG: method, path, headers (names lower-case), the body's length and sha256, and
whether it came chunked (nginx streams a body without a length that way), and when its
head and the end of its body arrived.
"""

import hashlib
import http.server
import json
import sys
import threading
import time

LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def body(self):
        digest, length = hashlib.sha256(), 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunk = self.rfile.read(size)
                self.rfile.readline()
                digest.update(chunk)
                length += len(chunk)
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                digest.update(chunk)
                length += len(chunk)
                remaining -= len(chunk)
        return length, digest.hexdigest()

    def answer(self):
        # When the request's head arrived and when its body was complete: an upload streamed by nginx
        # arrives as the browser sends it, a buffered one all at once.
        head_at = time.time()
        length, sha256 = self.body()
        record = {"method": self.command, "path": self.path, "body_length": length, "body_sha256": sha256,
                  "head_at": head_at, "body_done_at": time.time(),
                  "chunked": self.headers.get("Transfer-Encoding", "").lower() == "chunked",
                  "headers": {name.lower(): value for name, value in self.headers.items()}}
        with LOCK, open(self.server.log, "a", encoding="utf-8") as log:
            log.write(json.dumps(record, sort_keys=True) + "\n")
        reply = json.dumps({"job_id": "job-1", "received": length}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        # A hostile (or broken) service: nginx must not hand the school's browser a cookie of the
        # school's origin, nor follow the service into the school's protected files.
        self.send_header("Set-Cookie", "session=from-the-grading-service; Path=/")
        self.send_header("X-Accel-Redirect", "/protected-files/planted.txt")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = answer

    def log_message(self, *args):
        pass


def main():
    port, log = int(sys.argv[1]), sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.log = log
    server.serve_forever()


if __name__ == "__main__":
    main()
