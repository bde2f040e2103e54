"""The grader's Kubernetes client when admin.conf names the API server by a DNS name (kubeadm's
controlPlaneEndpoint: master:6443, which Lab 4 allows): it connects to course.yaml's control-plane IP and still
verifies the server certificate against that name (the kubeconfig's tls-server-name).

Kind of proof: "real TLS" — a real HTTPS server on 127.0.0.1 with a certificate issued the way kubeadm issues
apiserver.crt (a CA, SANs for the name and the IP), reached through the real kubernetes client and urllib3; no
name resolution is involved (the name `master` is not resolvable on this host, checked). The same on the twins'
cluster: tests/test_lab05.py::test_admin_conf_naming_the_endpoint_by_name_connects_by_the_course_ip."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubelab.engine.kube import live_api_client, pinned_to_ip

VERSION = {"major": "1", "minor": "36", "gitVersion": "v1.36.4", "gitCommit": "x", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}


def _cert(subject: str, issuer_key, issuer_name, key, sans, ca: bool):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(hours=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
def apiserver(tmp_path):
    """An HTTPS server answering /version, with a kubeadm-style serving certificate for DNS `master` and
    `kubernetes` and IP 192.168.56.10 (NOT 127.0.0.1, where it listens)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    ca = _cert("kubernetes", ca_key, ca_name, ca_key, None, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("master"), x509.DNSName("kubernetes"), x509.IPAddress(ipaddress.ip_address("192.168.56.10"))]
    cert = _cert("kube-apiserver", ca_key, ca_name, key, sans, ca=False)
    (tmp_path / "tls.crt").write_bytes(_pem(cert))
    (tmp_path / "tls.key").write_bytes(_pem(key))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps(VERSION).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"port": server.server_address[1], "ca": base64.b64encode(_pem(ca)).decode()}
    finally:
        server.shutdown()
        server.server_close()


def _kubeconfig(server: str, ca: str) -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "admin@kubernetes",
            "clusters": [{"name": "kubernetes", "cluster": {"server": server, "certificate-authority-data": ca}}],
            "contexts": [{"name": "admin@kubernetes", "context": {"cluster": "kubernetes", "user": "admin"}}],
            "users": [{"name": "admin", "user": {"token": "not-a-real-token"}}]}


def _version(kubeconfig: dict) -> str:
    from kubernetes import client

    api = live_api_client(kubeconfig)
    try:
        return client.VersionApi(api).get_code().git_version
    finally:
        api.close()


def test_named_endpoint_is_reached_at_the_ip_and_verified_against_the_name(apiserver):
    """real TLS: admin.conf's server https://master:<port> — unresolvable here — is reached at 127.0.0.1, the
    certificate checked against `master` (a SAN): /version answers."""
    with pytest.raises(OSError):
        socket.getaddrinfo("master", apiserver["port"])
    kc = _kubeconfig(f"https://master:{apiserver['port']}", apiserver["ca"])
    pinned = pinned_to_ip(kc, "127.0.0.1")
    assert pinned["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{apiserver['port']}"
    assert pinned["clusters"][0]["cluster"]["tls-server-name"] == "master"
    assert kc["clusters"][0]["cluster"]["server"] == f"https://master:{apiserver['port']}"  # the input untouched
    assert _version(pinned) == "v1.36.4"


def test_the_certificate_is_still_verified_against_the_name(apiserver):
    """real TLS, failing case: a name the serving certificate does not carry (an endpoint name missing from
    apiServer.certSANs) is refused by the hostname check; the IP alone is not trusted either (127.0.0.1 is no
    SAN), so pinning never turns verification off."""
    kc = _kubeconfig(f"https://cp.example.internal:{apiserver['port']}", apiserver["ca"])
    with pytest.raises(urllib3.exceptions.MaxRetryError) as err:
        _version(pinned_to_ip(kc, "127.0.0.1"))
    assert "cp.example.internal" in str(err.value) or "hostname" in str(err.value).lower(), str(err.value)
    by_ip = _kubeconfig(f"https://127.0.0.1:{apiserver['port']}", apiserver["ca"])
    assert pinned_to_ip(by_ip, "192.168.56.10") == by_ip  # an IP server is left as it is
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        _version(by_ip)


def test_an_explicit_tls_server_name_is_kept():
    """simulation: a kubeconfig that already says tls-server-name keeps its server and name (the learner's choice)."""
    kc = _kubeconfig("https://lb.example:6443", "")
    kc["clusters"][0]["cluster"]["tls-server-name"] = "kubernetes"
    assert pinned_to_ip(kc, "192.168.56.10") == kc
