"""scripts/demo_login.py, the demo's smoke test, against the stand-in app served for real (werkzeug
on 127.0.0.1, its own database in a temporary build): it logs in with the right password, and
says why when the password is wrong or the page is not a login page."""

import subprocess
import sys

import pytest

from helpers import REPO, served_standin

DEMO_LOGIN = REPO / "scripts" / "demo_login.py"


@pytest.fixture(scope="module")
def standin_url(tmp_path_factory):
    with served_standin(tmp_path_factory.mktemp("demo-login")) as url:
        yield url


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
