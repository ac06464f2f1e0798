"""One run of the collection's playbooks at a time per host (after test_zero_downtime.py: v2 is live).

Two deploys started at the same moment, a run killed while it holds the lock, and a lock held by
a run of another controller."""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time

from lm_testlib import RESOURCES, ROOT, backup, converge, http, recap_changed, release_of

LOCK = "/run/lernmanager-deploy.lock"


def test_two_deploys_at_once_build_one_release(host):
    releases_before = set(host.check_output(f"ls {ROOT}/releases").split())
    runs = [None, None]

    def deploy(slot):
        runs[slot] = converge({"lernmanager_standin_version": "v2_patch"})
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
    changed = sorted(recap_changed(run.stdout).get("lm-zero-downtime-debian12", -1) for run in runs)
    assert changed[0] == 0 < changed[1], changed
    assert not host.file(LOCK).exists, "released at the end of both runs"


def start_converge(extra_vars):
    """The converge playbook in the background, in a process group of its own."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars, handle)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    return subprocess.Popen(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                             os.path.join(RESOURCES, "converge.yml"), "-e", "@" + handle.name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)


def test_the_lock_of_a_killed_run_is_taken_over(host):
    killed = start_converge({"lernmanager_standin_version": "v2"})
    for _ in range(240):
        if host.file(LOCK).exists:
            break
        time.sleep(0.5)
    holder = json.loads(host.file(LOCK).content_string)
    # As a dropped SSH connection ends it: no cleanup of any kind.
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert holder["pid"] == killed.pid and holder["playbook"] == "converge.yml", holder
    assert host.file(LOCK).exists, "the killed run left its lock behind"
    run = converge({"lernmanager_standin_version": "v2"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"took over the host lock of converge.yml (PID {killed.pid}" in run.stdout
    assert 'name="standin-version" content="2"' in http(host, "/login").body
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
