"""The wheelhouse (lernmanager_wheelhouse: auto) on a host whose pip cannot reach any index: the
wheels of a venv are built once from the index and kept on the controller; a host with the index
blocked builds the same venv from them alone; with no wheelhouse for its dependency set it fails
with a message that says what to do, and nothing live changes.

Only the release and venv steps run (tags): the venv is what the wheelhouse is about. The venv is
one the scenario has not built before: `--prefer-binary` is a dependency set of its own."""

import pytest

from lm_testlib import ROOT, converge, http, release_of

# An index that answers nothing, for every pip on the host.
BLOCKED_INDEX = "http://127.0.0.1:9/simple"
BLOCKING_CONF = "/etc/xdg/pip/pip.conf"
OWN_SET = {"lernmanager_pip_extra_args": ["--prefer-binary"]}
STEPS = "lernmanager_release,lernmanager_python"


def venvs(host):
    return set(host.check_output(f"ls {ROOT}/venvs").split())


def build(wheelhouse):
    return converge({**OWN_SET, "lernmanager_wheelhouse_dir": str(wheelhouse)}, tags=STEPS)


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    return tmp_path_factory.mktemp("wheelhouse")


@pytest.fixture(scope="module")
def first_build(host, wheelhouse):
    """The first host of a dependency set: it reaches the index and builds the wheelhouse."""
    live, before = release_of(host), venvs(host)
    run = build(wheelhouse)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    new = venvs(host) - before
    assert len(new) == 1, new
    return live, new.pop()


@pytest.fixture
def index_blocked(host):
    # pip reads this site-wide file beside /etc/pip.conf (the test bed's CA stays as it is).
    host.check_output(f"mkdir -p /etc/xdg/pip && printf '[global]\\nindex-url = {BLOCKED_INDEX}\\n' > {BLOCKING_CONF}")
    yield
    host.check_output(f"rm {BLOCKING_CONF}")


def test_the_first_host_builds_the_wheelhouse_on_the_controller(host, wheelhouse, first_build):
    live, venv = first_build
    archives = [path.name for path in wheelhouse.iterdir()]
    arch = host.check_output("uname -m")
    assert archives == [f"debian12-{arch}-{venv}.tar"], archives
    assert host.file(f"{ROOT}/venvs/{venv}/.complete").exists
    assert not host.file(f"{ROOT}/cache/wheels").exists, "the wheels leave the host with the finished venv"
    assert release_of(host) == live, "the release and venv steps alone switch nothing"


def test_a_host_without_an_index_installs_from_the_wheelhouse(host, wheelhouse, first_build, index_blocked):
    live, venv = first_build
    pip = f"{ROOT}/venvs/{venv}/bin/pip"
    # The block holds: this venv's pip reaches no index.
    assert host.run(f"{pip} download --no-deps --dest /tmp/lm-probe flask").rc != 0
    host.check_output(f"rm -rf {ROOT}/venvs/{venv}")
    run = build(wheelhouse)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert host.file(f"{ROOT}/venvs/{venv}/.complete").exists
    flask = host.run(f"{ROOT}/venvs/{venv}/bin/python -c 'import flask, gunicorn'")
    assert flask.rc == 0, flask.stderr
    assert release_of(host) == live


def test_no_index_and_no_wheelhouse_fails_before_anything_live(host, tmp_path, first_build, index_blocked):
    live, venv = first_build
    host.check_output(f"rm -rf {ROOT}/venvs/{venv}")
    run = build(tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "pip could not build the wheels" in output and "Nothing live has changed" in output, output[-3000:]
    assert str(tmp_path) in output, "the message names where the wheelhouse would be"
    assert not host.file(f"{ROOT}/venvs/{venv}/.complete").exists
    assert list(tmp_path.iterdir()) == [], "no half-written wheelhouse"
    assert release_of(host) == live and http(host, "/login").status == 200
