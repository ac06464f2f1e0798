"""roles/lernmanager/files/lernmanager_notify.py, run as systemd runs it (python3 -I, its settings
in a file, the failed unit in MONITOR_*), against a real HTTP sink on loopback: exactly one request
per ping and per alert target, nothing without settings, only systemd's words in an alert, and a
sink that does not answer costs the timeout and fails nothing."""

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

from helpers import ROLE

SCRIPT = ROLE / "files" / "lernmanager_notify.py"
FAILED_BACKUP = {"MONITOR_UNIT": "lernmanager-backup.service", "MONITOR_SERVICE_RESULT": "exit-code",
                 "MONITOR_EXIT_CODE": "exited", "MONITOR_EXIT_STATUS": "1"}


class Sink(http.server.BaseHTTPRequestHandler):
    """Records every request (method, path, body, content type) and answers with the server's status."""

    def do_GET(self):
        self.record(b"")

    def do_POST(self):
        self.record(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def record(self, body):
        self.server.requests.append((self.command, self.path, body, self.headers.get("Content-Type")))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.fixture
def sink():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    server.requests, server.status = [], 200
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()


def run(tmp_path, action, settings, environ=None):
    (tmp_path / "notify.json").write_text(json.dumps(settings))
    env = {"PATH": os.environ["PATH"], "LERNMANAGER_NOTIFY_CONFIG": str(tmp_path / "notify.json"),
           "LERNMANAGER_NOTIFY_STATE": str(tmp_path / "state" / "notify.json"), **(environ or {})}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-I", str(SCRIPT), action], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    return result, time.monotonic() - started


def state(tmp_path):
    return json.loads((tmp_path / "state" / "notify.json").read_text())


def test_a_ping_is_one_get_of_the_ping_url(tmp_path, sink):
    result, _ = run(tmp_path, "ping", {"ping_url": f"{sink.url}/ping/3f2a", "webhook": f"{sink.url}/hook"})
    assert result.returncode == 0, result.stderr
    assert sink.requests == [("GET", "/ping/3f2a", b"", "text/plain")]
    assert state(tmp_path)["last"]["errors"] == {}


def test_a_failure_is_one_fail_ping_and_one_webhook_with_systemds_words_only(tmp_path, sink):
    settings = {"ping_url": f"{sink.url}/ping/3f2a/", "webhook": f"{sink.url}/hook", "host": "gym-nord",
                "instance": "lernmanager"}
    result, _ = run(tmp_path, "fail", settings, FAILED_BACKUP)
    assert result.returncode == 0, result.stderr
    (ping, hook) = sorted(sink.requests, key=lambda request: request[1])[::-1]
    reason = "gym-nord: lernmanager-backup.service failed (exit-code, status 1)"
    assert ping == ("POST", "/ping/3f2a/fail", reason.encode(), "text/plain")
    assert hook[:2] == ("POST", "/hook") and hook[3] == "application/json"
    body = json.loads(hook[2])
    assert body["text"] == body["message"] == reason
    assert {body["unit"], body["result"], body["exit_status"], body["host"]} == {
        "lernmanager-backup.service", "exit-code", "1", "gym-nord"}
    # Nothing but the settings' names and systemd's words: no journal line, no path, no address.
    words = set(" ".join(str(value) for value in body.values()).replace(",", " ").replace("(", " ").replace(")", " ")
                .replace(":", " ").split())
    assert words <= {"gym-nord", "lernmanager", "lernmanager-backup.service", "failed", "exit-code", "exited",
                     "status", "1", "Lernmanager"}, words


def test_nothing_is_sent_without_settings(tmp_path, sink):
    for action, environ in (("ping", {}), ("fail", FAILED_BACKUP)):
        result, _ = run(tmp_path, action, {"ping_url": "", "webhook": ""}, environ)
        assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
    assert sink.requests == []
    assert not (tmp_path / "state").exists()


def test_an_endpoint_that_refuses_or_hangs_fails_nothing_and_is_recorded(tmp_path, sink):
    sink.status = 500
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        settings = {"ping_url": f"{sink.url}/ping", "webhook": f"http://127.0.0.1:{silent.getsockname()[1]}/hook",
                    "timeout": 2}
        result, seconds = run(tmp_path, "fail", settings, FAILED_BACKUP)
    finally:
        silent.close()
    assert result.returncode == 0, result.stderr
    assert seconds < 10, seconds
    errors = state(tmp_path)["last_failed"]["errors"]
    assert errors["ping /fail"] == "HTTP 500"
    assert errors["webhook"].startswith(("TimeoutError", "URLError", "socket.timeout")), errors
    assert "NOT sent" in result.stdout


# --- the daily self-check, as the role installs the script ------------------------------------------

def installed_script(tmp_path, task_file, script):
    """The script as the role writes it (tasks/steps/host/<task_file>): the shebang, the module_utils
    the task names in __names, the loader, the script; run with no collection on its path."""
    task = yaml.safe_load((ROLE / "tasks" / "steps" / "host" / task_file).read_text())[0]
    names = task["vars"]["__names"]
    bundle = {name: (ROLE.parent.parent / "plugins" / "module_utils" / f"{name}.py").read_text() for name in names}
    path = tmp_path / script
    path.write_text("#!/usr/bin/python3 -I\nMODULE_UTILS = " + json.dumps(bundle) + "\n"
                    + (ROLE / "files" / "bundled_module_utils.py").read_text()
                    + (ROLE / "files" / f"{script.replace('-', '_')}.py").read_text())
    path.chmod(0o700)
    return path


def test_the_self_check_of_a_host_with_nothing_live_alerts_with_its_problems_and_fails(tmp_path, sink):
    script = installed_script(tmp_path, "alerts.yml", "lernmanager-notify")
    settings = {"ping_url": f"{sink.url}/ping/3f2a", "webhook": f"{sink.url}/hook", "host": "gym-nord",
                "instance": "lernmanager", "timeout": 5,
                "check": {"root": str(tmp_path / "nothing"), "service": "lernmanager-notify-test.service",
                          # /login through "nginx" on loopback: the sink, by the site's name.
                          "health_url": f"http://school.test:{sink.server_port}/login", "certificate": "",
                          "backup_settings": "", "disks": [str(tmp_path)], "max_backup_age_days": 2,
                          "min_certificate_days": 14, "min_free_percent": 0,
                          "notify_state": str(tmp_path / "state" / "notify.json")}}
    (tmp_path / "notify.json").write_text(json.dumps(settings))
    env = {"PATH": "/usr/bin:/bin", "LERNMANAGER_NOTIFY_CONFIG": str(tmp_path / "notify.json"),
           "LERNMANAGER_NOTIFY_STATE": str(tmp_path / "state" / "notify.json")}
    result = subprocess.run([str(script), "check"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    asked = [request for request in sink.requests if request[1] == "/login"]
    assert len(asked) == 1 and asked[0][0] == "GET", sink.requests
    (fail,) = [request for request in sink.requests if request[1] == "/ping/3f2a/fail"]
    assert fail[2].decode().startswith("gym-nord: lernmanager-self-check failed (no health-checked release serves yet")
    (hook,) = [request for request in sink.requests if request[1] == "/hook"]
    assert json.loads(hook[2])["unit"] == "lernmanager-self-check"
    assert not [request for request in sink.requests if request[1] == "/ping/3f2a"], "no heartbeat while unhealthy"
    recorded = state(tmp_path)
    assert recorded["check"]["problems"] >= 1 and recorded["last"]["errors"] == {}


# --- a job's outcome -----------------------------------------------------------------------------------

OUTCOME = ROLE / "files" / "job_outcome.py"
WEEKLY_OK = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["lernmanager_jobs"][1]["ok_output"]


@pytest.mark.parametrize("output, status, expected", [
    ("Generating weekly reports\\nNo classes found.", 1, 0),
    ("  ℹ️  Class 7a has no students, skipping\\n\\n✅ Successfully generated 0 weekly reports", 1, 0),
    ("  ℹ️  Class 7a has no students, skipping\\n    ❌ Error generating report for 7b: disk full", 1, 1),
    ("❌ Fatal error: database is locked", 1, 1),
    ("No classes found.", 3, 0),  # any non-zero status: the output decides
    ("Traceback (most recent call last):", 1, 1),
    ("✅ Successfully generated 2 weekly reports", 0, 0),
])
def test_a_weekly_report_run_with_nothing_to_report_is_done_and_an_error_is_not(output, status, expected):
    """Upstream's outputs (generate_weekly_reports.py) through the default job's ok_output."""
    command = ["/bin/sh", "-c", f"printf '{output}\\n'; exit {status}"]
    result = subprocess.run([sys.executable, "-I", str(OUTCOME), WEEKLY_OK, "--", *command],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == expected, result.stdout + result.stderr
    assert result.stdout.startswith(output.replace("\\n", "\n")), "the output passes through"


def test_a_job_killed_by_a_signal_keeps_that_outcome():
    result = subprocess.run([sys.executable, "-I", str(OUTCOME), "No classes", "--", "/bin/sh", "-c",
                             "echo No classes found.; kill -9 $$"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 128 + 9, result.stdout
