"""Lab 1 end to end on lab twins: fresh nodes fail with the right hints, the solution notebook run for
real (nbclient, `%%node` cells over SSH) brings full marks, and the marks survive a restart of the nodes.

Proof: live — real systemd + sshd twins booted with systemd-nspawn, reached over SSH exactly like the
Vagrant VMs. What a twin shares with the host kernel (modules built in) is observed by effect."""

from __future__ import annotations

import json

import nbformat
import pytest

from helpers import REPO, kubelab, execute_notebook
from kubelab.course import load_course
from kubelab.engine.results import Status
from kubelab.engine.runner import run_lab
from kubelab.engine.targets import SshConfigTarget
from kubelab.evidence import comparable

pytestmark = pytest.mark.twins

EXPECTED_FRESH_FAILURES = {
    # the twins start like a fresh Vagrant Debian box: a swap line in fstab, 127.0.1.1 for the hostname,
    # nothing in modules-load.d or sysctl.d
    "swap_off_at_boot": "/etc/fstab",
    "modules_at_boot": "/etc/modules-load.d/k8s.conf",
    "sysctls_at_boot": "/etc/sysctl.d/k8s.conf",
    "ip_forward_live": "sysctl",
    "resolves_other_nodes": "/etc/hosts",
    "resolves_own_name": "127.0.1.1",
}


@pytest.fixture(scope="module")
def course():
    return load_course(REPO)


def grade_json(ssh_config, tmp_path, name):
    """Grade live, recording evidence; replay the evidence and demand the same result (issue 4)."""
    out, evidence, replayed = (tmp_path / f"{name}{suffix}" for suffix in (".json", ".evidence.json", ".replay.json"))
    p = kubelab("grade", "lab01", "--ssh-config", str(ssh_config), "--json", str(out), "--record", str(evidence),
                "--course", str(REPO))
    r = kubelab("grade", "lab01", "--replay", str(evidence), "--json", str(replayed), "--course", str(REPO))
    live = json.loads(out.read_text())
    assert r.returncode == p.returncode
    assert comparable(json.loads(replayed.read_text())) == comparable(live)
    return p, live


def test_fresh_twins_fail_with_hints(fresh_twins, tmp_path):
    p, result = grade_json(fresh_twins.ssh_config_file(), tmp_path, "fresh")
    assert p.returncode == 1, p.stdout + p.stderr
    assert result["status"] == "failed" and 0 < result["score"] < result["max_score"]
    by_check: dict[str, list[dict]] = {}
    for c in result["checks"]:
        by_check.setdefault(c["id"].split("[")[0], []).append(c)
    for check, hint_word in EXPECTED_FRESH_FAILURES.items():
        for c in by_check[check]:
            assert c["status"] == "fail", c
            assert hint_word in c["hint"], c
            assert c["expected"] and c["actual"] and c["expected"] != c["actual"]
    for c in by_check["hostname"]:  # nspawn sets the hostname, as Vagrant's config.vm.hostname does
        assert c["status"] == "pass"
    assert {c["node"] for c in result["checks"]} == {"master", "worker"}
    assert "hint:" in p.stdout and "Traceback" not in p.stdout + p.stderr


def test_grading_is_read_only_and_uses_one_connection_per_node(fresh_twins, course):
    target = SshConfigTarget(course, fresh_twins.ssh_config_file())
    marker = "/tmp/.kubelab-readonly-marker"
    for node in ("master", "worker"):
        assert target.host(node).run("sudo -n touch %s && sleep 1", marker).rc == 0
    before = target.stats.connections_opened
    run_lab(course, "lab01", target)
    assert target.stats.connections_opened == before == 2
    assert target.stats.commands_sent > 20
    for node in ("master", "worker"):
        changed = target.host(node).run(
            "sudo -n find /etc /var/lib /root /home -xdev -newer %s -not -path '/var/lib/systemd/*' -print", marker)
        assert changed.stdout.strip() == "", f"grading changed files on {node}: {changed.stdout}"
    target.close()


def run_notebook(path, ssh_config):
    nb = nbformat.read(path, as_version=4)
    env = {"KUBELAB_SSH_CONFIG": str(ssh_config), "KUBELAB_COURSE": str(REPO)}
    execute_notebook(nb, path.parent, env)
    return nb


def test_solution_notebook_brings_full_marks(fresh_twins, course, tmp_path):
    nb = run_notebook(course.solution_path("lab01"), fresh_twins.ssh_config_file())
    grading = nb.cells[-1]
    assert 'grade("lab01")' in grading.source
    results = [o for o in grading.outputs if o.output_type == "execute_result"]
    assert results and float(results[0]["data"]["text/plain"]) == course.model.lab("lab01").points
    assert not [o for o in grading.outputs if o.output_type == "stream" and o.name == "stderr"], \
        "nbgrader scores a cell that writes to stderr as zero"
    assert any("text/html" in o.get("data", {}) for o in grading.outputs)

    p, result = grade_json(fresh_twins.ssh_config_file(), tmp_path, "solved")
    assert p.returncode == 0, p.stdout
    assert result["score"] == result["max_score"] and result["status"] == "passed"


def test_full_marks_survive_a_restart(fresh_twins, tmp_path):
    fresh_twins.restart()
    p, result = grade_json(fresh_twins.ssh_config_file(), tmp_path, "restarted")
    failed = [c for c in result["checks"] if c["status"] != str(Status.PASS)]
    assert p.returncode == 0 and not failed, failed
