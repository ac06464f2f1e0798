"""Shared paths and small helpers for the fast tests (no containers)."""

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

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
    """Every option of the role, whichever entry point's spec describes it."""
    specs = load_yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]
    return {name: option for spec in specs.values() for name, option in (spec.get("options") or {}).items()}


def run_ansible(*args, cwd=REPO, env=None):
    """Run an ansible CLI from the tools venv with the project's ansible.cfg."""
    full_env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    full_env.update(env or {})
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )


def controller_play(tasks):
    """A playbook that runs `tasks` (YAML, indented as a play's task list) on the controller alone,
    with the role's defaults and vars, as the fast tests run the role's own steps."""
    return f"""
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {ROLE}/defaults/main.yml
    - {ROLE}/vars/main.yml
  tasks:
{tasks}"""


# The role's validation alone, on the controller: its argument specs (`validate_argument_spec` with
# every entry point's options of meta/argument_specs.yml, as tasks/steps/run/other_options.yml
# checks them), then its cross-field checks
# (tasks/steps/run/validate_inputs.yml). tests/test_bad_input.py and tests/test_examples.py run it.
VALIDATE_PLAY = controller_play(f"""\
    - name: Validate against the argument specs
      ansible.builtin.validate_argument_spec:
        argument_spec: "{{{{ (lookup('file', '{ROLE}/meta/argument_specs.yml') | from_yaml).argument_specs.values()
                             | map(attribute='options') | select | combine }}}}"
    - name: Run the cross-field checks
      ansible.builtin.include_tasks: {ROLE}/tasks/steps/run/validate_inputs.yml
""")

# Outside the role: the file the check of the variables set reads its known names from.
VALID_SETTINGS = {"lernmanager_source": "path", "lernmanager_source_path": "/srv/app",
                  "__lernmanager_argument_specs": str(ROLE / "meta" / "argument_specs.yml")}


def run_module(name, args, check=False, python=sys.executable):
    """A module of the collection, run for real through `ansible localhost -m` (AnsiballZ, its own
    process): its result as a dict, `_failed` saying whether the task failed."""
    result = run_ansible("ansible", "localhost", "-i", "localhost,", "-c", "local", "-m", f"lernmanager.deploy.{name}",
                         *(["-a", json.dumps(args)] if args else []), "-e", f"ansible_python_interpreter={python}",
                         *(["--check"] if check else []), env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    head, _, body = result.stdout.partition(" => ")
    assert body, result.stdout + result.stderr
    outcome = json.loads(body)
    outcome["_failed"] = "FAILED" in head
    return documented(name, outcome)


# What every task result may hold besides a module's own keys (Ansible's and the executor's).
COMMON_RESULT_KEYS = {"changed", "failed", "msg", "invocation", "diff", "warnings", "deprecations", "skipped",
                      "ansible_facts", "_ansible_no_log", "_ansible_verbose_always", "_failed"}


def documented_returns(name):
    """The keys a module's RETURN documents (plugins/modules/<name>.py, read without importing it)."""
    import ast
    tree = ast.parse((REPO / "plugins" / "modules" / f"{name}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "RETURN" for t in node.targets):
            return set(yaml.safe_load(node.value.value) or {})
    raise AssertionError(f"{name} has no RETURN")


def documented(name, outcome):
    """`outcome`, once checked to hold no key its module's RETURN leaves out: every test that runs a
    module checks this (a failed result may carry more, for the message)."""
    if not outcome["_failed"]:
        undocumented = set(outcome) - documented_returns(name) - COMMON_RESULT_KEYS
        assert not undocumented, f"{name} returns {sorted(undocumented)}, which its RETURN does not document"
    return outcome


# A host as the role sees it after gathering facts: 1 vCPU, 1 GiB, Debian 12, no IPv6.
FACTS = {"fqdn": "vps.lernmanager.test", "distribution_major_version": "12", "all_ipv6_addresses": [],
         "processor_nproc": 1, "memtotal_mb": 1024}


def render_template(name, **variables):
    """A role template rendered by Ansible's own templating (its Jinja2 settings, its filters and
    the collection's), with the role's defaults and vars as Ansible loads them (so every derived
    value comes from the role's own expression), facts of a small VPS, and the given variables."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    use_collection_loader()  # the collection's filters, lernmanager.deploy.*, and lookups as in a play
    loader = DataLoader()
    context = {**loader.load_from_file(str(ROLE / "defaults" / "main.yml"), trusted_as_template=True),
               **loader.load_from_file(str(ROLE / "vars" / "main.yml"), trusted_as_template=True),
               "ansible_facts": FACTS, "ansible_managed": "Ansible managed", "inventory_hostname": "vps",
               "role_path": str(ROLE), **variables}
    source = (ROLE / "templates" / name).read_text(encoding="utf-8")
    # As the template action renders a file: no backslash escaping (that is for YAML strings),
    # its default trim_blocks.
    templar = Templar(loader=loader, variables=context).copy_with_new_env(searchpath=[str(ROLE / "templates")])
    return templar.template(
        trust_as_template(source), escape_backslashes=False, overrides={"trim_blocks": True})


def use_collection_loader():
    """Ansible's collection loader in this process, once, with the checkout's collection on its path.
    Every import of the collection goes through it: a plain import from sys.path first would leave
    `ansible_collections.lernmanager.deploy` without the loader's metadata, and a later import
    through the loader would fail ("collection metadata was not loaded"), depending on test order."""
    from ansible.plugins.loader import init_plugin_loader
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    if any(isinstance(finder, _AnsibleCollectionFinder) for finder in sys.meta_path):
        return
    sys.path.insert(0, str(REPO / "collections"))
    try:
        init_plugin_loader()
    finally:
        sys.path.remove(str(REPO / "collections"))


def load_plugin(relative_path):
    """A plugin of the collection imported from the checkout (its module_utils imports resolve)."""
    import importlib.util
    use_collection_loader()
    collections = str(REPO / "collections")
    if collections not in sys.path:
        sys.path.append(collections)
    spec = importlib.util.spec_from_file_location(pathlib.Path(relative_path).stem + "_plugin", REPO / relative_path)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin


def run_module_in_process(name, args, check=False):
    """A module's main() in this process with the given arguments (AnsibleModule validates them as
    for a task): its result as run_module gives it, in milliseconds instead of seconds. Only for
    modules that do not fork (a forked child of a threaded pytest worker may deadlock)."""
    import contextlib
    import io

    from ansible.module_utils.testing import patch_module_args

    module = load_plugin(f"plugins/modules/{name}.py")
    output = io.StringIO()
    pycache_prefix = sys.pycache_prefix  # the bytecode module sets this process's
    with patch_module_args({**args, "_ansible_check_mode": check}), contextlib.redirect_stdout(output):
        try:
            module.main()
        except SystemExit:
            pass
        finally:
            sys.pycache_prefix = pycache_prefix
    outcome = json.loads(output.getvalue())
    outcome["_failed"] = outcome.get("failed") is True
    return documented(name, outcome)


SERVE_STANDIN = """
import sys
from werkzeug.serving import make_server
from app import app, init_app
init_app()
make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True).serve_forever()
"""


@contextlib.contextmanager
def served_standin(build_dir):
    """The stand-in app (v1, built into BUILD_DIR/app with its own database) served for real by
    werkzeug on a free port of 127.0.0.1; yields its base URL."""
    app_dir = pathlib.Path(build_dir) / "app"
    subprocess.run([sys.executable, str(REPO / "tests" / "fixtures" / "build_app.py"), "v1", str(app_dir)],
                   check=True, capture_output=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(app_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    server = subprocess.Popen([sys.executable, "-c", SERVE_STANDIN, str(port)], cwd=app_dir, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/login", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
