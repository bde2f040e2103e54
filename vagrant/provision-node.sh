#!/usr/bin/env bash
# Every node's base: hostname, time sync, the lab user with passwordless sudo, the node's private IP
# in /etc/environment, and SSH trust from the control plane. Idempotent: a second run changes nothing.
#
# Run by Vagrant as root (`vagrant provision`), with the values of course.yaml in the environment
# (vagrant/kubelab.rb, Kubelab.provision_env). It installs no Kubernetes and leaves Lab 1's steps
# (swap, /etc/hosts, kernel modules, sysctls) to the learner: the nodes start as the lab expects.
set -euo pipefail

# shellcheck source=vagrant/lib.sh
. "${KUBELAB_REPO:?KUBELAB_REPO is not set: run this through Vagrant (vagrant provision)}/vagrant/lib.sh"

require_env KUBELAB_NODE_NAME KUBELAB_NODE_ROLE KUBELAB_NODE_IP KUBELAB_PRIVATE_SUBNET KUBELAB_LAB_USER \
  KUBELAB_CONTROL_PLANE_NAME KUBELAB_SHARED_DIR
[ "$(id -u)" -eq 0 ] || die "must run as root" "run it through Vagrant (privileged provisioning)"

node=$KUBELAB_NODE_NAME
user=$KUBELAB_LAB_USER
say "preparing node $node ($KUBELAB_NODE_ROLE): base only, no Kubernetes"

# -- hostname ---------------------------------------------------------------------------------------
if [ "$(hostname)" = "$node" ] && [ "$(cat /etc/hostname 2>/dev/null)" = "$node" ]; then
  already "hostname is $node"
else
  say "setting the hostname to $node"
  hostnamectl set-hostname "$node" 2>/dev/null || { echo "$node" >/etc/hostname && hostname "$node"; }
fi

# -- time sync ---------------------------------------------------------------------------------------
other=""
for unit in chrony ntpsec ntp openntpd; do
  if systemctl is-active --quiet "$unit.service" 2>/dev/null; then other=$unit; fi
done
if [ -n "$other" ]; then
  already "time is synchronized by $other"
else
  ensure_packages systemd-timesyncd
  if systemctl is-enabled --quiet systemd-timesyncd.service; then
    already "systemd-timesyncd is enabled"
  else
    say "enabling systemd-timesyncd"
    systemctl enable --quiet systemd-timesyncd.service
  fi
  if systemctl is-active --quiet systemd-timesyncd.service; then
    already "systemd-timesyncd is running"
  elif systemd-detect-virt --container --quiet; then
    # ConditionVirtualization=!container: a container (a lab twin) keeps the host's clock
    already "systemd-timesyncd does not run in a container: the host keeps the time"
  else
    say "starting systemd-timesyncd"
    systemctl start systemd-timesyncd.service
  fi
fi

# -- what the labs' own cells run on every node --------------------------------------------------------
# Lab 2's *Check yourself* cell reads containerd's merged config with python3's tomllib on every node, and
# Lab 2 downloads Docker's key with curl before any lab has installed it.
# Debian 12 has both in its base, but a minimal box need not: install what is missing.
ensure_packages python3 curl ca-certificates

# -- the lab user with passwordless sudo ---------------------------------------------------------------
if getent passwd "$user" >/dev/null; then
  already "user $user exists"
else
  say "creating user $user"
  useradd --create-home --shell /bin/bash --user-group "$user"
fi
if sudo -n -l -U "$user" 2>/dev/null | grep -qE '\(ALL( ?: ?ALL)?\) NOPASSWD: ?ALL'; then
  already "$user has passwordless sudo"
else
  say "giving $user passwordless sudo (/etc/sudoers.d/kubelab-$user)"
  tmp=$(mktemp)
  printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" >"$tmp"
  visudo -cqf "$tmp" || die "the sudoers line for $user does not validate" "check the lab_user name in course.yaml"
  install -m 0440 -o root -g root "$tmp" "/etc/sudoers.d/kubelab-$user"
  rm -f "$tmp"
fi
home=$(user_home "$user")
group=$(user_group "$user")

# -- the node's private IP, found by subnet, for the labs (e.g. kubelet --node-ip) ------------------------
found=$(node_ip_by_subnet "$KUBELAB_PRIVATE_SUBNET") ||
  die "no address in $KUBELAB_PRIVATE_SUBNET on any interface of $node: the private network is missing" \
    "check config.vm.network \"private_network\" in the Vagrantfile, then \`vagrant reload $node\`"
[ "$found" = "$KUBELAB_NODE_IP" ] ||
  die "$node has $found in $KUBELAB_PRIVATE_SUBNET, course.yaml says $KUBELAB_NODE_IP" "\`vagrant reload $node\`"
{
  if [ -f /etc/environment ]; then grep -v -e '^KUBELAB_NODE_IP=' -e '^KUBELAB_NODE_NAME=' /etc/environment || true; fi
  printf 'KUBELAB_NODE_NAME=%s\nKUBELAB_NODE_IP=%s\n' "$node" "$found"
} >/tmp/kubelab-environment.$$
if put_file /etc/environment 644 root:root </tmp/kubelab-environment.$$; then
  say "exported KUBELAB_NODE_NAME=$node KUBELAB_NODE_IP=$found in /etc/environment"
else
  already "/etc/environment has KUBELAB_NODE_NAME=$node KUBELAB_NODE_IP=$found"
fi
rm -f /tmp/kubelab-environment.$$

# -- SSH trust from the control plane ------------------------------------------------------------------
# The control plane makes a key at its first provisioning (never committed: vagrant/.kubelab is
# gitignored) and leaves its public half in the synced course folder; the other nodes authorize it.
ensure_packages openssh-client
pub_shared="$KUBELAB_SHARED_DIR/$KUBELAB_CONTROL_PLANE_NAME.pub"
if [ "$KUBELAB_NODE_ROLE" = "control-plane" ]; then
  key="$home/.ssh/kubelab_ed25519"
  install -d -m 0700 -o "$user" -g "$group" "$home/.ssh"
  if [ -f "$key" ] && [ -f "$key.pub" ]; then
    already "$user has the nodes' SSH key $key"
  else
    say "generating the nodes' SSH key $key"
    rm -f "$key" "$key.pub"
    runuser -u "$user" -- ssh-keygen -q -t ed25519 -N '' -C "kubelab-$node" -f "$key"
  fi
  pub=$(cat "$key.pub")
  mkdir -p "$KUBELAB_SHARED_DIR"
  if [ -f "$pub_shared" ] && [ "$(cat "$pub_shared")" = "$pub" ]; then
    already "the public key is shared as ${pub_shared}"
  else
    say "sharing the public key as $pub_shared"
    printf '%s\n' "$pub" >"$pub_shared"
  fi
else
  [ -s "$pub_shared" ] ||
    die "the control plane's public key $pub_shared is missing" \
      "bring the control plane up first: \`vagrant up $KUBELAB_CONTROL_PLANE_NAME\`, then \`vagrant provision $node\`"
  pub=$(cat "$pub_shared")
fi
case $pub in
  ssh-ed25519\ *) ;;
  *) die "$pub_shared does not hold an ed25519 public key" "delete it and run \`vagrant provision $KUBELAB_CONTROL_PLANE_NAME\`" ;;
esac
install -d -m 0700 -o "$user" -g "$group" "$home/.ssh"
if ensure_line "$home/.ssh/authorized_keys" "$pub" "$user:$group" 600; then
  say "authorized the control plane's key for $user on $node"
else
  already "the control plane's key is authorized for $user on $node"
fi
say "node $node is ready"
