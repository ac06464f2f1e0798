"""Run inside an instance's sandbox: for each port given, whether a TCP connection to 127.0.0.1
reaches it. One line per port on stdout (the unit's journal): `<port> reached` or `<port> blocked`."""

import socket
import sys

for port in sys.argv[1:]:
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=3).close()
        print(port, "reached", flush=True)
    except OSError as error:
        print(port, "blocked", repr(error), flush=True)
