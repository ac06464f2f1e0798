#!/usr/bin/env python3
"""Use the deployed Lernmanager as a browser would, and report what happened as JSON.

Standard library only: it runs inside the test containers with the system python3.

    python3 lm_client.py [--base http://127.0.0.1] [--host-header lernmanager.test] \
        [--user admin] [--password admin] [--insecure] [--cookie-jar FILE] exercise|session|grading

`exercise` logs in (with the CSRF token of the login form), views pages, uploads a file of
random bytes and downloads it again. It prints one JSON object and exits 0 whenever the server
answered, even with unexpected statuses (the tests judge them); it exits 1 when it cannot
reach the server. `session` only asks for /dashboard with the cookies of --cookie-jar (kept
from an earlier `exercise`): 200 means the old session is still valid (same SECRET_KEY).
`grading` posts a multipart body of --size random bytes to /grading/jobs as the admin page does,
logged in first unless --anonymous, and reports the status, headers and body it got back.
"""

import argparse
import hashlib
import http.client
import http.cookiejar
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

UPLOAD_SIZE = 6 * 1024


class NoRedirects(urllib.request.HTTPErrorProcessor):
    """Hand every response back as it is: redirects are followed by Client, error codes are data."""

    def http_response(self, request, response):
        return response

    https_response = http_response


class Client:
    def __init__(self, base, host_header, timeout, insecure=False, cookie_jar=None):
        self.base = base.rstrip("/")
        # Session cookies are "discard" cookies: keep them anyway, a test reuses them later.
        self.cookies = http.cookiejar.MozillaCookieJar(cookie_jar)
        if cookie_jar and os.path.exists(cookie_jar):
            self.cookies.load(ignore_discard=True)
        self.host_header = host_header
        self.timeout = timeout
        # Sent as a browser does (same origin: the full URL of the page before). Flask-WTF's CSRF
        # check refuses a POST over HTTPS without a Referer of the site itself.
        base_parts = urllib.parse.urlsplit(self.base)
        self.origin = f"{base_parts.scheme}://{host_header or base_parts.netloc}"
        self.referer = None
        context = ssl.create_default_context()
        if insecure:
            # The test beds use self-signed certificates.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), NoRedirects(),
            urllib.request.HTTPSHandler(context=context))

    def request(self, method, path, body=None, headers=None, follow=True):
        """Return (status, final path, body bytes, headers); redirects stay on --base."""
        for _ in range(10):
            req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
            if self.host_header:
                req.add_header("Host", self.host_header)
            if self.referer:
                req.add_header("Referer", self.referer)
            with self.opener.open(req, timeout=self.timeout) as response:
                status, data, response_headers = response.status, response.read(), response.headers
            location = response_headers.get("Location")
            if not (follow and status in (301, 302, 303, 307, 308) and location):
                self.referer = self.origin + path
                return status, path, data, response_headers
            # Only the path of a Location is used, so that every request goes to --base.
            target = urllib.parse.urlsplit(urllib.parse.urljoin(path, location))
            path = target.path + (f"?{target.query}" if target.query else "")
            if status in (301, 302, 303):
                method, body, headers = "GET", None, None
        raise RuntimeError(f"too many redirects at {path}")


def csrf_token(html):
    """The value of the hidden csrf_token input (attribute order as WTForms or a template writes it)."""
    for tag in re.findall(r"<input\b[^>]*>", html):
        if re.search(r'\bname="csrf_token"', tag):
            match = re.search(r'\bvalue="([^"]*)"', tag)
            if match:
                return match.group(1)
    return ""


def multipart(fields, file_field, filename, content):
    boundary = "----lmclient" + os.urandom(12).hex()
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def exercise(client, user, password):
    pages = {}
    status, _, body, _ = client.request("GET", "/login")
    pages["/login"] = status
    token = csrf_token(body.decode("utf-8", "replace"))

    form = urllib.parse.urlencode({"csrf_token": token, "username": user, "password": password}).encode()
    status, final_path, _, _ = client.request(
        "POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
    logged_in = status == 200 and final_path == "/dashboard"

    status, _, body, _ = client.request("GET", "/dashboard", follow=False)
    pages["/dashboard"] = status
    # The session is renewed at login, so the token for the upload comes from the dashboard.
    token = csrf_token(body.decode("utf-8", "replace")) or token
    status, _, _, _ = client.request("GET", "/datenschutz")
    pages["/datenschutz"] = status
    status, _, body, _ = client.request("GET", "/report.pdf", follow=False)
    pages["/report.pdf"] = status if body.startswith(b"%PDF-") else -status  # negative: not a PDF

    content = os.urandom(UPLOAD_SIZE)
    data, content_type = multipart({"csrf_token": token}, "file", "arbeitsblatt.bin", content)
    status, _, body, _ = client.request(
        "POST", "/upload", data,
        {"Content-Type": content_type, "Accept": "application/json", "X-CSRFToken": token}, follow=False)
    pages["/upload"] = status
    try:
        stored_name = json.loads(body).get("stored_name", "")
    except ValueError:
        stored_name = ""

    download_status, download_sha256 = 0, ""
    if stored_name:
        download_status, _, body, _ = client.request(
            "GET", "/files/" + urllib.parse.quote(stored_name), follow=False)
        download_sha256 = hashlib.sha256(body).hexdigest()

    return {
        "logged_in": logged_in,
        "stored_name": stored_name,
        "upload_sha256": hashlib.sha256(content).hexdigest(),
        "download_sha256": download_sha256,
        "download_status": download_status,
        "pages": pages,
    }


def login(client, user, password):
    _, _, body, _ = client.request("GET", "/login")
    form = urllib.parse.urlencode({"csrf_token": csrf_token(body.decode("utf-8", "replace")),
                                   "username": user, "password": password}).encode()
    status, final_path, _, _ = client.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
    return status == 200 and final_path == "/dashboard"


def grading(client, user, password, size, anonymous, pause):
    logged_in = False if anonymous else login(client, user, password)
    content = os.urandom(size)
    data, content_type = multipart({"student_list": "7a"}, "archive", "scans.zip", content)
    headers = {"Content-Type": content_type, "Content-Length": str(len(data))}
    body = data
    if pause:
        # Half the body, a pause, the rest: as a slow school line sends a large upload.
        def slowly():
            yield data[:len(data) // 2]
            time.sleep(pause)
            yield data[len(data) // 2:]
        body = slowly()
    status, _, body, headers = client.request("POST", "/grading/jobs", body, headers, follow=False)
    return {"logged_in": logged_in, "status": status, "body": body.decode("utf-8", "replace"),
            "headers": dict(headers.items()), "sent_length": len(data), "sent_sha256": hashlib.sha256(data).hexdigest()}


def session(client):
    status, _, _, _ = client.request("GET", "/dashboard", follow=False)
    return {"dashboard_status": status}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1", help="scheme://host[:port] of the site")
    parser.add_argument("--host-header", default="", help="Host header to send (the site's server_name)")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    parser.add_argument("--cookie-jar", help="load cookies from and save them to this file")
    parser.add_argument("--size", type=int, default=UPLOAD_SIZE, help="grading: bytes of the uploaded file")
    parser.add_argument("--anonymous", action="store_true", help="grading: without logging in")
    parser.add_argument("--pause", type=float, default=0, help="grading: seconds to wait halfway through the body")
    parser.add_argument("command", choices=["exercise", "session", "grading"])
    args = parser.parse_args()

    client = Client(args.base, args.host_header, args.timeout, args.insecure, args.cookie_jar)
    try:
        if args.command == "exercise":
            result = exercise(client, args.user, args.password)
        elif args.command == "grading":
            result = grading(client, args.user, args.password, args.size, args.anonymous, args.pause)
        else:
            result = session(client)
        if args.cookie_jar:
            client.cookies.save(ignore_discard=True)
    except (urllib.error.URLError, http.client.HTTPException, OSError, RuntimeError) as exc:
        print(f"lm_client: cannot talk to {args.base}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
