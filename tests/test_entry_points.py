"""The role's layout: entry points in tasks/ (each with its argument spec, each used by a playbook),
steps in tasks/steps/<group>/, sources in tasks/source/ (one file per lernmanager_source choice)."""

import re

from helpers import REPO, ROLE, load_yaml, role_argument_specs

SPECS = load_yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]


def test_every_file_at_the_top_of_tasks_is_an_entry_point_with_its_spec():
    top = {path.stem for path in (ROLE / "tasks").glob("*.yml")}
    assert top == set(SPECS) == {"main", "rollback", "backup", "restore", "status"}


def test_every_entry_point_takes_the_same_variables():
    for name, spec in SPECS.items():
        assert spec["options"] == role_argument_specs(), name


def test_the_playbooks_name_entry_points():
    used = {}
    for playbook in (REPO / "playbooks").glob("*.yml"):
        for found in re.findall(r"tasks_from: (\S+)", playbook.read_text(encoding="utf-8")):
            used[playbook.name] = found
    # tasks_from without ".yml": Ansible picks the argument spec by that exact name.
    assert used == {"rollback.yml": "rollback", "backup.yml": "backup", "restore.yml": "restore", "status.yml": "status"}


def test_one_source_file_per_choice_of_lernmanager_source():
    choices = role_argument_specs()["lernmanager_source"]["choices"]
    assert sorted(p.stem for p in (ROLE / "tasks" / "source").glob("*.yml")) == sorted(choices)


def test_steps_are_included_from_an_entry_point_or_another_step():
    texts = {p: p.read_text(encoding="utf-8") for p in (ROLE / "tasks").rglob("*.yml")}
    included = set()
    for text in texts.values():
        included.update(name.rsplit("/", 1)[-1] for name in re.findall(r"_tasks: (?:steps/)?([\w/.]+\.yml)", text))
    steps = {p.name for p in (ROLE / "tasks" / "steps").rglob("*.yml")}
    assert steps - included == set(), "steps nobody includes"


def test_steps_are_grouped_by_what_they_do():
    """steps/run/ (what every run does around its work), steps/host/ (the host phase), steps/release/
    (the release phase), steps/switch/ (going live and reading what is live); no step at the top,
    and each name once (the headers name steps by their file name alone)."""
    steps = list((ROLE / "tasks" / "steps").rglob("*.yml"))
    assert {p.parent.name for p in steps} == {"run", "host", "release", "switch"}
    assert len({p.name for p in steps}) == len(steps)
