"""The site in a real browser (headless Chromium through scripts/browser_check.py), which sees what
an HTTP client cannot: a `Secure` session cookie over plain HTTP, a Content-Security-Policy or a
header that blocks the app's scripts, styles or icons, a redirect loop. First the check itself
must fail on each of these, on a small local site made to have them; then the admin logs in
through nginx on each host, the page the login leads to loads cleanly, and a file goes up through
the page's own upload script and comes back through nginx's X-Accel-Redirect.

Changes the hosts: one upload through the page."""

import http.server
import os
import sys
import threading

import pytest

from lm_testlib import REPO, SERVER_NAME, container_address

sys.path.insert(0, os.path.join(REPO, "scripts"))
import browser_check  # noqa: E402  (scripts/ is not a package)

LOGIN_FORM = (b'<!DOCTYPE html><title>Anmeldung</title>%s<form method="post" action="/login">'
              b'<input name="username" autocomplete="username"><input type="password" name="password">'
              b'<button type="submit">Anmelden</button></form>')
FAULTS = {
    # What the broken site does wrong, and the words of the problem the check must report.
    "secure-cookie-over-http": "still on http://broken.test",
    "csp-blocks-the-script": "Content Security Policy",
    "missing-icon": "missing.svg did not load",
    "style-blocked-by-nosniff": "stylesheet",
}


class BrokenSite(http.server.BaseHTTPRequestHandler):
    """A login page and a page behind it, broken in the one way the server's `fault` says."""

    def do_GET(self):
        fault, logged_in = self.server.fault, "session=1" in self.headers.get("Cookie", "")
        if self.path == "/app.js":
            return self.answer(200, b"document.title += ' (script ran)';", "text/javascript")
        if self.path == "/style.css":
            # With nosniff, a stylesheet served as text/plain is refused.
            kind = "text/plain" if fault == "style-blocked-by-nosniff" else "text/css"
            return self.answer(200, b"body { margin: 0 }", kind, {"X-Content-Type-Options": "nosniff"})
        if self.path == "/dashboard" and logged_in:
            head = b'<link rel="stylesheet" href="/style.css"><script src="/app.js"></script>'
            if fault == "missing-icon":
                head += b'<img src="/missing.svg" alt="">'
            headers = {"Content-Security-Policy": "script-src 'none'"} if fault == "csp-blocks-the-script" else {}
            return self.answer(200, b"<!DOCTYPE html><title>Dashboard</title>" + head, "text/html", headers)
        if self.path == "/login":
            return self.answer(200, LOGIN_FORM % b"", "text/html")
        return self.answer(302, b"", "text/html", {"Location": "/login"})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        secure = "; Secure" if self.server.fault == "secure-cookie-over-http" else ""
        self.answer(302, b"", "text/html", {"Location": "/dashboard", "Set-Cookie": f"session=1; HttpOnly; Path=/{secure}"})

    def answer(self, status, body, kind, headers=None):
        self.send_response(status)
        for name, value in {"Content-Type": kind, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def broken_site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BrokenSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.mark.parametrize("fault", [None, *FAULTS])
def test_the_browser_check_reports_what_a_browser_refuses(broken_site, fault):
    broken_site.fault = fault
    # A name, not 127.0.0.1: a browser trusts a loopback address as it trusts HTTPS (Secure cookies too).
    problems, _ = browser_check.check(f"http://broken.test:{broken_site.server_port}", "admin", "secret",
                                      resolve=("broken.test", "127.0.0.1"))
    if fault is None:
        assert problems == []
    else:
        assert any(FAULTS[fault] in problem for problem in problems), problems


def test_the_admin_uses_the_site_in_a_real_browser(host):
    problems, summary = browser_check.check(f"http://{SERVER_NAME}", "admin", "admin", upload=True,
                                            resolve=(SERVER_NAME, container_address(host)))
    assert problems == []
    # Plain HTTP (a .test name): the session cookie must not be Secure, or the browser drops it.
    assert "cookies: session (not Secure, HttpOnly)" in summary, summary
