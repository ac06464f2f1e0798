"""The optional nftables firewall (this scenario enables it): in, only SSH, 80 and 443.

Probed from the controller against this scenario's own container (its address on the test bed's
bridge), with a listener on a port the firewall must drop.

Changes the host: a listener on port 9999 (stopped after), a foreign table and another instance's ports, then
a deploy."""

import json
import socket

import pytest

from lm_testlib import container_address, converge


def reachable(address, port):
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture
def listener_on_9999(host):
    host.run("nohup python3 -m http.server 9999 --bind 0.0.0.0 >/dev/null 2>&1 & echo $! > /tmp/l9999.pid; sleep 1")
    assert host.socket("tcp://0.0.0.0:9999").is_listening
    yield
    host.run("kill $(cat /tmp/l9999.pid)")


def tcp_in(host):
    """The live ports of the role's table."""
    listing = json.loads(host.check_output("nft -j list set inet lernmanager tcp_in"))["nftables"]
    return set(next(entry["set"] for entry in listing if "set" in entry).get("elem", []))


def test_firewall_lets_in_only_ssh_http_https(host, listener_on_9999):
    address = container_address(host)
    assert reachable(address, 443)
    assert reachable(address, 80)
    assert not reachable(address, 9999), "a listening port outside the allow list is dropped"
    ruleset = host.check_output("nft list ruleset")
    assert "policy drop" in ruleset and "tcp dport @tcp_in accept" in ruleset
    assert tcp_in(host) == {22, 80, 443}
    assert host.service("lernmanager-firewall").is_enabled
    assert "lernmanager" not in host.file("/etc/nftables.conf").content_string.lower(), "the host's own file"


def test_a_foreign_table_and_another_instances_ports_survive_a_change_and_the_live_table_is_checked(host):
    """Docker and fail2ban keep tables of their own, and a second school on the host keeps its
    ports: the role replaces only its table, built from every instance's file. A table flushed
    behind the role's back is seen by the next run and loaded again. An /etc/nftables.conf that an
    earlier version of the role wrote whole (its rules alone, `flush ruleset` first) is handed back
    to the host: it includes the role's table and nothing else."""
    host.run("printf '%s\\n' '#!/usr/sbin/nft -f' "
             "\"# Lernmanager's host firewall: in, only SSH, HTTP and HTTPS\" 'flush ruleset' > /etc/nftables.conf")
    host.run("nft add table inet foreign_test && nft add chain inet foreign_test input "
             "'{ type filter hook input priority 10; policy accept; }' && "
             "nft add rule inet foreign_test input tcp dport 4711 counter")
    other = host.run("sed 's/{ 22, 80, 443 }/{ 22, 80, 443, 5000 }/' /etc/lernmanager-firewall/instances/lernmanager.nft"
                     " > /etc/lernmanager-firewall/instances/school-b.nft")
    assert other.rc == 0
    run = converge({"lernmanager_firewall_extra_tcp_ports": [8443]}, tags="lernmanager_firewall")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert tcp_in(host) == {22, 80, 443, 5000, 8443}, "this instance's new port and the other school's"
    ruleset = host.check_output("nft list ruleset")
    assert "table inet foreign_test" in ruleset and "tcp dport 4711 counter" in ruleset
    assert ruleset.count("table inet lernmanager") == 1
    handed_back = host.file("/etc/nftables.conf").content_string
    assert 'include "/etc/lernmanager-firewall/table.nft"' in handed_back and "flush ruleset" not in handed_back, handed_back
    assert host.run("nft -c -f /etc/nftables.conf").rc == 0

    host.check_output("nft flush set inet lernmanager tcp_in")
    again = converge({"lernmanager_firewall_extra_tcp_ports": [8443]}, tags="lernmanager_firewall")
    assert again.returncode == 0, again.stdout[-3000:]
    assert tcp_in(host) == {22, 80, 443, 5000, 8443}, "the flushed table was loaded again"
    host.check_output("rm /etc/lernmanager-firewall/instances/school-b.nft")
