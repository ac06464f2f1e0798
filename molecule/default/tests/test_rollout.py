"""A rollout across the scenario's two hosts with playbooks/deploy.yml as an admin runs it: the
canary is the first host of the inventory (Debian 12), and its v2 fails its migration. The
rollout must stop there: the canary goes on serving what it served with its database as it was
(the migration failed on a trial copy), the other host is never touched (its files and its
service's start time are as before), and the run's last lines say so for each host. Marked
`last`: the canary keeps the failed release on disk for the admin to read."""

import os
import re
import subprocess
import sys

import pytest
import testinfra
import yaml

from lm_testlib import DEFAULT_LIVE, REPO, RESOURCES, ROOT, db_state, http, playbook, release_of

pytestmark = pytest.mark.last

CANARY, OTHER = "lm-default-debian12", "lm-default-debian13"
BROKEN = "v2_migration_fails"
# Where the role writes on a host, outside the app's own data (which the app may write at any time).
WRITTEN = f"{ROOT} /etc/lernmanager /etc/systemd/system /etc/nginx /var/cache/lernmanager"


def host_named(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def converge_vars():
    """The variables of the scenario's converge play, for deploy.yml (which has none of its own)."""
    with open(os.path.join(RESOURCES, "converge.yml"), encoding="utf-8") as handle:
        play = next(p for p in yaml.safe_load(handle) if p["name"] == "Converge")
    return play["vars"]


def state(host):
    main = host.check_output("systemctl show -P MainPID lernmanager.service")
    return {"release": release_of(host), "main_pid": main,
            "started": host.check_output("systemctl show -P ActiveEnterTimestampMonotonic lernmanager.service"),
            "releases": host.check_output(f"ls -A {ROOT}/releases {ROOT}/venvs")}


@pytest.fixture(scope="module")
def stopped_rollout(tmp_path_factory):
    app = tmp_path_factory.mktemp("app") / BROKEN
    subprocess.run([sys.executable, os.path.join(REPO, "tests", "fixtures", "build_app.py"), BROKEN, str(app)],
                   check=True)
    hosts = {name: host_named(name) for name in (CANARY, OTHER)}
    before = {name: state(host) for name, host in hosts.items()}
    before["database"] = db_state(hosts[CANARY])
    since = hosts[OTHER].check_output("date +%s.%N")
    # The side effect's settings: only the app's version differs.
    run = playbook(os.path.join(REPO, "playbooks", "deploy.yml"),
                   {**converge_vars(), **DEFAULT_LIVE, "lernmanager_source_path": str(app)})
    return hosts, before, since, run


def test_a_failed_canary_stops_the_rollout(stopped_rollout):
    hosts, before, _, run = stopped_rollout
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    assert "migrations failed on a copy of the database (migrate_003_broken.py)" in output, output[-3000:]
    canary = hosts[CANARY]
    assert state(canary)["release"] == before[CANARY]["release"], "the canary serves what it served"
    assert http(canary, "/login").status == 200
    assert db_state(canary) == before["database"]
    assert "migrate_003" not in canary.file(f"{ROOT}/shared/data/migrations_done.txt").content_string
    new = set(state(canary)["releases"].split()) - set(before[CANARY]["releases"].split())
    broken = [name for name in new if f"{ROOT}/releases/{name}" in output]
    assert len(broken) == 1, f"the broken release is kept on disk and named: {new}"
    assert "PLAY [Deploy Lernmanager]" in output and output.count("TASK [Gathering Facts]") == 1, \
        "the other host's batch never began"


def test_the_host_after_the_canary_is_untouched(stopped_rollout):
    hosts, before, since, _ = stopped_rollout
    other = hosts[OTHER]
    assert state(other) == before[OTHER]
    changed = other.check_output(f"find {WRITTEN} -newermt @{since} -not -path '{ROOT}/shared/*' -print")
    assert changed == "", changed


def test_the_run_ends_with_one_line_per_host(stopped_rollout):
    _, before, _, run = stopped_rollout
    lines = run.stdout.split("LERNMANAGER ROLLOUT", 1)[-1].splitlines()
    canary = next(line.split() for line in lines if line.startswith(CANARY + " "))
    other = next(line.split() for line in lines if line.startswith(OTHER + " "))
    assert canary[1:4] == ["failed", "serves", before[CANARY]["release"]], canary
    # "(not <the broken release>)": another release id than the one it serves, then the seconds.
    assert canary[4] == "(not" and re.fullmatch(r"p-[0-9a-f]{16}-[0-9a-f]{8}\)", canary[5]), canary
    assert canary[5] != before[CANARY]["release"] + ")" and canary[-1] == "s", canary
    assert other[1:] == ["not", "started", "untouched", "-"], other
