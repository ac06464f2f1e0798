"""Templates rendered with Ansible's own Jinja2 settings, without a host: what varies, varies."""

import re

import jinja2
import pytest

from helpers import ROLE, role_defaults

BASE = {"ansible_managed": "Ansible managed", "__lernmanager_hsts": False, "lernmanager_hsts_max_age": 31536000,
        "lernmanager_nginx_csp": ""}


def render(name, **variables):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")), trim_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["comment"] = lambda text: "# " + text
    env.filters["bool"] = bool
    return env.get_template(name).render({**BASE, **variables})


def header_lines(text):
    return [line for line in text.splitlines() if line.startswith("add_header")]


def test_security_headers_by_default_have_no_csp_and_no_hsts():
    lines = header_lines(render("security-headers.conf.j2"))
    assert len(lines) == 4 and all(line.endswith(" always;") for line in lines)
    assert not any("Content-Security-Policy" in line or "Strict-Transport" in line for line in lines)


@pytest.mark.parametrize("csp", ["default-src 'self'", "default-src 'self'; frame-ancestors 'none'"])
def test_csp_is_sent_as_given(csp):
    assert f'add_header Content-Security-Policy "{csp}" always;' in render("security-headers.conf.j2", lernmanager_nginx_csp=csp)


def test_hsts_only_when_asked():
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in render(
        "security-headers.conf.j2", __lernmanager_hsts=True)


def render_site(**variables):
    """The nginx site with the role's defaults, plain HTTP, as on a 1 CPU / 1 GB host."""
    site = {**role_defaults(), "__lernmanager_tls_mode": "off", "__lernmanager_tls_ready": False,
            "__lernmanager_nginx_ipv6": False, "__lernmanager_server_name": "lernmanager.test",
            "__lernmanager_nginx_headers": "/etc/nginx/snippets/h.conf", "__lernmanager_password_rate": 8,
            "__lernmanager_acme_webroot": "/var/lib/acme", "__lernmanager_nginx_http2_on": False,
            "__lernmanager_tls_cert": "c", "__lernmanager_tls_key": "k",
            "__lernmanager_nginx_error_log": "/var/log/nginx/lernmanager/error.log"}
    return render("nginx-site.j2", **{**site, **variables})


def location_blocks(text):
    """{location line: body} of every location in the rendered site."""
    blocks, name, depth = {}, None, 0
    for line in text.splitlines():
        stripped = line.strip()
        if name is None and stripped.startswith("location "):
            name, depth, blocks[stripped] = stripped, 0, []
        if name is not None:
            depth += stripped.count("{") - stripped.count("}")
            blocks[name].append(stripped)
            if depth == 0:
                name = None
    return {key: "\n".join(lines) for key, lines in blocks.items()}


def test_password_posts_are_queued_host_wide_and_nothing_else_is():
    text = render_site(lernmanager_login_rate=0)
    # One host-wide key for POSTs, none for other methods (an empty key is never limited).
    assert "map $request_method $lernmanager_password_post {\n    POST    host;\n    default \"\";\n}" in text
    assert "limit_req_zone $lernmanager_password_post zone=lernmanager_password:1m rate=8r/s;" in text
    blocks = location_blocks(text)
    limited = [name for name, body in blocks.items() if "limit_req " in body]
    paths = "|".join(role_defaults()["lernmanager_password_paths"])
    assert limited == [f'location ~ "^({paths})$" {{'], limited
    body = blocks[limited[0]]
    # Queued, not refused: no nodelay; the queue holds 60 s of the rate.
    assert "limit_req zone=lernmanager_password burst=480;" in body and "nodelay" not in body
    # The same proxying as every other page.
    assert body.split("\n", 4)[-1] == blocks["location / {"].split("\n", 1)[-1]


def test_login_posts_are_limited_per_address_as_well():
    text = render_site()
    assert "map $request_method $lernmanager_login_client {\n    POST    $binary_remote_addr;\n    default \"\";\n}" in text
    assert "limit_req_zone $lernmanager_login_client zone=lernmanager_login:1m rate=30r/m;" in text
    blocks = location_blocks(text)
    limited = [name for name, body in blocks.items() if "limit_req " in body]
    assert limited[0] == "location = /login {" and limited[1].startswith("location ~ "), limited
    login = blocks["location = /login {"]
    # Queued host-wide like every password POST, and refused beyond the burst per address.
    assert "limit_req zone=lernmanager_password burst=480;" in login
    assert "limit_req zone=lernmanager_login burst=40 nodelay;" in login
    assert login.split("limit_req zone=lernmanager_login burst=40 nodelay;\n", 1)[1] == \
        blocks["location / {"].split("\n", 1)[-1]


def test_protected_files_never_follow_a_link_the_service_planted():
    body = location_blocks(render_site())["location /protected-files/ {"]
    assert "internal;" in body and "disable_symlinks on;" in body


@pytest.mark.parametrize("path, limited", [
    ("/login", True), ("/admin/passwort", True), ("/admin/schueler/17/passwort-reset", True),
    ("/admin/klasse/3/schueler-hinzufuegen", True), ("/admin/bewertung/netzwerk-ids/roster-apply", True),
    ("/login/x", False), ("/dashboard", False), ("/admin/schueler/x/passwort-reset", False),
])
def test_password_paths_match_the_apps_routes(path, limited):
    # nginx's regular expressions are PCRE; these patterns mean the same in Python's re.
    paths = "|".join(role_defaults()["lernmanager_password_paths"])
    assert bool(re.fullmatch(f"^({paths})$", path)) is limited


def render_unit(**variables):
    unit = {**role_defaults(), "__lernmanager_env_file": "/etc/lernmanager/lernmanager.env",
            "__lernmanager_venv": "/opt/lernmanager/venvs/v", "__lernmanager_gunicorn_conf": "/etc/lernmanager/g.py",
            "__lernmanager_memory_high_mb": 600, "__lernmanager_memory_max_mb": 750,
            "ansible_facts": {"distribution_major_version": "12"}}
    return render("lernmanager.service.j2", **{**unit, **variables})


def test_unit_denies_link_local_addresses_unless_allowed():
    assert "IPAddressDeny=169.254.0.0/16 fe80::/10" in render_unit().splitlines()
    assert "IPAddressDeny" not in render_unit(lernmanager_allow_link_local=True)


@pytest.mark.parametrize("debian,backs_off", [("12", False), ("13", True)])
def test_unit_never_stops_restarting_and_backs_off_where_systemd_can(debian, backs_off):
    lines = render_unit(ansible_facts={"distribution_major_version": debian}).splitlines()
    assert "StartLimitIntervalSec=0" in lines and "Restart=on-failure" in lines
    assert ("RestartMaxDelaySec=60" in lines) is backs_off


def test_firewall_keeps_the_port_ansible_came_in_on():
    # As vars/main.yml resolves __lernmanager_ssh_port: the setting, else ansible_port, else 22.
    ruleset = render("nftables.conf.j2", __lernmanager_ssh_port="2222", lernmanager_firewall_extra_tcp_ports=[])
    assert "tcp dport { 2222, 80, 443 } accept" in ruleset
