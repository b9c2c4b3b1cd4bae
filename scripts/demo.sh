#!/usr/bin/env bash
# make demo: the whole product on one machine, against a throw-away home.
#
#   1. start secrets-devserver (embedded bbolt store) on a free loopback port
#   2. store overlapping secrets of every kind at organization, project and user scope
#   3. create an environment for that organization, project and user
#   4. run secrets-agent against a throw-away home and show — never printing a
#      value — what landed where and which scope won
#   5. stay in the foreground until Ctrl-C (or exit after one pass with DEMO_ONCE=1)
set -euo pipefail

bin=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
agent=$bin/secrets-agent
dev=$bin/secrets-devserver
for b in "$agent" "$dev"; do
  [ -x "$b" ] || { echo "demo: $b is missing; run 'make build' first" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/secrets-agent-demo.XXXXXX")
chmod 700 "$work"
home=$work/home
mkdir -p "$home" "$work/cp" "$work/state" "$work/run"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. control plane: secrets-devserver serve --data $work/cp --listen 127.0.0.1:0"
"$dev" serve --data "$work/cp" --listen 127.0.0.1:0 2>"$work/devserver.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/cp/address" ] && break; sleep 0.05; done
[ -s "$work/cp/address" ] || { echo "demo: devserver did not start:" >&2; cat "$work/devserver.log" >&2; exit 1; }
echo "listening on $(cat "$work/cp/address")"

say "2. secrets at three scopes (organization acme, project webapp, user alice)"
secret() { # scope owner name mount-flag... -- value
  local args=()
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  printf '%s' "$1" | "$dev" secret create --data "$work/cp" "${args[@]}" --value-stdin
}
reg() { printf '%s' "$1:$2" | base64 -w0; }
declare -A want
secret --scope organization --owner acme --name GREETING --env -- "hello from the organization" >/dev/null
secret --scope project --owner webapp --name GREETING --env -- "hello from the project" >/dev/null
secret --scope user --owner alice --name GREETING --env -- "hello from alice" >/dev/null
want[GREETING]="hello from alice"
secret --scope organization --owner acme --name DATABASE_URL --env -- "postgres://org:pw@db/acme" >/dev/null
secret --scope project --owner webapp --name DATABASE_URL --env -- "postgres://proj:pw@db/webapp" >/dev/null
want[DATABASE_URL]="postgres://proj:pw@db/webapp"
secret --scope organization --owner acme --name ODD_VALUE --env -- $'it'"'"'s "$(not run)" `nor this` \\ \n second line' >/dev/null
want[ODD_VALUE]=$'it'"'"'s "$(not run)" `nor this` \\ \n second line'
secret --scope organization --owner acme --name API_KEY_FILE --file "$home/.config/acme/api.key" -- "org-api-key" >/dev/null
secret --scope user --owner alice --name API_KEY_FILE --file "$home/.config/acme/api.key" -- "alice-api-key" >/dev/null
secret --scope project --owner webapp --name DEPLOY_KEY --file "$home/.ssh/deploy_key" -- "not-really-a-key" >/dev/null
secret --scope organization --owner acme --name REGISTRY --registry registry.acme.test -- "$(reg org-bot orgpass)" >/dev/null
secret --scope user --owner alice --name REGISTRY --registry registry.acme.test -- "$(reg alice alicepass)" >/dev/null
secret --scope project --owner webapp --name HUB --registry docker.io -- "$(reg webapp-bot hubpass)" >/dev/null
secret --scope project --owner webapp --name BILLING_API --api-only -- "only-for-the-api" >/dev/null
"$dev" secret list --data "$work/cp"

say "3. an environment for acme/webapp/alice"
envjson=$("$dev" env create --data "$work/cp" --org acme --project webapp --user alice)
envid=$(printf '%s' "$envjson" | sed -n 's/.*"environmentId" *: *"\([^"]*\)".*/\1/p')
token=$(printf '%s' "$envjson" | sed -n 's/.*"token" *: *"\([^"]*\)".*/\1/p')
(umask 077; printf '%s' "$token" >"$work/token")
echo "environment $envid (token in $work/token, 0600)"

say "4. secrets-agent run, home=$home"
cat >"$work/config.yaml" <<EOF
controlplane:
  url: http://$(cat "$work/cp/address")
  environment_id: $envid
  token_file: $work/token
  poll_interval: 30s
home: $home
state_dir: $work/state
socket: $work/agent.sock
injectors:
  envprofile:
    dir: $work/run/env
  secretfile:
    allowed_roots: ["~"]
  dockercfg:
    config_dir: ~/.docker
log:
  format: console
EOF
"$agent" run --config "$work/config.yaml" 2>"$work/agent.log" &
pids+=($!)
if ! "$agent" wait --socket "$work/agent.sock" --timeout 20s; then
  echo "demo: the agent did not apply its first pass:" >&2; cat "$work/agent.log" >&2; exit 1
fi
"$agent" status --socket "$work/agent.sock" || true

say "what landed where (modes and owners; values are never printed)"
find "$home" "$work/run/env" -type f -exec stat -c '%A %U:%G %n' {} + | sort -k3
echo
echo "shell variables, as bash sees them after sourcing $work/run/env/env.sh:"
for name in GREETING DATABASE_URL ODD_VALUE; do
  got=$(bash -c '. "$1"; printf "%s" "${!2}"' _ "$work/run/env/env.sh" "$name")
  if [ "$got" == "${want[$name]}" ]; then verdict="matches the winning scope's value"; else verdict="MISMATCH"; fi
  printf '  %-13s %3d bytes, %s\n' "$name" "${#got}" "$verdict"
done
echo
echo "docker registries in $home/.docker/config.json:"
sed -n 's/^\t\t"\([^"]*\)": *{.*/  \1/p' "$home/.docker/config.json"
echo "  ($(grep -c '"auth"' "$home/.docker/config.json") auth entries; values not shown)"

if [ -n "${DEMO_ONCE:-}" ]; then
  say "DEMO_ONCE set: done"
  exit 0
fi

say "5. running; try in another shell (Ctrl-C here stops everything):"
cat <<EOF
  $dev secret list --data $work/cp
  printf 'rotated' | $dev secret update --data $work/cp --id <ID> --value-stdin
  $agent status --socket $work/agent.sock
  bash -c '. $work/run/env/env.sh; echo \${#GREETING}'
EOF
tail -f "$work/agent.log" &
pids+=($!)
wait "${pids[0]}"
