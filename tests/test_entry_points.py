"""The role's layout: entry points in tasks/ (each with its argument spec, each used by a playbook),
steps in tasks/steps/<group>/, sources in tasks/source/ (one file per lernmanager_source choice)."""

import re

import pytest

from helpers import REPO, ROLE, load_yaml, role_argument_specs, run_ansible
from role_reads import described_under, options, reads, reads_as_well

SPECS = load_yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]
# What `ansible-doc -t role lernmanager.deploy.lernmanager` printed when every entry point repeated
# every option (issue 39): the listing must stay at most a third of it.
DOC_LINES_BEFORE = 3291


def test_every_file_at_the_top_of_tasks_is_an_entry_point_with_its_spec():
    top = {path.stem for path in (ROLE / "tasks").glob("*.yml")}
    assert top == set(SPECS) == {"main", "rollback", "backup", "restore", "status"}


def test_each_option_is_described_under_one_entry_point():
    described = [name for spec in SPECS.values() for name in spec.get("options") or {}]
    assert len(described) == len(set(described)) == len(role_argument_specs())


@pytest.mark.parametrize("entry", sorted(SPECS))
def test_each_entry_point_reads_the_options_it_describes(entry):
    assert described_under(entry) - reads(entry) == set()


@pytest.mark.parametrize("entry", sorted(SPECS))
def test_each_entry_point_names_the_other_options_it_reads(entry):
    """Its description's "Reads as well" paragraph names exactly the options of other entry points
    its tasks, templates, handlers and the vars these use read (tests/role_reads.py)."""
    others = {name for name in reads(entry) if options()[name] != entry}
    assert reads_as_well(entry) == others, (
        f"{entry} reads as well, but its description does not say: {sorted(others - reads_as_well(entry))}; "
        f"it says, but does not read: {sorted(reads_as_well(entry) - others)}")


def test_the_role_doc_prints_each_option_once():
    doc = run_ansible("ansible-doc", "-t", "role", "lernmanager.deploy.lernmanager", env={"COLUMNS": "80"})
    assert doc.returncode == 0, doc.stderr
    headers = re.findall(r"^[-=] (lernmanager_\w+)  ", doc.stdout, re.M)
    assert sorted(headers) == sorted(role_argument_specs())
    assert len(doc.stdout.splitlines()) <= DOC_LINES_BEFORE // 3, len(doc.stdout.splitlines())


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
