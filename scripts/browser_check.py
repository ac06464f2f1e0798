#!/usr/bin/env python3
"""Use a deployed Lernmanager in a real headless Chromium and say what the browser refused.

Usage: python3 scripts/browser_check.py URL USERNAME PASSWORD_FILE [--resolve NAME=ADDRESS]
                                        [--upload] [--screenshot PNG] [--insecure]

An HTTP client cannot see what a browser refuses: a `Secure` session cookie over plain HTTP, a
Content-Security-Policy or a header that blocks the app's scripts, styles or icons, a redirect
loop. This opens URL/login in Debian's `chromium` through its `chromedriver` (scripts/testbed.sh
installs both), logs in, opens the page the login leads to, optionally uploads a file through the
page's own form and downloads it again, and reports every console error (CSP violations and failed
loads among them), every subresource answered with an error, every image that did not load, every
stylesheet that applied no rule, and a login that kept no cookie or did not leave /login.
--resolve sends NAME to ADDRESS (a test container), --insecure accepts a self-signed certificate,
--screenshot saves the logged-in page. Exit status 0 with a one-line summary when everything
loaded cleanly, 1 with one line per problem otherwise. Standard library only: it speaks the W3C
WebDriver protocol to chromedriver itself.
"""

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# W3C WebDriver's key for an element reference in a JSON value.
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

# Read after every page: what the browser refused or could not load.
PAGE_PROBLEMS = """
const failed = performance.getEntriesByType('resource')
  .filter(entry => entry.responseStatus >= 400)
  .map(entry => `${entry.name} answered ${entry.responseStatus}`);
const images = Array.from(document.images)
  .filter(image => !image.complete || image.naturalWidth === 0)
  .map(image => `image ${image.src} did not load`);
const sheets = Array.from(document.styleSheets).filter(sheet => {
  try { return sheet.cssRules.length === 0; } catch (error) { return true; }
}).map(sheet => `stylesheet ${sheet.href || '(inline)'} applied no rule`);
return failed.concat(images, sheets);
"""


class WebDriverError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium session through a chromedriver of its own."""

    def __init__(self, resolve=None, insecure=False):
        self.resolve, self.insecure = resolve, insecure
        self.driver, self.session, self.profile = None, None, None

    def __enter__(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self._ready():
            if time.monotonic() > deadline or self.driver.poll() is not None:
                self.__exit__(None, None, None)
                raise WebDriverError(f"{CHROMEDRIVER} did not start")
            time.sleep(0.1)
        self.profile = tempfile.mkdtemp(prefix="browser-check-")
        args = ["--headless=new", "--window-size=1280,900", "--disable-gpu", "--disable-dev-shm-usage",
                f"--user-data-dir={self.profile}", "--no-first-run", "--disable-extensions"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium's own sandbox refuses to run as root.
        if self.resolve:
            name, address = self.resolve
            args.append(f"--host-resolver-rules=MAP {name} {address}")
        capabilities = {"browserName": "chrome", "acceptInsecureCerts": self.insecure,
                        "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                        "goog:loggingPrefs": {"browser": "ALL"}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]
        return self

    def __exit__(self, *exc):
        if self.session:
            with contextlib.suppress(Exception):
                self._call("DELETE", f"/session/{self.session}")
        if self.driver:
            self.driver.terminate()
            self.driver.wait(timeout=10)
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    def _ready(self):
        try:
            with urllib.request.urlopen(self.base + "/status", timeout=1) as answer:
                return json.load(answer)["value"].get("ready", False)
        except (OSError, ValueError, KeyError):
            return False

    def _call(self, method, path, body=None):
        # Every POST carries a JSON object, an empty one when the command takes no parameters.
        data = json.dumps({} if body is None else body).encode() if method == "POST" else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.load(answer)["value"]
        except urllib.error.HTTPError as error:
            value = json.load(error).get("value", {})
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {value.get('message', '').splitlines()[0]}")

    def _session(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url):
        self._session("POST", "/url", {"url": url})

    def url(self):
        return self._session("GET", "/url")

    def find(self, css):
        """The first element CSS selects, or None."""
        found = self._session("POST", "/elements", {"using": "css selector", "value": css})
        return found[0][ELEMENT] if found else None

    def type(self, element, text):
        self._session("POST", f"/element/{element}/value", {"text": text})

    def click(self, element):
        self._session("POST", f"/element/{element}/click")

    def run(self, script, *args):
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def run_async(self, script, *args):
        return self._session("POST", "/execute/async", {"script": script, "args": list(args)})

    def console_errors(self):
        """The console's errors since the last call (chromedriver's log endpoint)."""
        entries = self._session("POST", "/se/log", {"type": "browser"})
        return [entry["message"] for entry in entries if entry["level"] == "SEVERE"]

    def cookies(self):
        return self._session("GET", "/cookie")

    def screenshot(self, path):
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(self._session("GET", "/screenshot")))

    def wait(self, script, seconds=15):
        """Until SCRIPT returns something true; that value, or None after SECONDS."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = self.run(script)
            if value:
                return value
            time.sleep(0.2)
        return None


def page_problems(browser, where):
    browser.wait("return document.readyState === 'complete'")
    found = browser.console_errors() + browser.run(PAGE_PROBLEMS)
    return [f"{where}: {problem}" for problem in found]


def log_in(browser, url, username, password):
    """Fill in and send the login form as a person does; the problems on the way."""
    browser.open(url + "/login")
    problems = page_problems(browser, "login page")
    user_field = browser.find("form input[autocomplete=username], form input[name=username]")
    password_field = browser.find("form input[type=password]")
    if not (user_field and password_field):
        return problems + ["login page: no login form"]
    browser.type(user_field, username)
    browser.type(password_field, password)
    browser.click(browser.find("form button[type=submit], form input[type=submit]"))
    # Off /login: the next page; page_problems waits for it to be complete.
    if not browser.wait("return !location.pathname.startsWith('/login')"):
        names = sorted(cookie["name"] for cookie in browser.cookies())
        problems.append(f"still on {browser.url()} after logging in (cookies kept: {names or 'none'})")
        return problems
    if not browser.cookies():
        problems.append("logged in, but the browser kept no cookie")
    return problems + page_problems(browser, f"page after login ({browser.url()})")


def upload_and_download(browser):
    """Upload a file through the page's own upload form (its script, as a person's click runs it)
    and download it again from the link the page then shows; the problems on the way."""
    form_input = browser.find("form input[type=file]")
    if not form_input:
        return ["page after login: no upload form"]
    content = f"browser check {time.time()}\n"
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "browser-check.txt")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content)
        browser.type(form_input, path)
        browser.click(browser.find("form[enctype='multipart/form-data'] button[type=submit]"))
        link = browser.wait("return Array.from(document.querySelectorAll('a'))"
                            ".filter(a => a.textContent.trim() === 'browser-check.txt').map(a => a.href)[0]")
    if not link:
        return [f"upload: the file never appeared on {browser.url()}"] + page_problems(browser, "after the upload")
    answer = browser.run_async("const done = arguments[arguments.length - 1];"
                               "fetch(arguments[0]).then(r => r.text().then(t => done([r.status, t])))"
                               ".catch(e => done([0, String(e)]));", link)
    problems = page_problems(browser, "after the upload")
    if answer != [200, content]:
        problems.append(f"download of {link}: {answer[0]}, {'its content' if answer[0] == 200 else answer[1][:200]}")
    return problems


def check(url, username, password, resolve=None, upload=False, screenshot=None, insecure=False):
    """(problems, summary) of using the site as a person does."""
    with Chromium(resolve=resolve, insecure=insecure) as browser:
        problems = log_in(browser, url, username, password)
        landed = browser.url()
        if upload and not any("after logging in" in problem for problem in problems):
            problems += upload_and_download(browser)
        if screenshot:
            os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
            browser.screenshot(screenshot)
        cookies = ", ".join(f"{c['name']} ({'Secure' if c.get('secure') else 'not Secure'}, "
                            f"{'HttpOnly' if c.get('httpOnly') else 'script-readable'})" for c in browser.cookies())
    summary = f"logged in as {username} at {landed}; cookies: {cookies or 'none'}" + (", upload and download OK" if upload else "")
    return problems, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("username")
    parser.add_argument("password_file")
    parser.add_argument("--resolve", metavar="NAME=ADDRESS")
    parser.add_argument("--upload", action="store_true")
    parser.add_argument("--screenshot", metavar="PNG")
    parser.add_argument("--insecure", action="store_true")
    options = parser.parse_args()
    with open(options.password_file, encoding="utf-8") as handle:
        password = handle.read().strip()
    resolve = tuple(options.resolve.split("=", 1)) if options.resolve else None
    problems, summary = check(options.url.rstrip("/"), options.username, password, resolve=resolve,
                              upload=options.upload, screenshot=options.screenshot, insecure=options.insecure)
    if problems:
        print("\n".join(problems))
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
