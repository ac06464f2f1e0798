"""tasks/main.yml in two phases, each guarded once: the host's set-up (skipped as a whole by the
gate's code lane) and the release. What the code lane skips is listed once, in
__lernmanager_host_phase (vars/main.yml): main.yml's host phase imports exactly those steps, in
that order, and the gate's message and the role README name what they set up."""

import re

from helpers import ROLE, load_yaml

MAIN = load_yaml(ROLE / "tasks" / "main.yml")
HOST_PHASE = load_yaml(ROLE / "vars" / "main.yml")["__lernmanager_host_phase"]


def run_block():
    return next(task for task in MAIN if "block" in task)


def phase(name_start):
    return next(task for task in run_block()["block"] if task["name"].startswith(name_start))


def steps_of(tasks):
    """The step files a list of tasks imports or includes, in order, through nested blocks."""
    found = []
    for task in tasks:
        if "block" in task:
            found += steps_of(task["block"])
        for key in ("ansible.builtin.import_tasks", "ansible.builtin.include_tasks"):
            if key in task:
                found.append(task[key].rsplit("/", 1)[-1].removesuffix(".yml"))
    return found


def code_lane_guards(tasks):
    """The tasks (blocks included) whose `when` reads the code lane."""
    count = 0
    for task in tasks:
        when = task.get("when", [])
        if "__lernmanager_code_lane" in " ".join(when if isinstance(when, list) else [str(when)]):
            count += 1
        count += code_lane_guards(task.get("block", []))
    return count


def test_the_host_phase_imports_the_listed_steps_in_order():
    host = phase("Set up the host")
    assert steps_of(host["block"]) == [step["step"] for step in HOST_PHASE]


def test_the_code_lane_guards_the_host_phase_once_and_nothing_else():
    host = phase("Set up the host")
    assert host["when"] == "not __lernmanager_code_lane | bool"
    assert code_lane_guards(MAIN) == 1
    for path in (ROLE / "tasks").rglob("*.yml"):
        if path.name not in ("main.yml", "gate.yml"):
            assert "__lernmanager_code_lane" not in path.read_text(encoding="utf-8"), path


def test_the_release_phase_follows_and_plans_first():
    release = phase("Build and switch to the release")
    steps = steps_of(release["block"])
    assert steps[0] == "plan" and "activate" in steps
    assert not set(steps) & {step["step"] for step in HOST_PHASE}


def test_the_gate_and_the_readme_name_what_the_code_lane_skips():
    words = [step["sets_up"] for step in HOST_PHASE if step["sets_up"]]
    gate = (ROLE / "tasks" / "steps" / "run" / "gate.yml").read_text(encoding="utf-8")
    assert "__lernmanager_host_phase | map(attribute='sets_up') | select | join(', ')" in gate
    readme = " ".join((ROLE / "README.md").read_text(encoding="utf-8").split())
    assert f"host's set-up ({', '.join(words)})" in readme, words
    assert re.search(r"code lane", readme)
