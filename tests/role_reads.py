"""Which of the role's options each entry point reads, from its task files: the entry point's file,
every task file it imports or includes (a templated name: every file it can name), the templates
those render, the handlers when they notify any, and the role's vars and defaults that these name,
followed to the end. A read inside a branch the entry point never takes still counts: the
argument specs say what an entry point may read (tests/test_entry_points.py)."""

import functools
import re

import yaml

from helpers import ROLE, load_yaml

NAME = re.compile(r"\b(?:__)?lernmanager_\w+")
INCLUDED_TASKS = re.compile(r"(?:import|include)_tasks:\s*(\S.*\.yml)")
TEMPLATE = re.compile(r"\b([\w.-]+\.j2)\b")
TEMPLATE_INCLUDE = re.compile(r"(?:include|import)\s+['\"]([\w.-]+\.j2)['\"]")
SPECS = load_yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]


def options():
    """{option: the entry point whose spec describes it}."""
    return {name: entry for entry, spec in SPECS.items() for name in spec.get("options") or {}}


def files_read(entry):
    tasks = {path.name: path for path in (ROLE / "tasks").rglob("*.yml")}
    todo, seen = [ROLE / "tasks" / f"{entry}.yml"], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".yml":
            for name in INCLUDED_TASKS.findall(text):
                if "{{" in name:
                    todo += sorted((ROLE / "tasks" / name.split("{{")[0]).glob("*.yml"))
                else:
                    # Steps include their neighbours by file name alone (the names are unique).
                    todo.append(tasks[name.rsplit("/", 1)[-1]])
            if "notify:" in text:
                todo.append(ROLE / "handlers" / "main.yml")
        for name in (TEMPLATE_INCLUDE if path.suffix == ".j2" else TEMPLATE).findall(text):
            if (ROLE / "templates" / name).exists():
                todo.append(ROLE / "templates" / name)
    return seen


@functools.lru_cache(maxsize=None)
def definitions():
    """{variable: its value as YAML text} of the role's defaults and vars, read once."""
    found = {}
    for where in ("defaults", "vars"):
        for name, value in load_yaml(ROLE / where / "main.yml").items():
            found[name] = yaml.safe_dump(value)
    return found


def reads(entry):
    """The options ENTRY reads, whichever entry point's spec describes them."""
    todo = [name for path in files_read(entry) for name in NAME.findall(path.read_text(encoding="utf-8"))]
    named = set()
    while todo:
        name = todo.pop()
        if name not in named:
            named.add(name)
            todo += NAME.findall(definitions().get(name, ""))
    return named & set(options())


def described_under(entry):
    return {name for name, owner in options().items() if owner == entry}


def reads_as_well(entry):
    """The options of other entry points that ENTRY's description says it reads: the names in its
    paragraph "Reads as well the options of main: ..."."""
    return {name for paragraph in SPECS[entry]["description"] if paragraph.startswith("Reads as well")
            for name in re.findall(r"lernmanager_\w+", paragraph)}
