"""A compromised app racing the deploy's trial migration (issue 37), run inside the service's own
sandbox as the service user (a unit made from lernmanager.service's [Service] section).

It watches every place a trial copy of the release has lived (the service's temp dir before, root's
trials directory now) and, for each copy it sees, tries to plant a sitecustomize.py and to edit the
copy's migrations. Planted code, if it ever runs, records itself and stops the migration (so the
deploy fails loudly). It also looks for the deploy's processes, which it must not see.

Writes one line per event to its log (argv[1]) until argv[2] seconds have passed.
"""

import glob
import os
import sys
import time

LOG, SECONDS = sys.argv[1], float(sys.argv[2])
ROOT = "/opt/lernmanager"
PATTERNS = [f"{ROOT}/shared/instance/tmp/.trial-*/app", f"{ROOT}/trials/.trial-*/app"]
PAYLOAD = (
    "import os\n"
    "nnp = [l for l in open('/proc/self/status') if l.startswith('NoNewPrivs')]\n"
    "try:\n    secret = open('/root/lm-canary').read()\nexcept OSError as error:\n    secret = repr(error)\n"
    f"for where in ({ROOT + '/shared/data'!r}, '/tmp', '.'):\n"
    "    try:\n"
    "        open(os.path.join(where, '.lm-race-ran'), 'a').write(repr((nnp, secret)) + '\\n')\n"
    "        break\n"
    "    except OSError:\n        pass\n"
    "raise SystemExit('lm-racer: planted code ran in the deploy')\n")


def log(line):
    with open(LOG, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def plant(app, tried):
    """Each target once: a sitecustomize.py, and each migration as soon as the copy has it."""
    targets = [os.path.join(app, "sitecustomize.py")] + glob.glob(os.path.join(app, "migrate", "migrate_*.py"))
    for target in targets:
        if target in tried:
            continue
        tried.add(target)
        try:
            with open(target, "a", encoding="utf-8") as handle:
                handle.write("\n" + PAYLOAD)
            log(f"planted {target}")
        except OSError as error:
            log(f"refused {target}: {error.strerror}")


def deploy_processes():
    """Processes of the deploy's app code this process can see (the migrations' runner)."""
    seen = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmdline = handle.read()
            except OSError:
                continue
            if b"migrations_done.txt" in cmdline or b"migrate/migrate_" in cmdline:
                seen.append(pid)
    return seen


log(f"started uid={os.getuid()} gid={os.getgid()}")
deadline, seen, tried, pids = time.monotonic() + SECONDS, set(), set(), set()
while time.monotonic() < deadline:
    for pattern in PATTERNS:
        for app in glob.glob(pattern):
            if app not in seen:
                seen.add(app)
                log(f"seen {app}")
            plant(app, tried)
    for pid in deploy_processes():
        if pid not in pids:
            pids.add(pid)
            log(f"visible {pid}")
            try:
                open(f"/proc/{pid}/mem", "rb").close()
                log(f"mem-opened {pid}")
            except OSError as error:
                log(f"mem-refused {pid}: {error.strerror}")
    time.sleep(0.002)
