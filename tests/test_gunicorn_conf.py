"""The rendered gunicorn.conf.py runs a real gunicorn (the role's pinned version) on loopback:
its worker class loads, and a SIGTERM still lets a request in progress finish (graceful stop)."""

import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from test_templates import render

APP = '''
import time


def init_app():
    pass


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1.5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(root, port):
    release = root / "releases" / "r1"
    release.mkdir(parents=True)
    (release / "app.py").write_text(APP)
    (root / "current").symlink_to(release)
    conf = root / "gunicorn.conf.py"
    conf.write_text(render(
        "gunicorn.conf.py.j2", lernmanager_root=str(root), lernmanager_listen_port=port,
        ansible_facts={"processor_nproc": 1}, __lernmanager_memory_mb=1024, __lernmanager_workers=1,
        __lernmanager_threads=4, lernmanager_gunicorn_max_requests=0, lernmanager_gunicorn_max_requests_jitter=0,
        lernmanager_gunicorn_timeout=30))
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
    assert "Using worker: PromptStopThreadWorker" in log, log
