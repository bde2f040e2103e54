"""kubelet's systemd units as pkgs.k8s.io's packages ship them (kubernetes/release, cmd/krel/templates/latest):
kubelet.service from the kubelet package and the 10-kubeadm.conf drop-in from the kubeadm package.

Written from here by both the Lab 3 .debs (kubelab.cluster.debs: binaries in /usr/bin, as packaged) and the
cluster twins' template (kubelab.cluster.template: binaries in /usr/local/bin, plus the twin's start order), so
the kubelet a learner's notebook installs and the one the real-cluster tests run start the same way."""

from __future__ import annotations

_SERVICE = """[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart={bindir}/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

_DROPIN = """# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart={bindir}/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


def kubelet_service(bindir: str = "/usr/bin") -> str:
    """/usr/lib/systemd/system/kubelet.service of the kubelet package."""
    return _SERVICE.format(bindir=bindir)


def kubeadm_dropin(bindir: str = "/usr/bin", unit_lines: tuple[str, ...] = ()) -> str:
    """kubelet.service.d/10-kubeadm.conf of the kubeadm package; `unit_lines` go into a [Unit] section first."""
    unit = "[Unit]\n" + "".join(line + "\n" for line in unit_lines) if unit_lines else ""
    return unit + _DROPIN.format(bindir=bindir)
