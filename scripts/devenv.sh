#!/usr/bin/env bash
# Provides the pinned TFX 1.21 stack and runs project commands inside it.
#
#   scripts/devenv.sh ensure        build (or reuse) the environment
#   scripts/devenv.sh exec CMD...   run CMD inside it, in this checkout
#   scripts/devenv.sh info          say which environment would be used
#
# TFX 1.21's ml-metadata and tensorflow-data-validation wheels need glibc >= 2.39.
# Where the host has that (Debian 13+, Ubuntu 24.04+), a plain .venv in the checkout
# is used. Elsewhere (Debian 12, our CI) a Debian 13 root is built once with
# debootstrap into a cache directory outside the checkout, keyed by the lock file's
# hash, and every command runs inside it with bubblewrap, the checkout bound at
# the same path so paths read the same inside and out.
#
# Settings (read by this script only): TINYML_TFX_ENV=native|rootfs forces a mode,
# TINYML_TFX_CACHE moves the cache (default ~/.cache/tinyml-tfx),
# TINYML_TFX_MIRROR picks the Debian mirror (default: the host's apt sources).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK="$REPO/requirements.lock"
# Bump when the recipe below changes in a way the lock file and package lists do not show.
RECIPE=3
SUITE=trixie
ROOT_PACKAGES=python3,python3-venv,python3-pip,python3-dev,g++,ca-certificates,libgomp1
# Tools the tests use (kustomize, chromium, the reference OCI registry and htpasswd, and
# cosign, which verifies our releases as a third party would), installed with apt after
# debootstrap (chromium's desktop dependencies do not configure inside debootstrap's own
# chroot step).
ROOT_TOOLS="kustomize chromium docker-registry apache2-utils cosign"

say() { printf '[env] %s\n' "$*" >&2; }
fail() {
  printf '\n[env] ERROR: %s\n\n' "$*" | fold -s -w 100 >&2
  exit 2
}

[ -f "$LOCK" ] || fail "The lock file $LOCK is missing. It pins every package of the stack; restore it with 'git checkout requirements.lock'."

env_key() { { cat "$LOCK"; echo "recipe=$RECIPE suite=$SUITE packages=$ROOT_PACKAGES tools=$ROOT_TOOLS"; } | sha256sum | cut -c1-16; }
project_key() { { cat "$REPO/setup.py"; echo "$REPO"; } | sha256sum | cut -c1-16; }

glibc_at_least() {  # $1 = minor version of glibc 2.x
  local v
  v="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')" || return 1
  [ -n "$v" ] && [ "${v%%.*}" -eq 2 ] && [ "${v#*.}" -ge "$1" ]
}

host_python_ok() {
  command -v python3 >/dev/null 2>&1 &&
    python3 -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 13) else 1)'
}

choose_mode() {
  case "${TINYML_TFX_ENV:-auto}" in
    native | rootfs) echo "$TINYML_TFX_ENV" ;;
    auto) if glibc_at_least 39 && host_python_ok; then echo native; else echo rootfs; fi ;;
    *) fail "TINYML_TFX_ENV is '${TINYML_TFX_ENV}', which is not a mode. Use 'native' (a .venv on this host), 'rootfs' (a Debian 13 root run with bubblewrap) or leave it unset to choose automatically." ;;
  esac
}

CACHE="${TINYML_TFX_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/tinyml-tfx}"
ROOTFS="$CACHE/rootfs-$(env_key)"

# ---------------------------------------------------------------- native mode
NATIVE_VENV="$REPO/.venv"

# The tests' tools (the Debian root gets them from ROOT_TOOLS, plus g++ and binutils), by the command each
# provides; a native host needs the same. `make test` under CI fails, naming the tool, when one is missing.
NATIVE_TOOL_COMMANDS="kustomize:kustomize chromium:chromium docker-registry:docker-registry apache2-utils:htpasswd cosign:cosign g++:g++ binutils:objdump"

ensure_native_tools() {
  local missing=() entry
  for entry in $NATIVE_TOOL_COMMANDS; do
    command -v "${entry#*:}" >/dev/null 2>&1 || missing+=("${entry%%:*}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing the tests' tools with apt-get: ${missing[*]}"
    if apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >"$REPO/.venv/apt-tools.log" 2>&1; then
      return 0
    fi
  fi
  printf '\n[env] NOTE: %s\n\n' "The tests use ${missing[*]} (the Debian 13 root that older hosts get installs them). They are not installed on this host, and could not be installed here (log: $REPO/.venv/apt-tools.log when apt-get was tried). 'make run' does not need them; 'make test' with CI set fails, naming each missing tool. Install them as root: apt-get install ${missing[*]} (Debian 13 package names), or use the Debian root: TINYML_TFX_ENV=rootfs." | fold -s -w 100 >&2
}

ensure_native() {
  local stamp="$NATIVE_VENV/.tinyml-env-$(env_key)"
  if [ ! -f "$stamp" ]; then
    say "creating $NATIVE_VENV from requirements.lock (first run takes a few minutes)"
    rm -rf "$NATIVE_VENV"
    python3 -m venv "$NATIVE_VENV"
    "$NATIVE_VENV/bin/pip" install --quiet pip==26.3
    "$NATIVE_VENV/bin/pip" install --progress-bar off -r "$LOCK"
    ensure_native_tools
    touch "$stamp"
  fi
  local pstamp="$NATIVE_VENV/.tinyml-project-$(project_key)"
  if [ ! -f "$pstamp" ]; then
    say "installing the project (editable) into $NATIVE_VENV"
    "$NATIVE_VENV/bin/pip" install --quiet --no-deps --no-build-isolation -e "$REPO" >"$REPO/.venv/project-install.log" 2>&1 ||
      { cat "$REPO/.venv/project-install.log" >&2; fail "Installing the project into $NATIVE_VENV failed (log above): check setup.py."; }
    rm -f "$NATIVE_VENV"/.tinyml-project-*
    touch "$pstamp"
  fi
}

exec_native() {
  export PATH="$NATIVE_VENV/bin:$PATH" TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
  cd "$REPO"
  exec "$@"
}

# ---------------------------------------------------------------- rootfs mode
debian_mirror() {
  if [ -n "${TINYML_TFX_MIRROR:-}" ]; then echo "$TINYML_TFX_MIRROR"; return; fi
  local m=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    m="$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources | grep -v -- '-security' | grep '/debian/*$' | head -n1 || true)"
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m="$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list | grep -v -- '-security' | head -n1 || true)"
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

bwrap_base() {  # the sandbox for a root at $1
  local args=(
    bwrap --bind "$1" /
    --proc /proc --dev /dev
    --ro-bind /etc/resolv.conf /etc/resolv.conf
    --bind /tmp /tmp
    --die-with-parent
    --clearenv
    --setenv HOME /root
    --setenv PATH /opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    --setenv LANG C.UTF-8
    --setenv TF_USE_LEGACY_KERAS 1
    --setenv TF_CPP_MIN_LOG_LEVEL "${TF_CPP_MIN_LOG_LEVEL:-2}"
  )
  local var
  for var in TERM COLUMNS CI $(compgen -e | grep '^TINYML_' || true); do
    [ -n "${!var:-}" ] && args+=(--setenv "$var" "${!var}")
  done
  printf '%s\0' "${args[@]}"
}

in_root() {  # run a command in the root at $1, with the pip cache shared across rebuilds
  local root="$1"; shift
  mkdir -p "$CACHE/pip" "$root/root/.cache/pip"
  local base=()
  mapfile -d '' base < <(bwrap_base "$root")
  "${base[@]}" --bind "$CACHE/pip" /root/.cache/pip "$@"
}

need_tools() {
  local missing=()
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "This host has glibc $(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}'), older than the 2.39 that TFX 1.21's ML Metadata and TFDV wheels need, so the project runs its stack in a Debian 13 root, which needs ${missing[*]}. Install them as root ('apt-get install debootstrap bubblewrap') or run on a host with glibc >= 2.39 (Debian 13, Ubuntu 24.04) where a plain .venv is used."
  fi
  say "installing ${missing[*]} with apt-get"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

build_rootfs() {
  [ "$(id -u)" -eq 0 ] || fail "Building the Debian 13 root at $ROOTFS needs root (debootstrap creates device files and sets ownership). Run 'make' once as root, or use a host with glibc >= 2.39 where a plain .venv is used (TINYML_TFX_ENV=native)."
  need_tools
  local mirror partial="$ROOTFS.partial"
  mirror="$(debian_mirror)"
  rm -rf "$partial"
  say "building a Debian 13 ($SUITE) root in $partial from $mirror (about a minute)"
  if ! debootstrap --variant=minbase --include="$ROOT_PACKAGES" "$SUITE" "$partial" "$mirror" \
      >"$CACHE/debootstrap.log" 2>&1; then
    tail -n 5 "$CACHE/debootstrap.log" >&2
    fail "debootstrap could not build the Debian 13 root from $mirror (full log: $CACHE/debootstrap.log). Check that the mirror is reachable, or name another with TINYML_TFX_MIRROR=http://.../debian."
  fi
  # pip inside the root must trust the same certificate authorities as the host.
  cp /etc/ssl/certs/ca-certificates.crt "$partial/etc/ssl/certs/ca-certificates.crt"
  say "installing $ROOT_TOOLS into the root"
  in_root "$partial" bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends $ROOT_TOOLS && apt-get clean" >"$CACHE/apt-tools.log" 2>&1 ||
    { tail -n 5 "$CACHE/apt-tools.log" >&2; fail "apt-get could not install $ROOT_TOOLS into the Debian 13 root (log: $CACHE/apt-tools.log). Check that $mirror is reachable."; }
  say "installing the pinned stack from requirements.lock into the root (a few minutes the first time)"
  cp "$LOCK" "$partial/opt/requirements.lock" 2>/dev/null || { mkdir -p "$partial/opt"; cp "$LOCK" "$partial/opt/requirements.lock"; }
  in_root "$partial" bash -euo pipefail -c '
    python3 -m venv /opt/venv
    /opt/venv/bin/pip install --quiet pip==26.3
    /opt/venv/bin/pip install --progress-bar off -r /opt/requirements.lock' ||
    fail "pip could not install requirements.lock inside the Debian 13 root at $partial (see the lines above). If a package index is unreachable, retry later; nothing was left half-built in the cache."
  rm -rf "$ROOTFS"
  mv "$partial" "$ROOTFS"
  say "environment ready at $ROOTFS"
}

ensure_rootfs() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  [ -f "$ROOTFS/opt/venv/bin/python" ] || build_rootfs
  local pstamp="$ROOTFS/opt/.tinyml-project-$(project_key)"
  if [ ! -f "$pstamp" ]; then
    say "installing the project (editable) from $REPO"
    # setuptools warns about editable installs at length; keep that in a log unless it fails.
    in_root "$ROOTFS" --bind "$REPO" "$REPO" --chdir "$REPO" \
      /opt/venv/bin/pip install --quiet --no-deps --no-build-isolation -e "$REPO" >"$CACHE/project-install.log" 2>&1 ||
      { cat "$CACHE/project-install.log" >&2; fail "Installing the project into $ROOTFS failed (log above): check setup.py."; }
    rm -f "$ROOTFS"/opt/.tinyml-project-*
    touch "$pstamp"
  fi
  flock -u 9
}

exec_rootfs() {
  local base=()
  mapfile -d '' base < <(bwrap_base "$ROOTFS")
  exec "${base[@]}" --bind "$REPO" "$REPO" --chdir "$REPO" "$@"
}

# ---------------------------------------------------------------- commands
mode="$(choose_mode)"
cmd="${1:-ensure}"
shift || true
case "$cmd" in
  ensure) "ensure_$mode" ;;
  exec)
    [ $# -gt 0 ] || fail "Nothing to run: use 'scripts/devenv.sh exec COMMAND [ARGS...]'."
    "ensure_$mode"
    "exec_$mode" "$@"
    ;;
  info)
    if [ "$mode" = native ]; then echo "native: $NATIVE_VENV"; else echo "rootfs: $ROOTFS"; fi
    ;;
  *) fail "Unknown command '$cmd'. Use: ensure, exec COMMAND..., info." ;;
esac
