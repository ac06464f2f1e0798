#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""What the other instances and sites on a host hold: ports, server names, HTTPS. Reads only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: neighbours
short_description: Find what other instances and nginx sites on the host already use
description:
  - Reads the socket units in C(/etc/systemd/system) and the enabled sites in
    C(/etc/nginx/sites-enabled), except this instance's own, and reports the lines that take
    O(port) or O(server_name), the Lernmanager instances among the sockets, and the sites that
    listen on 443.
  - Two instances on one host each need their own loopback port and server name (nginx would serve
    only one of two sites with the same name, and only warn). One call for what took a find and
    three greps.
version_added: 0.1.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes, lernmanager.deploy.attributes.read_only]
options:
  port:
    description: This instance's loopback port.
    type: int
    required: true
  server_name:
    description: This instance's server name.
    type: str
    required: true
  own_units:
    description: File names in C(/etc/systemd/system) that are this instance's (not compared).
    type: list
    elements: str
    default: []
  own_sites:
    description: File names in C(/etc/nginx/sites-enabled) that are this instance's or the host's catch-all (not compared).
    type: list
    elements: str
    default: []
  units_dir:
    description: Where the socket units are.
    type: path
    default: /etc/systemd/system
  sites_dir:
    description: Where nginx's enabled sites are.
    type: path
    default: /etc/nginx/sites-enabled
  listening_ports:
    description:
      - TCP ports whose listening sockets are reported with the programs that hold them (the app's
        loopback port, 80, 443). A port another program holds would fail the socket or nginx at activation.
    type: list
    elements: int
    default: []
  resolve:
    description:
      - Look O(server_name) up as the host's resolver does (its C(/etc/hosts), then DNS) and return
        its addresses. Let's Encrypt connects to them, so a name that points elsewhere fails certbot
        after the host changed.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Look for other instances on this instance's port or server name
  lernmanager.deploy.neighbours:
    port: 8081
    server_name: lernmanager.schule.example
    own_units: [lernmanager.socket]
    own_sites: [lernmanager, lernmanager-catchall]
  register: __neighbours
"""

RETURN = r"""
clashes:
  description: The lines that take this port or server name, each as C(path:line).
  type: list
  elements: str
  returned: always
other_instances:
  description: The socket units of other Lernmanager instances.
  type: list
  elements: str
  returned: always
other_tls_sites:
  description: The other enabled sites that listen on 443.
  type: list
  elements: str
  returned: always
port_holders:
  description:
    - For each of O(listening_ports) with a listening socket, each process that holds it, with its
      command name and the systemd unit of its cgroup (C(init.scope) for systemd's own sockets).
  type: list
  elements: dict
  returned: always
  sample: [{port: 80, pid: 812, program: apache2, unit: apache2.service}]
name_addresses:
  description: With O(resolve), the addresses O(server_name) resolves to (none when it does not).
  type: list
  elements: str
  returned: always
  sample: [203.0.113.7, "2001:db8::7"]
"""

import os
import re
import socket

from ansible.module_utils.basic import AnsibleModule

TLS_LISTEN = re.compile(r"^\s*listen\s+(\[::\]:)?443([^0-9]|$)")


def files(directory, suffix, own):
    """The regular files (or links to them) in directory with the suffix, except own, by name."""
    if not os.path.isdir(directory):
        return []
    names = sorted(name for name in os.listdir(directory) if name.endswith(suffix) and name not in own)
    return [os.path.join(directory, name) for name in names if os.path.isfile(os.path.join(directory, name))]


def lines(path):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read().splitlines()


def listening_inodes(ports, proc="/proc"):
    """{socket inode: port} of the TCP sockets in LISTEN (state 0A) on one of PORTS, IPv4 and IPv6."""
    found = {}
    for table in ("tcp", "tcp6"):
        path = os.path.join(proc, "net", table)
        if not os.path.exists(path):
            continue
        for row in lines(path)[1:]:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A":
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if port in ports:
                    found[fields[9]] = port
    return found


def unit_of(pid, proc="/proc"):
    """The systemd unit of PID's cgroup (its last path element ending in a unit suffix), or ''."""
    try:
        text = lines(os.path.join(proc, str(pid), "cgroup"))
    except OSError:
        return ""
    for line in text:
        for part in reversed(line.rsplit(":", 1)[-1].split("/")):
            if part.endswith((".service", ".scope", ".socket")):
                return part
    return ""


def port_holders(ports, proc="/proc"):
    """[{port, pid, program, unit}] of every process holding a listening socket on one of PORTS.
    Root reads every process's descriptors; a process that ends meanwhile is skipped."""
    inodes = listening_inodes(set(ports), proc)
    holders = []
    if not inodes:
        return holders
    for pid in sorted((int(name) for name in os.listdir(proc) if name.isdigit())):
        fd_dir = os.path.join(proc, str(pid), "fd")
        try:
            targets = [os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)]
            with open(os.path.join(proc, str(pid), "comm"), encoding="utf-8", errors="replace") as handle:
                program = handle.read().strip()
        except OSError:
            continue
        for port in sorted({inodes[t[len("socket:["):-1]] for t in targets
                            if t.startswith("socket:[") and t[len("socket:["):-1] in inodes}):
            holders.append({"port": port, "pid": pid, "program": program, "unit": unit_of(pid, proc)})
    return holders


def addresses_of(name):
    """NAME's addresses as the host's resolver gives them, in its order, once each."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def main():
    module = AnsibleModule(
        argument_spec={
            "port": {"type": "int", "required": True},
            "server_name": {"type": "str", "required": True},
            "own_units": {"type": "list", "elements": "str", "default": []},
            "own_sites": {"type": "list", "elements": "str", "default": []},
            "units_dir": {"type": "path", "default": "/etc/systemd/system"},
            "sites_dir": {"type": "path", "default": "/etc/nginx/sites-enabled"},
            "listening_ports": {"type": "list", "elements": "int", "default": []},
            "resolve": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    port_line = re.compile(rf"^ListenStream=(127\.0\.0\.1:)?{module.params['port']}\s*$")
    name_line = re.compile(rf"^\s*server_name\s+([^;]*\s)?{re.escape(module.params['server_name'])}\s*[ ;]")
    clashes, instances, tls_sites = [], [], []
    try:
        for path in files(module.params["units_dir"], ".socket", module.params["own_units"]):
            text = lines(path)
            clashes += [f"{path}:{line}" for line in text if port_line.match(line)]
            if any(line.startswith("Description=Lernmanager ") for line in text):
                instances.append(path)
        for path in files(module.params["sites_dir"], "", module.params["own_sites"]):
            text = lines(path)
            clashes += [f"{path}:{line}" for line in text if name_line.match(line)]
            if any(TLS_LISTEN.match(line) for line in text):
                tls_sites.append(path)
        holders = port_holders(module.params["listening_ports"]) if module.params["listening_ports"] else []
    except OSError as error:
        module.fail_json(msg=f"cannot read the host's units, sites and sockets: {error}")
    addresses = addresses_of(module.params["server_name"]) if module.params["resolve"] else []
    module.exit_json(changed=False, clashes=clashes, other_instances=instances, other_tls_sites=tls_sites,
                     port_holders=holders, name_addresses=addresses)


if __name__ == "__main__":
    main()
