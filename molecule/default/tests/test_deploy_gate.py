"""The deploy gate (tasks/steps/run/gate.yml) on both hosts at once: a re-run with the inputs of the
last complete deploy ends after a few tasks and changes nothing; a hand edit, a stopped unit or a
changed variable makes the run take every step again, which puts the host right. The scenario's
own converges run every step (lernmanager_full_run in molecule.yml, so its idempotence is the
full path's); these runs turn the gate on. Each converge runs both hosts in parallel.

Changes the hosts: a hand edit, a stopped timer and a changed variable, each put right by a deploy."""

import json
import os
import re
import time

import pytest
import testinfra

from lm_testlib import DEFAULT_LIVE, ROOT, converge, recap_changed, run_module_on_host, scenario_hosts

GATED = dict(DEFAULT_LIVE, lernmanager_full_run=False)
SITE = "/etc/nginx/sites-available/lernmanager"
ENV_FILE = "/etc/lernmanager/lernmanager.env"
TIMER = "lernmanager-backup.timer"
HOSTS = scenario_hosts()
# The lock, the validation, the gate and the summary (~45): a run that takes every step reaches ~200.
MOST_TASKS_OF_A_GATED_RUN = 60


def on(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def reached(output, name):
    """ok + skipped of a host in the play recap."""
    found = re.search(rf"(?m)^{name}\s+:\s+ok=(\d+)\s+changed=\d+\s+unreachable=\d+\s+failed=\d+\s+skipped=(\d+)", output)
    return int(found.group(1)) + int(found.group(2))


def timed_converge(extra_vars):
    start = time.monotonic()
    run = converge(extra_vars)
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return run, seconds


@pytest.fixture(scope="module")
def runs():
    """The runs, in order: settle (the scenario's last converge took every step with the same
    inputs: already gated), a no-op, then drift on each host (one's site edited, the other's
    backup timer stopped) together with a changed variable that writes nothing on the host."""
    first, second = HOSTS[0], HOSTS[-1]
    results = {"settle": timed_converge(GATED), "noop": timed_converge(GATED)}
    results["site_before"] = on(first).file(SITE).content_string
    on(first).run_expect([0], f"echo '# edited by hand' >> {SITE} && chmod 0644 {ENV_FILE}")
    on(second).run_expect([0], f"systemctl stop {TIMER}")
    # What status (and the daily self-check) says of it, with the options the role gave the self-check.
    results["status"] = {name: run_module_on_host("host_status", json.loads(
        on(name).file("/etc/lernmanager/notify.json").content_string)["check"], on=name) for name in (first, second)}
    results["drift"] = timed_converge(dict(GATED, lernmanager_apt_cache_valid_time=7201))
    results["site_after"] = on(first).file(SITE).content_string
    results["env_mode_after"] = on(first).file(ENV_FILE).mode
    results["timer_after"] = on(second).run(f"systemctl is-active {TIMER}").stdout.strip()
    print("deploy gate, both hosts in parallel: " + ", ".join(
        f"{name} {results[name][1]:.1f} s" for name in ("settle", "noop", "drift")))
    return results


def test_a_no_op_re_run_ends_at_the_gate_and_changes_nothing(runs):
    output = runs["noop"][0].stdout
    for name in HOSTS:
        assert recap_changed(output)[name] == 0
        assert reached(output, name) <= MOST_TASKS_OF_A_GATED_RUN, f"{name} walked the steps: {reached(output, name)} tasks"
    assert output.count("Nothing to do: the inputs and") == len(HOSTS)
    assert "Deploying, as" not in output


def test_a_hand_edit_a_stopped_unit_or_a_changed_variable_runs_every_step(runs):
    output = runs["drift"][0].stdout
    assert output.count("the inputs changed: lernmanager_apt_cache_valid_time") == len(HOSTS)
    assert f"{SITE} changed" in output
    assert f"unit {TIMER} is not active (inactive)" in output
    assert "Nothing to do" not in output
    assert runs["site_after"] == runs["site_before"], "the full run wrote the site back"
    assert runs["timer_after"] == "active"
    for name in HOSTS:
        assert reached(output, name) > 100, "every step ran"


def test_status_names_each_difference_by_path_and_what_differs(runs):
    first, second = HOSTS[0], HOSTS[-1]
    assert runs["status"][first]["drift"] == [f"{ENV_FILE}: mode 640 -> 644", f"{SITE}: content"]
    assert runs["status"][second]["drift"] == [f"unit {TIMER} is inactive"]
    (problem,) = [p for p in runs["status"][first]["problems"] if "differ from the last complete deploy" in p]
    assert "edited by hand" not in problem, "never a file's content"
    assert runs["env_mode_after"] == 0o640, "the deploy put the mode back"


def test_the_record_is_roots_and_watches_every_place_the_deploy_writes(host):
    record = host.file(f"{ROOT}/deployed.json")
    assert (record.user, record.group, record.mode) == ("root", "root", 0o600)
    files = json.loads(record.content_string)["files"]
    # Everything the deploy writes under the instance's name outside the releases and venvs.
    found = host.check_output(
        "find /etc /usr/local/sbin /var/log/nginx -maxdepth 3 -name '*lernmanager*' "
        "-not -path '/etc/ssl/*' -print")
    written = set(found.split())
    assert f"{SITE}" in written and "/etc/lernmanager" in written, "the search finds the deploy's files"
    assert not written - set(files), f"written by the deploy, not watched by the gate: {sorted(written - set(files))}"
