#!/usr/bin/env python3
"""Log in to a deployed Lernmanager as a browser does, and say what happened in one line.

Usage: python3 scripts/demo_login.py URL USERNAME PASSWORD_FILE

GET URL/login for the form's CSRF token and the session cookie, POST the credentials, follow the
redirect with the cookie: the login worked when it leads away from /login to a page without the
login form. Works with the real app and the stand-in (both use Flask-WTF's csrf_token field).
Exit status 0 when logged in, 1 otherwise (with the reason). Standard library only: the demo's
controller needs nothing installed for it.
"""

import http.cookiejar
import re
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """The login's own answer (302 and where to) is what we want to see, not the page after it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def csrf_token(page):
    field = re.search(r'<input[^>]*name="csrf_token"[^>]*>', page)
    value = re.search(r'value="([^"]*)"', field.group(0)) if field else None
    return value.group(1) if value else None


def log_in(base, username, password):
    """One line for a person; raises SystemExit(1) with the reason when the login fails."""
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies), NoRedirect)

    def fetch(path, form=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with opener.open(urllib.request.Request(base + path, data=data), timeout=30) as response:
                return response.status, response.headers, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:  # 3xx (not followed), 4xx and 5xx alike
            return error.code, error.headers, error.read().decode("utf-8", "replace")

    status, _, page = fetch("/login")
    if status != 200:
        raise SystemExit(f"login FAILED: GET {base}/login answered {status}")
    token = csrf_token(page)
    if token is None:
        raise SystemExit(f"login FAILED: {base}/login has no form with a csrf_token field")
    status, headers, _ = fetch("/login", {"csrf_token": token, "username": username, "password": password})
    target = urllib.parse.urljoin(base + "/login", headers.get("Location") or "")
    path = urllib.parse.urlsplit(target).path
    if status not in (302, 303) or path.rstrip("/") in ("", "/login"):
        raise SystemExit(f"login FAILED: POST {base}/login as {username} answered {status}"
                         + (f" to {path}" if headers.get("Location") else "") + " (wrong password?)")
    status_after, _, page = fetch(path)
    if status_after != 200 or 'name="password"' in page:
        raise SystemExit(f"login FAILED: after POST /login -> {status} {path}, GET {path} answered {status_after}"
                         + (" with the login form" if 'name="password"' in page else ""))
    return f"logged in as {username}: POST /login -> {status} {path}, GET {path} -> 200"


def main(argv):
    if len(argv) != 4:
        raise SystemExit(__doc__.strip().splitlines()[2])
    base, username, password_file = argv[1].rstrip("/"), argv[2], argv[3]
    with open(password_file, encoding="utf-8") as handle:
        password = handle.read().strip()
    print(log_in(base, username, password))


if __name__ == "__main__":
    main(sys.argv)
