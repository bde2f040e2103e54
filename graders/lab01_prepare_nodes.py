"""Lab 1 — Prepare the nodes. Every check runs on every node and only observes."""

from kubelab.engine import check, expect_contains, expect_equal, expect_true
from kubelab.nodefacts import (SYSCTL_GREP, active_fstab_swaps, effective_sysctl_config, listed_modules,
                               resolved_ipv4)
from kubelab.swapfacts import SWAP_AT_BOOT, boot_swaps

REQUIRED_MODULES = ("overlay", "br_netfilter")
REQUIRED_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}


@check("Swap is off right now", on="all", points=1,
       hint="Run `sudo swapoff -a`. The kubelet refuses to start while swap is on (failSwapOn defaults to true).")
def test_swap_off_now(host):
    swaps = host.file("/proc/swaps").content_string.splitlines()[1:]
    expect_equal([s.split()[0] for s in swaps if s.strip()], [], what="active swap devices in /proc/swaps")


@check("Swap stays off after a reboot", on="all", points=1,
       hint="Comment out the swap line(s) in /etc/fstab, e.g. `sudo sed -i '/\\sswap\\s/ s/^#*/#/' /etc/fstab`. "
            "Swap can also come from a systemd .swap unit (`sudo systemctl mask <name>.swap`) or from zram: "
            "`sudo systemctl disable --now zramswap` (zram-tools); for zram-generator, comment out the [zram0] "
            "section of /etc/systemd/zram-generator.conf or remove the package systemd-zram-generator.")
def test_swap_off_at_boot(host):
    at_boot = [f"{s} (/etc/fstab)" for s in active_fstab_swaps(host.file("/etc/fstab").content_string)]
    at_boot += boot_swaps(host.run(SWAP_AT_BOOT).stdout)
    expect_equal(at_boot, [], what="what turns swap on at boot (/etc/fstab, systemd swap units, zram)")


@check("overlay and br_netfilter are configured to load at boot", on="all", points=1,
       hint="Write both names, one per line, to /etc/modules-load.d/k8s.conf.")
def test_modules_at_boot(host):
    listed = host.run("cat /etc/modules-load.d/*.conf /etc/modules 2>/dev/null").stdout
    expect_contains(listed_modules(listed), REQUIRED_MODULES, what="modules in /etc/modules-load.d")


@check("overlay and br_netfilter are active in the kernel", on="all", points=1,
       hint="Run `sudo modprobe overlay` and `sudo modprobe br_netfilter`.")
def test_modules_active(host):
    # Observed by effect, not lsmod: a built-in module (as on the lab twins) is not listed there.
    active = set()
    if host.run("grep -qw overlay /proc/filesystems").rc == 0:
        active.add("overlay")
    if host.file("/proc/sys/net/bridge").is_directory:
        active.add("br_netfilter")
    expect_contains(active, REQUIRED_MODULES, what="active modules (overlay in /proc/filesystems, /proc/sys/net/bridge)")


@check("IP forwarding and bridge netfilter are set to 1 at boot", on="all", points=2,
       hint="Put `net.ipv4.ip_forward = 1` and `net.bridge.bridge-nf-call-iptables = 1` in "
            "/etc/sysctl.d/k8s.conf, then apply it with `sudo sysctl -p /etc/sysctl.d/k8s.conf`.")
def test_sysctls_at_boot(host):
    config = effective_sysctl_config(host.run(SYSCTL_GREP).stdout)
    got = {k: config.get(k, ("(unset)", ""))[0] for k in REQUIRED_SYSCTLS}
    expect_equal(got, REQUIRED_SYSCTLS, what="values in /etc/sysctl.d")


# Live values are applied at boot by systemd-sysctl: right after a reboot, give it a moment.
@check("IP forwarding is on now", on="all", points=1, wait_s=5, interval_s=1,
       hint="Apply the file with `sudo sysctl -p /etc/sysctl.d/k8s.conf` (or `sudo sysctl --system`).")
def test_ip_forward_live(host):
    expect_equal(host.file("/proc/sys/net/ipv4/ip_forward").content_string.strip(), "1",
                 what="net.ipv4.ip_forward")


@check("Bridged traffic passes through iptables now", on="all", points=1, needs=["modules_active"], wait_s=5,
       interval_s=1, hint="Load br_netfilter, then apply `sudo sysctl -p /etc/sysctl.d/k8s.conf`.")
def test_bridge_nf_live(host):
    expect_equal(host.file("/proc/sys/net/bridge/bridge-nf-call-iptables").content_string.strip(), "1",
                 what="net.bridge.bridge-nf-call-iptables")


@check("Its hostname is its node name from course.yaml", on="all", points=1,
       hint="Every node needs a unique hostname: `sudo hostnamectl set-hostname NAME` with the name in course.yaml.")
def test_hostname(host, node):
    expect_equal(host.run("hostname").stdout.strip(), node.name, what="hostname")


@check("It resolves every other node to its private IP", on="all", points=2,
       hint="Add a line `IP NAME` to /etc/hosts for every node of the course (the private-network IPs).")
def test_resolves_other_nodes(host, node, course):
    others = [n for n in course.nodes if n.name != node.name]
    script = "; ".join(f"echo {n.name} $(getent ahostsv4 {n.name} | head -n1)" for n in others)
    seen = {}
    for line in host.run(script).stdout.splitlines():
        name, _, rest = line.partition(" ")
        seen[name] = resolved_ipv4(rest) or "(does not resolve)"
    expect_equal(seen, {n.name: str(n.ip) for n in others}, what="getent ahostsv4")


@check("It resolves its own name to its private IP, not to 127.0.1.1", on="all", points=1, needs=["hostname"],
       hint="Debian and Vagrant map the hostname to 127.0.1.1 in /etc/hosts; kubeadm and the kubelet then pick a "
            "loopback or NAT address. Replace that line with the node's private IP.")
def test_resolves_own_name(host, node):
    got = resolved_ipv4(host.run("getent ahostsv4 %s", node.name).stdout) or "(does not resolve)"
    expect_equal(got, str(node.ip), what=f"getent ahostsv4 {node.name}")
