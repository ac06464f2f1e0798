"""Templates rendered with Ansible's own Jinja2 settings, without a host: what varies, varies."""

import jinja2
import pytest

from helpers import ROLE

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
