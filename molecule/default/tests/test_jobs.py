"""The app's scheduled jobs (lernmanager_jobs, the defaults: upstream's two on upstream's schedule),
each started by hand as its timer would start it: it runs as the app runs (service user, live
release and venv, read-only bytecode prefix, sandbox) and leaves its output in shared storage.

Changes the hosts: each job started once as its timer would start it (reports and attendance in the data)."""

import pytest

from lm_testlib import ROOT, sql

JOBS = ["auto-attendance", "weekly-reports"]


def show(host, unit, *properties):
    out = host.check_output(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in properties))
    return dict(line.split("=", 1) for line in out.splitlines())


@pytest.fixture(scope="module")
def ran(host):
    """Start each job once, after a marker file: {job: its service's properties}."""
    host.run("touch /root/lm-jobs-marker && sleep 1")
    results = {}
    for job in JOBS:
        host.run(f"systemctl start lernmanager-job-{job}.service")
        results[job] = show(host, f"lernmanager-job-{job}.service", "Result", "ExecMainStatus", "User", "ExecStart")
    return results


@pytest.mark.parametrize("job", JOBS)
def test_a_job_runs_to_success_as_the_service_user_in_the_live_venv(host, ran, job):
    props = ran[job]
    assert (props["Result"], props["ExecMainStatus"], props["User"]) == ("success", "0", "lernmanager"), props
    venv = host.file(f"{ROOT}/current/.venv").linked_to
    # The weekly reports through job_outcome.py (their ok_output), with the venv's python.
    program = "/usr/bin/python3" if job == "weekly-reports" else f"{venv}/bin/"
    assert f"path={program}" in props["ExecStart"] and f"{venv}/bin/" in props["ExecStart"], props["ExecStart"]


def test_the_weekly_report_lands_in_shared_storage_owned_by_the_service_user(host, ran):
    reports = host.check_output(f"find {ROOT}/shared/instance/reports -name 'wochenbericht-*.pdf' -newer /root/lm-jobs-marker")
    assert reports, "no report written"
    report = host.file(reports.splitlines()[0])
    assert (report.user, report.group, report.mode) == ("lernmanager", "lernmanager", 0o640)
    assert report.content[:5] == b"%PDF-"
    # Through the release's instance/ link, as the script finds it beside its code.
    assert host.file(f"{ROOT}/current/instance").linked_to == f"{ROOT}/shared/instance"


def test_auto_attendance_reached_the_database(host, ran):
    assert int(sql(host, "SELECT count(*) FROM analytics_events WHERE event = 'auto_attendance'")) >= 1


def test_no_job_wrote_bytecode(host, ran):
    written = host.check_output(f"find {ROOT} /var/cache/lernmanager /tmp /var/tmp -newer /root/lm-jobs-marker"
                                " \\( -name '*.pyc' -o -name __pycache__ \\) -print")
    assert written == ""


@pytest.mark.parametrize("job, calendar", [("auto-attendance", "Mon..Fri *-*-* 16:15:00"),
                                           ("weekly-reports", "Mon *-*-* 00:01:00")])
def test_each_timer_is_enabled_with_a_next_run_on_upstreams_schedule(host, job, calendar):
    props = show(host, f"lernmanager-job-{job}.timer", "ActiveState", "UnitFileState", "NextElapseUSecRealtime", "TimersCalendar")
    assert (props["ActiveState"], props["UnitFileState"]) == ("active", "enabled"), props
    assert props["NextElapseUSecRealtime"] not in ("", "0", "n/a"), props
    assert f"OnCalendar={calendar}" in props["TimersCalendar"], props
