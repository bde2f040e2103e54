"""The twin set's private network: one Linux bridge on the host holding the subnet's first address.

Like VirtualBox's host-only network: the twins reach each other and the host, nothing else.
No NAT and no change to the host's iptables or sysctls.
"""

from __future__ import annotations

import ipaddress
import json
import time

from kubelab.errors import UsageError
from kubelab.twin import hostcmd


def bridge_interface(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Interface:
    """The host side of the private network: first host address, subnet prefix (as Vagrant's host-only adapter)."""
    return ipaddress.IPv4Interface(f"{next(subnet.hosts())}/{subnet.prefixlen}")


def _links() -> list[dict]:
    proc = hostcmd.run(["ip", "-j", "addr", "show"], what="listing the host's network interfaces",
                       fix="check that iproute2 is installed")
    return json.loads(proc.stdout or "[]")


def link_exists(name: str) -> bool:
    proc = hostcmd.run(["ip", "link", "show", "dev", name], what=f"looking up {name}", fix="", check=False)
    return proc.returncode == 0


def check_address_free(bridge: str, iface: ipaddress.IPv4Interface) -> None:
    """Refuse when another host interface has the bridge address or an address in the subnet.

    Two interfaces on one subnet would make the host route twin traffic to the wrong one
    (e.g. a VirtualBox vboxnet0 that already holds 192.168.56.1/24).
    """
    for link in _links():
        name = link.get("ifname", "?")
        if name == bridge:
            continue
        for a in link.get("addr_info", []):
            if a.get("family") != "inet":
                continue
            theirs = ipaddress.IPv4Interface(f"{a['local']}/{a.get('prefixlen', 32)}")
            if theirs.ip == iface.ip:
                raise UsageError(
                    f"the twins' bridge address {iface.ip} (first host of network.private_subnet {iface.network}) "
                    f"is already on host interface {name}",
                    f"remove it (`ip addr del {theirs} dev {name}`) or choose another network.private_subnet "
                    "in course.yaml")
            if theirs.network.overlaps(iface.network):
                raise UsageError(
                    f"host interface {name} has {theirs}, which overlaps the twins' network.private_subnet "
                    f"{iface.network}",
                    f"remove that address (`ip addr del {theirs} dev {name}`) or choose another "
                    "network.private_subnet in course.yaml")


def ensure_bridge(name: str, iface: ipaddress.IPv4Interface) -> None:
    fix = "run as root; check `ip link` for a conflicting interface"
    if not link_exists(name):
        hostcmd.run(["ip", "link", "add", name, "type", "bridge"], what=f"creating bridge {name}", fix=fix)
    # `replace` is idempotent; a stale address from an older subnet is flushed first
    have = [a for link in _links() if link.get("ifname") == name for a in link.get("addr_info", [])
            if a.get("family") == "inet"]
    if any(f"{a['local']}/{a['prefixlen']}" != str(iface) for a in have):
        hostcmd.run(["ip", "-4", "addr", "flush", "dev", name], what=f"resetting {name}'s address", fix=fix)
    hostcmd.run(["ip", "addr", "replace", str(iface), "dev", name], what=f"addressing bridge {name}", fix=fix)
    hostcmd.run(["ip", "link", "set", name, "up"], what=f"bringing bridge {name} up", fix=fix)


def delete_link(name: str) -> None:
    if link_exists(name):
        hostcmd.run(["ip", "link", "delete", name], what=f"deleting {name}",
                    fix=f"delete it by hand: `ip link delete {name}`")


def ports(bridge: str) -> list[str]:
    """Interfaces enslaved to `bridge` (the host ends of the twins' veths); [] if it does not exist."""
    proc = hostcmd.run(["ip", "-j", "link", "show", "master", bridge], what=f"listing {bridge}'s ports",
                       fix="", check=False)
    if proc.returncode != 0:
        return []
    return [link.get("ifname", "?") for link in json.loads(proc.stdout or "[]")]


def master_of(name: str) -> str | None:
    """The bridge an interface is enslaved to, None if none; "" if the interface does not exist."""
    proc = hostcmd.run(["ip", "-j", "link", "show", "dev", name], what=f"looking up {name}", fix="", check=False)
    if proc.returncode != 0:
        return ""
    links = json.loads(proc.stdout or "[]")
    return links[0].get("master") if links else ""


def wait_no_ports(bridge: str, timeout: float = 5) -> list[str]:
    """The kernel removes a veth shortly after its twin's namespace dies: wait for the bridge to empty."""
    deadline = time.monotonic() + timeout
    while True:
        left = ports(bridge)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)
