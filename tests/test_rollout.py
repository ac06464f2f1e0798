"""The rollout of playbooks/*.yml, run for real on three local "hosts": the play keywords of
playbooks/deploy.yml (a canary, then batches; one failure stops the rollout), the role's summary
record (tasks/steps/run/summary.yml) and the callback that prints one line per host
(plugins/callback/rollout.py). A task stands in for the role's deploy: it fails on the hosts
named in `fail`, and a host that passes records its new release in live.json as the role does."""

import json
import sys

import pytest
import yaml

from helpers import REPO, ROLE, load_yaml, run_ansible

HOSTS = ["school-a", "school-b", "school-c"]
PLAYBOOKS = ["deploy.yml", "rollback.yml", "backup.yml"]


def rollout_keywords(name):
    play = load_yaml(REPO / "playbooks" / name)[0]
    return {key: play.get(key) for key in ("hosts", "serial", "max_fail_percentage")}


def run_rollout(tmp_path, fail=(), extra=()):
    inventory = {"all": {"children": {"lernmanager": {"hosts": {
        host: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
               "__lernmanager_live_state": str(tmp_path / f"{host}.json")}
        for host in HOSTS}}}}}
    for host in HOSTS:
        (tmp_path / f"{host}.json").write_text(json.dumps({"release": "p-old"}))
    play = {"name": "Deploy Lernmanager", **rollout_keywords("deploy.yml"), "gather_facts": False,
            "vars": {"fail": list(fail)},
            "tasks": [{"block": [
                {"name": "Deploy (a stand-in)",
                 "ansible.builtin.command": "{{ 'false' if inventory_hostname in fail else 'true' }}"},
                {"name": "Go live", "ansible.builtin.copy": {"content": '{"release": "p-new"}',
                                                             "dest": "{{ __lernmanager_live_state }}"}}],
                "always": [{"ansible.builtin.import_tasks": str(ROLE / "tasks" / "steps" / "run" / "summary.yml"),
                            "vars": {"__lernmanager_summary_release": "p-new"}}]}]}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    run = run_ansible("ansible-playbook", "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml"), *extra)
    assert "LERNMANAGER ROLLOUT" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    summary = run.stdout.split("LERNMANAGER ROLLOUT", 1)[1].splitlines()
    lines = {line.split()[0]: " ".join(line.split()[1:]) for line in summary if line.split()[:1] and line.split()[0] in HOSTS}
    return run, lines


def test_a_failed_canary_stops_the_rollout_before_any_other_host(tmp_path):
    run, lines = run_rollout(tmp_path, fail=["school-a"])
    assert run.returncode != 0
    assert lines["school-a"].startswith("failed serves p-old (not p-new) "), lines
    assert lines["school-b"] == lines["school-c"] == "not started untouched -", lines
    assert "school-b" not in run.stdout.split("LERNMANAGER ROLLOUT")[0], "the second batch never began"


def test_a_rollout_without_failures_reaches_every_host_canary_first(tmp_path):
    run, lines = run_rollout(tmp_path)
    assert run.returncode == 0, run.stdout[-3000:]
    assert all(lines[host].startswith("changed serves p-new ") for host in HOSTS), lines
    # Batches of one: the canary, then 34 % of three hosts (one each).
    assert run.stdout.count("TASK [Deploy (a stand-in)]") == 3


def test_a_failure_in_a_later_batch_stops_the_batches_after_it(tmp_path):
    run, lines = run_rollout(tmp_path, fail=["school-b"])
    assert run.returncode != 0
    assert lines["school-a"].startswith("changed serves p-new "), lines
    assert lines["school-b"].startswith("failed serves p-old (not p-new) "), lines
    assert lines["school-c"] == "not started untouched -", lines


def test_serial_and_max_fail_percentage_come_from_extra_variables(tmp_path):
    run, lines = run_rollout(tmp_path, fail=["school-b"], extra=(
        "-e", '{"lernmanager_serial": "100%", "lernmanager_max_fail_percentage": 50}'))
    assert run.stdout.count("TASK [Deploy (a stand-in)]") == 1, "one batch of all three"
    assert lines["school-a"].startswith("changed") and lines["school-c"].startswith("changed"), lines
    assert lines["school-b"].startswith("failed"), lines


@pytest.mark.parametrize("name", PLAYBOOKS[1:])
def test_rollback_and_backup_roll_out_as_deploy_does(name):
    assert rollout_keywords(name) == rollout_keywords("deploy.yml")


def test_after_status_each_host_has_its_status_line_and_a_failed_host_says_so(tmp_path):
    inventory = {"all": {"children": {"lernmanager": {"hosts": {
        host: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable} for host in HOSTS[:2]}}}}}
    play = {"name": "Status", "hosts": "lernmanager", "gather_facts": False, "tasks": [
        {"name": "Record the status line (as tasks/status.yml does)", "ansible.builtin.set_stats": {
            "data": {"lernmanager": {"live": "r-1", "status": "live r-1 (3 d), /login {{ 500 if inventory_hostname == 'school-b' else 200 }}"}},
            "per_host": True}},
        {"name": "Fail like lernmanager_status_strict", "ansible.builtin.fail": {"msg": "needs an admin"},
         "when": "inventory_hostname == 'school-b'"}]}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    run = run_ansible("ansible-playbook", "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml"))
    assert run.returncode == 2 and "LERNMANAGER ROLLOUT" not in run.stdout
    summary = run.stdout.split("LERNMANAGER STATUS", 1)[1].splitlines()
    lines = {line.split()[0]: " ".join(line.split()[1:]) for line in summary if line.split()[:1] and line.split()[0] in HOSTS}
    assert lines["school-a"].startswith("ok live r-1 (3 d), /login 200 "), lines
    assert lines["school-b"].startswith("failed live r-1 (3 d), /login 500 "), lines


def test_each_hosts_warnings_are_repeated_once_below_its_line(tmp_path):
    inventory = {"all": {"children": {"lernmanager": {"hosts": {
        host: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable} for host in HOSTS[:2]}}}}}
    warn = {"ansible.builtin.debug": {"msg": "WARNING: lernmanager_tls is auto and resolves to off:\n  plain HTTP."},
            "when": "inventory_hostname == 'school-a'"}
    play = {"name": "Deploy Lernmanager", "hosts": "lernmanager", "gather_facts": False, "tasks": [
        {"name": "Warn", **warn}, {"name": "Warn again (a second entry point's run)", **warn},
        {"name": "Say something that is no warning", "ansible.builtin.debug": {"msg": "Nothing to do: WARNING: not at the start"}},
        {"name": "Record the release", "ansible.builtin.set_stats": {"data": {"lernmanager": {"live": "r-1"}}, "per_host": True}}]}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    run = run_ansible("ansible-playbook", "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml"))
    assert run.returncode == 0, run.stdout[-3000:]
    summary = run.stdout.split("LERNMANAGER ROLLOUT", 1)[1].splitlines()
    start = next(i for i, line in enumerate(summary) if line.startswith("school-a"))
    assert summary[start + 1] == "  warning: lernmanager_tls is auto and resolves to off: plain HTTP.", summary
    assert summary[start + 2].startswith("school-b "), summary
    assert sum("warning:" in line for line in summary) == 1, summary
