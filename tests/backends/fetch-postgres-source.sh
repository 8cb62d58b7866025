#!/usr/bin/env bash
# Fetch Debian's postgresql-15 source package for bookworm into a cache, and install the Debian
# packages that tests/test_build_from_source.py needs to build it with Debian's own configure
# line (tests/fixtures/pg_config/debian-15.txt). See docs/testing.md.
#
#   bash tests/backends/fetch-postgres-source.sh          # fetch (if needed) + build deps
#   bash tests/backends/fetch-postgres-source.sh --no-deps  # fetch only
#
# Source: `apt-get source --download-only postgresql-15/bookworm` with a PRIVATE apt setup
#   (a deb-src entry for the mirror the host's apt already uses for bookworm, its own lists
#   folder) in ${PITR_SRC_CACHE:-<repo>/.cache/pgsrc}/apt: the host's sources and lists are
#   never touched. apt checks every file against the signed Sources index. Debian's
#   postgresql-15_<version>.orig.tar.bz2 is the upstream release tarball as it is.
#   PITR_DEBIAN_MIRROR=http://... overrides the mirror.
# Build deps: the Debian packages the full Debian configure line needs (LLVM/clang 14, ICU,
#   systemd, selinux, gssapi, ldap, tcl, perl, python, dtrace, TAP tests, ...), only the
#   missing ones installed with apt-get (and `apt-get update` only then).
#
# Idempotent: when the cache holds a .dsc whose orig tarball matches its sha256 and every
# package is installed, nothing is downloaded and it takes well under a second.
# Output (stdout, one line, sha256sum's format):  <sha256>  <path of the orig tarball>
# Progress and timings go to stderr.
set -Eeuo pipefail

trap 'echo "fetch-postgres-source.sh: failed at line ${LINENO}: ${BASH_COMMAND}" >&2' ERR

PACKAGE=postgresql-15
RELEASE=bookworm
# the packages behind each option of Debian's configure line (and the tools to build at all)
BUILD_DEPS=(
  gcc make bzip2 tar pkg-config mawk perl tzdata    # compiler, AWK=mawk, PROVE=/usr/bin/prove
  libreadline-dev zlib1g-dev                         # defaults: readline, zlib
  tcl-dev libperl-dev python3-dev                    # --with-tcl --with-perl --with-python
  libpam0g-dev libssl-dev libxml2-dev libxslt1-dev   # --with-pam --with-openssl --with-libxml/xslt
  xsltproc gettext                                   # XSLTPROC=xsltproc, --enable-nls (msgfmt)
  systemtap-sdt-dev uuid-dev                         # --enable-dtrace, --with-uuid=e2fs
  libkrb5-dev libldap-dev                            # --with-gssapi --with-ldap
  libipc-run-perl                                    # --enable-tap-tests (IPC::Run)
  libicu-dev llvm-14-dev clang-14                    # --with-icu --with-llvm LLVM_CONFIG CLANG
  liblz4-dev libzstd-dev libsystemd-dev libselinux1-dev  # --with-lz4/zstd/systemd/selinux
)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${PITR_SRC_CACHE:-${REPO}/.cache/pgsrc}
PROG=fetch-postgres-source.sh

log() { printf '%s: %s\n' "${PROG}" "$*" >&2; }
die() { log "$*"; exit 1; }
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

deps=1
case ${1-} in
  "") ;;
  --no-deps) deps=0 ;;
  -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (usage: $0 [--no-deps])" ;;
esac

# --- build dependencies ----------------------------------------------------------------------
install_deps() {
  local package missing=() start=${SECONDS}
  for package in "${BUILD_DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("${package}")
  done
  if ((${#missing[@]} == 0)); then
    log "build dependencies: all ${#BUILD_DEPS[@]} packages already installed"
    return 0
  fi
  log "build dependencies: installing ${missing[*]}"
  as_root apt-get update -qq -o DPkg::Lock::Timeout=600
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 \
    "${missing[@]}" >/dev/null
  log "build dependencies: installed in $((SECONDS - start)) s"
}

# --- the source package ----------------------------------------------------------------------
# sha256 of FILE as the .dsc lists it (Checksums-Sha256: " <sha256> <size> <file>")
dsc_sha256() {
  awk -v file="$2" '
    /^Checksums-Sha256:/ { inside = 1; next }
    /^[^ ]/ { inside = 0 }
    inside && $3 == file { print $1 }' "$1"
}

# the orig tarball of DSC if it is there and matches the .dsc; else nothing (status 1)
verified_orig() {
  local dsc=$1 orig want
  orig=$(awk '/^Checksums-Sha256:/ { inside = 1; next } /^[^ ]/ { inside = 0 }
    inside && $3 ~ /\.orig\.tar\.[a-z0-9]+$/ { print $3 }' "${dsc}")
  [[ -n ${orig} && -f ${CACHE}/${orig} ]] || return 1
  want=$(dsc_sha256 "${dsc}" "${orig}")
  [[ -n ${want} && $(sha256sum "${CACHE}/${orig}" | cut -d' ' -f1) == "${want}" ]] || return 1
  printf '%s\n' "${CACHE}/${orig}"
}

# the newest .dsc of PACKAGE in the cache whose orig tarball checks out
cached_orig() {
  local dsc
  while IFS= read -r dsc; do
    verified_orig "${dsc}" && return 0
  done < <(find "${CACHE}" -maxdepth 1 -name "${PACKAGE}_*.dsc" | sort -rV)
  return 1
}

# the mirror the host's apt uses for RELEASE's Packages (deb822 and one-line sources alike)
host_mirror() {
  if [[ -n ${PITR_DEBIAN_MIRROR-} ]]; then
    printf '%s\n' "${PITR_DEBIAN_MIRROR%/}/"
    return 0
  fi
  # shellcheck disable=SC2016 # apt expands $(FIELD) itself
  apt-get indextargets --format '$(REPO_URI) $(CODENAME) $(TARGET_OF)' 'Identifier: Packages' |
    awk -v release="${RELEASE}" '$2 == release && $3 == "deb" { print $1; exit }'
}

fetch_source() {
  local mirror apt_dir keyring="" start=${SECONDS}
  mirror=$(host_mirror)
  [[ -n ${mirror} ]] ||
    die "no '${RELEASE}' entry in the host's apt sources: set PITR_DEBIAN_MIRROR=http://<mirror>/debian"
  apt_dir=${CACHE}/apt
  mkdir -p "${apt_dir}/sources.list.d" "${apt_dir}/lists/partial" "${apt_dir}/cache/archives/partial"
  [[ -r /usr/share/keyrings/debian-archive-keyring.gpg ]] &&
    keyring=" [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
  printf 'deb-src%s %s %s main\n' "${keyring}" "${mirror}" "${RELEASE}" >"${apt_dir}/sources.list"
  local apt_opts=(
    -o "Dir::Etc::SourceList=${apt_dir}/sources.list"
    -o "Dir::Etc::SourceParts=${apt_dir}/sources.list.d"
    -o "Dir::State::Lists=${apt_dir}/lists"
    -o "Dir::Cache=${apt_dir}/cache"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
    -o "Acquire::Languages=none"
  )
  log "fetching ${PACKAGE}/${RELEASE} source from ${mirror} (private apt setup in ${apt_dir})"
  apt-get "${apt_opts[@]}" update -qq
  # apt's download sandbox user (_apt) may not be able to write into the cache: download into
  # a folder it owns, then move the files in
  local staging=${CACHE}/download
  rm -rf "${staging}"
  mkdir -p "${staging}"
  if getent passwd _apt >/dev/null && [[ $(id -u) == 0 ]]; then
    chown _apt "${staging}"
  fi
  (cd "${staging}" && apt-get "${apt_opts[@]}" -q source --download-only "${PACKAGE}/${RELEASE}") >&2
  find "${staging}" -maxdepth 1 -type f -exec mv -f -t "${CACHE}" {} +
  rm -rf "${staging}"
  log "source fetched in $((SECONDS - start)) s"
}

mkdir -p "${CACHE}"
if ! orig=$(cached_orig); then
  fetch_source
  orig=$(cached_orig) || die "apt-get source gave no ${PACKAGE} .dsc with a matching orig tarball in ${CACHE}"
else
  log "${orig}: already fetched, sha256 matches its .dsc"
fi
((deps)) && install_deps
printf '%s  %s\n' "$(sha256sum "${orig}" | cut -d' ' -f1)" "${orig}"
