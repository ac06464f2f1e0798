"""Shared paths and small helpers for the fast tests (no containers)."""

import os
import pathlib
import subprocess
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
ROLE = REPO / "roles" / "lernmanager"
BIN = pathlib.Path(sys.executable).parent


def load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def role_defaults():
    return load_yaml(ROLE / "defaults" / "main.yml")


def role_argument_specs():
    return load_yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


def run_ansible(*args, cwd=REPO, env=None):
    """Run an ansible CLI from the tools venv with the project's ansible.cfg."""
    full_env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    full_env.update(env or {})
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )
