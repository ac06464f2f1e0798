# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""What is wrong with the app's settings before they go live: settings the app cannot work with,
and the school's identity still at the app's placeholders (the GDPR privacy page shows them)."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# The app's own defaults (its config.py): a privacy page with these names no school.
PLACEHOLDERS = {
    "SCHOOL_NAME": "[Schulname]",
    "SCHOOL_ADDRESS": "[Adresse]",
    "SCHOOL_EMAIL": "[E-Mail-Adresse]",
    "PRIVACY_AUTHORITY": "[Landesbeauftragter für Datenschutz]",
}
# A value in square brackets is a placeholder too, whichever words it holds ("[Schulname einsetzen]").
_BRACKETED = re.compile(r"^\s*\[.*\]\s*$")


def _blank(settings, key):
    return str(settings.get(key, "")).strip() == ""


def settings_problems(settings):
    """{errors: [...], placeholders: [...]} of the app's settings (env name -> value)."""
    if not isinstance(settings, dict):
        raise AnsibleFilterError(f"settings_problems: expected the settings as a dict, got {type(settings).__name__}")
    errors = []
    # The app sends every grading call to LLM_BASE_URL; with a key and no URL each call fails.
    if not _blank(settings, "LLM_API_KEY") and _blank(settings, "LLM_BASE_URL"):
        errors.append("LLM_API_KEY is set but LLM_BASE_URL is not: every grading call of the app would fail."
                      " Set LLM_BASE_URL (the provider's API address) in lernmanager_env.")
    placeholders = sorted(key for key in PLACEHOLDERS
                          if _blank(settings, key) or _BRACKETED.match(str(settings[key])))
    return {"errors": errors, "placeholders": placeholders}


class FilterModule:
    def filters(self):
        return {"settings_problems": settings_problems}
