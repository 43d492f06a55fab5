#!/usr/bin/env bash
# Installs the Riptide agent as a systemd service on a VM from a checkout of the repository:
# the code and its production dependencies into /opt/riptide, settings into
# /etc/riptide/agent.env, the unit into /etc/systemd/system, then enables and (re)starts it.
# Safe to run again: an upgrade replaces the code in one rename, and the env file keeps every
# setting not given on the command line.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: infra/systemd/install.sh [options]

Installs the Riptide capture agent as the systemd service riptide-agent (run as root).

Options:
  --store URL          object store for batches: s3://bucket/prefix or file:///path  (RIPTIDE_STORE)
  --s3-endpoint URL    S3-compatible endpoint; leave out for AWS S3                (RIPTIDE_S3_ENDPOINT)
  --region NAME        AWS region                                                  (AWS_REGION)
  --access-key-id ID   S3 access key id; the secret is read from $AWS_SECRET_ACCESS_KEY
  --prefix DIR         where the code goes (default /opt/riptide)
  --env-file FILE      settings file the unit reads (default /etc/riptide/agent.env)
  --unit-dir DIR       where the unit goes (default /etc/systemd/system)
  --no-start           install and enable, but do not (re)start the service
  --dry-run            print what would be done and change nothing
  -h, --help           show this help

Needs Node.js >= 20.9, npm, and Debian's libbpf1 (apt-get install -y nodejs libbpf1 on a system
whose nodejs is new enough). Check the host first with: npx riptide doctor
USAGE
}

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
prefix=/opt/riptide
env_file=/etc/riptide/agent.env
unit_dir=/etc/systemd/system
start=1
dry_run=0
declare -A settings=()

die() {
  echo "install.sh: $*" >&2
  exit 1
}

need_value() {
  if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --store) need_value "$@"; settings[RIPTIDE_STORE]="$2"; shift 2 ;;
    --s3-endpoint) need_value "$@"; settings[RIPTIDE_S3_ENDPOINT]="$2"; shift 2 ;;
    --region) need_value "$@"; settings[AWS_REGION]="$2"; shift 2 ;;
    --access-key-id)
      need_value "$@"
      [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] || die "--access-key-id needs the secret in \$AWS_SECRET_ACCESS_KEY (kept off the command line)"
      settings[AWS_ACCESS_KEY_ID]="$2"
      settings[AWS_SECRET_ACCESS_KEY]="$AWS_SECRET_ACCESS_KEY"
      shift 2
      ;;
    --prefix) need_value "$@"; prefix="$2"; shift 2 ;;
    --env-file) need_value "$@"; env_file="$2"; shift 2 ;;
    --unit-dir) need_value "$@"; unit_dir="$2"; shift 2 ;;
    --no-start) start=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

# Print a command, and run it unless this is a dry run.
run() {
  echo "+ $*"
  if [ "$dry_run" -eq 0 ]; then "$@"; fi
}

# Set KEY=VALUE in the env file: replace the line if the key is there, append it otherwise.
set_env() {
  local key="$1" value="$2" tmp
  echo "+ set $key in $env_file"
  [ "$dry_run" -eq 1 ] && return 0
  tmp="$(mktemp "$env_file.XXXXXX")"
  grep -v "^${key}=" "$env_file" > "$tmp" || true
  printf '%s=%s\n' "$key" "$value" >> "$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$env_file"
}

if [ ! -f "$src/package.json" ] || [ ! -f "$src/agent/cli/riptide.mjs" ]; then
  die "run this from a Riptide checkout ($src has no package.json / agent/cli/riptide.mjs)"
fi
[ -f "$src/bpf/riptide.bpf.o" ] || die "$src/bpf/riptide.bpf.o is missing: build it with npm run bpf:build"
if [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then die "run as root (it writes $prefix, $env_file and $unit_dir)"; fi
command -v node > /dev/null || die "node is not installed (Node.js >= 20.9 is needed)"
command -v npm > /dev/null || die "npm is not installed"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 9) ? 0 : 1)' \
  || die "Node.js $(node --version) is too old: Riptide needs >= 20.9"
# grep without -q reads the whole list: with pipefail, -q's early exit could SIGPIPE ldconfig and fail the check
if ! ldconfig -p 2> /dev/null | grep 'libbpf\.so\.1' > /dev/null; then
  die "libbpf.so.1 not found: apt-get install -y libbpf1"
fi

# 1. The code: copy the checkout (without its node_modules and local state) to a staging dir,
#    install production dependencies there, then swap it in, so a failed upgrade leaves the
#    running version untouched.
staging="$prefix.new"
run rm -rf "$staging"
run mkdir -p "$staging"
echo "+ copy $src to $staging"
if [ "$dry_run" -eq 0 ]; then
  tar -C "$src" --exclude=./.git --exclude=./node_modules --exclude=./.riptide --exclude=./test-results -cf - . | tar -C "$staging" -xf -
fi
echo "+ (cd $staging && npm ci --omit=dev --no-audit --no-fund)"
if [ "$dry_run" -eq 0 ]; then (cd "$staging" && npm ci --omit=dev --no-audit --no-fund); fi
if [ -d "$prefix" ]; then
  run rm -rf "$prefix.old"
  run mv "$prefix" "$prefix.old"
fi
run mv "$staging" "$prefix"
run rm -rf "$prefix.old"

# 2. Settings: created once with defaults, then only the keys given here are changed.
run mkdir -p "$(dirname "$env_file")"
if [ ! -f "$env_file" ]; then
  echo "+ create $env_file"
  if [ "$dry_run" -eq 0 ]; then
    umask 077
    cat > "$env_file" <<ENV
# Riptide agent settings (read by riptide-agent.service; see docs/DEPLOY.md). Mode 0600: may hold keys.
# Any \`riptide agent --help\` flag works as RIPTIDE_<FLAG> (e.g. RIPTIDE_FILTER_PORT=8080).
RIPTIDE_PORT=8687
ENV
  fi
fi
for key in "${!settings[@]}"; do
  set_env "$key" "${settings[$key]}"
done
if [ "$dry_run" -eq 0 ] && ! grep -q '^RIPTIDE_STORE=' "$env_file"; then
  echo "install.sh: note: RIPTIDE_STORE is not set in $env_file; batches stay in /var/lib/riptide/store until you set it (--store)" >&2
fi

# 3. The unit, pointed at the chosen prefix and env file.
echo "+ install $unit_dir/riptide-agent.service (code in $prefix, settings in $env_file)"
if [ "$dry_run" -eq 0 ]; then
  mkdir -p "$unit_dir"
  sed -e "s#/opt/riptide#$prefix#g" -e "s#/etc/riptide/agent.env#$env_file#g" \
    "$prefix/infra/systemd/riptide-agent.service" > "$unit_dir/riptide-agent.service"
  chmod 0644 "$unit_dir/riptide-agent.service"
fi
if command -v systemctl > /dev/null && [ -d /run/systemd/system ]; then
  run systemctl daemon-reload
  run systemctl enable riptide-agent.service
  if [ "$start" -eq 1 ]; then
    run systemctl restart riptide-agent.service
    echo "install.sh: riptide-agent (re)started; follow it with: journalctl -u riptide-agent -f"
  fi
else
  echo "install.sh: systemd is not running here; enable the unit later with: systemctl enable --now riptide-agent" >&2
fi
echo "install.sh: done (code in $prefix, settings in $env_file)"
