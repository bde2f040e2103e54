"""The cluster-DNS STAND-IN of the twins' v1.20 cluster (kubelab.cluster.dns_standin: Debian's dnsmasq behind the
`kube-dns` Service, with static records) and the Lab 5 grader's reading of nslookup output.

Kinds of proof: "real dnsmasq from Debian" (the stand-in's own image, built from Debian bookworm's packages and run
here in a chroot, asked by the twins' real busybox nslookup); "upstream literals" (kubeadm's clusterDNS rule)."""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from kubelab.cluster import build, dns_standin

REPO = Path(__file__).resolve().parents[1]


def _grader():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lab05_grader", REPO / "graders" / "lab05_network_and_join.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cluster_dns_ip_is_the_tenth_address_of_the_service_range():
    """upstream literals: kubeadm's default serviceSubnet 10.96.0.0/12 gives clusterDNS 10.96.0.10 (kubeadm's
    GetDNSIP: the 10th address)."""
    assert dns_standin.cluster_dns_ip("10.96.0.0/12") == "10.96.0.10"
    assert dns_standin.cluster_dns_ip("10.100.0.0/16") == "10.100.0.10"


def test_records_name_every_service_with_a_cluster_ip():
    """simulation: a `kubectl get services -A -o json` shape; headless Services (clusterIP None) get no record."""
    services = {"items": [
        {"metadata": {"name": "web", "namespace": "smoke"}, "spec": {"clusterIP": "10.103.4.5"}},
        {"metadata": {"name": "kubernetes", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.1"}},
        {"metadata": {"name": "db", "namespace": "smoke"}, "spec": {"clusterIP": "None"}}]}
    assert dns_standin.records(services) == ("10.103.4.5 web.smoke.svc.cluster.local\n"
                                             "10.96.0.1 kubernetes.default.svc.cluster.local\n")


def test_manifest_puts_kube_dns_at_the_cluster_dns_ip():
    """simulation: the Service is kube-system/kube-dns at clusterDNS with 53/UDP and 53/TCP, selecting the stand-in's
    pod (labelled k8s-app=kube-dns like CoreDNS's) whose image is the local one."""
    docs = json.loads(dns_standin.manifest("10.96.0.0/12", "10.96.0.1 x\n"))["items"]
    svc = next(d for d in docs if d["kind"] == "Service")
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert (svc["metadata"]["name"], svc["metadata"]["namespace"], svc["spec"]["clusterIP"]) == \
        ("kube-dns", "kube-system", "10.96.0.10")
    assert {(p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert svc["spec"]["selector"] == dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == dns_standin.IMAGE


@pytest.fixture(scope="module")
def standin_root(tmp_path_factory):
    """The stand-in image's filesystem, unpacked (built from Debian's archive on first use, then cached)."""
    root = tmp_path_factory.mktemp("dnsroot")
    with tarfile.open(dns_standin.image_tar(progress=lambda s: None)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        config = json.load(outer.extractfile(manifest[0]["Config"]))
        with tarfile.open(fileobj=outer.extractfile(manifest[0]["Layers"][0])) as layer:
            layer.extractall(root, filter="fully_trusted")
    subprocess.run(["mknod", str(root / "dev/urandom"), "c", "1", "9"], check=True)  # the runtime makes /dev
    return root, config, manifest[0]["RepoTags"]


def _busybox(tmp: Path) -> Path:
    art = build.cached()
    if art is None:
        pytest.fail("the cluster build's busybox image is missing: run the cluster tests once (kubelab twin build)")
    with tarfile.open(art.images / "busybox.tar") as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        with tarfile.open(fileobj=outer.extractfile(manifest[0]["Layers"][0])) as layer:
            data = layer.extractfile("bin/busybox").read()
    exe = tmp / "busybox"
    exe.write_bytes(data)
    exe.chmod(0o755)
    return exe


def test_real_dnsmasq_answers_service_names_and_nxdomain_for_unknown_ones(standin_root, tmp_path):
    """real dnsmasq from Debian: the stand-in image (its entrypoint and the manifest's args, records from a hosts
    file) answers web.smoke.svc.cluster.local with the record's address and NXDOMAIN for a name it does not hold,
    asked by the twins' busybox nslookup; the Lab 5 grader reads the answer's address (not the server's)."""
    root, config, tags = standin_root
    assert tags == [dns_standin.IMAGE] and config["config"]["Entrypoint"] == ["/usr/sbin/dnsmasq"]
    (root / "records").mkdir(exist_ok=True)
    (root / "records/hosts").write_text("10.103.4.5 web.smoke.svc.cluster.local\n")
    dep = next(d for d in json.loads(dns_standin.manifest("10.96.0.0/12", ""))["items"]
               if d["kind"] == "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    port = "53535"
    server = subprocess.Popen(["chroot", str(root), "/usr/sbin/dnsmasq", *args, f"--port={port}",
                               "--listen-address=127.0.0.1", "--bind-interfaces"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    busybox = _busybox(tmp_path)
    grader = _grader()
    try:
        def ask(name):
            return subprocess.run([str(busybox), "nslookup", f"-port={port}", name, "127.0.0.1"],
                                  capture_output=True, text=True, timeout=20)
        deadline = time.monotonic() + 20
        while True:  # until dnsmasq listens (a state, not a time)
            known = ask("web.smoke.svc.cluster.local")
            if "10.103.4.5" in known.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        unknown = ask("nope.smoke.svc.cluster.local")
    finally:
        server.terminate()
        log = server.communicate(timeout=10)[0]
    assert grader.nslookup_addresses(known.stdout) == ["10.103.4.5"], (known.stdout, log)
    assert grader.nslookup_addresses(unknown.stdout) == []
    assert "NXDOMAIN" in unknown.stdout + unknown.stderr, (unknown.stdout, unknown.stderr)
    assert "read /records/hosts - 1 names" in log, log


def test_nslookup_addresses_skips_the_servers_own_address():
    """recorded output: busybox 1.36 nslookup as printed above by the real stand-in, and bind9's nslookup (the
    server's `Address: 10.96.0.10#53` comes before `Name:`)."""
    grader = _grader()
    busybox = ("Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\tweb.smoke.svc.cluster.local\n"
               "Address: 10.103.4.5\n\n")
    bind9 = ("Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\nName:\tweb.smoke.svc.cluster.local\n"
             "Address: 10.103.4.5\n")
    assert grader.nslookup_addresses(busybox) == ["10.103.4.5"]
    assert grader.nslookup_addresses(bind9) == ["10.103.4.5"]
    assert grader.nslookup_addresses(";; connection timed out; no servers could be reached\n") == []
