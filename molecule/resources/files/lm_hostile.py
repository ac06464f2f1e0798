"""A compromised app (issue 37), run inside the service's own sandbox as the service user (a unit
made from lernmanager.service's [Service] section), trying every path to root the issue names
while root deploys, backs up and restores:

- modules:  Python modules named like those root's tools import (compileall, the hook's; ansible,
            a module's), planted in every directory it can write, in case root runs Python there;
- links:    links to the root-only canary at the names root's steps once wrote, and a FIFO among
            the uploads (a backup that opened it would hang);
- trials:   the trial copies of a release (the service's temp dir before, root's trials directory
            now): a sitecustomize.py and an edited migration planted in each copy it sees;
- deploy:   the deploy's app processes, which it must not see, nor open /proc/<pid>/mem of;
- gunicorn: the instance's gunicorn on loopback, past nginx (it trusts X-Real-IP from there);
- flood:    wrong passwords at /login and sessionless posts to /admin/passwort, through nginx at
            the host's own address, one after another.

Planted code, if it ever runs, records who ran it in a file named .lm-hostile-ran (in /root
first) and stops the run it is in. One line per event on stdout (the unit's journal), the flood's
statuses counted once a second ("flood {...}"), until SECONDS have passed.

    python3 lm_hostile.py SECONDS HOST_ADDRESS GUNICORN_PORT [SITE_NAME (lernmanager.test)]

`python3 lm_hostile.py upstream` is the same account before the adoption, in upstream's install
(no sandbox, no private /tmp): it plants the modules the apt hook imports in /tmp and a link to
the canary in upstream's data/, and exits.
"""

import glob
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

ROOT = "/opt/lernmanager"
CANARY = "/root/lm-canary"
TRIALS = [f"{ROOT}/shared/instance/tmp/.trial-*/app", f"{ROOT}/trials/.trial-*/app"]
# Every directory the sandbox lets it write (ReadWritePaths, its private /tmp and /var/tmp).
WRITABLE = [f"{ROOT}/shared/data", f"{ROOT}/shared/instance", f"{ROOT}/shared/instance/tmp",
            f"{ROOT}/shared/instance/uploads", "/tmp", "/var/tmp"]
HOOK_MODULES = ["compileall", "py_compile", "filecmp"]  # python3 -m compileall's; /tmp: apt's working directory
UPSTREAM_LINK = f"{ROOT}/data/lm-planted-at-adoption"
MODULES = ["compileall", "py_compile", "filecmp", "sitecustomize", "usercustomize", "ansible",
           "ansible_collections", "json", "tarfile", "sqlite3", "shutil", "tempfile", "subprocess"]
# The names root's steps wrote or worked in before the trust boundary (lm_testlib.PLANTED_NAMES).
LINKS = ["data/.restore.tmp", "data/migrations_done.txt.tmp", "instance/tmp/.trial-planted"]
FIFO = "instance/uploads/lm-hostile.fifo"
PAYLOAD = (
    "import os, sys\n"
    "who = repr((os.getuid(), os.getcwd(), sys.argv)) + '\\n'\n"
    f"for where in ('/root', {ROOT + '/shared/data'!r}, '/tmp', '.'):\n"
    "    try:\n"
    "        with open(os.path.join(where, '.lm-hostile-ran'), 'a') as out:\n"
    "            out.write(who)\n"
    "        break\n"
    "    except OSError:\n        pass\n"
    "raise SystemExit('lm-hostile: planted code ran')\n")
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def log(line):
    print(line, flush=True)


def plant(path, text):
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\n" + text)
        return True
    except OSError as error:
        log(f"refused {path}: {error.strerror}")
        return False


def plant_modules_links_and_fifo():
    for directory in WRITABLE:
        planted = [name for name in MODULES if plant(os.path.join(directory, name + ".py"), PAYLOAD)]
        log(f"modules-planted {directory} {len(planted)}")
    for name in LINKS:
        try:
            os.symlink(CANARY, f"{ROOT}/shared/{name}")
            log(f"link-planted {name}")
        except OSError as error:
            log(f"link-refused {name}: {error.strerror}")
    try:
        os.mkfifo(f"{ROOT}/shared/{FIFO}")
        log(f"fifo-planted {FIFO}")
    except OSError as error:
        log(f"fifo-refused {FIFO}: {error.strerror}")


def race_trials(seen, tried):
    """Each trial copy: a sitecustomize.py, and each migration as soon as the copy has it."""
    for pattern in TRIALS:
        for app in glob.glob(pattern):
            if app not in seen:
                seen.add(app)
                log(f"trial-seen {app}")
            targets = [os.path.join(app, "sitecustomize.py")] + glob.glob(os.path.join(app, "migrate", "migrate_*.py"))
            for target in targets:
                if target not in tried:
                    tried.add(target)
                    if plant(target, PAYLOAD):
                        log(f"trial-planted {target}")


def watch_deploy_processes(pids):
    """The deploy's app code (the migrations' runner) as this process sees it: it must not."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid in pids:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if b"migrations_done.txt" in cmdline or b"migrate/migrate_" in cmdline:
            pids.add(pid)
            log(f"visible {pid}")
            try:
                open(f"/proc/{pid}/mem", "rb").close()
                log(f"mem-opened {pid}")
            except OSError as error:
                log(f"mem-refused {pid}: {error.strerror}")


def probe_gunicorn(stop, address, port):
    """A connection to the instance's gunicorn, on loopback and on the host's address, once a
    second: a line whenever what happens changes."""
    reached = {}
    while not stop.wait(1):
        for where in ("127.0.0.1", address):
            try:
                socket.create_connection((where, port), timeout=2).close()
                outcome = "reached"
            except OSError as error:
                outcome = f"blocked ({error.__class__.__name__})"
            if reached.get(where) != outcome:
                reached[where] = outcome
                log(f"gunicorn {where}:{port} {outcome}")


def request(site, method, path, body=None, cookie=None):
    address, name = site
    conn = http.client.HTTPConnection(address, 80, timeout=30)
    headers = {"Host": name}
    if cookie:
        headers["Cookie"] = cookie
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Set-Cookie"), response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def flood(stop, site):
    """A wrong password for admin at /login (with the form's token and cookie, as a browser), then
    a sessionless POST to /admin/passwort; again and again, 20 a second at most. Their statuses
    counted, a line once a second."""
    counts, reported = {}, 0.0
    while not stop.is_set():
        for key, attempt in (("login", wrong_login), ("admin/passwort", sessionless_password_change)):
            try:
                status = str(attempt(site))
            except OSError as error:
                status = error.__class__.__name__
            counts.setdefault(key, {}).setdefault(status, 0)
            counts[key][status] += 1
            time.sleep(0.05)
        if time.monotonic() - reported >= 1:
            log("flood " + json.dumps(counts, sort_keys=True))
            reported = time.monotonic()


def wrong_login(site):
    status, cookie, body = request(site, "GET", "/login")
    if status != 200:
        return f"form-{status}"
    match = CSRF.search(body)
    form = {"username": "admin", "password": "not-the-password"}
    if match:
        form["csrf_token"] = match.group(1) or match.group(2)
    status, _, _ = request(site, "POST", "/login", urllib.parse.urlencode(form), cookie and cookie.split(";", 1)[0])
    return status


def sessionless_password_change(site):
    return request(site, "POST", "/admin/passwort", "current_password=x&new_password=y")[0]


def plant_in_upstreams_install():
    for name in HOOK_MODULES:
        plant(f"/tmp/{name}.py", PAYLOAD)
    os.symlink(CANARY, UPSTREAM_LINK)
    log(f"planted {', '.join(HOOK_MODULES)} in /tmp and {UPSTREAM_LINK} -> {CANARY}")


def main():
    if sys.argv[1] == "upstream":
        plant_in_upstreams_install()
        return
    seconds, address, port = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    name = sys.argv[4] if len(sys.argv) > 4 else "lernmanager.test"
    log(f"started uid={os.getuid()} gid={os.getgid()}")
    plant_modules_links_and_fifo()
    stop = threading.Event()
    threading.Thread(target=flood, args=(stop, (address, name)), daemon=True).start()
    threading.Thread(target=probe_gunicorn, args=(stop, address, port), daemon=True).start()
    deadline, seen, tried, pids = time.monotonic() + seconds, set(), set(), set()
    while time.monotonic() < deadline:
        race_trials(seen, tried)
        watch_deploy_processes(pids)
        time.sleep(0.002)
    stop.set()


if __name__ == "__main__":
    main()
