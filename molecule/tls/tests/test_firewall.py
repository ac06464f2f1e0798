"""The optional nftables firewall (this scenario enables it): in, only SSH, 80 and 443.

Probed from the controller against this scenario's own container (its address on the test bed's
bridge), with a listener on a port the firewall must drop."""

import json
import socket
import subprocess

import pytest

from lm_testlib import converge


def container_address(host):
    name = host.backend.host
    out = subprocess.run(["docker", "inspect", name], check=True, capture_output=True, text=True).stdout
    networks = json.loads(out)[0]["NetworkSettings"]["Networks"]
    return next(n["IPAddress"] for n in networks.values() if n["IPAddress"])


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


def test_firewall_lets_in_only_ssh_http_https(host, listener_on_9999):
    address = container_address(host)
    assert reachable(address, 443)
    assert reachable(address, 80)
    assert not reachable(address, 9999), "a listening port outside the allow list is dropped"
    ruleset = host.check_output("nft list ruleset")
    assert "policy drop" in ruleset and "tcp dport { 22, 80, 443 } accept" in ruleset
    assert host.service("nftables").is_enabled


def test_a_foreign_table_survives_a_change_of_the_rules(host):
    """Docker and fail2ban keep tables of their own: the role replaces only its table."""
    host.run("nft add table inet foreign_test && nft add chain inet foreign_test input "
             "'{ type filter hook input priority 10; policy accept; }' && "
             "nft add rule inet foreign_test input tcp dport 4711 counter")
    run = converge({"lernmanager_firewall_extra_tcp_ports": [8443]}, tags="lernmanager_firewall")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    ruleset = host.check_output("nft list ruleset")
    assert "tcp dport { 22, 80, 443, 8443 } accept" in ruleset, "the role's new rules are live"
    assert "table inet foreign_test" in ruleset and "tcp dport 4711 counter" in ruleset
    assert ruleset.count("table inet lernmanager") == 1
