"""Alerts and the heartbeat (README "Alerts and the heartbeat"), against the HTTP sink side_effect.yml
started on each host's loopback before its backups: lm-default-debian13 sends to it
(lernmanager_ping_url, lernmanager_alert_webhook in molecule.yml), lm-default-debian12 has neither
and must send nothing. What the side effect's backups sent (three good runs, one failed) is read
first; then a failing job, a job with nothing to do, the restore drill on a good repository and on
one with a damaged pack, and the daily self-check.

Changes the hosts: the test jobs, the drill and the self-check run; a pack of the repository is
damaged and put back; the planted link in data/ is moved aside and back; the sink is stopped for a
moment."""

import json
import time

import pytest

from lm_testlib import ROOT, run_module_on_host

SINK_LOG = "/root/lm-sink.jsonl"
PING = "/ping/lm-test"
PLANTED_LINK = f"{ROOT}/shared/data/mbi_tracker.db.backup_link"
REPOSITORY = "/var/backups/lernmanager/restic"
DRILL = "lernmanager-restore-drill.service"


@pytest.fixture
def sends(host):
    return host.backend.get_hostname() == "lm-default-debian13"


def received(host):
    if not host.file(SINK_LOG).exists:
        return []
    return [json.loads(line) for line in host.file(SINK_LOG).content_string.splitlines()]


def exit_stamp(host, unit):
    return int(host.check_output(f"systemctl show -P ExecMainExitTimestampMonotonic {unit}") or 0)


def run_and_wait_for(host, unit, notifier):
    """Start UNIT and wait until NOTIFIER (the alert or ping it triggers) has run to its end: then
    everything it sent is in the sink's log. The new requests."""
    before, stamp = len(received(host)), exit_stamp(host, notifier)
    host.run(f"systemctl start {unit}")
    for _ in range(60):
        if exit_stamp(host, notifier) != stamp and host.check_output(f"systemctl show -P ActiveState {notifier}") != "activating":
            return received(host)[before:]
        time.sleep(0.5)
    raise AssertionError(f"{notifier} did not run after {unit}")


def test_the_backups_pinged_three_times_and_alerted_once_for_the_failed_one(host, sends):
    requests = received(host)
    if not sends:
        assert requests == [], "no settings, nothing sent"
        return
    # side_effect.yml: backup.yml, a run as the timer's, the failed run, a good run after it.
    assert [(r["method"], r["path"]) for r in requests] == [("GET", PING)] * 2 + [
        ("POST", PING + "/fail"), ("POST", "/hook"), ("GET", PING)], requests
    (fail,) = [r for r in requests if r["path"] == PING + "/fail"]
    assert fail["body"] == "lm-default-debian13: lernmanager-backup.service failed (exit-code, status 1)"
    (hook,) = [json.loads(r["body"]) for r in requests if r["path"] == "/hook"]
    assert (hook["unit"], hook["result"], hook["exit_status"], hook["text"]) == (
        "lernmanager-backup.service", "exit-code", "1", fail["body"])


def test_a_failed_job_alerts_once_and_one_with_nothing_to_do_succeeds_silently(host, sends):
    broken = run_and_wait_for(host, "lernmanager-job-broken.service", "lernmanager-alert@lernmanager-job-broken.service.service")
    expected = [("POST", PING + "/fail", "lm-default-debian13: lernmanager-job-broken.service failed (exit-code, status 1)")]
    assert sorted((r["method"], r["path"], r["body"]) for r in broken if r["path"] != "/hook") == (expected if sends else [])
    assert len([r for r in broken if r["path"] == "/hook"]) == (1 if sends else 0)
    assert "Fatal" not in json.dumps(broken), "not a word of the job's output leaves the host"

    before = len(received(host))
    host.run("systemctl start lernmanager-job-empty-week.service")
    shown = host.check_output("systemctl show -P Result lernmanager-job-empty-week.service")
    assert shown == "success", shown
    output = host.check_output("journalctl -u lernmanager-job-empty-week.service -o cat -n 5")
    assert "No classes found." in output and "nothing to do (ok_output): done" in output, output
    # Its alert unit never ran: nothing queued, nothing sent.
    assert host.check_output("systemctl show -P ExecMainExitTimestampMonotonic "
                             "lernmanager-alert@lernmanager-job-empty-week.service.service") == "0"
    assert len(received(host)) == before


def drill_verdict(host):
    return json.loads(host.file("/var/lib/lernmanager-backup/drill.json").content_string)


# On the host: ten bytes of the repository's largest data pack changed (a disk's or a storage box's
# damage), the pack kept at /root/lm-pack so that it can be put back.
DAMAGE_A_PACK = f"""
import glob, os, shutil
pack = max(glob.glob("{REPOSITORY}/data/*/*"), key=os.path.getsize)
shutil.copy2(pack, "/root/lm-pack")
open("/root/lm-pack.path", "w").write(pack)
with open(pack, "r+b") as handle:
    handle.seek(100)
    handle.write(b"XXXXXXXXXX")
"""


def test_the_restore_drill_passes_silently_then_fails_and_alerts_once_when_a_pack_is_damaged(host, sends):
    assert host.check_output("systemctl show -P NextElapseUSecRealtime lernmanager-restore-drill.timer"), "scheduled"
    before = len(received(host))
    host.run(f"systemctl start {DRILL}")
    assert host.check_output(f"systemctl show -P Result {DRILL}") == "success", host.check_output(f"journalctl -u {DRILL} -o cat -n 5")
    good = drill_verdict(host)
    latest = json.loads(host.check_output("lernmanager-backup latest"))
    assert (good["ok"], good["snapshot"], good["compared"]) == (True, latest["id"], {"rows": True, "files": True}), good
    assert good["tables"] >= 3 and good["rows"] > 0 and good["files"] >= 1, good
    assert host.check_output(f"find {ROOT}/shared/data -name '.drill-*'") == "", "the scratch copy is gone"
    assert len(received(host)) == before, "a good drill sends nothing (the self-check is the heartbeat)"

    host.check_output("python3 -c %s", DAMAGE_A_PACK)
    try:
        failed = run_and_wait_for(host, DRILL, f"lernmanager-alert@{DRILL}.service")
    finally:
        host.check_output('cp -p /root/lm-pack "$(cat /root/lm-pack.path)"')
    assert host.check_output(f"systemctl show -P Result {DRILL}") == "exit-code"
    verdict = drill_verdict(host)
    assert not verdict["ok"] and verdict["problems"][0].startswith("the set could not be read back: restic dump failed: ") \
        and "ciphertext verification failed" in verdict["problems"][0], verdict
    expected = [("POST", PING + "/fail", f"lm-default-debian13: {DRILL} failed (exit-code, status 1)")]
    assert [(r["method"], r["path"], r["body"]) for r in failed if r["path"] != "/hook"] == (expected if sends else [])
    assert len([r for r in failed if r["path"] == "/hook"]) == (1 if sends else 0)
    status = run_module_on_host("host_status", json.loads(host.file("/etc/lernmanager/notify.json").content_string)["check"],
                                on=host.backend.get_hostname())
    assert [p for p in status["problems"] if p.startswith("the restore drill of ")], status["problems"]

    host.run(f"systemctl start {DRILL}")  # the repository whole again: the drill passes (status reads it after)
    assert drill_verdict(host)["ok"], drill_verdict(host)


def test_the_self_check_alerts_about_the_planted_link_without_its_name_then_pings_once_healthy(host, sends):
    unit = "lernmanager-self-check.service"
    # side_effect.yml planted a link in data/ as the app's account: the host is not healthy.
    before = len(received(host))
    host.run(f"systemctl start {unit}")
    assert host.check_output(f"systemctl show -P Result {unit}") == "exit-code"
    alerted = received(host)[before:]
    if sends:
        (fail,) = [r for r in alerted if r["path"] == PING + "/fail"]
        assert "shared/data holds 1 links or special files" in fail["body"], fail
        assert "backup_link" not in json.dumps(alerted) and "secret_key" not in json.dumps(alerted)
        assert [r["path"] for r in alerted].count("/hook") == 1 and len(alerted) == 2, alerted
    else:
        assert alerted == []

    host.run(f"mv {PLANTED_LINK} /root/lm-planted-link")
    try:
        before = len(received(host))
        host.run(f"systemctl start {unit}")
        assert host.check_output(f"systemctl show -P Result {unit}") == "success", \
            host.check_output(f"journalctl -u {unit} -o cat -n 5")
        pinged = received(host)[before:]
        if sends:
            (ping,) = pinged
            assert (ping["method"], ping["path"]) == ("POST", PING) and ping["body"].startswith("live "), ping
        else:
            assert pinged == []
    finally:
        host.run(f"mv /root/lm-planted-link {PLANTED_LINK}")


def test_a_ping_that_cannot_be_sent_is_shown_by_status_until_one_gets_through(host, sends):
    if not sends:
        pytest.skip("lm-default-debian12 sends nothing: nothing can fail to go out")
    settings = json.loads(host.file("/etc/lernmanager/notify.json").content_string)["check"]
    host.run("systemctl stop lm-sink")
    try:
        host.run("systemctl start lernmanager-self-check.service")
        status = run_module_on_host("host_status", settings, on=host.backend.get_hostname())
        assert any(p.startswith("the last alert could not be sent") and "URLError" in p for p in status["problems"]), status
    finally:
        host.run(f"systemd-run --unit=lm-sink --collect /usr/bin/python3 -I /root/lm_sink.py 8765 {SINK_LOG}")
    for _ in range(20):
        if host.run("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8765))'").rc == 0:
            break
        time.sleep(0.5)
    host.run("systemctl start lernmanager-self-check.service")  # still the planted link: a /fail that gets through
    status = run_module_on_host("host_status", settings, on=host.backend.get_hostname())
    assert not [p for p in status["problems"] if "could not be sent" in p], status["problems"]
