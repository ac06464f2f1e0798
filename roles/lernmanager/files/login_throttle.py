# Installed by the lernmanager role beside gunicorn.conf.py, which wraps the app in it in every worker.
"""Failed password checks, counted per client, refused beyond a budget: the app itself unchanged.

nginx limits how many password POSTs one client may send (a school behind one NAT address logs in
a whole class at once). This counts what nginx cannot see, the checks that FAILED, and refuses a
client that keeps failing before its request reaches the app (no hash, no thread held), while a
school's successful logins from the same address never count:

- per client: an IPv4 address, or the /64 of an IPv6 address (one household's or school's
  network; whoever holds a /64 holds 2^64 addresses);
- per client and user name (the login form's `username`): one pupil mistyping stops only there.

Each budget is a leaky bucket: a failure adds one, the bucket empties at `budget` per `window`
seconds, and a full bucket refuses with 429 until it has room again. A check failed when the app
shows the form again (any 2xx or 4xx) or redirects back to the same path; a redirect elsewhere is
a success. The checks of one user name from one client run one after another (they wait for the
hash slot anyway): each sees the failures before it, so the app sees exactly that budget (a storm
of 300 wrong passwords let 41 reach the app while they only queued for the hash). The counts live
in each worker's memory: each worker takes its share of the budget.
"""

import contextlib
import io
import ipaddress
import math
import sys
import threading
import time
import urllib.parse

# Bodies up to this size are read to find the user name; larger ones are counted per client only.
MAX_FORM_BYTES = 16384
# Clients remembered per worker: beyond it, the ones with the emptiest buckets are forgotten first.
MAX_TRACKED = 20000
REDIRECTS = {301, 302, 303, 307, 308}
REFUSED_PAGE = """<!doctype html>
<html lang="de"><head><meta charset="utf-8"><title>Zu viele Fehlversuche</title></head>
<body><h1>Zu viele Fehlversuche</h1>
<p>Von dieser Adresse kamen zu viele falsche Passw&ouml;rter. Bitte in {minutes} Minute(n) erneut versuchen.</p>
<p lang="en">Too many wrong passwords from this address: please try again in {minutes} minute(s).</p>
</body></html>
"""


def client_key(environ):
    """The client nginx names in X-Real-IP (only nginx reaches gunicorn): an IPv4 address, or an
    IPv6 address's /64; REMOTE_ADDR when the header is missing or not an address."""
    text = environ.get("HTTP_X_REAL_IP") or environ.get("REMOTE_ADDR") or ""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return text[:64]
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def check_failed(status, location, path):
    """Whether a password POST to `path` failed, from the app's answer."""
    if status >= 500 or status == 429:
        return False  # the app broke or something else refused: not the password
    if status in REDIRECTS:
        return urllib.parse.urlsplit(location or "").path == path
    return True


class Buckets:
    """Leaky buckets by key: `budget` failures, emptied at `budget` per `window` seconds."""

    def __init__(self, budget, window):
        self.budget, self.rate = budget, budget / window
        self.levels = {}  # key -> (level, when)

    def level(self, key, now):
        level, when = self.levels.get(key, (0.0, now))
        return max(0.0, level - (now - when) * self.rate)

    def wait(self, key, now):
        """Seconds until the key may try again (0: now)."""
        excess = self.level(key, now) - (self.budget - 1)
        return 0 if excess <= 0 else math.ceil(excess / self.rate)

    def add(self, key, now):
        self.levels[key] = (self.level(key, now) + 1, now)
        if len(self.levels) > MAX_TRACKED:
            self.forget(now)

    def forget(self, now):
        kept = sorted(self.levels, key=lambda key: self.level(key, now), reverse=True)[:MAX_TRACKED // 2]
        self.levels = {key: self.levels[key] for key in kept if self.level(key, now) > 0}


class FailedLoginThrottle:
    """WSGI middleware around the app: see the module's docstring."""

    def __init__(self, app, paths, per_client, per_user, window, workers=1, clock=time.monotonic):
        self.app, self.paths, self.clock = app, frozenset(paths), clock
        share = max(1, workers)
        self.clients = Buckets(max(1, math.ceil(per_client / share)), window)
        self.users = Buckets(max(1, math.ceil(per_user / share)), window)
        self.lock = threading.Lock()
        self.turns = {}  # key -> [its lock, requests holding or awaiting it]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or path not in self.paths:
            return self.app(environ, start_response)
        keys = self.keys(environ)

        def counting_start_response(status, headers, exc_info=None):
            location = next((value for name, value in headers if name.lower() == "location"), "")
            if check_failed(int(status.split(" ", 1)[0]), location, path):
                self.count(keys)
            return start_response(status, headers, exc_info)

        # The app calls start_response before it returns: the check is counted when the turn ends.
        with self.turn(keys[1] or keys[0]):
            with self.lock:
                now = self.clock()
                wait = max(self.clients.wait(keys[0], now), self.users.wait(keys[1], now) if keys[1] else 0)
            if wait:
                return self.refuse(start_response, wait)
            return self.app(environ, counting_start_response)

    @contextlib.contextmanager
    def turn(self, key):
        """One check at a time per key: a lock per key, kept while a request holds or awaits it."""
        with self.lock:
            entry = self.turns.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self.lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self.turns[key]

    def keys(self, environ):
        """(client, client and user name or None); the form's body is put back for the app."""
        client = client_key(environ)
        user = None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        form = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip() == "application/x-www-form-urlencoded"
        if form and 0 < length <= MAX_FORM_BYTES:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            names = urllib.parse.parse_qs(body.decode("latin-1"), max_num_fields=100).get("username")
            if names:
                user = client + "\n" + names[0].strip().casefold()[:128]
        return client, user

    def count(self, keys):
        with self.lock:
            now = self.clock()
            self.clients.add(keys[0], now)
            if keys[1]:
                self.users.add(keys[1], now)
            # Said once per filling (the refused requests count nothing); the client, never the name.
            if self.clients.wait(keys[0], now):
                print(f"lernmanager login throttle: {keys[0]} used up its budget of failed password checks;"
                      " its password POSTs are refused for a while", file=sys.stderr, flush=True)
            elif keys[1] and self.users.wait(keys[1], now):
                print(f"lernmanager login throttle: {keys[0]} used up the budget of failed password checks"
                      " of one user name; its logins with that name are refused for a while", file=sys.stderr, flush=True)

    @staticmethod
    def refuse(start_response, wait):
        body = REFUSED_PAGE.format(minutes=max(1, math.ceil(wait / 60))).encode("utf-8")
        start_response("429 Too Many Requests", [("Content-Type", "text/html; charset=utf-8"),
                                                 ("Retry-After", str(wait)), ("Content-Length", str(len(body))),
                                                 ("Cache-Control", "no-store")])
        return [body]
