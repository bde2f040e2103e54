#!/usr/bin/env bash
# The maintainers' proof: bring up the course's nodes, run every lab's solution notebook on them in order
# (nbclient, the same `%%node` cells a learner runs), grade each lab, and fail unless each gets full marks.
# The nodes are always taken down again, whatever happens.
#
#   bash scripts/e2e-vms.sh [--target vms|twins|ssh] [--labs lab01,lab02] [--source solutions|labs]
#                           [--ssh-config FILE] [--out DIR] [--keep]
#
#   --target vms    (default) `vagrant up`, then `vagrant destroy -f` at the end: Labs 1-5 at the pinned version
#   --target twins  `kubelab twin up --fresh`, then `kubelab twin down`: the lab twins (run as root) can do Lab 1;
#                   Labs 2-5 need package repositories and a registry the twins cannot reach (README, "Lab twins")
#   --target ssh    nodes that are already up, named in --ssh-config: nothing is brought up or down
#   --keep          leave the nodes up at the end (to look around after a failure)
#
# KUBELAB_K8S_PATCH=1.36.N runs against that patch of the pinned minor instead of course.yaml's (the weekly
# drift alarm in .github/workflows/e2e-vms.yml runs the newest one). KUBELAB_PYTHON names the Python that has
# kubelab and its notebook extras installed (`pip install -e '.[test]'`; default: python3).
# Exit: 0 every lab full marks, 1 a lab short of them, 2 bad usage, 3 the nodes could not be brought up or reached.
set -euo pipefail
cd "$(dirname "$0")/.."

target=vms labs="" source=solutions out=e2e-out keep=0 ssh_config=""
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --target) target=${2:?--target needs vms, twins or ssh}; shift 2 ;;
    --labs) labs=${2:?--labs needs a list such as lab01,lab02}; shift 2 ;;
    --source) source=${2:?--source needs solutions or labs}; shift 2 ;;
    --ssh-config) ssh_config=${2:?--ssh-config needs a file}; shift 2 ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument $1 (fix: see bash scripts/e2e-vms.sh --help)" >&2; exit 2 ;;
  esac
done
python=${KUBELAB_PYTHON:-python3}
"$python" -c 'import kubelab, nbclient' 2>/dev/null || {
  echo "error: $python has no kubelab or nbclient (fix: pip install -e '.[test]', or set KUBELAB_PYTHON)" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

kubelab_cmd() { "$python" -c 'import sys; from kubelab.cli import main; sys.argv[0] = "kubelab"; sys.exit(main())' "$@"; }

# shellcheck disable=SC2317  # called by the EXIT trap, which shellcheck does not follow
down() {
  local rc=$?
  if [ "$keep" = 1 ]; then
    echo "==> --keep: the nodes stay up"
  else
    case $target in
      vms) echo "==> vagrant destroy -f"; vagrant destroy -f || rc=3 ;;
      twins) echo "==> kubelab twin down"; kubelab_cmd twin down || rc=3 ;;
    esac
  fi
  exit "$rc"
}

case $target in
  vms)
    command -v vagrant >/dev/null || { echo "error: no vagrant (fix: install Vagrant and a provider, see README)" >&2; exit 2; }
    trap down EXIT
    echo "==> vagrant up"
    vagrant up || { echo "error: vagrant up failed (fix: see its output; kubelab doctor checks the host)" >&2; exit 3; }
    ssh_config="$out/ssh-config"
    vagrant ssh-config >"$ssh_config" || { echo "error: vagrant ssh-config failed (fix: vagrant status)" >&2; exit 3; }
    ;;
  twins)
    [ "$(id -u)" -eq 0 ] || { echo "error: the lab twins need root (fix: sudo bash scripts/e2e-vms.sh --target twins)" >&2; exit 2; }
    trap down EXIT
    echo "==> kubelab twin up --fresh"
    kubelab_cmd twin up --fresh || { echo "error: the twins did not come up (fix: see above)" >&2; exit 3; }
    ssh_config="$out/ssh-config"
    kubelab_cmd twin ssh-config >"$ssh_config" || { echo "error: kubelab twin ssh-config failed (fix: kubelab twin status)" >&2; exit 3; }
    [ -n "$labs" ] || labs=lab01   # what the twins can do on their own
    ;;
  ssh)
    [ -f "$ssh_config" ] || { echo "error: --target ssh needs --ssh-config FILE (fix: vagrant ssh-config > FILE)" >&2; exit 2; }
    ;;
  *) echo "error: unknown target $target (fix: --target vms, twins or ssh)" >&2; exit 2 ;;
esac

set +e
"$python" scripts/e2e_labs.py --ssh-config "$ssh_config" --labs "$labs" --source "$source" --out "$out"
rc=$?
set -e
exit "$rc"
