"""No task gives a directory the service user controls as TMPDIR (or any other environment) to a
module that runs as root.

Ansible unpacks every module into tempfile.mkdtemp() on the host, which honours the task's
`environment:`. With TMPDIR in shared/instance/tmp (the service user's), root would write its
module there, where the service user may rename the directory and put a crafted module or a link
in its place. The app's own processes get that environment through the modules' `app_environment`.
"""

import pytest

from helpers import ROLE, load_yaml

SERVICE_PATHS = ("shared/instance", "shared/data", "__lernmanager_app_env")


def tasks_with_environment():
    found = []

    def walk(tasks, path):
        for task in tasks or []:
            if not isinstance(task, dict):
                continue
            for key in ("block", "rescue", "always"):
                walk(task.get(key), path)
            if "environment" in task:
                found.append((path.name, task.get("name", "?"), task))

    for path in sorted((ROLE / "tasks").glob("**/*.yml")):
        walk(load_yaml(path), path)
    return found


TASKS = tasks_with_environment()


def test_the_reader_sees_the_tasks_with_an_environment():
    assert {name for name, _, _ in TASKS} >= {"python.yml", "gunicorn.yml"}, TASKS


@pytest.mark.parametrize("file, name, task", TASKS, ids=[f"{f}: {n}" for f, n, _ in TASKS])
def test_no_root_task_gets_a_service_directory_in_its_environment(file, name, task):
    environment = str(task["environment"])
    as_service_user = task.get("become_user") not in (None, "root")
    assert as_service_user or not any(p in environment for p in SERVICE_PATHS), (
        f"{file}: {name!r} runs as root with {environment}: give it to the module as app_environment")
