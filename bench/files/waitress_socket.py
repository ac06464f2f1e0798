"""Upstream's waitress, with upstream's settings (its run.py), on the socket systemd passes to
lernmanager.service (fd 3): the reference server of the experiment (benchlib/experiment.py,
`bench_server: waitress`), run by the role's unit in place of gunicorn, in its sandbox.

    python waitress_socket.py RELEASE_DIR

No graceful stop of its own (SIGTERM ends it at once), no bound on password hashes, no login
throttle: a reference for speed, not a way to run a school.
"""

import os
import socket
import sys

os.chdir(os.path.realpath(sys.argv[1]))
sys.path.insert(0, os.getcwd())

from waitress import serve  # noqa: E402  (the app's venv, as the unit runs it)

from app import app, init_app  # noqa: E402

init_app()
serve(app, sockets=[socket.socket(fileno=3)], threads=32, connection_limit=500, channel_timeout=120,
      recv_bytes=65536, send_bytes=262144, max_request_body_size=67108864)
