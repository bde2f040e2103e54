"""Parsers of node configuration used by graders. Proof: unit tests on text shaped like the real files."""

from kubelab.nodefacts import SYSCTL_DIRS, active_fstab_swaps, effective_sysctl_config, listed_modules, resolved_ipv4


def test_sysctl_precedence_like_sysctl_system():
    out = "\n".join([
        "/usr/lib/sysctl.d/50-default.conf:net.ipv4.ip_forward = 0",
        "/etc/sysctl.d/50-default.conf:# hides the /usr/lib file of the same name",
        "/etc/sysctl.d/k8s.conf:net.ipv4.ip_forward = 1",
        "/etc/sysctl.d/k8s.conf:net/bridge/bridge-nf-call-iptables=1",
        "/etc/sysctl.d/99-late.conf:; net.ipv4.ip_forward = 0",
        "/etc/sysctl.conf:#net.ipv4.ip_forward=0",
    ])
    values = effective_sysctl_config(out)
    assert values["net.ipv4.ip_forward"] == ("1", "/etc/sysctl.d/k8s.conf")
    assert values["net.bridge.bridge-nf-call-iptables"][0] == "1"
    later = out + "\n/etc/sysctl.conf:net.ipv4.ip_forward=0"
    assert effective_sysctl_config(later)["net.ipv4.ip_forward"] == ("0", "/etc/sysctl.conf")
    assert SYSCTL_DIRS[0] == "/etc/sysctl.d"


def test_fstab_swaps():
    fstab = "UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n#/old none swap sw 0 0\n/x none swap noauto 0 0\n"
    assert active_fstab_swaps(fstab) == ["/swapfile none swap sw 0 0"]
    assert active_fstab_swaps("# UNCONFIGURED FSTAB\n") == []


def test_modules_and_getent():
    assert listed_modules("overlay\n# br_netfilter\nbr-netfilter  ; comment\n") == {"overlay", "br_netfilter"}
    assert resolved_ipv4("192.168.56.11   STREAM worker\n192.168.56.11   DGRAM\n") == "192.168.56.11"
    assert resolved_ipv4("") is None
