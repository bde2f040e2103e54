# shellcheck shell=bash
# Helpers for the provisioning scripts (sourced, never run). Every step says what it does, or
# "already ..." when there is nothing to do, so a second `vagrant provision` shows it changed nothing.

# Vagrant feeds the provisioning command through the SSH session's stdin: nothing below may read it.
exec </dev/null
export DEBIAN_FRONTEND=noninteractive
umask 022

KUBELAB_TAG="kubelab[${KUBELAB_NODE_NAME:-?}]"

say() { printf '%s %s\n' "$KUBELAB_TAG" "$*"; }
already() { printf '%s already: %s\n' "$KUBELAB_TAG" "$*"; }
die() {
  printf '%s error: %s\n' "$KUBELAB_TAG" "$1" >&2
  [ -n "${2:-}" ] && printf '%s fix: %s\n' "$KUBELAB_TAG" "$2" >&2
  exit 1
}

# require_env NAME...: the values the Vagrantfile passes from course.yaml (vagrant/kubelab.rb).
require_env() {
  local name
  for name in "$@"; do
    [ -n "${!name:-}" ] || die "$name is not set: this script gets it from the Vagrantfile" \
      "run it through Vagrant (vagrant provision), which passes the values from course.yaml"
  done
}

# ensure_packages PKG...: install the Debian packages that are missing; the network is needed only then.
APT_UPDATED=0
ensure_packages() {
  local pkg missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    already "Debian packages installed: $*"
    return 0
  fi
  say "installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then
    apt-get update -q >/dev/null || die "apt-get update failed" "check the VM's network access to its Debian mirror"
    APT_UPDATED=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed" "check the VM's network access, then run \`vagrant provision\` again"
}

# put_file PATH MODE OWNER:GROUP < content: write only when the content differs; fix mode and owner.
# Returns 0 when something changed, 1 when the file was already so (use it in `if`).
put_file() {
  local path=$1 mode=$2 owner=$3 tmp changed=1
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
  else
    mkdir -p "$(dirname "$path")"
    mv "$tmp" "$path"
    changed=0
  fi
  if [ "$(stat -c '%a %U:%G' "$path")" != "$mode $owner" ]; then
    chmod "$mode" "$path"
    chown "$owner" "$path"
    changed=0
  fi
  return "$changed"
}

# ensure_line FILE LINE OWNER:GROUP MODE: append LINE unless the file has it (e.g. authorized_keys).
ensure_line() {
  local file=$1 line=$2 owner=$3 mode=$4
  if [ -f "$file" ] && grep -qxF -- "$line" "$file"; then
    return 1
  fi
  mkdir -p "$(dirname "$file")"
  # a last line without its newline would be glued to ours
  if [ -s "$file" ] && [ "$(tail -c 1 "$file" | od -An -c | tr -d ' ')" != '\n' ]; then echo >>"$file"; fi
  printf '%s\n' "$line" >>"$file"
  chmod "$mode" "$file"
  chown "$owner" "$file"
  return 0
}

user_home() { getent passwd "$1" | cut -d: -f6; }
user_group() { id -gn "$1"; }

# ip_to_int A.B.C.D and ip_in_subnet IP CIDR: pure bash, no ipcalc on a fresh box.
ip_to_int() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  printf '%s\n' $(((a << 24) | (b << 16) | (c << 8) | d))
}
ip_in_subnet() {
  local ip=$1 net=${2%/*} bits=${2#*/} mask
  mask=$(((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF))
  [ $(($(ip_to_int "$ip") & mask)) -eq $(($(ip_to_int "$net") & mask)) ]
}

# node_ip_by_subnet CIDR: this node's IPv4 address inside CIDR, whatever the interface is called
# (eth1 on some boxes, enp0s8 on others; Vagrant's NAT address 10.0.2.15 is never it).
node_ip_by_subnet() {
  local cidr=$1 _idx _ifname _family addr
  while read -r _idx _ifname _family addr _; do
    addr=${addr%/*}
    if ip_in_subnet "$addr" "$cidr"; then
      printf '%s\n' "$addr"
      return 0
    fi
  done < <(ip -4 -o addr show scope global)
  return 1
}
