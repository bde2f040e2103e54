"""Reading kube-proxy's rules: `iptables-save -t nat` (iptables mode) and `nft list table ip kube-proxy`
(nftables mode). Pure functions on the text, shared by the graders and `kubelab trace`; the tests feed them real
captures (shared/realdata/iptables-save) and upstream's nftables shapes.

Two ways in: from a Service (its ClusterIP:port -> its service chain -> the endpoint chains and where each DNATs
to), and from a pod (every endpoint chain that DNATs to the pod's IP, with the Service port it belongs to)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

IPTABLES_NAT = "sudo -n iptables-save -t nat"
NFT_TABLE = "sudo -n nft list table ip kube-proxy"
PROXY_MODE_URL = "http://127.0.0.1:10249/proxyMode"   # kube-proxy's metrics server (metricsBindAddress default)


@dataclass(frozen=True)
class EndpointChain:
    chain: str        # KUBE-SEP-… (iptables) or endpoint-… (nftables)
    destination: str  # the IP:port it DNATs to
    service: str      # the Service port it belongs to, "namespace/name:port-name" (iptables' comment) or as nft names it


# ---------------------------------------------------------------- iptables

def iptables_rules(text: str) -> list[tuple[str, list[str]]]:
    """Every `-A CHAIN …` line of `iptables-save` as (chain, its words after the chain)."""
    rules = []
    for line in text.splitlines():
        if line.startswith("-A "):
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            rules.append((words[1], words[2:]))
    return rules


def _arg(words: list[str], flag: str) -> str | None:
    return words[words.index(flag) + 1] if flag in words and words.index(flag) + 1 < len(words) else None


def iptables_service(text: str, cluster_ip: str, port: int, proto: str = "tcp") -> tuple[str, list[tuple[str, str]]]:
    """The KUBE-SVC chain that KUBE-SERVICES sends ClusterIP:port to, and its KUBE-SEP chains in order, each with the
    IP:port it DNATs to — from `iptables-save -t nat`. ("", []) when there is no such rule."""
    rules = iptables_rules(text)
    svc = ""
    for chain, w in rules:
        target = _arg(w, "-j") or ""
        if (chain == "KUBE-SERVICES" and target.startswith("KUBE-SVC-") and _arg(w, "-d") in (cluster_ip, f"{cluster_ip}/32")
                and _arg(w, "--dport") == str(port) and _arg(w, "-p") == proto):
            svc = target
            break
    if not svc:
        return "", []
    dnat = {chain: _arg(w, "--to-destination") or "" for chain, w in rules
            if chain.startswith("KUBE-SEP-") and _arg(w, "-j") == "DNAT"}
    seps = [_arg(w, "-j") for chain, w in rules if chain == svc and (_arg(w, "-j") or "").startswith("KUBE-SEP-")]
    return svc, [(sep, dnat.get(sep, "")) for sep in seps]


def iptables_endpoints_of(text: str, pod_ip: str) -> list[EndpointChain]:
    """Every KUBE-SEP chain that DNATs to pod_ip (any port), with the Service port its comment names."""
    out = []
    for chain, w in iptables_rules(text):
        dest = _arg(w, "--to-destination") or ""
        if chain.startswith("KUBE-SEP-") and _arg(w, "-j") == "DNAT" and dest.rsplit(":", 1)[0] == pod_ip:
            out.append(EndpointChain(chain, dest, _arg(w, "--comment") or ""))
    return out


# ---------------------------------------------------------------- nftables

_NAME = r'"?([^\s,}"]+)"?'


def _nft_chain_body(text: str, name: str) -> str | None:
    m = re.search(r'chain "?' + re.escape(name) + r'"? \{\n(.*?)\n\s*\}', text, re.S)
    return m.group(1) if m else None


def nft_service(text: str, cluster_ip: str, port: int, proto: str = "tcp") -> tuple[str, list[tuple[str, str]]]:
    """The service chain the `service-ips` map sends ClusterIP . proto . port to, and its endpoint chains in order
    (the numgen vmap's 0, 1, …), each with the IP:port it DNATs to — from `nft list table ip kube-proxy`."""
    m = re.search(re.escape(f"{cluster_ip} . {proto} . {port}") + r"\s*:\s*goto " + _NAME, text)
    if not m:
        return "", []
    svc = m.group(1)
    body = _nft_chain_body(text, svc) or ""
    arms = re.findall(r"(\d+)\s*:\s*goto " + _NAME, body)
    if arms:
        endpoints = [name for _, name in sorted(arms, key=lambda a: int(a[0]))]
    else:  # one endpoint: a plain goto/jump, no numgen
        endpoints = re.findall(r"(?:goto|jump) " + r'"?(endpoint-[^\s,}"]+)"?', body)
    out = []
    for ep in endpoints:
        dnat = re.search(r"dnat (?:ip )?to (\S+)", _nft_chain_body(text, ep) or "")
        out.append((ep, dnat.group(1) if dnat else ""))
    return svc, out


def nft_endpoints_of(text: str, pod_ip: str) -> list[EndpointChain]:
    """Every endpoint-… chain whose `dnat to` is pod_ip (any port); its name carries the Service port
    (endpoint-<hash>-<ns>/<svc>/<proto>/<port-name>__<ip>/<port>)."""
    out = []
    for m in re.finditer(r'chain "?(endpoint-[^\s"]+)"? \{\n(.*?)\n\s*\}', text, re.S):
        dnat = re.search(r"dnat (?:ip )?to (\S+)", m.group(2))
        if dnat and dnat.group(1).rsplit(":", 1)[0] == pod_ip:
            name = m.group(1)
            service = name.split("-", 2)[2].split("__", 1)[0] if name.count("-") >= 2 else ""
            out.append(EndpointChain(name, dnat.group(1), service))
    return out


def endpoints_of(mode: str, text: str, pod_ip: str) -> list[EndpointChain]:
    """The endpoint chains DNATing to pod_ip in the rules of kube-proxy's `mode` (iptables or nftables)."""
    return nft_endpoints_of(text, pod_ip) if mode == "nftables" else iptables_endpoints_of(text, pod_ip)


# One read per node: kube-proxy's mode, then its rules in that mode. The first line says the mode.
RULES_READ = ("m=$(curl -s -m 5 %s || true); echo \"mode=$m\"; "
              "if [ \"$m\" = nftables ]; then nft list table ip kube-proxy; else iptables-save -t nat; fi") % PROXY_MODE_URL


def rules_command() -> str:
    return "sudo -n sh -c " + shlex.quote(RULES_READ)


def split_rules_read(stdout: str) -> tuple[str, str]:
    """(mode, rules text) from the output of rules_command(); an unanswered mode reads as iptables (kubeadm's
    default, and what the rules fall back to)."""
    first, _, rest = stdout.partition("\n")
    mode = first.removeprefix("mode=").strip() if first.startswith("mode=") else ""
    return (mode or "iptables"), (rest if first.startswith("mode=") else stdout)
