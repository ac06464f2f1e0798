"""One run of the collection's playbooks at a time per host, and runs killed at their worst moments
(after test_zero_downtime.py: v2 is live).

Two deploys started at the same moment; runs killed (SIGKILL, as a dropped SSH connection ends
them) while they hold the lock, at three points of a deploy, each followed by a plain run; a lock
held by a run of another controller.

Changes the host: two deploys at once, runs killed at their worst moments, each put right by the next."""

import json
import re
import threading
import time

import pytest

from lm_testlib import ROOT, as_service_user, backup, converge, http, killed_converge, recap_changed, release_of

LOCK = "/run/lernmanager-deploy.lock"


def test_two_deploys_at_once_build_one_release(host):
    releases_before = set(host.check_output(f"ls {ROOT}/releases").split())
    runs = [None, None]

    def deploy(slot):
        runs[slot] = converge({"standin_version": "v2_patch"})
    threads = [threading.Thread(target=deploy, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run in runs:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    built = set(host.check_output(f"ls -A {ROOT}/releases").split()) - releases_before
    assert len(built) == 1 and not any(".partial" in name for name in built), built
    assert release_of(host) in built
    # The second run waited for the first and found nothing left to do.
    changed = sorted(recap_changed(run.stdout).get(host.backend.host, -1) for run in runs)
    assert changed[0] == 0 < changed[1], changed
    assert not host.file(LOCK).exists, "released at the end of both runs"


UNIT, CONF = "/etc/systemd/system/lernmanager.service", "/etc/lernmanager/gunicorn.conf.py"


def serving(host):
    """The release the running gunicorn was started in: its working directory, which gunicorn.conf.py
    resolves from `current` when it starts."""
    pid = host.check_output("systemctl show -P MainPID lernmanager.service")
    # As the service user: root in a container has no CAP_SYS_PTRACE to read another user's cwd.
    return host.check_output(as_service_user(f"readlink /proc/{pid}/cwd")).rsplit("/", 1)[-1]


def venv_of_unit(host):
    return re.search(r"^ExecStart=(\S+)/bin/python", host.file(UNIT).content_string, re.M).group(1)


def previous_of(host):
    return host.check_output(f"readlink {ROOT}/previous").rsplit("/", 1)[-1]


# Where a dropped connection can end a deploy (issue 9): after the new release and venv are
# complete (v2_deps has a venv of its own), after `current` is switched but before the restart,
# and while the health check runs. Each kill switches between v2_deps and v2_patch.
KILL_POINTS = [
    ("v2_deps", "lernmanager : Write the grading service's token for nginx (root-only)", "task_start"),
    ("v2_patch", "lernmanager : Enable and start the socket", "task_start"),
    ("v2_deps", "lernmanager : Wait until /login answers 200 through nginx", "runner_start"),
]


@pytest.mark.parametrize(("version", "at", "on"), KILL_POINTS, ids=["before-activation", "after-switch", "in-health-check"])
def test_the_next_run_after_a_kill_serves_what_current_names(host, version, at, on):
    served, unit = serving(host), host.file(UNIT).content_string
    assert served == release_of(host), "each test starts from a health-checked state"
    killed = killed_converge({"standin_version": version}, at, on)
    assert host.file(LOCK).exists, "the killed run left its lock behind"
    if at.endswith("for nginx (root-only)"):
        # Nothing live changed: not even the unit names the new, untried venv.
        assert (serving(host), release_of(host), host.file(UNIT).content_string) == (served, served, unit)
    elif at.endswith("start the socket"):
        assert release_of(host) != served == serving(host), "killed between the switch and the restart"
    run = converge({"standin_version": version})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"took over the host lock of converge.yml (PID {killed}" in run.stdout
    live = release_of(host)
    assert live != served and serving(host) == live, (served, live, serving(host))
    assert previous_of(host) == served
    assert venv_of_unit(host) == host.check_output(f"readlink {ROOT}/releases/{live}/.venv")
    assert json.loads(host.file(f"{ROOT}/live.json").content_string)["release"] == live
    assert http(host, "/login").status == 200
    assert not host.file(LOCK).exists


def test_a_lock_held_elsewhere_fails_the_run_naming_its_holder(host):
    holder = {"controller": "admin-laptop", "pid": 4242, "started": "boot:1", "playbook": "deploy.yml",
              "since": "2026-11-29T08:00:00Z"}
    host.run(f"umask 077 && printf '%s' '{json.dumps(holder)}' > {LOCK}")
    before = release_of(host)
    try:
        started = time.monotonic()
        run = backup({"lernmanager_lock_timeout": 3})
        waited = time.monotonic() - started
    finally:
        host.run(f"rm -f {LOCK}")
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "deploy.yml, PID 4242 on admin-laptop, since 2026-11-29T08:00:00Z" in output, output[-3000:]
    assert waited >= 3
    assert release_of(host) == before
