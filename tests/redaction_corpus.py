"""A corpus of secrets as they appear in what a grader observes, and of harmless values that look a bit
like them. Each secret says where it would be seen (kubectl, kubeadm, curl, env, files, the API) and
carries `secret` (what must not reach the evidence) and `keep` (a fact next to it that must stay).

The shapes follow real output: kubeconfigs as kubeadm writes them, `kubectl get secret -o yaml|json`,
kubeadm's init/upload-certs logs, curl -v and kubectl -v=10 request dumps, containerd's registry config,
an EncryptionConfiguration, kube-apiserver's static token file, Docker's config.json. Key material is
generated here with `cryptography` (a new key per run), never a key copied from anywhere."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


@dataclass(frozen=True)
class Secret:
    kind: str
    where: str        # kubectl | kubeadm | curl | env | file | api | jupyter | containerd | systemd
    text: str
    secret: str       # must not appear after redaction
    keep: str = ""    # must still appear after redaction
    context: str = ""  # the command that printed it, when that is what tells a secret from a fact


@dataclass(frozen=True)
class Harmless:
    what: str
    text: str
    context: str = ""


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _pem(key, fmt) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())
RSA_PKCS1 = _pem(RSA, serialization.PrivateFormat.TraditionalOpenSSL)
RSA_PKCS8 = _pem(RSA, serialization.PrivateFormat.PKCS8)
EC_SEC1 = _pem(EC, serialization.PrivateFormat.TraditionalOpenSSL)
OPENSSH = _pem(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.OpenSSH)
ENCRYPTED = RSA.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.BestAvailableEncryption(b"pw")).decode()
PUBLIC = RSA.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _line(pem: str, n: int = 2) -> str:
    """A line of the key's body: what would leak."""
    return pem.splitlines()[n]


def _cert() -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    t = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(EC.public_key())
            .serial_number(4242).not_valid_before(t).not_valid_after(t + dt.timedelta(days=3650)).sign(EC, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CERT = _cert()
CERT_B64 = _b64(CERT)
KEY_B64 = _b64(RSA_PKCS1)
JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6IlRrUzBOM0Y2In0.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoic3lzdGVt"
       "OnNlcnZpY2VhY2NvdW50Omt1YmUtc3lzdGVtOmRlZmF1bHQifQ.Xf3kP2q9vLmN8rT4wY6zA1bC5dE7gH0jK3lM9nO2pQ4")
BOOT = "7sv2lq.4bq9wz1m0x8k3c6f"
CERT_KEY = "9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
OPAQUE = "sha256~Xq2vT9LmA4pR7wK1zN8cB3fD6gH0jS5y"
JUPYTER = "Zk3mP9qL2vX8rT4wN7cB1fD6gH0jS5yA"
AWS_KEY, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _kubeconfig_yaml(user: str) -> str:
    return ("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: " + CERT_B64 + "\n"
            "    server: https://192.168.56.10:6443\n  name: kubernetes\ncontexts:\n- context:\n"
            "    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\n"
            "current-context: kubernetes-admin@kubernetes\nkind: Config\npreferences: {}\nusers:\n"
            "- name: kubernetes-admin\n  user:\n" + user)


def _secret_json(name: str, type_: str, data: dict, string_data: dict | None = None, compact=False) -> str:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "kube-system",
                                                              "uid": "0b5e1234-3c1e-4f7a-9d8e-5a3b2c1d0e9f"},
           "type": type_, "data": data}
    if string_data:
        obj["stringData"] = string_data
    return json.dumps(obj, separators=(",", ":")) if compact else json.dumps(obj, indent=4)


def _secret_yaml(name: str, type_: str, data: dict) -> str:
    lines = "".join(f"  {k}: {v}\n" for k, v in data.items())
    return (f"apiVersion: v1\ndata:\n{lines}kind: Secret\nmetadata:\n  creationTimestamp: \"2026-11-20T10:00:00Z\"\n"
            f"  name: {name}\n  namespace: kube-system\n  resourceVersion: \"312\"\n  uid: 0b5e1234-3c1e-4f7a-9d8e-5a3b2c1d0e9f\n"
            f"type: {type_}\n")


DOCKERCFG = json.dumps({"auths": {"registry.example.org": {"username": "ci", "password": "S3cr3t-Pa55",
                                                           "auth": _b64("ci:S3cr3t-Pa55")}}})

SECRETS: list[Secret] = [
    # -- private keys, every armor ------------------------------------------------------------------
    Secret("RSA key (PKCS#1)", "file", "$ sudo cat /etc/kubernetes/pki/apiserver.key\n" + RSA_PKCS1, _line(RSA_PKCS1), "apiserver.key"),
    Secret("RSA key (PKCS#8)", "file", RSA_PKCS8, _line(RSA_PKCS8), "BEGIN PRIVATE KEY"),
    Secret("EC key (SEC1)", "file", EC_SEC1, _line(EC_SEC1, 1), "BEGIN EC PRIVATE KEY"),
    Secret("OpenSSH key", "file", "cat ~/.ssh/id_ed25519\n" + OPENSSH, _line(OPENSSH, 1), "OPENSSH PRIVATE KEY"),
    Secret("encrypted PKCS#8 key", "file", ENCRYPTED, _line(ENCRYPTED), "ENCRYPTED PRIVATE KEY"),
    Secret("PEM key without its END line", "file", "\n".join(RSA_PKCS1.splitlines()[:-1]) + "\n", _line(RSA_PKCS1, 5)),
    Secret("PEM key with a mismatched END", "file",
           RSA_PKCS1.replace("END RSA PRIVATE KEY", "END CERTIFICATE"), _line(RSA_PKCS1, 3), "END CERTIFICATE"),
    Secret("PEM key in a JSON string", "api",
           json.dumps({"kind": "ConfigMap", "data": {"key.pem": RSA_PKCS8}}), _line(RSA_PKCS8, 4), '"kind": "ConfigMap"'),
    Secret("PEM key in JSON, END cut off", "api",
           '{"data": {"k": "' + "\\n".join(RSA_PKCS8.splitlines()[:6]) + '"}, "kind": "ConfigMap"}',
           _line(RSA_PKCS8, 4), '"kind": "ConfigMap"'),
    Secret("PGP private key block", "file",
           "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGVk3xsBCADGhQ2Zr9w7kL1pX4mN8vT2qY6cB0fD3gH5jS9yA7eR1tU4oI2\n"
           "=Xk3m\n-----END PGP PRIVATE KEY BLOCK-----\n", "lQOYBGVk3xsBCADGhQ2Zr9w7kL1pX4mN8vT2qY6cB0fD3gH5jS9yA7eR1tU4oI2",
           "PGP PRIVATE KEY BLOCK"),
    # -- kubeconfig credentials ---------------------------------------------------------------------
    Secret("client-key-data (YAML)", "kubectl", _kubeconfig_yaml(f"    client-certificate-data: {CERT_B64}\n"
                                                                  f"    client-key-data: {KEY_B64}\n"),
           KEY_B64[:40], "server: https://192.168.56.10:6443"),
    Secret("client-key-data (JSON)", "kubectl",
           json.dumps({"kind": "Config", "users": [{"name": "admin", "user": {"client-key-data": KEY_B64}}]}, indent=2),
           KEY_B64[:40], '"name": "admin"'),
    Secret("client-key-data (YAML flow)", "file",
           "{apiVersion: v1, kind: Config, users: [{name: admin, user: {client-key-data: " + KEY_B64 + "}}]}",
           KEY_B64[:40], "name: admin"),
    Secret("kubeconfig token", "file", _kubeconfig_yaml(f"    token: {OPAQUE}\n"), OPAQUE, "kind: Config"),
    Secret("kubeconfig JWT token (JSON flow)", "kubectl", '{"users":[{"name":"sa","user":{"token":"' + JWT + '"}}]}',
           JWT[40:80], '"name":"sa"'),
    Secret("kubeconfig password", "file", _kubeconfig_yaml("    username: admin\n    password: Adm1n-Pa55w0rd!\n"),
           "Adm1n-Pa55w0rd!", "username: admin"),
    Secret("OIDC id-token and refresh-token", "file",
           _kubeconfig_yaml("    auth-provider:\n      config:\n        client-id: kubernetes\n"
                            f"        id-token: {JWT}\n        refresh-token: Cg9yZWZyZXNoLXRva2VuLTEyMw\n"
                            "      name: oidc\n"), "Cg9yZWZyZXNoLXRva2VuLTEyMw", "client-id: kubernetes"),
    Secret("OIDC access-token", "file", "auth-provider:\n  config:\n    access-token: ya29.a0AfH6SMBx3kP9qL2vX8rT4w\n",
           "ya29.a0AfH6SMBx3kP9qL2vX8rT4w", "auth-provider"),
    Secret("OIDC client-secret", "file", "    client-secret: 4n0th3r-cl13nt-s3cr3t\n    client-id: k8s\n",
           "4n0th3r-cl13nt-s3cr3t", "client-id: k8s"),
    Secret("exec credential status token (JSON)", "kubectl",
           '{"kind":"ExecCredential","status":{"token":"' + OPAQUE + '","expirationTimestamp":"2026-11-21T00:00:00Z"}}',
           OPAQUE, "expirationTimestamp"),
    # -- kubeadm --------------------------------------------------------------------------------------
    Secret("kubeadm init: Using token", "kubeadm", f"[bootstrap-token] Using token: {BOOT}\n", BOOT, "[bootstrap-token]"),
    Secret("kubeadm join command", "kubeadm",
           f"kubeadm join 192.168.56.10:6443 --token {BOOT} \\\n\t--discovery-token-ca-cert-hash "
           "sha256:0b54fa516bad51f8de14b4300b69f020212682576ecc601d357879afe3009143\n", BOOT,
           "sha256:0b54fa516bad51f8de14b4300b69f020212682576ecc601d357879afe3009143"),
    Secret("kubeadm join --token=", "kubeadm", f"kubeadm join 192.168.56.10:6443 --token={BOOT}\n", BOOT, "192.168.56.10:6443"),
    Secret("kubeadm token list", "kubeadm",
           "TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION\n"
           f"{BOOT}   23h         2026-11-21T10:00:00Z   authentication,signing   <none>\n", BOOT, "authentication,signing"),
    Secret("kubeadm --certificate-key", "kubeadm",
           f"kubeadm join 192.168.56.10:6443 --token {BOOT} --control-plane --certificate-key {CERT_KEY}\n",
           CERT_KEY, "--control-plane"),
    Secret("kubeadm: Using certificate key", "kubeadm",
           f"[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n"
           f"[upload-certs] Using certificate key:\n{CERT_KEY}\n", CERT_KEY, "kubeadm-certs"),
    Secret("kubeadm config certificateKey", "file",
           f"apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\ncertificateKey: {CERT_KEY}\n"
           "localAPIEndpoint:\n  advertiseAddress: 192.168.56.10\n", CERT_KEY, "advertiseAddress: 192.168.56.10"),
    Secret("kubeadm config bootstrapTokens", "file",
           f"kind: InitConfiguration\nbootstrapTokens:\n- token: \"{BOOT}\"\n  ttl: 24h0m0s\n  usages:\n  - signing\n",
           BOOT, "ttl: 24h0m0s"),
    Secret("kubeadm-certs Secret (YAML)", "kubectl",
           _secret_yaml("kubeadm-certs", "Opaque", {"ca.crt": CERT_B64[:64], "ca.key": "Q2lwaGVyVGV4dENBS2V5MDEyMzQ1Njc4OQ==",
                                                    "sa.key": "Q2lwaGVyVGV4dFNBS2V5OTg3NjU0MzIxMA==",
                                                    "sa.pub": _b64(PUBLIC)[:64]}),
           "Q2lwaGVyVGV4dENBS2V5MDEyMzQ1Njc4OQ==", "ca.crt: " + CERT_B64[:64]),
    Secret("kubeadm-certs Secret sa.key (JSON)", "api",
           _secret_json("kubeadm-certs", "Opaque", {"ca.crt": CERT_B64, "sa.key": "Q2lwaGVyVGV4dFNBS2V5OTg3NjU0MzIxMA=="}),
           "Q2lwaGVyVGV4dFNBS2V5OTg3NjU0MzIxMA==", CERT_B64[:64]),
    Secret("bootstrap token Secret token-secret", "api",
           _secret_json("bootstrap-token-7sv2lq", "bootstrap.kubernetes.io/token",
                        {"token-id": _b64("7sv2lq"), "token-secret": _b64("4bq9wz1m0x8k3c6f"),
                         "expiration": _b64("2026-11-21T10:00:00Z"), "usage-bootstrap-authentication": _b64("true"),
                         "auth-extra-groups": _b64("system:bootstrappers:kubeadm:default-node-token")}, compact=True),
           _b64("4bq9wz1m0x8k3c6f"), _b64("2026-11-21T10:00:00Z")),
    Secret("cluster-info jws signature", "api",
           json.dumps({"kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"},
                       "data": {"jws-kubeconfig-7sv2lq": "eyJhbGciOiJIUzI1NiIsImtpZCI6Ijdzdj..Xk3mP9qL2vX8rT4wN7cB1fD6gH0",
                                "kubeconfig": "apiVersion: v1\nclusters: []\n"}}),
           "Xk3mP9qL2vX8rT4wN7cB1fD6gH0", "cluster-info"),
    # -- Secrets in the API and kubectl ---------------------------------------------------------------
    Secret("service-account token Secret (base64 JWT)", "kubectl",
           _secret_json("default-token-x7k2p", "kubernetes.io/service-account-token",
                        {"ca.crt": CERT_B64, "namespace": _b64("kube-system"), "token": _b64(JWT)}),
           _b64(JWT)[:60], _b64("kube-system")),
    Secret("service-account token Secret (YAML)", "kubectl",
           _secret_yaml("default-token-x7k2p", "kubernetes.io/service-account-token",
                        {"ca.crt": CERT_B64[:64], "namespace": _b64("kube-system"), "token": _b64(JWT)}),
           _b64(JWT)[:60], "namespace: " + _b64("kube-system")),
    Secret("generic Secret data", "kubectl", _secret_json("db", "Opaque", {"username": _b64("app"), "password": _b64("Pg-Pa55")}),
           _b64("Pg-Pa55"), '"name": "db"'),
    Secret("generic Secret stringData", "kubectl",
           _secret_json("db", "Opaque", {}, {"DATABASE_URL": "postgres://app:Pg-Pa55@db:5432/app"}),
           "Pg-Pa55", '"type": "Opaque"'),
    Secret("TLS Secret tls.key (YAML)", "kubectl",
           _secret_yaml("ingress-tls", "kubernetes.io/tls", {"tls.crt": CERT_B64[:64], "tls.key": KEY_B64}),
           KEY_B64[:40], "tls.crt: " + CERT_B64[:64]),
    Secret("TLS Secret tls.key (JSON list)", "api",
           json.dumps({"kind": "SecretList", "items": [{"metadata": {"name": "ingress-tls", "namespace": "default"},
                                                        "type": "kubernetes.io/tls",
                                                        "data": {"tls.crt": CERT_B64, "tls.key": KEY_B64}}]}),
           KEY_B64[:40], CERT_B64[:64]),
    Secret(".dockerconfigjson Secret", "kubectl",
           _secret_json("regcred", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": _b64(DOCKERCFG)}),
           _b64(DOCKERCFG)[:40], '"name": "regcred"'),
    Secret("Secret in kubectl -v=10 response body", "kubectl",
           "I1120 10:00:00.123456    4454 request.go:1212] Response Body: "
           + _secret_json("db", "Opaque", {"password": _b64("Pg-Pa55")}, compact=True), _b64("Pg-Pa55"),
           "request.go:1212] Response Body:"),
    # -- bearer tokens in curl and kubectl ------------------------------------------------------------
    Secret("opaque Bearer token in curl -v", "curl",
           f"> GET /api/v1/nodes HTTP/2\n> Host: 192.168.56.10:6443\n> Authorization: Bearer {OPAQUE}\n> Accept: */*\n",
           OPAQUE, "Host: 192.168.56.10:6443"),
    Secret("Bearer token on the curl command line", "curl",
           f"curl -sk -H 'Authorization: Bearer {OPAQUE}' https://192.168.56.10:6443/api\n", OPAQUE, "https://192.168.56.10:6443/api"),
    Secret("Bearer JWT in kubectl -v=10", "kubectl",
           f"I1120 10:00:00.1 round_trippers.go:466] curl -v -XGET  -H \"Authorization: Bearer {JWT}\" "
           "'https://192.168.56.10:6443/api/v1/nodes'\n", JWT[40:80], "round_trippers.go:466"),
    Secret("Basic auth header", "curl", f"> Authorization: Basic {_b64('admin:Adm1n-Pa55w0rd')}\n", _b64("admin:Adm1n-Pa55w0rd")),
    Secret("curl -u user:password", "curl", "curl -u admin:Adm1n-Pa55w0rd https://registry.example.org/v2/\n",
           "Adm1n-Pa55w0rd", "curl -u admin:"),
    Secret("password in a URL", "containerd", "mirror: https://ci:S3cr3t-Pa55@registry.example.org/v2/\n", "S3cr3t-Pa55",
           "registry.example.org/v2/"),
    Secret("kubectl --token flag", "kubectl", f"kubectl --token={OPAQUE} get nodes\n", OPAQUE, "get nodes"),
    Secret("service-account token file", "file", JWT + "\n", JWT[40:80],
           context="sudo -n cat /var/run/secrets/kubernetes.io/serviceaccount/token"),
    # -- Jupyter ---------------------------------------------------------------------------------------
    Secret("Jupyter URL with a hex token", "jupyter",
           "http://127.0.0.1:8888/lab?token=0123456789abcdef0123456789abcdef0123456789abcdef\n",
           "0123456789abcdef0123456789abcdef0123456789abcdef", "http://127.0.0.1:8888/lab?token="),
    Secret("Jupyter URL with a non-hex token", "jupyter", f"http://127.0.0.1:8888/lab?token={JUPYTER} :: /home/vagrant\n",
           JUPYTER, ":: /home/vagrant"),
    Secret("jupyter server list", "jupyter",
           f"Currently running servers:\nhttp://master:8888/?token={JUPYTER}&foo=1 :: /home/vagrant/labs\n", JUPYTER, "&foo=1"),
    Secret("bare Jupyter token file", "file", JUPYTER + "\n", JUPYTER, context="cat /home/vagrant/.kubelab/jupyter-token"),
    Secret("JUPYTER_TOKEN in the environment", "env", f"JUPYTER_TOKEN={JUPYTER}\nHOME=/home/vagrant\n", JUPYTER, "HOME=/home/vagrant"),
    # -- environment -----------------------------------------------------------------------------------
    Secret("PASSWORD=", "env", "PASSWORD=Adm1n-Pa55w0rd\nSHELL=/bin/bash\n", "Adm1n-Pa55w0rd", "SHELL=/bin/bash"),
    Secret("*_TOKEN=", "env", f"GITHUB_TOKEN=ghp_{JUPYTER}1234\nLANG=C.UTF-8\n", f"ghp_{JUPYTER}1234", "LANG=C.UTF-8"),
    Secret("AWS_ACCESS_KEY_ID", "env", f"AWS_ACCESS_KEY_ID={AWS_KEY}\n", AWS_KEY),
    Secret("AWS_SECRET_ACCESS_KEY", "env", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\nAWS_REGION=eu-west-1\n", AWS_SECRET,
           "AWS_REGION=eu-west-1"),
    Secret("AWS_SESSION_TOKEN (export)", "env", "export AWS_SESSION_TOKEN=IQoJb3JpZ2luX2VjEJr//////////wEaCXVz\n",
           "IQoJb3JpZ2luX2VjEJr//////////wEaCXVz"),
    Secret("systemd Environment= secret", "systemd",
           'Environment="KUBELET_EXTRA_ARGS=--node-ip=192.168.56.11" "REGISTRY_PASSWORD=S3cr3t-Pa55"\n', "S3cr3t-Pa55",
           "--node-ip=192.168.56.11"),
    Secret("aws credentials file", "file", f"[default]\naws_access_key_id = {AWS_KEY}\naws_secret_access_key = {AWS_SECRET}\n",
           AWS_SECRET, "[default]"),
    # -- files ------------------------------------------------------------------------------------------
    Secret("EncryptionConfiguration secret", "file",
           "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources:\n"
           "      - secrets\n    providers:\n      - aescbc:\n          keys:\n            - name: key1\n"
           "              secret: c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Cg==\n      - identity: {}\n",
           "c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Cg==", "name: key1"),
    Secret("containerd TOML password", "containerd",
           '[plugins."io.containerd.grpc.v1.cri".registry.configs."registry.example.org".auth]\n'
           '  username = "ci"\n  password = "S3cr3t-Pa55"\n', "S3cr3t-Pa55", 'username = "ci"'),
    Secret("containerd TOML auth", "containerd",
           '[plugins."io.containerd.grpc.v1.cri".registry.configs."r.example.org".auth]\n  auth = "'
           + _b64("ci:S3cr3t-Pa55") + '"\n', _b64("ci:S3cr3t-Pa55"), "registry.configs"),
    Secret("containerd TOML identitytoken", "containerd", '  identitytoken = "' + OPAQUE + '"\n', OPAQUE),
    Secret("docker config.json auth", "file", DOCKERCFG, _b64("ci:S3cr3t-Pa55"), "registry.example.org"),
    Secret("static tokens.csv", "file",
           f'{OPAQUE},admin,1000,"system:masters"\n31ada4fd-adec-460c-809a-9e56ceb75269,kubelet-bootstrap,10001,"system:bootstrappers"\n',
           "31ada4fd-adec-460c-809a-9e56ceb75269", "kubelet-bootstrap,10001"),
    Secret("static token file, three columns", "file", f"{OPAQUE},alice,1001\n", OPAQUE, "alice,1001"),
    Secret("static token file, one unquoted group", "file", f"{OPAQUE},bob,1002,developers\n", OPAQUE,
           "bob,1002,developers"),
    Secret("basic-auth password in a YAML values file", "file", "grafana:\n  adminPassword: x\n  password: 'Gr4f4n4-Pa55'\n",
           "Gr4f4n4-Pa55", "grafana:"),
    Secret("etcd credentials in JSON", "api", '{"kind":"Config","auth":{"password":"etcd-R00t-Pa55"}}', "etcd-R00t-Pa55"),
    Secret("container env value named like a password", "api",
           json.dumps({"kind": "Pod", "spec": {"containers": [{"name": "app", "env": [
               {"name": "REGISTRY_PASSWORD", "value": "S3cr3t-Pa55"}, {"name": "HOME", "value": "/root"}]}]}}),
           "S3cr3t-Pa55", '"value": "/root"'),
    Secret("api-key in a webhook config", "file", "webhook:\n  url: https://hooks.example.org/x\n  api-key: 8f14e45fceea167a5a36dedd4bea2543\n",
           "8f14e45fceea167a5a36dedd4bea2543", "url: https://hooks.example.org/x"),
]

HARMLESS: list[Harmless] = [
    Harmless("namespace in JSON", '{"metadata":{"name":"coredns","namespace":"kube-system"}}'),
    Harmless("namespaces in a pod list", json.dumps({"kind": "PodList", "items": [
        {"metadata": {"name": "etcd-master", "namespace": "kube-system"}},
        {"metadata": {"name": "bb-7d9c", "namespace": "default"}}]}, indent=4)),
    Harmless("service-account projected token path", json.dumps(
        {"projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                                   {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                                   {"downwardAPI": {"items": [{"fieldRef": {"fieldPath": "metadata.namespace"}, "path": "namespace"}]}}]}},
        indent=4)),
    Harmless("kube-root-ca.crt ConfigMap", json.dumps({"kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt",
                                                                                          "namespace": "default"},
                                                       "data": {"ca.crt": CERT}})),
    Harmless("a certificate", CERT),
    Harmless("a public key", PUBLIC),
    Harmless("certificate-authority-data", "    certificate-authority-data: " + CERT_B64 + "\n    server: https://192.168.56.10:6443\n"),
    Harmless("client-certificate-data", "    client-certificate-data: " + CERT_B64 + "\n"),
    Harmless("kube-apiserver flags", "    - --service-account-key-file=/etc/kubernetes/pki/sa.pub\n"
             "    - --service-account-signing-key-file=/etc/kubernetes/pki/sa.key\n    - --enable-bootstrap-token-auth=true\n"
             "    - --token-auth-file=/etc/kubernetes/tokens.csv\n    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n"),
    Harmless("kubelet config key paths", '{"tlsPrivateKeyFile": "/var/lib/kubelet/pki/kubelet.key", "authentication": '
             '{"anonymous": {"enabled": false}, "webhook": {"enabled": true}}}'),
    Harmless("discovery hash", "--discovery-token-ca-cert-hash sha256:0b54fa516bad51f8de14b4300b69f020212682576ecc601d357879afe3009143\n"),
    Harmless("a pod volume of a Secret", "volumes:\n- name: certs\n  secret:\n    secretName: etcd-certs\n"),
    Harmless("a pod volume of a Secret (flow)", '{"volumes":[{"name":"certs","secret":{"secretName":"etcd-certs"}}]}'),
    Harmless("a secret's name and type", "NAME                  TYPE                                  DATA   AGE\n"
             "bootstrap-token-7sv2lq   bootstrap.kubernetes.io/token   7      3m\n"),
    Harmless("kubeadm token ttl flag", "kubeadm token create --ttl 2h --print-join-command\n"),
    Harmless("machine-id", "4f1c000000000000000000000000a1b2\n", context="cat /etc/machine-id"),
    Harmless("product uuid", "ec2a7f3e-9d1c-4b5a-8e6f-0a1b2c3d4e5f\n", context="sudo -n cat /sys/class/dmi/id/product_uuid"),
    Harmless("a path to a key", "/etc/kubernetes/pki/sa.key\n", context="sudo -n find /etc/kubernetes/pki -name sa.key"),
    Harmless("node names and IPs", "master   Ready    control-plane   5m   v1.36.0   192.168.56.10\n"
             "worker   Ready    <none>          3m   v1.36.0   192.168.56.11\n"),
    Harmless("resource names with dots", "kube-proxy-abcde.17a8f2b3c4d5e6f7 Normal Started\n"),
    Harmless("sysctl output", "net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n"),
    Harmless("containerd config without credentials", '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n'
             "  SystemdCgroup = true\n  sandbox_image = \"registry.k8s.io/pause:3.10\"\n"),
    Harmless("iptables-save", "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"default/kubernetes:https "
             "cluster IP\" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y\n"),
    Harmless("env without secrets", "HOME=/home/vagrant\nKUBECONFIG=/etc/kubernetes/admin.conf\nPATH=/usr/bin:/bin\n"),
    Harmless("kubectl -v=10 masked header", "curl -v -XGET  -H \"Authorization: Bearer <masked>\" "
             "'https://192.168.56.10:6443/api/v1/nodes'\n"),
    Harmless("etcd log about tokens", '{"level":"warn","msg":"simple token is not cryptographically signed"}\n'),
    Harmless("bootstrap token Secret facts", _secret_json(
        "bootstrap-token-7sv2lq", "bootstrap.kubernetes.io/token",
        {"token-id": _b64("7sv2lq"), "expiration": _b64("2026-11-21T10:00:00Z"),
         "usage-bootstrap-authentication": _b64("true"), "usage-bootstrap-signing": _b64("true"),
         "auth-extra-groups": _b64("system:bootstrappers:kubeadm:default-node-token")})),
    Harmless("image digests", "registry.k8s.io/etcd@sha256:a6dc63e6e8cfa0307d7851762fa6b629afb18f28d8aa3fab5a6e91b4af60026a\n"),
    Harmless("a CSR list", "NAME        AGE   SIGNERNAME                                    REQUESTOR                 CONDITION\n"
             "csr-8xk2p   2m    kubernetes.io/kube-apiserver-client-kubelet   system:bootstrap:7sv2lq   Approved,Issued\n"),
    Harmless("placeholders in a join command", "kubeadm join 192.168.56.10:6443 --token <token> "
             "--discovery-token-ca-cert-hash sha256:<hash>\nkubeadm join ... --token $TOKEN ...\n"),
    # a hint is one line of prose: its commas must not make it read as a --token-auth-file line (seen live, Lab 5)
    Harmless("a hint whose first word is long, then commas", "port-forward, like exec, is the API server calling the "
             "kubelet of the chosen pod's node (port 10250 at its InternalIP, --node-ip); then the kubelet connects "
             "to the pod's port."),
    Harmless("a sentence with commas and no spaces around the first", "Remember,kubelets, too, register themselves"),
    Harmless("a CSV header and a row with spaces", "name,namespace,node\nweb-1, smoke, worker\n"),
    Harmless("kubeadm-config ClusterConfiguration", "apiServer:\n  certSANs:\n  - 192.168.56.10\ncertificatesDir: /etc/kubernetes/pki\n"
             "clusterName: kubernetes\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/16\n"),
]
