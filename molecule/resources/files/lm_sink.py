"""An HTTP sink for the role's alerts and pings (molecule/default): answers every GET and POST with
200 and appends each request to a file as a JSON line {method, path, body, content_type}.

    python3 lm_sink.py PORT LOG"""

import http.server
import json
import sys


class Sink(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the standard library's name)
        self.record(b"")

    def do_POST(self):  # noqa: N802
        self.record(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def record(self, body):
        with open(sys.argv[2], "a", encoding="utf-8") as log:
            log.write(json.dumps({"method": self.command, "path": self.path, "body": body.decode(errors="replace"),
                                  "content_type": self.headers.get("Content-Type", "")}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
