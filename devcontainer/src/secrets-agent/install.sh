#!/bin/sh
# Dev Container Feature "secrets-agent": runs as root while the image is built.
# Options arrive as environment variables: CONTROLPLANEURL, ENVIRONMENTID,
# TOKENFILE, BINARY; _REMOTE_USER is the user the environment's people work as.
#
# The binary: nothing is downloaded or built. Use this directory as a local
# feature with the binary beside this script:
#     make build && cp -r devcontainer/src/secrets-agent .devcontainer/ &&
#     cp bin/secrets-agent .devcontainer/secrets-agent/
#     # devcontainer.json: "features": { "./secrets-agent": { "environmentId": "..." } }
# or set the "binary" option to an absolute path the image already has.
#
# It installs /usr/local/bin/secrets-agent, the docker-credential-secrets-agent
# symlink, /etc/secrets-agent/config.yaml (0600, from the options, unless one
# exists), the shell hooks, and an entrypoint that starts `secrets-agent run`
# in the background when systemd does not; postStartCommand then waits for the
# first sync (`secrets-agent wait`) so that tasks see their secrets.
# FEATURE_ROOT, when set, prefixes every path (tests, image builders).
set -eu

R=${FEATURE_ROOT:-}
here=$(cd "$(dirname "$0")" && pwd)
bin=${BINARY:-secrets-agent}
case $bin in /*) ;; *) bin=$here/$bin ;; esac
if [ ! -x "$bin" ]; then
	echo "secrets-agent feature: no executable binary at $bin; copy bin/secrets-agent next to install.sh or set the \"binary\" option" >&2
	exit 1
fi

# yaml_str VALUE: VALUE as a double-quoted YAML string; a newline is refused.
yaml_str() {
	case $1 in *'
'*) echo "secrets-agent feature: option value with a newline: refused" >&2; exit 1 ;; esac
	printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

umask 022
mkdir -p "$R/usr/local/bin" "$R/usr/local/share/secrets-agent" "$R/etc/secrets-agent"
cp "$bin" "$R/usr/local/bin/secrets-agent.tmp"
chmod 0755 "$R/usr/local/bin/secrets-agent.tmp"
mv -f "$R/usr/local/bin/secrets-agent.tmp" "$R/usr/local/bin/secrets-agent"
ln -sfn secrets-agent "$R/usr/local/bin/docker-credential-secrets-agent"

conf=$R/etc/secrets-agent/config.yaml
if [ ! -e "$conf" ]; then
	url=$(yaml_str "${CONTROLPLANEURL:-https://app.gitpod.io/api}")
	env_id=$(yaml_str "${ENVIRONMENTID:-}")
	token=$(yaml_str "${TOKENFILE:-}")
	owner=
	if [ -n "${_REMOTE_USER:-}" ] && [ "$_REMOTE_USER" != root ]; then owner=$(yaml_str "$_REMOTE_USER"); fi
	(
		umask 077
		{
			echo "# Written by the secrets-agent Dev Container Feature. Every key is described in"
			echo "# config.example.yaml (https://github.com/secrets-agent/secrets-agent); an environment"
			echo "# variable SECRETS_AGENT_<KEY_PATH> overrides any of them at run time."
			echo "controlplane:"
			printf '  url: %s\n' "$url"
			[ -z "${ENVIRONMENTID:-}" ] || printf '  environment_id: %s\n' "$env_id"
			[ -z "${TOKENFILE:-}" ] || printf '  token_file: %s\n' "$token"
			[ -z "$owner" ] || printf 'user: %s\n' "$owner"
		} >"$conf"
	)
	chmod 0600 "$conf"
fi

"$R/usr/local/bin/secrets-agent" install-hooks --system --root "${R:-/}"

cat >"$R/usr/local/share/secrets-agent/entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
# Entrypoint of the secrets-agent Dev Container Feature. Unless systemd runs
# the agent, or one is running already, start `secrets-agent run` in the
# background; then run the container's own command.
if [ ! -d /run/systemd/system ] && [ "$(id -u)" = 0 ]; then
	/usr/local/bin/secrets-agent status >/dev/null 2>&1
	if [ $? = 2 ]; then # 2: no agent answers
		mkdir -p -m 0711 /run/secrets-agent
		(
			umask 077
			nohup /usr/local/bin/secrets-agent run --config /etc/secrets-agent/config.yaml \
				</dev/null >>/run/secrets-agent/agent.log 2>&1 &
		)
	fi
elif [ ! -d /run/systemd/system ]; then
	echo "secrets-agent: not root, so not started; run it as root from the entrypoint" >&2
fi
exec "$@"
ENTRYPOINT
chmod 0755 "$R/usr/local/share/secrets-agent/entrypoint.sh"
echo "secrets-agent feature installed"
