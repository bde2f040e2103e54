#!/usr/bin/env bash
# The control plane's extras, after provision-node.sh: a Python environment with JupyterLab 4, nbgrader
# and kubelab (built from the synced course folder), the course's labs in the lab user's home, the
# ssh-config the notebooks use to reach every node, and JupyterLab as a systemd service with a token.
# Idempotent: a second run changes nothing. No Kubernetes.
#
# KUBELAB_WHEELHOUSE (a folder of wheels in the course folder, e.g. a classroom mirror): pip installs
# from it only (--no-index), so provisioning needs no access to PyPI. Build one on a machine of the VMs'
# kind (Debian 12, Python 3.11, same CPU architecture):
#   pip download -d vagrant/wheelhouse '.[notebooks]' -r vagrant/requirements-control-plane.txt
set -euo pipefail

# shellcheck source=vagrant/lib.sh
. "${KUBELAB_REPO:?KUBELAB_REPO is not set: run this through Vagrant (vagrant provision)}/vagrant/lib.sh"

require_env KUBELAB_NODE_NAME KUBELAB_LAB_USER KUBELAB_NODES KUBELAB_JUPYTER_PORT
[ "$(id -u)" -eq 0 ] || die "must run as root" "run it through Vagrant (privileged provisioning)"

user=$KUBELAB_LAB_USER
home=$(user_home "$user")
group=$(user_group "$user")
port=$KUBELAB_JUPYTER_PORT
venv=/opt/kubelab/venv
etc=/etc/kubelab
token_file=$etc/jupyter-token
unit=kubelab-jupyter.service
key="$home/.ssh/kubelab_ed25519"
restart_jupyter=0
say "preparing the control plane $KUBELAB_NODE_NAME: JupyterLab, nbgrader, kubelab"

# -- Python environment ---------------------------------------------------------------------------------
ensure_packages python3 python3-venv
if [ -x "$venv/bin/python" ]; then
  already "Python environment $venv exists"
else
  say "creating the Python environment $venv"
  python3 -m venv "$venv"
fi

# What gets installed is fixed by these inputs (README.md only feeds the package's description);
# the same fingerprint means nothing to do.
requirements="$KUBELAB_REPO/vagrant/requirements-control-plane.txt"
fingerprint=$(
  {
    "$venv/bin/python" --version
    printf 'wheelhouse=%s\n' "${KUBELAB_WHEELHOUSE:-}"
    cd "$KUBELAB_REPO" && find pyproject.toml kubelab vagrant/requirements-control-plane.txt \
      -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -d' ' -f1
)
stamp="$venv/.kubelab-fingerprint"
if [ "$(cat "$stamp" 2>/dev/null)" = "$fingerprint" ] &&
  "$venv/bin/python" -c 'import kubelab.notebook, jupyterlab, nbgrader' 2>/dev/null; then
  already "JupyterLab, nbgrader and kubelab are installed in $venv"
else
  pip_args=(--disable-pip-version-check --no-input --progress-bar off -q)
  if [ -n "${KUBELAB_WHEELHOUSE:-}" ]; then
    [ -d "$KUBELAB_WHEELHOUSE" ] || die "KUBELAB_WHEELHOUSE=$KUBELAB_WHEELHOUSE is not a folder on $KUBELAB_NODE_NAME" \
      "put the wheels in that folder of the course folder on the host (see the top of this script)"
    pip_args+=(--no-index --find-links "$KUBELAB_WHEELHOUSE")
    say "installing JupyterLab, nbgrader and kubelab into $venv from the wheelhouse $KUBELAB_WHEELHOUSE (offline)"
  else
    say "installing JupyterLab, nbgrader and kubelab into $venv from PyPI (a few minutes)"
  fi
  # Build kubelab from a copy: pip would otherwise write build files into the synced course folder.
  src=$(mktemp -d)
  cp -r "$KUBELAB_REPO/pyproject.toml" "$KUBELAB_REPO/README.md" "$KUBELAB_REPO/kubelab" "$src/"
  "$venv/bin/python" -m pip install "${pip_args[@]}" "${src}[notebooks]" -r "$requirements" ||
    die "pip could not install JupyterLab, nbgrader and kubelab" \
      "check the VM's access to PyPI (or the wheelhouse), then run \`vagrant provision $KUBELAB_NODE_NAME\`"
  rm -rf "$src"
  printf '%s\n' "$fingerprint" >"$stamp"
  restart_jupyter=1
fi

# -- the token that protects JupyterLab ------------------------------------------------------------------
install -d -m 0755 -o root -g root "$etc"
if grep -qxE '[A-Za-z0-9._~-]{8,}' "$token_file" 2>/dev/null; then
  already "JupyterLab has its token ($token_file)"
else
  say "generating the JupyterLab token $token_file"
  python3 -c 'import secrets; print(secrets.token_hex(24))' >"$token_file.new"
  mv "$token_file.new" "$token_file"
  restart_jupyter=1
fi
# readable by the lab user (JupyterLab runs as them; `vagrant ssh -c 'cat ...'` prints it), nobody else
chown "root:$group" "$token_file"
chmod 0640 "$token_file"

# -- the ssh-config the notebooks (%%node, grade()) use: every node, the control plane too --------------
ssh_config="$home/.kubelab/ssh-config"
install -d -m 0700 -o "$user" -g "$group" "$home/.kubelab"
{
  echo "# kubelab: how the notebooks reach the nodes of course.yaml (written by vagrant/provision-control-plane.sh)"
  for entry in $KUBELAB_NODES; do
    printf 'Host %s\n  HostName %s\n  User %s\n  Port 22\n  IdentityFile %s\n  IdentitiesOnly yes\n' \
      "${entry%%=*}" "${entry#*=}" "$user" "$key"
    # the nodes' host keys change whenever a VM is re-created: like `vagrant ssh-config`, do not pin them
    printf '  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  PasswordAuthentication no\n  LogLevel FATAL\n\n'
  done
} | if put_file "$ssh_config" 600 "$user:$group"; then
  say "wrote $ssh_config for the nodes $KUBELAB_NODES"
else
  already "$ssh_config lists the nodes $KUBELAB_NODES"
fi
# `ssh worker` in a JupyterLab terminal uses it too (without /etc/hosts, which Lab 1 teaches)
include="Include $ssh_config"
ssh_user_config="$home/.ssh/config"
if [ -f "$ssh_user_config" ] && grep -qxF "$include" "$ssh_user_config"; then
  already "$ssh_user_config includes $ssh_config"
else
  say "adding \`$include\` to $ssh_user_config"
  { echo "$include"; cat "$ssh_user_config" 2>/dev/null || true; } >"$ssh_user_config.new"
  mv "$ssh_user_config.new" "$ssh_user_config"
  chown "$user:$group" "$ssh_user_config"
  chmod 0600 "$ssh_user_config"
fi

# -- the course's labs in the lab user's home: added once, never overwritten ---------------------------------
labs_src="$KUBELAB_REPO/labs"
labs="$home/labs"
[ -d "$labs_src" ] || die "$labs_src is missing" "check that the course folder is synced to $KUBELAB_REPO"
added=0
while IFS= read -r -d '' rel; do
  rel=${rel#./}
  [ -e "$labs/$rel" ] && continue
  install -D -m 0644 -o "$user" -g "$group" "$labs_src/$rel" "$labs/$rel"
  added=$((added + 1))
done < <(cd "$labs_src" && find . -type f ! -path '*/.ipynb_checkpoints/*' -print0 | sort -z)
while IFS= read -r -d '' dir; do
  [ "$(stat -c %U "$dir")" = "$user" ] || chown "$user:$group" "$dir"
done < <(find "$labs" -type d -print0)
if [ "$added" -gt 0 ]; then
  say "copied $added lab file(s) to $labs (files already there are never overwritten)"
else
  already "the labs are in $labs (your work there is never overwritten)"
fi

# -- JupyterLab as a systemd service ------------------------------------------------------------------------
if put_file "$etc/jupyter_server_config.py" 644 root:root <<EOF
# kubelab: JupyterLab on the control plane (written by vagrant/provision-control-plane.sh)
from pathlib import Path

c = get_config()  # noqa: F821 (Jupyter provides it)
# All interfaces: Vagrant's forwarded port (127.0.0.1:$port on the host) arrives on the NAT interface,
# and the private network is host-only. The token protects it either way.
c.ServerApp.ip = "0.0.0.0"
c.ServerApp.port = $port
c.ServerApp.port_retries = 0
c.ServerApp.open_browser = False
c.ServerApp.root_dir = "$home"
c.IdentityProvider.token = Path("$token_file").read_text().strip()
c.ServerApp.terminado_settings = {"shell_command": ["/bin/bash", "-l"]}
# no calls home from the lab VM: no news feed, no update check
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
EOF
then
  say "wrote $etc/jupyter_server_config.py"
  restart_jupyter=1
else
  already "$etc/jupyter_server_config.py is up to date"
fi
# JupyterLab's own settings: never ask to fetch news (a prompt over the notebook) or check for updates
if put_file "$venv/share/jupyter/lab/settings/overrides.json" 644 root:root <<EOF
{
  "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}
}
EOF
then
  say "wrote JupyterLab's settings overrides (no news, no update check)"
  restart_jupyter=1
else
  already "JupyterLab's settings overrides are in place"
fi
if put_file "/etc/systemd/system/$unit" 644 root:root <<EOF
# kubelab: JupyterLab for the course's notebooks (written by vagrant/provision-control-plane.sh)
[Unit]
Description=kubelab JupyterLab on port $port
After=network-online.target
Wants=network-online.target

[Service]
User=$user
Group=$group
WorkingDirectory=$home
# KUBELAB_NODE_NAME and KUBELAB_NODE_IP for the notebooks
EnvironmentFile=-/etc/environment
Environment=PATH=$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
Environment=KUBELAB_SSH_CONFIG=$ssh_config
Environment=KUBELAB_COURSE=$KUBELAB_REPO
ExecStart=$venv/bin/jupyter lab --config=$etc/jupyter_server_config.py
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF
then
  say "wrote the $unit unit"
  systemctl daemon-reload
  restart_jupyter=1
else
  already "the $unit unit is up to date"
fi
if systemctl is-enabled --quiet "$unit"; then
  already "$unit is enabled"
else
  say "enabling $unit (starts at boot)"
  systemctl enable --quiet "$unit"
fi
if [ "$restart_jupyter" -eq 0 ] && systemctl is-active --quiet "$unit"; then
  already "JupyterLab is running"
else
  say "(re)starting JupyterLab"
  systemctl restart "$unit"
fi

# JupyterLab answers with the token, and refuses without it
"$venv/bin/python" - "$port" "$token_file" <<'EOF' || die "JupyterLab does not answer on port $port" "read \`journalctl -u $unit\` on $KUBELAB_NODE_NAME"
import sys, time, urllib.error, urllib.request
port, token = sys.argv[1], open(sys.argv[2]).read().strip()
deadline = time.monotonic() + 90
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5) as r:
            if r.status == 200:
                break
    except (urllib.error.URLError, OSError):
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(1)
EOF
say "JupyterLab answers on port $port; from the host: \`kubelab url\` or \`vagrant ssh $KUBELAB_NODE_NAME -c 'cat $token_file'\`"
say "control plane $KUBELAB_NODE_NAME is ready"
