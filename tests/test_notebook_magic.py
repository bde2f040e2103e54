"""`%%node` and `%nodes` in a real Jupyter kernel (nbclient), against real nodes over SSH.

Proof: live — notebooks run in an ipykernel started by nbclient; `%%node` reaches the lab twins (real
systemd + sshd nodes, `twins` fixture) through the ssh-config they print, as a learner's kernel reaches
the Vagrant VMs; the unreachable case uses a real refused TCP connection (127.0.0.1 port 1)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

from helpers import wait_for
from kubelab.course import load_course
from kubelab.sshconfig import connect, load_ssh_config, resolve

REPO = Path(__file__).resolve().parents[1]
LOAD = "%load_ext kubelab.notebook"


class RecordingClient(NotebookClient):
    """An nbclient that hands each stream output to `on_stream` as it reaches the notebook."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.on_stream = lambda text: None

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "stream":
            self.on_stream(msg["content"]["text"])
        return super().output(outs, msg, display_id, cell_index)


def notebook(*sources: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_code_cell(s) for s in sources],
                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def client_for(nb, ssh_config, monkeypatch, timeout=180) -> RecordingClient:
    # the kernel inherits this process's environment: exactly how a learner's kernel finds its nodes
    monkeypatch.setenv("KUBELAB_SSH_CONFIG", str(ssh_config))
    monkeypatch.setenv("KUBELAB_COURSE", str(REPO))
    # the kernel works in a folder of its own, as in a learner's lab folder: nothing lands in the repository
    folder = tempfile.mkdtemp(prefix="kubelab-magic-")
    return RecordingClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": folder}})


def run(nb, ssh_config, monkeypatch) -> CellExecutionError | None:
    try:
        client_for(nb, ssh_config, monkeypatch).execute()
    except CellExecutionError as e:
        return e
    return None


def text_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def errors_of(cell) -> list:
    return [o for o in cell.outputs if o.output_type == "error"]


def everything(nb) -> str:
    return nbformat.writes(nb)


def assert_one_line_error(cell, line_pattern: str) -> str:
    errs = errors_of(cell)
    assert len(errs) == 1, cell.outputs
    tb = errs[0]["traceback"]
    assert len(tb) == 1 and "\n" not in tb[0], f"expected one plain line, got {tb}"
    assert re.fullmatch(line_pattern, tb[0]), tb[0]
    return tb[0]


@pytest.fixture(scope="module")
def course():
    return load_course(REPO)


@pytest.fixture
def unreachable_config(tmp_path, course):
    cfg = tmp_path / "ssh-config"
    cfg.write_text("".join(
        f"Host {n.name}\n  HostName 127.0.0.1\n  Port 1\n  User {course.model.lab_user}\n"
        f"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n\n" for n in course.model.nodes))
    return cfg


# ------------------------------------------------------------------ no nodes needed ---------

def test_unreachable_node_is_one_line_and_stops_the_notebook(unreachable_config, monkeypatch):
    nb = notebook(LOAD, "%nodes", "%%node worker\nhostname", "print('not reached')")
    err = run(nb, unreachable_config, monkeypatch)
    assert err is not None
    assert "no: cannot reach master" in text_of(nb.cells[1])  # %nodes reports, it does not raise
    assert "no: cannot reach worker" in text_of(nb.cells[1])
    line = assert_one_line_error(nb.cells[2], r"✗ worker: cannot reach worker \(\S+@127\.0\.0\.1:1\): .+ \(fix: .+\)")
    assert "Connection refused" in line or "Unable to connect" in line
    assert nb.cells[3].outputs == []  # "Run all" stopped at the failing cell
    assert "Traceback" not in everything(nb) and 'File "' not in everything(nb)


def test_usage_errors_are_one_line(unreachable_config, monkeypatch):
    nb = notebook(LOAD, "%%node nosuchnode\nhostname")
    run(nb, unreachable_config, monkeypatch)
    assert_one_line_error(nb.cells[1], r"✗ no node named 'nosuchnode' in course\.yaml \(fix: use one of: master, worker\)")
    nb = notebook(LOAD, "%%node all --env UNDEFINED_VAR\nhostname")
    run(nb, unreachable_config, monkeypatch)
    assert_one_line_error(nb.cells[1], r"✗ --env UNDEFINED_VAR: there is no Python variable UNDEFINED_VAR \(fix: .+\)")
    nb = notebook(LOAD, "%%node all\nhostname")
    run(nb, unreachable_config.parent / "missing-ssh-config", monkeypatch)
    assert_one_line_error(nb.cells[1], r"✗ ssh-config \S+missing-ssh-config does not exist \(fix: .+\)")


def test_node_cells_do_not_run_under_nbgrader_autograde(unreachable_config, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    nb = notebook(LOAD, "%%node all\nhostname")
    assert run(nb, unreachable_config, monkeypatch) is None  # the nodes are not even contacted
    assert "not run while nbgrader autogrades" in text_of(nb.cells[1])


# ------------------------------------------------------------------ on the lab twins --------

@pytest.mark.twins
def test_node_all_runs_on_every_node_in_turn_with_course_facts(twins, course, monkeypatch):
    nb = notebook(LOAD, "%%node all\nhostname\necho \"name=$KUBELAB_NODE_NAME ip=$KUBELAB_NODE_IP role=$KUBELAB_NODE_ROLE\"\n"
                        "echo \"$KUBELAB_HOSTS\"\necho to-stderr >&2\ncommand -v sysctl")
    assert run(nb, twins.ssh_config_file(), monkeypatch) is None
    out = text_of(nb.cells[1])
    hosts = "\n".join(f"{n.ip} {n.name}" for n in course.model.nodes)
    positions = []
    for n in course.model.nodes:
        header = f"── {n.name} ({n.role}, {n.ip}) ──\n{n.name}\nname={n.name} ip={n.ip} role={n.role}\n{hosts}\nto-stderr\n"
        assert header in out, out
        positions.append(out.index(header))
    assert positions == sorted(positions)  # course order, one after the other
    assert out.count("/sbin/sysctl") == len(course.model.nodes)  # sbin on PATH for the unprivileged user


@pytest.mark.twins
def test_failing_command_stops_with_one_line_and_no_traceback(twins, monkeypatch):
    nb = notebook(LOAD, "%%node all\necho before-failure\nfalse\necho after-failure", "print('not reached')")
    err = run(nb, twins.ssh_config_file(), monkeypatch)
    assert err is not None and err.ename == "NodeCommandError"
    failing = nb.cells[1]
    assert_one_line_error(failing, r"✗ master: command exited with status 1")
    out = text_of(failing)
    assert "before-failure" in out and "after-failure" not in out  # bash -e stopped the script
    assert "worker" not in out  # nodes run one after another: the first failure stops the cell
    assert nb.cells[2].outputs == []
    assert "Traceback" not in everything(nb) and 'File "' not in everything(nb)


@pytest.mark.twins
def test_output_streams_while_the_script_runs(twins, monkeypatch):
    """Live on the twins: the script's second line waits for a file that this test creates only once the first
    line has reached the notebook — output held back until the script ended would never release it."""
    cfg = twins.ssh_config_file()
    go = f"/tmp/kubelab-stream-go-{os.getpid()}"
    nb = notebook(LOAD, f"%%node master\necho first-line\nfor i in $(seq 300); do [ -e {go} ] && break; "
                        f"sleep 0.2; done\n[ -e {go} ] && echo second-line || echo never-released")
    client = client_for(nb, cfg, monkeypatch)

    def release(text: str) -> None:
        if "first-line" in text:
            subprocess.run(["ssh", "-F", str(cfg), "master", f"touch {go}"], check=True, timeout=60)
    client.on_stream = release
    try:
        client.execute()
    finally:
        subprocess.run(["ssh", "-F", str(cfg), "master", f"rm -f {go}"], timeout=60)
    out = text_of(nb.cells[1])
    assert "second-line" in out and "never-released" not in out, out


@pytest.mark.twins
def test_one_connection_per_node_reused_and_reopened_once_it_died(twins, course, monkeypatch):
    cfg = twins.ssh_config_file()
    nb = notebook(LOAD, *(["%%node master\necho \"client=$SSH_CLIENT\""] * 3))
    client = client_for(nb, cfg, monkeypatch)

    def source_port(cell) -> int:
        m = re.search(r"client=\S+ (\d+) 22", text_of(cell))
        assert m, text_of(cell)
        return int(m.group(1))

    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        client.execute_cell(nb.cells[1], 1)
        client.execute_cell(nb.cells[2], 2)
        port = source_port(nb.cells[1])
        assert source_port(nb.cells[2]) == port  # the same TCP connection served both cells

        # Kill the sshd serving the kernel's connection, from a connection of our own.
        target = resolve(load_ssh_config(cfg), "master", cfg)
        admin = connect(target)
        try:
            _, out, _ = admin.exec_command(
                f"sudo -n ss -Htnp state established '( sport = :22 and dport = :{port} )'", timeout=20)
            pids = sorted(set(re.findall(r"pid=(\d+)", out.read().decode())))
            assert pids, "no sshd process found for the kernel's connection"
            _, out, _ = admin.exec_command(f"sudo -n kill -KILL {' '.join(pids)}; echo done", timeout=20)
            assert out.read().decode().strip() == "done"

            def established() -> str:
                _, out, _ = admin.exec_command(
                    f"sudo -n ss -Htn state established '( sport = :22 and dport = :{port} )'", timeout=20)
                return out.read().decode().strip()
            wait_for(established, "the killed connection to close on the node", until=lambda o: o == "",
                     timeout_s=30, interval_s=0.5)
            # only that connection's sshd was killed: the listening daemon still serves new logins
            _, out, _ = admin.exec_command("systemctl is-active ssh", timeout=20)
            assert out.read().decode().strip() == "active"
        finally:
            admin.close()

        nb.cells[3] = new_code_cell("%%node master\necho \"client=$SSH_CLIENT\"")
        client.execute_cell(nb.cells[3], 3)  # must not raise: reconnected once
        assert source_port(nb.cells[3]) != port


@pytest.mark.twins
def test_timeout_stops_the_script_on_the_node(twins, monkeypatch):
    cfg = twins.ssh_config_file()
    nb = notebook(LOAD, "%%node master --timeout 2\necho started\nexec -a kubelab-timeout-probe sleep 60",
                  "print('not reached')")
    err = run(nb, cfg, monkeypatch)
    assert err is not None
    assert_one_line_error(nb.cells[1], r"✗ master: timed out after 2s \(exit status 124\)")
    assert "started" in text_of(nb.cells[1]) and nb.cells[2].outputs == []
    # `timeout` on the node killed the script: its `sleep` is gone (the name is split so that this
    # script's own command line does not match)
    check = notebook(LOAD, "%%node master\nname=kubelab-timeout-; name=${name}probe\n"
                           "if pgrep -f \"^$name\"; then echo still-running; exit 1; fi\necho gone")
    assert run(check, cfg, monkeypatch) is None
    assert "gone" in text_of(check.cells[1])
