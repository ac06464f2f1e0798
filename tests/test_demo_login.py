"""scripts/demo_login.py, the demo's smoke test, against the stand-in app served for real (werkzeug
on 127.0.0.1, its own database in a temporary build): it logs in with the right password, and
says why when the password is wrong or the page is not a login page."""

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import REPO

DEMO_LOGIN = REPO / "scripts" / "demo_login.py"
SERVE = """
import sys
from werkzeug.serving import make_server
from app import app, init_app
init_app()
make_server("127.0.0.1", int(sys.argv[1]), app).serve_forever()
"""


@pytest.fixture(scope="module")
def standin_url(tmp_path_factory):
    app_dir = tmp_path_factory.mktemp("demo-login") / "app"
    subprocess.run([sys.executable, str(REPO / "tests" / "fixtures" / "build_app.py"), "v1", str(app_dir)],
                   check=True, capture_output=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(app_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=app_dir, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/login", timeout=2).close()
            break
        except OSError:
            assert server.poll() is None, server.stderr.read().decode()
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


def demo_login(url, password, tmp_path):
    secret = tmp_path / "admin_password"
    secret.write_text(password + "\n")
    return subprocess.run([sys.executable, str(DEMO_LOGIN), url, "admin", str(secret)],
                          capture_output=True, text=True, timeout=60)


def test_it_logs_in_with_the_right_password(standin_url, tmp_path):
    run = demo_login(standin_url, "admin", tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "logged in as admin: POST /login -> 302 /dashboard, GET /dashboard -> 200"


def test_a_wrong_password_fails_and_says_so(standin_url, tmp_path):
    run = demo_login(standin_url, "not-the-password", tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == f"login FAILED: POST {standin_url}/login as admin answered 401 (wrong password?)"


def test_a_page_without_the_login_form_fails_and_says_so(standin_url, tmp_path):
    run = demo_login(standin_url + "/static", "admin", tmp_path)
    assert run.returncode == 1 and run.stderr.startswith("login FAILED: GET "), run.stderr
