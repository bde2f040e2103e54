"""Lab 11's tests: kube-proxy's nftables table as `nft list table ip kube-proxy` prints it, for one Service port.

No real nft capture of kube-proxy exists in shared/realdata: the shape is upstream's — the rules
kubernetes/kubernetes pkg/proxy/nftables/proxier_test.go expects the nftables proxier to write (service-ips verdict
map, service-<hash>-<ns>/<svc>/<proto>/<port> chains with `numgen random mod N vmap`, endpoint-<hash>-…__<ip>/<port>
chains with `dnat to`), printed in nft's list syntax.
"""


def nft_ruleset(cluster_ip: str, endpoints: list[str], port: int = 80, chain_hash: str = "ULMVA6XW",
                ns_svc: str = "lab11-web/web", port_name: str = "http") -> str:
    """`nft list table ip kube-proxy` in the shape kube-proxy's nftables mode writes (upstream
    pkg/proxy/nftables/proxier_test.go's ruleset, printed as nft lists it), for one Service port."""
    svc = f"service-{chain_hash}-{ns_svc}/tcp/{port_name}"
    eps = [f"endpoint-{chr(65 + i) * 8}-{ns_svc}/tcp/{port_name}__{e.replace(':', '/')}" for i, e in enumerate(endpoints)]
    vmap = ", ".join(f"{i} : goto {name}" for i, name in enumerate(eps))
    ep_chains = "".join(
        f"\n\tchain {name} {{\n\t\tip saddr {e.split(':')[0]} jump mark-for-masquerade\n"
        f"\t\tmeta l4proto tcp dnat to {e}\n\t}}\n" for name, e in zip(eps, endpoints))
    return f"""table ip kube-proxy {{
	comment "rules for kube-proxy"
	map service-ips {{
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = {{ 10.96.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https,
			     {cluster_ip} . tcp . {port} : goto {svc} }}
	}}

	chain services {{
		ip daddr . meta l4proto . th dport vmap @service-ips
		ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
	}}

	chain service-2QRHZV4L-default/kubernetes/tcp/https {{
		ip daddr 10.96.0.1 tcp dport 443 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		goto endpoint-GTK6MW7G-default/kubernetes/tcp/https__192.168.56.10/6443
	}}

	chain {svc} {{
		ip daddr {cluster_ip} tcp dport {port} ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod {len(eps)} vmap {{ {vmap} }}
	}}
{ep_chains}}}
"""
