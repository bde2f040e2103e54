"""`%%node` and `%nodes`: run a notebook cell as a bash script on the course's nodes, over SSH.

Load with ``%load_ext kubelab.notebook``. Where the nodes are is configuration, never notebook
content: the course comes from ``find_course_root()`` (env ``KUBELAB_COURSE``, else the nearest
course.yaml above the notebook) and the SSH targets from the ssh-config at ``ssh_config_path()``
(env ``KUBELAB_SSH_CONFIG``, else ``~/.kubelab/ssh-config``), whose ``Host`` entries are named
after the nodes of course.yaml (as ``vagrant ssh-config`` and ``kubelab twin ssh-config`` print them).
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

import paramiko
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from kubelab.course import LoadedCourse, Node, find_course_root, load_course
from kubelab.errors import KubelabError, UsageError
from kubelab.sshconfig import SshTarget, connect, load_ssh_config, resolve, ssh_config_path

DEFAULT_TIMEOUT_S = 600.0
REACHABLE_TIMEOUT_S = 5.0
SCRIPT_NAME = "kubelab-cell"  # $0 of the script: bash names it in its own error messages
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KILL_GRACE_S = 5  # `timeout -k`: SIGKILL this long after the SIGTERM at the deadline
_LOCAL_GRACE_S = 15  # the local read gives up this long after the remote deadline
_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"

# paramiko logs a dropped connection at WARNING; with no handler Python prints that to stderr, which
# shows up in cells (and makes nbgrader score a cell as failed). The magic reports such problems itself.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class NodeError(Exception):
    """A cell that failed on a node, or a node that could not be used.

    IPython shows it as one plain line (no traceback), so "Run all" stops on a readable message.
    """

    def __init__(self, node: str | None, message: str, fix: str = ""):
        self.node = node
        self.message = message
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        where = f"{self.node}: " if self.node else ""
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"✗ {where}{self.message}{fix}"

    def _render_traceback_(self) -> list[str]:
        return [self.line()]


class NodeCommandError(NodeError):
    """The cell's script exited with a non-zero status on a node."""

    def __init__(self, node: str, status: int, message: str | None = None):
        self.status = status
        super().__init__(node, message or f"command exited with status {status}")


def _from_kubelab(node: str | None, err: KubelabError) -> NodeError:
    return NodeError(node, err.problem, err.fix)


# --------------------------------------------------------------------------------------------
# What the scripts get to know about the course
# --------------------------------------------------------------------------------------------

def hosts_block(course: LoadedCourse) -> str:
    """The /etc/hosts lines for every node of the course: `IP NAME`, one per line, in course order."""
    return "\n".join(f"{n.ip} {n.name}" for n in course.model.nodes)


def node_environment(course: LoadedCourse, node: Node) -> dict[str, str]:
    """Environment variables every `%%node` script gets, all read from course.yaml."""
    m = course.model
    cp = m.control_plane
    return {
        "KUBELAB_NODE_NAME": node.name,
        "KUBELAB_NODE_ROLE": node.role,
        "KUBELAB_NODE_IP": str(node.ip),
        "KUBELAB_CONTROL_PLANE_NAME": cp.name,
        "KUBELAB_CONTROL_PLANE_IP": str(cp.ip),
        "KUBELAB_NODES": " ".join(n.name for n in m.nodes),
        "KUBELAB_HOSTS": hosts_block(course),
        "KUBELAB_PRIVATE_SUBNET": str(m.network.private_subnet),
        "KUBELAB_POD_CIDR": str(m.network.pod_cidr),
        "KUBELAB_SERVICE_CIDR": str(m.network.service_cidr),
        "KUBELAB_K8S_MINOR": m.versions.kubernetes.minor,
        "KUBELAB_K8S_VERSION": m.versions.kubernetes.patch,
        "KUBELAB_CONTAINERD_MAJOR": str(m.versions.containerd.major),
        **_apt_source_env("CONTAINERD", m.apt_source("containerd")),
        **_apt_source_env("KUBERNETES", m.apt_source("kubernetes")),
    }


def _apt_source_env(prefix: str, src) -> dict[str, str]:
    return {
        f"KUBELAB_{prefix}_APT_LINE": src.apt_line,
        f"KUBELAB_{prefix}_KEY_URL": src.key_url,
        f"KUBELAB_{prefix}_KEYRING": src.keyring,
        f"KUBELAB_{prefix}_LIST_FILE": src.list_file,
        f"KUBELAB_{prefix}_PACKAGES": " ".join(src.packages),
    }


def remote_command(env: dict[str, str], timeout_s: float) -> str:
    """The command line the node's login shell runs; the script itself arrives on stdin.

    `"$(cat)"` reads the whole script before bash starts, and bash then runs with stdin from
    /dev/null: a command in the script that reads stdin (apt, ssh, a sudo password prompt) cannot
    swallow the rest of the script or hang waiting for input. `2>&1` merges stderr into stdout on
    the node, so the two arrive in the order they were written. The sbin folders join PATH
    (Debian leaves them out for non-root users, yet `sysctl` and `swapon --show` work unprivileged).
    `timeout` enforces the deadline on the node itself, killing the script's whole process group.
    """
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    secs = max(1, int(round(timeout_s)))
    return (f"exec env PATH=\"$PATH:{_SBIN}\" {assigns} timeout -k {_KILL_GRACE_S} {secs} "
            f"bash -eo pipefail -c \"$(cat)\" {SCRIPT_NAME} </dev/null 2>&1")


def _signal(chan: paramiko.Channel, name: str) -> bool:
    """Send an RFC 4254 "signal" request (OpenSSH's sshd delivers it to the command: here `timeout`,
    which passes it on to the script's whole process group). paramiko has no public call for it."""
    try:
        m = paramiko.Message()
        m.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
        m.add_int(chan.remote_chanid)
        m.add_string("signal")
        m.add_boolean(False)
        m.add_string(name)
        chan.transport._send_user_message(m)
        return True
    except Exception:
        return False


# --------------------------------------------------------------------------------------------
# Connections: one per node per kernel
# --------------------------------------------------------------------------------------------

@dataclass
class _Cached:
    target: SshTarget
    client: paramiko.SSHClient


class NodeRunner:
    """Runs scripts on the nodes of a course over one cached SSH connection per node."""

    def __init__(self, connector: Callable[..., paramiko.SSHClient] = connect):
        self._connect = connector
        self._cache: dict[str, _Cached] = {}

    # -- configuration, read fresh on every use (a regenerated ssh-config takes effect at once) --
    @staticmethod
    def course() -> LoadedCourse:
        return load_course(find_course_root())

    @staticmethod
    def targets(nodes: list[Node]) -> tuple[Path, dict[str, SshTarget]]:
        path = ssh_config_path()
        cfg = load_ssh_config(path)
        return path, {n.name: resolve(cfg, n.name, path) for n in nodes}

    # -- connections --
    @staticmethod
    def _alive(client: paramiko.SSHClient) -> bool:
        t = client.get_transport()
        return t is not None and t.is_active()

    def client(self, name: str, target: SshTarget, timeout: float | None = None) -> paramiko.SSHClient:
        cached = self._cache.get(name)
        if cached and cached.target == target and self._alive(cached.client):
            return cached.client
        if cached:
            self._drop(name)
        kwargs = {} if timeout is None else {"timeout": timeout}
        client = self._connect(target, **kwargs)
        self._cache[name] = _Cached(target, client)
        return client

    def _drop(self, name: str) -> None:
        cached = self._cache.pop(name, None)
        if cached:
            try:
                cached.client.close()
            except Exception:
                pass

    def close(self) -> None:
        for name in list(self._cache):
            self._drop(name)

    def _session(self, name: str, target: SshTarget) -> paramiko.Channel:
        """A fresh channel on the cached connection; reconnects once if that connection died."""
        for attempt in (1, 2):
            client = self.client(name, target)
            try:
                transport = client.get_transport()
                if transport is None:
                    raise paramiko.SSHException("no transport")
                return transport.open_session(timeout=30)
            except (paramiko.SSHException, EOFError, OSError, socket.error):
                self._drop(name)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # -- running --
    def run(self, name: str, target: SshTarget, script: str, env: dict[str, str],
            timeout_s: float = DEFAULT_TIMEOUT_S, out: TextIO | None = None) -> int:
        """Run `script` with bash on the node, streaming its combined output to `out`; return the exit status."""
        out = out if out is not None else sys.stdout
        try:
            chan = self._session(name, target)
        except KubelabError:
            raise
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise NodeError(name, f"lost the connection to {target.hostname}:{target.port}: {e or type(e).__name__}",
                            "is the node up? `vagrant status` / `kubelab twin status`; then run the cell again")
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        deadline = time.monotonic() + timeout_s + _LOCAL_GRACE_S
        try:
            chan.set_combine_stderr(True)  # anything the login shell itself writes to stderr, too
            chan.exec_command(remote_command(env, timeout_s))
            chan.sendall(script.encode("utf-8"))
            chan.shutdown_write()
            chan.settimeout(0.5)
            while True:
                try:
                    data = chan.recv(65536)
                except socket.timeout:
                    if time.monotonic() > deadline:
                        _signal(chan, "KILL")
                        raise NodeError(name, f"no answer within the timeout of {timeout_s:g}s",
                                        "raise it with `%%node --timeout SECONDS ...`, or look at the node")
                    continue
                if not data:
                    break
                out.write(decoder.decode(data))
                out.flush()
            tail = decoder.decode(b"", final=True)
            if tail:
                out.write(tail)
                out.flush()
            chan.settimeout(None)
            status = chan.recv_exit_status()
        except KeyboardInterrupt:
            stopped = _signal(chan, "TERM")
            chan.close()
            raise NodeError(name, "interrupted: the script was stopped on the node" if stopped
                            else "interrupted; the script may still be running on the node")
        except NodeError:
            chan.close()
            raise
        except (paramiko.SSHException, EOFError, OSError) as e:
            chan.close()
            self._drop(name)
            raise NodeError(name, f"the connection broke while the cell ran: {e or type(e).__name__}",
                            "check the node, then run the cell again")
        finally:
            if not chan.closed:
                chan.close()
        if status == -1:
            self._drop(name)
            raise NodeError(name, "the connection closed without an exit status",
                            "check the node, then run the cell again")
        return status

    def reachable(self, name: str, target: SshTarget) -> tuple[bool, str]:
        """(True, the node's hostname) or (False, why not); never raises for an unreachable node."""
        try:
            client = self.client(name, target, timeout=REACHABLE_TIMEOUT_S)
            _, stdout, _ = client.exec_command("hostname", timeout=REACHABLE_TIMEOUT_S)
            hostname = stdout.read().decode("utf-8", "replace").strip()
            return True, hostname
        except KubelabError as e:
            return False, e.problem
        except Exception as e:  # a timeout or a broken cached connection: report, never raise
            self._drop(name)
            return False, str(e) or type(e).__name__


# --------------------------------------------------------------------------------------------
# The magics
# --------------------------------------------------------------------------------------------

def _select(course: LoadedCourse, selector: str) -> list[Node]:
    picked: list[Node] = []
    for part in (p.strip() for p in selector.split(",")):
        if not part:
            raise UsageError(f"empty node selector in {selector!r}",
                             "write all, control-plane, worker, a node name, or a comma list of them")
        for node in course.model.select_nodes(part):
            if node not in picked:
                picked.append(node)
    if not picked:
        raise UsageError(f"no node of course.yaml matches {selector!r}",
                         f"use all, control-plane, worker or one of: {', '.join(n.name for n in course.model.nodes)}")
    return picked


def _parse_env(items: list[str], user_ns: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not _ENV_NAME.match(name):
            raise UsageError(f"--env {item!r}: {name!r} is not a valid variable name",
                             "write --env NAME=VALUE, or --env NAME to pass the Python variable NAME")
        if not eq:
            if name not in user_ns:
                raise UsageError(f"--env {name}: there is no Python variable {name}",
                                 f"run the cell that defines {name} first, or write --env {name}=VALUE")
            value = str(user_ns[name])
        env[name] = value
    return env


@magics_class
class NodeMagics(Magics):
    """The `%%node` cell magic and the `%nodes` line magic (see their docstrings)."""

    def __init__(self, shell=None, runner: NodeRunner | None = None):
        super().__init__(shell)
        self.runner = runner or NodeRunner()

    @magic_arguments()
    @argument("selector", help="all | control-plane | worker | a node name | a comma list of these")
    @argument("--timeout", "-t", type=float, default=DEFAULT_TIMEOUT_S,
              help=f"seconds the script may run on each node (default {DEFAULT_TIMEOUT_S:g})")
    @argument("--env", "-e", action="append", default=[], metavar="NAME[=VALUE]",
              help="also export NAME to the script: NAME=VALUE as written, or NAME alone for the "
                   "value of the Python variable NAME; may be repeated")
    @cell_magic
    def node(self, line: str, cell: str):
        """Run the cell as a bash script on the selected nodes, one node after another.

        Usage::

            %%node SELECTOR [--timeout SECONDS] [--env NAME[=VALUE]]...
            commands...

        SELECTOR is ``all``, a role (``control-plane``, ``worker``), a node name from course.yaml,
        or a comma list of these (``master,worker``). The body runs as ``bash -eo pipefail``: the
        first failing command stops it. Its stdin is /dev/null, so nothing waits for input; the
        sbin folders are on its PATH. Output (stdout and stderr merged, in the order written) streams
        into the cell as it comes; with several nodes, a header line names each node.
        A non-zero exit, an unreachable node, or a timeout stops the cell with one line such as
        ``✗ worker: command exited with status 1`` (no traceback), so "Run all" stops there.

        Each node is reached over one SSH connection kept for the life of the kernel (reconnected
        once if it died), from the ssh-config at ``$KUBELAB_SSH_CONFIG`` (default
        ``~/.kubelab/ssh-config``) whose Host entries are the node names of course.yaml.

        Every script gets these environment variables, read from course.yaml (never typed into
        notebooks):

        - ``KUBELAB_NODE_NAME``, ``KUBELAB_NODE_ROLE``, ``KUBELAB_NODE_IP``: the node running the script
          (its private IP, the one the cluster must use)
        - ``KUBELAB_CONTROL_PLANE_NAME``, ``KUBELAB_CONTROL_PLANE_IP``
        - ``KUBELAB_NODES``: all node names, space-separated
        - ``KUBELAB_HOSTS``: ready-made /etc/hosts lines, ``IP NAME`` for every node, one per line
        - ``KUBELAB_PRIVATE_SUBNET``, ``KUBELAB_POD_CIDR``, ``KUBELAB_SERVICE_CIDR``
        - ``KUBELAB_K8S_MINOR``, ``KUBELAB_K8S_VERSION``: the pinned Kubernetes minor and patch
        - ``KUBELAB_CONTAINERD_MAJOR``: the containerd major version the course expects
        - ``KUBELAB_{CONTAINERD,KUBERNETES}_{APT_LINE,KEY_URL,KEYRING,LIST_FILE,PACKAGES}``: the apt
          repositories of labs 2 and 3 (course.yaml package_sources)

        Under ``nbgrader autograde`` (``NBGRADER_EXECUTION=autograde``) the cell is not run: the
        instructor's re-execution of a submission must not replay a learner's commands on any node.

        ``--env NAME=VALUE`` adds a variable (IPython expands ``$x``/``{x}`` in the magic's line, not
        in the body); ``--env NAME`` passes the value of the Python variable ``NAME``.
        """
        if os.environ.get("NBGRADER_EXECUTION") == "autograde":
            # nbgrader re-executes the whole notebook to autograde it, on the instructor's side: a
            # learner's commands must not run again there, on whatever nodes that machine can reach.
            print(f"(%%node {line.strip()}: not run while nbgrader autogrades; the grading cell observes the nodes)")
            return
        try:
            args = parse_argstring(self.node, line)
        except Exception as e:  # argparse's message, as one line
            raise NodeError(None, f"%%node {line.strip()}: {e}",
                            "write %%node SELECTOR [--timeout SECONDS] [--env NAME[=VALUE]]")
        if args.timeout <= 0:
            raise NodeError(None, f"--timeout must be positive, got {args.timeout:g}")
        try:
            course = self.runner.course()
            nodes = _select(course, args.selector)
            extra = _parse_env(args.env, self.shell.user_ns if self.shell else {})
            _, targets = self.runner.targets(nodes)
        except KubelabError as e:
            raise _from_kubelab(None, e) from None
        several = len(nodes) > 1
        for node in nodes:
            if several:
                print(f"── {node.name} ({node.role}, {node.ip}) ──", flush=True)
            env = {**node_environment(course, node), **extra}
            try:
                status = self.runner.run(node.name, targets[node.name], cell, env, args.timeout)
            except KubelabError as e:
                raise _from_kubelab(node.name, e) from None
            if status == 124:
                raise NodeCommandError(node.name, status,
                                       f"timed out after {args.timeout:g}s (exit status 124)")
            if status != 0:
                raise NodeCommandError(node.name, status)

    @line_magic
    def answer(self, line: str = ""):
        """Record an answer the grader recomputes from the cluster: ``%answer LAB KEY VALUE``.

        VALUE is the rest of the line (IPython expands ``$x`` and ``{x}`` in it first, so ``%answer lab07
        revision $rev`` records the Python variable). It is kept on the control-plane node, in
        ``~/.kubelab/answers/LAB.json``; recording a key again replaces its value."""
        from kubelab.notebook.answering import parse_answer_line, record_answer

        try:
            lab_id, key, value = parse_answer_line(line)
        except KubelabError as e:
            raise _from_kubelab(None, e) from None
        print(record_answer(lab_id, key, value, runner=self.runner))

    @line_magic
    def nodes(self, line: str = ""):
        """Print the course's nodes: name, role, private IP, SSH target, and whether it answers now."""
        if os.environ.get("NBGRADER_EXECUTION") == "autograde":
            # On the instructor's machine the learner's nodes are out of reach: no SSH attempts there.
            print("(%nodes: not run while nbgrader autogrades)")
            return
        try:
            course = self.runner.course()
            path, targets = self.runner.targets(list(course.model.nodes))
        except KubelabError as e:
            raise _from_kubelab(None, e) from None
        rows = [("NODE", "ROLE", "IP", "SSH", "REACHABLE")]
        for n in course.model.nodes:
            t = targets[n.name]
            ok, info = self.runner.reachable(n.name, t)
            state = (f"yes (hostname {info})" if ok else f"no: {info}")
            rows.append((n.name, n.role, str(n.ip), f"{t.user + '@' if t.user else ''}{t.hostname}:{t.port}", state))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        print(f"course {course.path}  ·  ssh-config {path}")
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(NodeMagics(ipython))


def unload_ipython_extension(ipython) -> None:
    magics = ipython.magics_manager.registry.get("NodeMagics")
    if magics is not None:
        magics.runner.close()
