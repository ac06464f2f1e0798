"""The app's settings checked before they go live (plugins/filter/settings.py and the site's own
nginx locations, plugins/filter/nginx.py), and the role's step that applies them on a host's
settings (tasks/steps/host/settings.yml), run on the controller alone."""

import json

import pytest

from helpers import ROLE, controller_play, load_plugin, run_ansible

settings_problems = load_plugin("plugins/filter/settings.py").settings_problems
nginx_block_balanced = load_plugin("plugins/filter/nginx.py").nginx_block_balanced

NAMED = {"SCHOOL_NAME": "Gymnasium Testhausen", "SCHOOL_ADDRESS": "Am Test 5", "SCHOOL_EMAIL": "info@testhausen.example",
         "PRIVACY_AUTHORITY": "Aufsichtsbehörde Testland"}


def test_a_named_school_without_llm_has_no_problem():
    assert settings_problems(NAMED) == {"errors": [], "placeholders": []}


@pytest.mark.parametrize("settings, placeholders", [
    ({}, ["PRIVACY_AUTHORITY", "SCHOOL_ADDRESS", "SCHOOL_EMAIL", "SCHOOL_NAME"]),
    ({**NAMED, "SCHOOL_NAME": "[Schulname]"}, ["SCHOOL_NAME"]),
    ({**NAMED, "SCHOOL_EMAIL": "  "}, ["SCHOOL_EMAIL"]),
    ({**NAMED, "PRIVACY_AUTHORITY": "[Landesbeauftragter für Datenschutz]"}, ["PRIVACY_AUTHORITY"]),
    ({**NAMED, "SCHOOL_ADDRESS": "[bitte eintragen]"}, ["SCHOOL_ADDRESS"]),
    ({**NAMED, "SCHOOL_NAME": "Schule [Außenstelle]"}, []),
])
def test_placeholders_are_the_school_settings_missing_empty_or_in_brackets(settings, placeholders):
    assert settings_problems(settings)["placeholders"] == placeholders


@pytest.mark.parametrize("llm, refused", [
    ({"LLM_API_KEY": "sk-1"}, True),
    ({"LLM_API_KEY": "sk-1", "LLM_BASE_URL": " "}, True),
    ({"LLM_API_KEY": "sk-1", "LLM_BASE_URL": "https://api.example/v1"}, False),
    ({"LLM_BASE_URL": "https://api.example/v1"}, False),
    ({"LLM_API_KEY": ""}, False),
])
def test_an_llm_key_needs_its_base_url(llm, refused):
    errors = settings_problems({**NAMED, **llm})["errors"]
    assert bool(errors) is refused
    assert "sk-1" not in " ".join(errors), "messages name keys, never values"


@pytest.mark.parametrize("config, balanced", [
    ("alias /srv/robots.txt;", True),
    ("if ($request_method = POST) { return 405; }", True),
    ("return 200 '{\"ok\": true}';", True),
    ("# closing } in a comment\nreturn 204;", True),
    ("} server { listen 8080; ", False),
    ("} location /x { ", False),
    ("if ($x) { return 404;", False),
    ("return 200 'unterminated;", False),
])
def test_a_locations_config_cannot_leave_its_block(config, balanced):
    assert nginx_block_balanced(config) is balanced


STEP = controller_play(f"""\
    - name: The role's settings step, on the settings of an adopted .env and lernmanager_env
      ansible.builtin.include_tasks: {ROLE}/tasks/steps/host/settings.yml
""")


def run_step(tmp_path, adopted, variables):
    playbook = tmp_path / "settings.yml"
    playbook.write_text(STEP)
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"__lernmanager_adopted": {"env": adopted}, **variables}))
    # Results as JSON: each message on one line, as written.
    return run_ansible("ansible-playbook", "-i", "localhost,", str(playbook), "-e", f"@{extra}",
                       env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})


def test_placeholders_warn_and_strict_refuses_them(tmp_path):
    warned = run_step(tmp_path, {}, {"lernmanager_env": {**NAMED, "SCHOOL_NAME": "[Schulname]"}})
    assert warned.returncode == 0, warned.stdout
    assert "WARNING: SCHOOL_NAME still at the app's" in warned.stdout
    refused = run_step(tmp_path, {}, {"lernmanager_env": {**NAMED, "SCHOOL_NAME": "[Schulname]"},
                                      "lernmanager_strict_settings": True})
    assert refused.returncode != 0 and "SCHOOL_NAME still at the app's placeholders" in refused.stdout
    named = run_step(tmp_path, {}, {"lernmanager_env": NAMED, "lernmanager_strict_settings": True})
    assert named.returncode == 0 and "WARNING" not in named.stdout, named.stdout


def test_an_adopted_llm_key_without_its_url_is_refused_without_showing_it(tmp_path):
    result = run_step(tmp_path, {"LLM_API_KEY": "sk-adopted-7f3a"}, {"lernmanager_env": NAMED})
    assert result.returncode != 0 and "LLM_BASE_URL" in result.stdout
    assert "sk-adopted-7f3a" not in result.stdout + result.stderr
    fixed = run_step(tmp_path, {"LLM_API_KEY": "sk-adopted-7f3a"},
                     {"lernmanager_env": {**NAMED, "LLM_BASE_URL": "https://api.example/v1"}})
    assert fixed.returncode == 0, fixed.stdout


def test_an_adopted_grading_service_is_named_in_a_warning(tmp_path):
    result = run_step(tmp_path, {**NAMED, "GRADING_SERVICE_URL": "http://10.0.0.5:8000", "GRADING_SERVICE_TOKEN": "tok-9z"},
                      {"lernmanager_env": {}})
    assert result.returncode == 0, result.stdout
    assert "WARNING: the adopted install's settings" in result.stdout and "lernmanager_grading_service_url" in result.stdout
    assert "tok-9z" not in result.stdout
