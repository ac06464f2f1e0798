"""Every tag of the role works alone on a deployed host (`--tags lernmanager_python`): the run
does not fail, changes nothing, and reaches (runs or skips) more tasks than the steps tagged
`always` alone (so the tag's own tasks were reached; on a deployed host many of them have nothing
to do, and the firewall's are skipped while it is off). Runs on the hosts the side effect upgraded
to v2. The tags are shared out between the Debian 12 and 13 hosts, which run theirs at the same
time (one run per tag, not one per tag and host: each run costs ~20 s of the CI budget); with
`--platform-name`, the one host runs them all.

Reads the hosts only: the run of each tag alone changes nothing (tested)."""

import glob
import os
import re
import threading

import pytest

from lm_testlib import DEFAULT_LIVE as LIVE, REPO, converge, scenario_hosts

TASKS = os.path.join(REPO, "roles", "lernmanager", "tasks")
HOSTS = scenario_hosts()


def role_tags():
    tags = set()
    for path in glob.glob(os.path.join(TASKS, "**", "*.yml"), recursive=True):
        with open(path, encoding="utf-8") as handle:
            for found in re.findall(r"^\s+tags: \[([^\]]*)\]", handle.read(), re.M):
                tags.update(tag.strip() for tag in found.split(","))
    return sorted(tags - {"always"})


TAGS = role_tags()


# The scenario's secrets (molecule.yml): in no run's output.
SECRETS = ["lm-test-grading-token-7f3a9c", "lm-test-callback-secret-2b8e"]
OUTPUTS = []


def recap(run, host):
    """(reached = ok + skipped, changed, failed) of host in the play recap, or the run's end."""
    OUTPUTS.append(run.stdout + run.stderr)
    found = re.search(rf"(?m)^{host}\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)\s+skipped=(\d+)",
                      run.stdout)
    if run.returncode != 0 or not found:
        return run.stdout[-3000:] + run.stderr[-1000:]
    ok, changed, failed, skipped = (int(n) for n in found.groups())
    return ok + skipped, changed, failed


@pytest.fixture(scope="module")
def runs():
    """{tag: (host, recap)} and {host: recap of `--tags always`}: each host runs its share in turn."""
    by_tag, baseline = {}, {}

    def run_share(index, host):
        baseline[host] = recap(converge(LIVE, tags="always", limit=host), host)
        for tag in TAGS[index::len(HOSTS)]:
            by_tag[tag] = (host, recap(converge(LIVE, tags=tag, limit=host), host))

    threads = [threading.Thread(target=run_share, args=(i, host)) for i, host in enumerate(HOSTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return by_tag, baseline


def test_the_tags_of_every_step_are_found():
    assert {"lernmanager_activate", "lernmanager_python", "lernmanager_nginx", "lernmanager_gunicorn"} <= set(TAGS)


@pytest.mark.parametrize("tag", TAGS)
def test_the_tag_works_alone_and_changes_nothing(tag, runs):
    by_tag, baseline = runs
    host, result = by_tag[tag]
    assert isinstance(baseline[host], tuple), f"--tags always on {host} failed: {baseline[host]}"
    assert isinstance(result, tuple), f"--tags {tag} on {host} failed: {result}"
    reached, changed, failed = result
    assert (changed, failed) == (0, 0), f"--tags {tag} on {host}: changed={changed} failed={failed}"
    assert reached > baseline[host][0], f"--tags {tag} on {host} reached nothing beyond the steps tagged always"


def test_no_secret_of_the_grading_service_in_any_runs_output(runs):
    assert len(OUTPUTS) == len(TAGS) + len(HOSTS), "every run's output was kept"
    for secret in SECRETS:
        assert not [output for output in OUTPUTS if secret in output]
