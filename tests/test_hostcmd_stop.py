"""kubelab.twin.hostcmd.stop, which ends debootstrap and the cluster build's steps when a build is interrupted.

Proof: real child processes of this test (no twins, no mocks): one that ends on SIGTERM, one that ignores it, one
that has already ended."""

from __future__ import annotations

import signal
import subprocess

from kubelab.twin import hostcmd


def test_a_child_that_heeds_sigterm_ends_on_it():
    proc = subprocess.Popen(["sleep", "60"])
    hostcmd.stop(proc, grace_s=30)
    assert proc.returncode == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace():
    # an ignored signal stays ignored across exec: sleep itself ignores SIGTERM
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; echo ready; exec sleep 60"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    hostcmd.stop(proc, grace_s=0.5)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def test_a_child_that_has_ended_is_left_as_it_ended():
    proc = subprocess.Popen(["sh", "-c", "exit 3"])
    proc.wait()
    hostcmd.stop(proc, grace_s=30)
    assert proc.returncode == 3
