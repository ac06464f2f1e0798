# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""lernmanager-notify: tells the school's admin what the host's timers did, and nothing of the
school's data. The role installs it as /usr/local/sbin/lernmanager-notify (the system's Python, run
as `python3 -I`, module_utils/host_health.py and what it imports bundled inside), and systemd calls it:

  ping   after a unit that succeeded (OnSuccess=: the backup, the daily self-check): a GET of the
         ping URL, healthchecks.io's way; a host that stops pinging is what the ping service alerts on
  fail   after a unit that failed (OnFailure=): a POST of a one-line reason to <ping URL>/fail and a
         POST of a small JSON body to the webhook (ntfy, Gotify, a Matrix or chat hook). The unit,
         its result and exit status come from systemd (MONITOR_UNIT, MONITOR_SERVICE_RESULT,
         MONITOR_EXIT_CODE, MONITOR_EXIT_STATUS); never a line of its journal, which may name pupils.
  check  the daily self-check (<instance>-self-check.timer): the reading of `lernmanager.deploy.status`
         (module_utils/host_health.py: the site through nginx, the service, free disk and memory,
         the newest backup's age, the certificate's days, a pending reboot, alerts that did not go
         out). Healthy: a ping with the status line, the host's heartbeat. Not: the problems as the
         reason of a /fail and a webhook, and the unit fails (visible in systemctl and status).

Settings from the JSON file in LERNMANAGER_NOTIFY_CONFIG (root's, 0600: a ping URL is a secret):
{"ping_url": "", "webhook": "", "host": "", "instance": "", "timeout": 10, "check": {host_status's
options}}. Nothing is sent for an empty URL. Each request has the timeout; a failure to send is printed (to the journal) and kept
with the time in the file LERNMANAGER_NOTIFY_STATE names, for status.yml; it never fails the unit
that sends it, which would only alert about the alert.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

CONFIG = os.environ.get("LERNMANAGER_NOTIFY_CONFIG", "/etc/lernmanager/notify.json")
STATE = os.environ.get("LERNMANAGER_NOTIFY_STATE", "/var/lib/lernmanager-notify/state.json")
MAX_TEXT = 1000  # an alert is a sentence or a few, never a dump


def send(url, data=None, content_type="text/plain", timeout=10):
    """GET URL, or POST DATA (bytes) to it; None when it answered 2xx, else what went wrong."""
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": content_type, "User-Agent": "lernmanager-notify"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read(4096)
        return None
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (OSError, ValueError) as error:  # refused, unreachable, timed out, a malformed URL
        return type(error).__name__ + (f": {error.reason}" if isinstance(error, urllib.error.URLError) else "")


def failure(settings, environ, reason=None):
    """The failed unit and why, in systemd's words only (or the self-check's REASON)."""
    unit = environ.get("MONITOR_UNIT", "unknown unit")
    result = environ.get("MONITOR_SERVICE_RESULT", "failed")
    status = environ.get("MONITOR_EXIT_STATUS", "")
    why = reason or (f"{result}, status {status}" if status else result)
    text = f"{settings.get('host') or 'host'}: {unit} failed ({why})"[:MAX_TEXT]
    return {"host": settings.get("host", ""), "instance": settings.get("instance", ""), "unit": unit,
            "result": result, "exit_code": environ.get("MONITOR_EXIT_CODE", ""), "exit_status": status,
            # The same sentence under the names the common receivers read: chat hooks and Matrix
            # hookshot ("text"), Gotify ("title", "message").
            "text": text, "title": f"Lernmanager {settings.get('instance', '')}: {unit} failed", "message": text}


def notify(action, settings, environ, reason=None, line=None):
    """[(what was sent, None or what went wrong)] for ACTION ("ping" or "fail"); a ping may carry
    the status LINE (healthchecks.io shows a ping's body), a failure the self-check's REASON."""
    timeout = float(settings.get("timeout") or 10)
    ping_url, webhook = settings.get("ping_url", ""), settings.get("webhook", "")
    outcomes = []
    if action == "ping":
        if ping_url:
            data = line[:MAX_TEXT].encode() if line else None
            outcomes.append(("ping", send(ping_url, data, timeout=timeout)))
        return outcomes
    body = failure(settings, environ, reason)
    if ping_url:
        outcomes.append(("ping /fail", send(ping_url.rstrip("/") + "/fail", body["text"].encode(), timeout=timeout)))
    if webhook:
        outcomes.append(("webhook", send(webhook, json.dumps(body).encode(), "application/json", timeout=timeout)))
    return outcomes


def record(path, action, outcomes, check=None):
    """Keep the last attempt, the last failed one and the self-check's verdict, for status.yml."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        state = {}
    entry = {"time": int(time.time()), "action": action,
             "errors": {what: error for what, error in outcomes if error}}
    if outcomes:
        state["last"] = entry
        if entry["errors"]:
            state["last_failed"] = entry
    if check is not None:
        state["check"] = {"time": entry["time"], "problems": len(check)}
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    partial = f"{path}.partial"
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "w", encoding="utf-8") as handle:
        json.dump(state, handle)
    os.replace(partial, path)


def self_check(settings):
    """(problems as an alert may tell them, the status line): host_health's reading."""
    # Imported here: ping and fail need nothing but the standard library (and run without the bundle).
    from ansible_collections.lernmanager.deploy.plugins.module_utils import host_health  # pylint: disable=import-outside-toplevel
    # Without the notify state: the check's own last verdict and failed sends are no reason to fail it again.
    params = dict(settings["check"], notify_state="")
    status = host_health.collect(params)
    status["problems"] = host_health.judge(status, params, details=False)
    return status["problems"], host_health.one_line(status)


def main(argv, environ):
    if len(argv) != 2 or argv[1] not in ("ping", "fail", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(CONFIG, encoding="utf-8") as handle:
            settings = json.load(handle)
    except (OSError, ValueError) as error:
        print(f"lernmanager-notify: no settings in {CONFIG} ({error}): nothing sent", file=sys.stderr)
        return 0
    action, problems = argv[1], None
    if action == "check":
        problems, line = self_check(settings)
        print(f"lernmanager-notify: {line}")
        action = "fail" if problems else "ping"
        outcomes = notify(action, settings, dict(environ, MONITOR_UNIT=f"{settings.get('instance', '')}-self-check"),
                          reason="; ".join(problems), line=line)
    else:
        outcomes = notify(action, settings, environ)
    for what, error in outcomes:
        print(f"lernmanager-notify: {what}: {'sent' if error is None else 'NOT sent: ' + error}")
    if outcomes or problems is not None:
        record(STATE, action, outcomes, problems)
    # The self-check's unit fails with what it found (systemctl and status show it); a send never does.
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv, os.environ))
