"""Lab 5's model of which address flanneld takes (graders/lab05_network_and_join.py: flannel_args, flannel_choice).

Proof: unit — the grader's pure functions against flannel's own rules, read in flannel's source (main.go:
interface flags from the command line, else from FLANNELD_<FLAG> via flagutil.SetFlagsFromEnv; with no
interface flag, the interface holding the Node's public-ip-overwrite annotation, else the default route's), on a
Vagrant VM's interfaces (eth0 10.0.2.15 NAT, eth1 on the private network). The same functions graded on
recorded cluster evidence: tests/test_lab05.py::test_flannel_iface_from_environment_or_public_ip_overwrite."""

from __future__ import annotations

import importlib.util

from helpers import REPO

spec = importlib.util.spec_from_file_location("lab05_grader", REPO / "graders" / "lab05_network_and_join.py")
lab05 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lab05)

ADDRS = [("lo", "127.0.0.1"), ("eth0", "10.0.2.15"), ("eth1", "192.168.56.11")]
STOCK = ["--ip-masq", "--kube-subnet-mgr"]


def _default_route(target):
    return "10.0.2.15" if target == "default" else None


def test_environment_sets_the_flags_the_command_line_leaves_out():
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "FLANNELD_IFACE_REGEX", "value": "^192[.]168[.]56[.]"}]
    args = lab05.flannel_args(STOCK, env)
    assert args == STOCK + ["--iface-regex=^192[.]168[.]56[.]"]
    assert lab05.flannel_choice(args, ADDRS, _default_route)[0] == "192.168.56.11"
    # a flag on the command line wins over the environment (SetFlagsFromEnv sets only unset flags)
    both = lab05.flannel_args(STOCK + ["--iface=eth0"], [{"name": "FLANNELD_IFACE", "value": "eth1"}])
    assert lab05.flannel_choice(both, ADDRS, _default_route)[0] == "10.0.2.15"


def test_no_interface_flag_falls_back_to_the_overwrite_then_the_default_route():
    assert lab05.flannel_choice(STOCK, ADDRS, _default_route)[0] == "10.0.2.15"
    ip, why = lab05.flannel_choice(STOCK, ADDRS, _default_route, public_ip="192.168.56.11")
    assert ip == "192.168.56.11" and "public-ip-overwrite" in why
    missing, _ = lab05.flannel_choice(STOCK, ADDRS, _default_route, public_ip="192.168.56.99")
    assert missing.startswith("192.168.56.99 (on no interface")
    # an interface flag decides the interface even with the annotation
    assert lab05.flannel_choice(STOCK + ["--iface=eth0"], ADDRS, _default_route, public_ip="192.168.56.11")[0] == \
        "10.0.2.15"
