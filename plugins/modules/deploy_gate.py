#!/usr/bin/python
# Copyright: the Lernmanager deployment team
# GNU Affero General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/agpl-3.0.txt)
"""The documentation of the deploy_gate action (plugins/action/deploy_gate.py), which runs on the
controller and calls lernmanager.deploy.deploy_state on the host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_gate
short_description: Tell whether a deploy would change anything, in one host call
description:
  - Fingerprints the inputs of a deploy on the controller, that is this collection's code (its
    role and plugins), every C(lernmanager_*) variable as templated for the host, the host facts
    the role reads, the venv's period (lernmanager.deploy.venv_period) and, for a
    controller-side source, the code (lernmanager.deploy.content_hash of O(source_path)).
  - Then reads, in one call of lernmanager.deploy.deploy_state, the record that the last complete
    deploy left on the host, and compares. The deploy has nothing to do (C(passed)) only when the
    record exists and the fingerprint, the code (for git, the commit the branch or tag has now,
    from C(git ls-remote)), every watched file, link and directory, the packages and the active
    units are as recorded. Otherwise C(reasons) says what differs (the variables by name).
  - When only the code differs, or the variables that choose it (C(lernmanager_source_path),
    C(lernmanager_git_repo), C(lernmanager_git_version), C(lernmanager_archive_src),
    C(lernmanager_archive_checksum), C(lernmanager_pip_constraints)), on a host whose watched
    files, packages and units are as recorded, the deploy takes the code lane (C(lane=code)),
    where only the steps that build and switch to the release run. Anything else differing takes
    every step (C(lane=full)).
  - Fails open. No record, or one root does not own, is a reason to run every step; code it cannot
    tell (a short commit id, a repository it cannot reach) takes the code lane, whose release step
    finds out what it is.
version_added: 0.2.0
author: Lernmanager deployment team (@lernmanager)
extends_documentation_fragment: [lernmanager.deploy.attributes, lernmanager.deploy.attributes.read_only]
options:
  record_path:
    description: The host's record (C(path) of lernmanager.deploy.deploy_state).
    type: path
    required: true
  watch:
    description: What the deploy writes (C(watch) of lernmanager.deploy.deploy_state).
    type: list
    elements: str
  packages:
    description: The packages the deploy installs.
    type: list
    elements: str
  units:
    description: The units the deploy leaves active.
    type: list
    elements: str
  source:
    description: The source kind, V(git), V(archive) or V(path).
    type: str
  source_path:
    description: The app directory on the controller (source path).
    type: path
  git_repo:
    description: The repository (source git).
    type: str
  git_version:
    description: The branch, tag or commit (source git).
    type: str
  archive_checksum:
    description: The archive's C(algorithm:hex) checksum (source archive).
    type: str
  venv_max_age_days:
    description: lernmanager_venv_max_age_days.
    type: int
  host_facts:
    description: The host facts the role reads, as the role reads them (a dict).
    type: dict
  full_run:
    description: Run every step whatever the comparison says (only the fingerprint is returned).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Compare the inputs and the host with the last complete deploy
  lernmanager.deploy.deploy_gate:
    record_path: /opt/lernmanager/deployed.json
    watch: [/etc/lernmanager/, /etc/nginx/sites-enabled/lernmanager]
    packages: [nginx, python3-venv]
    units: [lernmanager.socket, nginx.service]
    source: git
    git_repo: https://github.com/patrickfiedler/lernmanager.git
    git_version: main
    venv_max_age_days: 30
    host_facts: {python_version: "3.11.2"}
  register: gate

- name: End here when there is nothing to do
  ansible.builtin.meta: end_host
  when: gate.passed
"""

RETURN = r"""
passed:
  description: Whether the deploy has nothing to do (C(lane=none)).
  type: bool
  returned: always
lane:
  description: V(none) (nothing to do), V(code) (only the code differs) or V(full) (every step).
  type: str
  returned: always
reasons:
  description: What differs from the record (empty when C(passed)).
  type: list
  elements: str
  returned: always
inputs:
  description: The fingerprint of the inputs, to record after a complete deploy.
  type: str
  returned: always
setup:
  description: The fingerprint of the inputs but the variables that choose the code, to record.
  type: str
  returned: always
parts:
  description: The digest of each input (variable, C(collection), C(facts), C(host), C(venv_period)), to record.
  type: dict
  returned: always
code:
  description: The code id as the deploy names it (C(g-), C(p-) or C(a-) and 16 hex digits), or empty when unknown.
  type: str
  returned: always
release:
  description: The release the record names.
  type: str
  returned: always
"""
