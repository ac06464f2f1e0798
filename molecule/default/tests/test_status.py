"""playbooks/status.yml on the deployed hosts (after the side effect: v2 live, v1 previous, a backup
taken): one line per host a person reads, the details with -v, nothing changed, check mode the
same, and with lernmanager_status_strict a failed host for each warning. It runs twice for both
hosts (the runs are cached per module), then each host's checks read the output.

Reads the hosts only: playbooks/status.yml changes nothing (tested)."""

import functools
import os
import re

import pytest

from lm_testlib import REPO, ROOT, SERVER_NAME, playbook, recap_changed, release_of

STATUS = os.path.join(REPO, "playbooks", "status.yml")
# side_effect.yml planted this link as the app's account: status names it on every run.
PLANTED = ("shared/data holds 'mbi_tracker.db.backup_link' (a link to '/etc/lernmanager/secret_key'): the app makes "
           "no links or special files there, its account may have been misused (a deploy warns, and stops at a "
           "planted migration record; lernmanager_quarantine_planted moves them aside)")


@functools.lru_cache(maxsize=None)
def status_run(strict_check_mode):
    extra = {"lernmanager_server_name": SERVER_NAME}
    if strict_check_mode:
        # Every disk is "too full" at 101 %: a warning on every host, whatever the machine's disk.
        extra.update(lernmanager_status_strict=True, lernmanager_status_min_free_percent=101)
        return playbook(STATUS, extra, check=True)
    return playbook(STATUS, extra, verbose=True)


def status_lines(output):
    assert "LERNMANAGER STATUS" in output, output[-3000:]
    summary = output.split("LERNMANAGER STATUS", 1)[1].splitlines()
    return {line.split()[0]: line for line in summary if line.startswith("lm-")}


@pytest.fixture
def name(host):
    return host.backend.get_hostname()


def test_status_says_in_one_line_what_serves_and_how_it_is_doing(host, name):
    run = status_run(False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert recap_changed(run.stdout)[name] == 0, "status changes nothing"
    line = status_lines(run.stdout)[name]
    previous = host.check_output(f"readlink {ROOT}/previous").rsplit("/", 1)[-1]
    expected = (rf"{name}\s+ok\s+live {re.escape(release_of(host))} \(\d+ (s|min|h)\), previous {re.escape(previous)}, "
                r"/login 200, (\d+ MiB|memory \?), \d+ restarts, backup \d+ (s|min) ago, drill \d+ (s|min) ago: ok, "
                r"database \d+ MiB \+ WAL \d+ MiB, care \d+ (s|min) ago: vacuumed \(\d+ % free pages before\), "
                r"free / \d+ %, "
                r"memory \d+ % available, logs \d+ MiB, no drift, self-check \d+ (s|min) ago: (ok|1 problem)")
    assert re.match(expected, line), line
    # A freshly deployed, backed-up host needs nothing but a look at the link the side effect
    # planted in data/ as the app's account.
    assert f"  WARNING (1): {PLANTED}  " in line, line


def test_status_shows_the_details_with_v(host, name):
    output = status_run(False).stdout
    details = [chunk for chunk in output.split("TASK [")
               if chunk.startswith("lernmanager.deploy.lernmanager : Show the details") and name in chunk]
    assert details, "the details task ran for the host"
    for key in ('"live"', '"since"', '"previous"', '"memory_bytes"', '"restarts"', '"age_seconds"', '"free_percent"'):
        assert key in details[0], key


def test_status_in_check_mode_with_strict_fails_each_host_with_a_warning(host, name):
    run = status_run(True)
    assert run.returncode == 2, run.stdout[-3000:]
    assert recap_changed(run.stdout)[name] == 0
    line = status_lines(run.stdout)[name]
    # The memory's threshold is the disks' (lernmanager_status_min_free_percent).
    assert re.match(rf"{name}\s+failed\s+live \S+ .* WARNING \(3\): {re.escape(PLANTED)}; /, {ROOT}/shared/data: "
                    r"\d+ % free \(\d+ MiB; less than 101 %\); memory: \d+ % available \(\d+ of \d+ MiB; less than 101 %\)",
                    line), line
    # (Molecule's environment sends failures to stderr.)
    assert f"{name} needs an admin: {PLANTED}; /, {ROOT}/shared/data: " in run.stdout + run.stderr
