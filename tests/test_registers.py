"""Every result a task registers is read somewhere (a register nobody reads is a hand-off that
went missing, or one that should go), and every hand-off between files is declared in both."""

import re

import pytest
import yaml

from helpers import ROLE

TEXTS = {path: path.read_text(encoding="utf-8")
         for path in sorted(ROLE.glob("tasks/**/*.yml")) + sorted(ROLE.glob("templates/*.j2")) + [ROLE / "vars" / "main.yml"]}
REGISTERED = sorted({name for text in TEXTS.values() for name in re.findall(r"^\s*register: (\w+)$", text, re.M)})


def test_the_reader_finds_the_registers():
    assert "__lernmanager_gate" in REGISTERED and len(REGISTERED) > 20


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_result_is_read(name):
    reads = sum(len(re.findall(rf"\b{name}\b", text)) - len(re.findall(rf"register: {name}$", text, re.M))
                for text in TEXTS.values())
    assert reads > 0, f"{name} is registered but never read"


def test_no_register_hides_a_variable_of_the_role():
    """A registered result outranks the role's vars and defaults for the rest of the play: a
    register named like one of them replaces that value with a task's result (a site name became a
    dict, and the next task linked a file by the dict's text)."""
    names = set()
    for part in ("vars", "defaults"):
        names |= set(re.findall(r"^(\w+):", (ROLE / part / "main.yml").read_text(encoding="utf-8"), re.M))
    assert "__lernmanager_nginx_site" in names
    assert sorted(names & set(REGISTERED)) == []


# --- declared hand-offs ------------------------------------------------------------------------------
# A name set at run time (a register, a set_fact key) and read in another file is a hand-off: the
# file that sets it lists it under "Outputs:" in its header comment, with the files that read it,
# and each file that reads it lists it under "Inputs:", with the files that set it. So a step's
# inputs and outputs can be read at its top, and a new hand-off cannot hide.
TASK_FILES = {path.relative_to(ROLE / "tasks").as_posix(): path.read_text(encoding="utf-8")
              for path in sorted((ROLE / "tasks").rglob("*.yml"))}
OTHER_FILES = {path.relative_to(ROLE).as_posix(): path.read_text(encoding="utf-8")
               for path in sorted(ROLE.glob("templates/*.j2")) + [ROLE / "vars" / "main.yml"]}


def names_set(node, found):
    if isinstance(node, list):
        for item in node:
            names_set(item, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "ansible.builtin.set_fact" and isinstance(value, dict):
                found.update(name for name in value if name != "cacheable")
            if key == "register":
                found.add(value)
            names_set(value, found)
    return found


def code(text):
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


SETS = {name: names_set(yaml.safe_load(text), set()) for name, text in TASK_FILES.items()}
RUNTIME = set().union(*SETS.values())
READS = {name: {n for n in RUNTIME if re.search(rf"\b{n}\b", code(text))} for name, text in {**TASK_FILES, **OTHER_FILES}.items()}


def short(path):
    """A file as the headers name it: a step by its name alone (steps/<phase>/x.yml: the names are unique)."""
    if path.startswith("steps/"):
        return path.rsplit("/", 1)[-1]
    return path.removeprefix("templates/").replace("vars/main.yml", "vars")


def declared(text, label):
    """{name: [files] or None} of the header's section `label` ("# Inputs: ..." and its "#   " lines)."""
    header = []
    for line in text.splitlines()[1:]:
        if not line.startswith("#"):
            break
        header.append(line)
    section, inside = [], False
    for line in header:
        if line.startswith(f"# {label}:"):
            inside = True
            section.append(line.split(":", 1)[1])
        elif inside and line.startswith("#   "):
            section.append(line[1:])
        else:
            inside = False
    text = " ".join(" ".join(section).split())
    entries = {}
    for name, files in re.findall(r"(__lernmanager_\w+)(?: \(([^)]*)\))?", text):
        entries[name] = sorted(f.strip() for f in files.removeprefix("read in ").split(",")) if files else None
    return entries


def hand_offs(path):
    inputs = {n: sorted(short(f) for f in TASK_FILES if n in SETS[f]) for n in READS[path] - SETS[path]}
    outputs = {n: sorted(short(f) for f in READS if f != path and n in READS[f]) for n in SETS[path]}
    return inputs, {n: readers for n, readers in outputs.items() if readers}


def test_the_hand_off_reader_finds_them():
    inputs, outputs = hand_offs("steps/release/plan.yml")
    assert outputs["__lernmanager_release_id"][:2] == ["activate.yml", "database.yml"]
    assert len(RUNTIME) > 80 and sum(bool(hand_offs(f)[0]) for f in TASK_FILES) > 20


@pytest.mark.parametrize("path", sorted(TASK_FILES))
def test_every_hand_off_is_declared_where_it_is_made_and_where_it_is_read(path):
    inputs, outputs = hand_offs(path)
    said_in, said_out = declared(TASK_FILES[path], "Inputs"), declared(TASK_FILES[path], "Outputs")
    for name, setters in inputs.items():
        assert name in said_in, f"{path} reads {name} (set in {', '.join(setters)}) without declaring it in # Inputs:"
        assert said_in[name] in (None, setters), f"{path}: {name} is set in {setters}, the header says {said_in[name]}"
    for name, readers in outputs.items():
        assert said_out.get(name) == readers, f"{path} hands {name} to {readers}: its # Outputs: says {said_out.get(name)}"
    assert set(said_out) <= set(outputs), f"{path} declares outputs nobody else reads: {set(said_out) - set(outputs)}"
    assert set(said_in) <= READS[path] | set(re.findall(r"\b(__lernmanager_\w+)\b", code(TASK_FILES[path]))), \
        f"{path} declares inputs it does not read"


def test_the_roles_vars_hold_no_value_of_the_run():
    """vars/main.yml is read lazily wherever a name is used: a value there that reads a register or
    a set_fact depends on which step ran before the reader, and the reader cannot see it. Such a
    value is made by the step that makes its input (a set_fact or a task's vars) and handed on."""
    assert READS["vars/main.yml"] == set(), f"vars/main.yml reads values of the run: {sorted(READS['vars/main.yml'])}"
