#!/bin/sh
# install.sh — install (or --uninstall) secrets-agent.
#
#   systemd/install.sh [--prefix DIR] [--root DIR] [--user] [--uninstall [--purge]]
#
# Installs, under --root (default /):
#   PREFIX/bin/secrets-agent                       the binary ($BIN, default ./bin/secrets-agent)
#   PREFIX/bin/docker-credential-secrets-agent     symlink: docker's credential helper
#   /etc/systemd/system/secrets-agent.{service,socket}   (--user: ~/.config/systemd/user/secrets-agent.service)
#   /etc/secrets-agent/config.yaml                 commented config, 0600, unless one exists
#                                                  (--user: ~/.config/secrets-agent/config.yaml)
#   PREFIX/share/secrets-agent/config.example.yaml the same, for reference
#   the shell hooks                                via `secrets-agent install-hooks --system|--user --root ROOT`
#   PREFIX/share/secrets-agent/install-manifest    what this script created, so --uninstall is exact
# PREFIX defaults to /usr/local (--user: ~/.local). Re-running upgrades in place.
#
# When --root is / and systemd is PID 1 it enables and starts the units;
# otherwise (a plain container, an image being built) it prints how to start
# the agent from the entrypoint or post-start hook, gated by `secrets-agent wait`.
#
# --uninstall undoes exactly what the manifest records, in reverse order: it
# stops and disables the units, removes the hooks, files, symlink and every
# directory it created, and leaves the tree as it was. One exception, as dpkg
# does with conffiles: a config.yaml the admin has edited since (its sha256
# differs from the one recorded) is kept, and said so; --purge removes it too,
# together with the agent's state directory (/var/lib/secrets-agent) and the
# shell fragments with their values (/run/secrets-agent/<user>/; --user: the
# state under ~/.local/state and $XDG_RUNTIME_DIR/secrets-agent). On the live
# system (--root /) --purge first stops the agent and runs `secrets-agent
# purge`, which removes the secret files and docker logins it delivered into
# homes (restoring files that were there before it), so no value is left.
# --uninstall also takes the credential proxy's CA out of the system trust store.
set -eu

usage() { sed -n '2,32s/^# \{0,1\}//p' "$0"; }
die() { echo "install.sh: $*" >&2; exit 1; }

PREFIX= ROOT=/ UNINSTALL=0 PURGE=0 USER_MODE=0
while [ $# -gt 0 ]; do
	case $1 in
	--prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift ;;
	--prefix=*) PREFIX=${1#*=} ;;
	--root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift ;;
	--root=*) ROOT=${1#*=} ;;
	--uninstall) UNINSTALL=1 ;;
	--purge) PURGE=1 ;;
	--user) USER_MODE=1 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
	shift
done
[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || die "--purge goes with --uninstall"

case $ROOT in /*) ;; *) ROOT=$(cd "$ROOT" && pwd) || die "no directory $ROOT" ;; esac
[ -d "$ROOT" ] || die "--root $ROOT is not a directory"
R=${ROOT%/} # prefix of every path we touch; "" for /

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")

if [ "$USER_MODE" = 1 ]; then
	[ -n "${HOME:-}" ] || die "--user needs HOME"
	: "${PREFIX:=$HOME/.local}"
	UNIT_DIR=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
	CONFIG=${XDG_CONFIG_HOME:-$HOME/.config}/secrets-agent/config.yaml
	HOOKS=--user
	SYSTEMCTL="systemctl --user"
else
	: "${PREFIX:=/usr/local}"
	UNIT_DIR=/etc/systemd/system
	CONFIG=/etc/secrets-agent/config.yaml
	HOOKS=--system
	SYSTEMCTL=systemctl
fi
case $PREFIX in /*) ;; *) die "--prefix must be absolute" ;; esac
PREFIX=${PREFIX%/}
SHARE=$PREFIX/share/secrets-agent
MANIFEST=$SHARE/install-manifest
AGENT=$PREFIX/bin/secrets-agent
TAB=$(printf '\t')

# systemd_here: whether to drive systemctl — only on the live system, with
# systemd as PID 1 (and for --user, a running user manager).
systemd_here() {
	[ "$ROOT" = / ] && [ -d /run/systemd/system ] || return 1
	[ "$USER_MODE" = 0 ] || $SYSTEMCTL show-environment >/dev/null 2>&1
}

# record KIND PATH [SHA]: add one manifest line (PATH without ROOT) unless
# PATH is there already (a re-run).
record() {
	if [ -f "$R$MANIFEST" ] && awk -F"$TAB" -v p="$2" '$3 == p { f = 1 } END { exit !f }' "$R$MANIFEST"; then
		return 0
	fi
	printf '%s\t%s\t%s\n' "$1" "${3:--}" "$2" >>"$R$MANIFEST"
}

# missing_dirs DIR: print DIR and each missing parent, outermost first.
missing_dirs() {
	d=$1 out=
	while [ "$d" != / ] && [ ! -d "$R$d" ]; do
		out="$d
$out"
		d=$(dirname "$d")
	done
	printf '%s' "$out"
}

# mkdirs DIR: create DIR and its parents 0755, recording each one created.
mkdirs() {
	missing_dirs "$1" | while IFS= read -r d; do
		mkdir -m 0755 "$R$d"
		record dir "$d"
	done
}

# put SRC DST MODE: install a file atomically (temp file + rename, so a
# running binary is replaced, not overwritten) and record it.
put() {
	mkdirs "$(dirname "$2")"
	put_tmp="$R$2.install-tmp.$$"
	cp "$1" "$put_tmp"
	chmod "$3" "$put_tmp"
	mv -f "$put_tmp" "$R$2"
	record file "$2"
}

# list_dirs DIR: the directories under DIR (4 levels deep), sorted.
list_dirs() { find "$R$1" -maxdepth 4 -type d 2>/dev/null | LC_ALL=C sort; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

install_all() {
	BIN=${BIN:-$top/bin/secrets-agent}
	[ -x "$BIN" ] || die "no binary at $BIN: run 'make build' or set BIN"
	umask 022

	# The manifest first, so that everything after it is recorded.
	newdirs=$(missing_dirs "$SHARE")
	mkdir -p "$R$SHARE"
	[ -f "$R$MANIFEST" ] || : >"$R$MANIFEST"
	chmod 0644 "$R$MANIFEST"
	printf '%s\n' "$newdirs" | while IFS= read -r d; do [ -z "$d" ] || record dir "$d"; done

	put "$BIN" "$AGENT" 0755
	ln -sfn secrets-agent "$R$PREFIX/bin/docker-credential-secrets-agent"
	record link "$PREFIX/bin/docker-credential-secrets-agent"

	unit_tmp=$(mktemp)
	trap 'rm -f "$unit_tmp"' EXIT
	for unit in secrets-agent.service secrets-agent.socket; do
		src=$here/$unit
		[ "$USER_MODE" = 0 ] || src=$here/user/$unit
		[ -f "$src" ] || continue # the user unit has no socket
		sed "s#/usr/local/bin/secrets-agent#$AGENT#g" "$src" >"$unit_tmp"
		put "$unit_tmp" "$UNIT_DIR/$unit" 0644
	done

	put "$top/config.example.yaml" "$SHARE/config.example.yaml" 0644
	if [ -e "$R$CONFIG" ] || [ -L "$R$CONFIG" ]; then
		echo "keeping the existing $CONFIG"
	else
		mkdirs "$(dirname "$CONFIG")"
		(umask 077 && cp "$top/config.example.yaml" "$R$CONFIG")
		chmod 0600 "$R$CONFIG"
		record config "$CONFIG" "$(sha "$R$CONFIG")"
	fi

	# The hooks: install-hooks owns the files and its --uninstall removes them,
	# but it may create directories (/etc/fish/conf.d) it leaves behind, so
	# record every directory that appears while it runs.
	hook_scope=/etc
	[ "$USER_MODE" = 0 ] || hook_scope=$HOME
	dirs_before=$(mktemp)
	trap 'rm -f "$unit_tmp" "$dirs_before"' EXIT
	list_dirs "$hook_scope" >"$dirs_before"
	"$R$AGENT" install-hooks "$HOOKS" --root "$ROOT"
	record hooks "$HOOKS"
	list_dirs "$hook_scope" | LC_ALL=C comm -13 "$dirs_before" - | while IFS= read -r d; do
		record dir "${d#"$R"}"
	done

	if systemd_here; then
		$SYSTEMCTL daemon-reload
		if [ "$USER_MODE" = 1 ]; then
			$SYSTEMCTL enable secrets-agent.service
		else
			$SYSTEMCTL enable secrets-agent.socket secrets-agent.service
		fi
		record enabled secrets-agent
		if [ "$USER_MODE" = 0 ]; then
			# The socket first, so that the agent takes it over and never binds
			# the path itself (an agent that did would keep the socket from
			# starting). An older agent still running may hold the path: stop it.
			$SYSTEMCTL is-active --quiet secrets-agent.socket || $SYSTEMCTL stop secrets-agent.service
			$SYSTEMCTL start secrets-agent.socket
		fi
		$SYSTEMCTL restart secrets-agent.service ||
			echo "secrets-agent did not start: set controlplane.environment_id in $CONFIG, then: $SYSTEMCTL restart secrets-agent" >&2
		echo "secrets-agent is installed and enabled: $SYSTEMCTL status secrets-agent"
	else
		cat <<EOF
secrets-agent is installed under $ROOT. systemd is not managing this tree, so nothing was
enabled or started. Either enable it in the image:
    systemctl --root=$ROOT enable secrets-agent.socket secrets-agent.service
or, where there is no systemd (a plain container), start the agent from the
environment's entrypoint or post-start hook:
    $AGENT run --config $CONFIG &
and gate whatever needs the secrets on the first sync:
    $AGENT wait --timeout 60s && your-task
EOF
	fi
}

# purge_data removes what the agent keeps for itself: its state directory and
# the shell fragments (env.sh, env.fish, env), which hold secret values, in
# /run/secrets-agent/<user>/ (--user: $XDG_RUNTIME_DIR/secrets-agent/). The
# units are stopped by now, so nothing writes them again.
purge_data() {
	if [ "$USER_MODE" = 1 ]; then
		rm -rf "$R${XDG_STATE_HOME:-$HOME/.local/state}/secrets-agent"
		[ -z "${XDG_RUNTIME_DIR:-}" ] || rm -rf "$R$XDG_RUNTIME_DIR/secrets-agent"
		return 0
	fi
	rm -rf "$R/var/lib/secrets-agent"
	for d in "$R"/run/secrets-agent/*/; do
		[ ! -d "$d" ] || [ -L "${d%/}" ] || rm -rf "$d"
	done
}

# untrust_proxy_ca takes the credential proxy's CA out of the system trust
# store, where the agent (as root, proxy.system_trust) put it. On the live
# system update-ca-certificates then drops it from the bundle.
untrust_proxy_ca() {
	[ "$USER_MODE" = 0 ] || return 0
	ca="$R/usr/local/share/ca-certificates/secrets-agent-proxy.crt"
	[ -f "$ca" ] || return 0
	rm -f "$ca"
	if [ "$ROOT" = / ] && command -v update-ca-certificates >/dev/null 2>&1; then
		update-ca-certificates >/dev/null || echo "install.sh: update-ca-certificates failed; the proxy CA may still be in the bundle" >&2
	fi
}

uninstall_all() {
	[ -f "$R$MANIFEST" ] || die "nothing to uninstall: no manifest at $R$MANIFEST"
	entries=$(awk '{ l[NR] = $0 } END { for (i = NR; i > 0; i--) print l[i] }' "$R$MANIFEST")
	# (0) --purge on the live system: what the agent delivered, while its
	# binary and config are still here, and with it stopped (it would put
	# everything back).
	if [ "$PURGE" = 1 ] && [ "$ROOT" = / ] && [ -x "$AGENT" ] && [ -f "$CONFIG" ]; then
		if systemd_here; then
			if [ "$USER_MODE" = 1 ]; then
				$SYSTEMCTL stop secrets-agent.service 2>/dev/null || true
			else
				$SYSTEMCTL stop secrets-agent.socket secrets-agent.service 2>/dev/null || true
			fi
		fi
		"$AGENT" purge --config "$CONFIG" || echo "install.sh: some delivered secrets could not be removed (see above)" >&2
	fi
	# (1) Everything but directories, newest first; the binary goes after the
	# hooks, which it removes.
	printf '%s\n' "$entries" | while IFS="$TAB" read -r kind sum path; do
		case $kind in
		enabled)
			if systemd_here; then
				$SYSTEMCTL disable --now secrets-agent.service 2>/dev/null || true
				[ "$USER_MODE" = 1 ] || $SYSTEMCTL disable --now secrets-agent.socket 2>/dev/null || true
			fi ;;
		hooks) [ ! -x "$R$AGENT" ] || "$R$AGENT" install-hooks "$path" --uninstall --root "$ROOT" ;;
		file | link) rm -f "$R$path" ;;
		config)
			if [ "$PURGE" = 1 ] || [ ! -f "$R$path" ] || [ "$(sha "$R$path")" = "$sum" ]; then
				rm -f "$R$path"
			else
				echo "keeping $path: edited since it was installed (--purge removes it)"
			fi ;;
		esac
	done
	if [ "$PURGE" = 1 ]; then purge_data; fi
	untrust_proxy_ca
	rm -f "$R$MANIFEST"
	# (2) Directories, deepest (newest) first, each only if now empty.
	printf '%s\n' "$entries" | while IFS="$TAB" read -r kind sum path; do
		[ "$kind" = dir ] || continue
		rmdir "$R$path" 2>/dev/null || echo "keeping $path: not empty"
	done
	if systemd_here; then $SYSTEMCTL daemon-reload; fi
	echo "secrets-agent is uninstalled from $ROOT"
}

if [ "$UNINSTALL" = 1 ]; then uninstall_all; else install_all; fi
