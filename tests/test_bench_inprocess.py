"""bench/files/inprocess.py, the app's in-process ceiling, run for real on the stand-in app (built
into a temporary directory): every client logs in, each workload answers without a failure, and
the report has what the bench's table needs. The real app's workloads need its school
(school_seed.py) and run in `make bench`, not here."""

import json
import subprocess
import sys

import pytest

from helpers import REPO

INPROCESS = REPO / "bench" / "files" / "inprocess.py"


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    app_dir = tmp_path_factory.mktemp("inprocess") / "app"
    subprocess.run([sys.executable, str(REPO / "tests" / "fixtures" / "build_app.py"), "v1", str(app_dir)],
                   check=True, capture_output=True)
    return app_dir


def inprocess(app_dir, *args):
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, str(INPROCESS), *args], cwd=app_dir, env=env,
                          capture_output=True, text=True, timeout=300)


def test_each_workload_of_the_standin_runs_logged_in_without_failures(standin):
    run = inprocess(standin, "--requests", "12", "--clients", "3")
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.splitlines()[-1])  # the app may print lines of its own before
    assert report["app"] == "standin" and set(report["workloads"]) == {"dashboard", "login"}
    for name, result in report["workloads"].items():
        assert result["requests"] == 12 and result["failures"] == 0, (name, result)
        assert result["rps"] > 0 and 0 < result["p50_ms"] <= result["p99_ms"], (name, result)
    assert report["workloads"]["dashboard"]["statuses"] == {"200": 12}
    assert report["workloads"]["login"]["statuses"] == {"302": 12}, "each POST logs in again"


def test_a_wrong_admin_password_or_workload_is_refused_by_name(standin):
    run = inprocess(standin, "--requests", "2", "--admin-password", "wrong")
    assert run.returncode == 1 and "inprocess: admin could not log in (401)" in run.stderr
    run = inprocess(standin, "--workloads", "class")
    assert run.returncode == 1 and "no workload class for the standin app; it has dashboard, login" in run.stderr
