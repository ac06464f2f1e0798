"""The rendered gunicorn.conf.py runs a real gunicorn (the role's pinned version) on loopback:
its worker class loads, a SIGTERM still lets a request in progress finish (graceful stop),
password hashes at once are bounded (the worker's peak memory proves it), and a client that
keeps failing password checks is refused before the app while another client logs in."""

import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from importlib.metadata import version

from helpers import ROLE
from test_templates import render

GUNICORN_MAJOR = int(version("gunicorn").split(".")[0])

APP = '''
import hashlib
import time

CALLS = []

def init_app():
    pass


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1.5)
    if environ["PATH_INFO"] == "/hash":
        # werkzeug's default password hash: 32 MiB while it runs.
        hashlib.scrypt(b"pupil", salt=b"0123456789abcdef", n=2**15, r=8, p=1, maxmem=132 * 2**20, dklen=64)
    if environ["PATH_INFO"] == "/login" and environ["REQUEST_METHOD"] == "POST":
        # As the real app: a good login redirects elsewhere, a wrong one shows the form again (200).
        CALLS.append(environ.get("HTTP_X_REAL_IP"))
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if b"password=right" in body:
            start_response("302 FOUND", [("Location", "/dashboard")])
            return [b""]
        if b"password=slow" in body:
            time.sleep(0.2)  # a hash on a busy core: checks that arrive meanwhile are in flight
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"wrong"]
    if environ["PATH_INFO"] == "/calls":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(CALLS)).encode()]
    if environ["PATH_INFO"] == "/switch":
        import sys
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(sys.getswitchinterval()).encode()]
    if environ["PATH_INFO"] == "/peak":
        # The worker's high-water mark of resident memory (KiB).
        with open("/proc/self/status") as status:
            peak = [line.split()[1] for line in status if line.startswith("VmHWM:")][0]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [peak.encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(root, port, threads=4, hash_concurrency=1, **variables):
    release = root / "releases" / "r1"
    release.mkdir(parents=True)
    (release / "app.py").write_text(APP)
    (root / "current").symlink_to(release)
    conf = root / "gunicorn.conf.py"
    conf.write_text(render(
        "gunicorn.conf.py.j2", lernmanager_root=str(root), lernmanager_listen_port=port,
        ansible_facts={"processor_nproc": 1}, __lernmanager_sizing={"memory_mb": 1024, "workers": 1, "threads": threads,
                                                               "hash_concurrency": hash_concurrency},
        lernmanager_gunicorn_max_requests=0, lernmanager_gunicorn_max_requests_jitter=0,
        lernmanager_gunicorn_timeout=30, __lernmanager_login_throttle=str(ROLE / "files" / "login_throttle.py"),
        **variables))
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", str(conf)], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                assert answer.read() == b"ok"
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(proc.communicate()[0])


def test_sigterm_lets_the_request_in_progress_finish(tmp_path: pathlib.Path):
    port = free_port()
    proc = start_gunicorn(tmp_path, port)
    answers = []

    def slow_request():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/slow", timeout=20) as answer:
                answers.append((answer.status, answer.read()))
        except OSError as error:
            answers.append(error)

    client = threading.Thread(target=slow_request)
    client.start()
    time.sleep(0.5)  # the request is in the app's sleep now
    proc.send_signal(signal.SIGTERM)
    client.join(30)
    log = proc.communicate(timeout=40)[0]
    assert answers == [(200, b"ok")], log
    assert proc.returncode == 0, log
    # The role's pinned gunicorn (requirements-dev.txt) runs the worker class its version gets.
    assert f"Using worker: {'PromptStopThreadWorker' if GUNICORN_MAJOR < 24 else 'gthread'}" in log, log


def test_gunicorn_before_24_gets_the_gthread_that_stops_at_once_and_later_ones_their_own():
    """gthread before gunicorn 24 notices SIGTERM only at its next 1 s poll: a user who pins 23
    gets the subclass; 24 and later wake at the signal themselves and run stock gthread."""
    sizing = {"memory_mb": 1024, "workers": 1, "threads": 32, "hash_concurrency": 1}
    old = render("gunicorn.conf.py.j2", lernmanager_gunicorn_version="23.0.0", __lernmanager_sizing=sizing)
    compile(old, "gunicorn.conf.py", "exec")
    assert "class PromptStopThreadWorker(ThreadWorker):" in old
    assert "\nworker_class = PromptStopThreadWorker\n" in old
    for version in ("24.0.0", "27.0.1"):
        new = render("gunicorn.conf.py.j2", lernmanager_gunicorn_version=version, __lernmanager_sizing=sizing)
        compile(new, "gunicorn.conf.py", "exec")
        assert "ThreadWorker" not in new and '\nworker_class = "gthread"\n' in new


def peak_mib_after_simultaneous_hashes(root, hash_concurrency, clients=8):
    port = free_port()
    proc = start_gunicorn(root, port, threads=clients, hash_concurrency=hash_concurrency)
    try:
        def get(path):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as answer:
                return answer.read()
        before = int(get("/peak"))
        hashers = [threading.Thread(target=get, args=("/hash",)) for _ in range(clients)]
        for thread in hashers:
            thread.start()
        for thread in hashers:
            thread.join(60)
        return (int(get("/peak")) - before) / 1024
    finally:
        proc.terminate()
        proc.communicate(timeout=40)


def test_password_hashes_at_once_are_bounded(tmp_path: pathlib.Path):
    # 8 threads hash at once. Bounded to 1, the worker grows by one hash (32 MiB); the same config
    # with 8 slots grows by about 8 (the control: the measure sees what the bound prevents).
    bounded = peak_mib_after_simultaneous_hashes(tmp_path / "bounded", hash_concurrency=1)
    unbounded = peak_mib_after_simultaneous_hashes(tmp_path / "unbounded", hash_concurrency=8)
    assert 30 < bounded < 70, bounded
    assert unbounded > 150, unbounded


def post_login(port, client, password, user="pupil"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/login", data=f"username={user}&password={password}".encode(),
                                     headers={"X-Real-IP": client, "Content-Type": "application/x-www-form-urlencoded"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_client_failing_password_checks_is_refused_before_the_app(tmp_path: pathlib.Path):
    port = free_port()
    proc = start_gunicorn(tmp_path, port, lernmanager_login_failures_per_client=6, lernmanager_login_failures_per_user=4)
    try:
        # One user name from one client: refused after its own budget (4).
        assert [post_login(port, "198.51.100.7", "wrong") for _ in range(6)] == [200] * 4 + [429] * 2
        # Other names from that client: up to the client's budget (6), then every POST is refused.
        assert [post_login(port, "198.51.100.7", "wrong", user=f"u{n}") for n in range(3)] == [200, 200, 429]
        assert post_login(port, "198.51.100.7", "right", user="someone") == 429
        # An IPv6 client is its /64: another address of the same /64 is the same client.
        assert [post_login(port, f"2001:db8:7:7::{n:x}", "wrong", user=f"u{n}") for n in range(7)] == [200] * 6 + [429]
        assert post_login(port, "2001:db8:7:7:ffff::1", "right") == 429
        # A school behind one address: 90 good logins never count, and its typos stay within budget.
        assert {post_login(port, "203.0.113.5", "right", user=f"p{n}") for n in range(90)} == {302}
        assert post_login(port, "203.0.113.5", "wrong") == 200
        assert post_login(port, "2001:db8:7:8::1", "right") == 302
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/calls", timeout=5) as answer:
            # The refused POSTs never reached the app: 4 + 2 + 6 + 90 + 1 + 1.
            assert int(answer.read()) == 104
    finally:
        proc.terminate()
        log = proc.communicate(timeout=40)[0]
    assert "198.51.100.7 used up the budget of failed password checks of one user name" in log, log
    assert "198.51.100.7 used up its budget of failed password checks" in log, log
    assert "2001:db8:7:7::/64 used up its budget" in log, log


def test_checks_in_flight_at_once_never_exceed_the_budget(tmp_path: pathlib.Path):
    # Sixteen wrong passwords for one name from one client at the same moment, each slow to
    # check: counted one after another, exactly the budget (4) reaches the app.
    port = free_port()
    proc = start_gunicorn(tmp_path, port, threads=16, lernmanager_login_failures_per_client=50,
                          lernmanager_login_failures_per_user=4)
    try:
        statuses = []
        clients = [threading.Thread(target=lambda: statuses.append(post_login(port, "198.51.100.8", "slow")))
                   for _ in range(16)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(30)
        assert sorted(statuses) == [200] * 4 + [429] * 12, statuses
    finally:
        proc.terminate()
        proc.communicate(timeout=40)


def test_the_switch_interval_is_the_workers_when_set_and_pythons_own_otherwise(tmp_path: pathlib.Path):
    for name, variables, expected in (("set", {"lernmanager_gunicorn_switch_interval_ms": 0.5}, b"0.0005"),
                                      ("default", {}, b"0.005")):
        port = free_port()
        proc = start_gunicorn(tmp_path / name, port, **variables)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/switch", timeout=10) as answer:
                assert answer.read() == expected, name
        finally:
            proc.terminate()
            proc.communicate(timeout=40)
