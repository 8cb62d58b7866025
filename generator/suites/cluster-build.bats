#!/usr/bin/env bats
# The build of the primary's PostgreSQL (role "build", clusters built from source) with a
# source tarball in miniature whose configure and make really run (fake_source_tarball), users
# and ownership faked in the sandbox. For real, compiling Debian's PostgreSQL 15 source:
# tests/test_build_from_source.py.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: build
# view facts: name user configure_args paths.prefix

load test_helper

setup() {
  SCRIPT=$(cluster_script build)
  [[ -n $SCRIPT ]] || skip "this cluster uses installed binaries (35-check-binaries.sh)"
  setup_stubs
  fake_ownership
  fake_users
  USER_NAME=$(cluster_fact "['user']")
  echo "$USER_NAME:x:2000:2000::$SANDBOX/home:/bin/bash" >"$SANDBOX/.passwd"
  mkdir -p "$SANDBOX/soft_bak" "$SANDBOX/home"
  TARBALL=$BATS_TEST_TMPDIR/postgresql-fake.tar.gz
  fake_source_tarball "$TARBALL" "$SANDBOX/pgsql" "$SCRIPT"
  cp "$TARBALL" "$SANDBOX/soft_bak/"
}

# build_script [VAR=VALUE...]: the cluster's build script, its folders in the sandbox
build_script() {
  rebase "$SCRIPT" SOFT_BAK="$SANDBOX/soft_bak" PREFIX="$SANDBOX/pgsql" PGHOME="$SANDBOX/pghome" \
    OS_HOME="$SANDBOX/home" "$@"
}

# with_source SHA256: the script as if the spec named the fake tarball with that sha256
with_source() {
  build_script SOURCE_FILE=postgresql-fake.tar.gz SOURCE_SHA256="$1"
}

@test "build: a spec without postgres.source is refused (3) naming the field, nothing changed" {
  grep -qx 'readonly SOURCE_FILE=""' "$SCRIPT" || skip "the spec names its source tarball"
  run -3 "$(build_script)"
  [[ $output == *"the spec gives no postgres.source (tarball and sha256): add it, build the bundle again"* ]]
  [ ! -e "$SANDBOX/pgsql" ] && [ ! -e "$SANDBOX/pghome" ]
}

@test "build: a tarball whose sha256 is not the spec's is refused (3), nothing built" {
  local wrong
  wrong=$(printf '0%.0s' {1..64})
  run -3 "$(with_source "$wrong")"
  [[ $output == *"postgresql-fake.tar.gz: sha256 $(sha256sum "$TARBALL" | cut -d' ' -f1), the spec says $wrong: refusing to build from it"* ]]
  [ ! -e "$SANDBOX/pgsql/bin/pg_config" ] && [ ! -e "$SANDBOX/pghome" ]
  [ ! -e "$BATS_TEST_TMPDIR/configure.args" ]
}

@test "build: configure gets the spec's line (prefix moved), the build is recorded and PGHOME linked; a re-run only says so" {
  local script
  script=$(with_source "$(sha256sum "$TARBALL" | cut -d' ' -f1)")
  run -0 "$script"
  # exactly the options of the facts, in their order, one argument each
  diff <(cluster_fact "['configure_args']") "$BATS_TEST_TMPDIR/configure.args"
  grep -qx -- "--prefix=$(cluster_fact "['paths']['prefix']")" "$BATS_TEST_TMPDIR/configure.args"
  [ "$(readlink "$SANDBOX/pghome")" = "$SANDBOX/pgsql" ]
  [ -f "$SANDBOX/pgsql/.pitr-bundle-build" ] && [ ! -e "$SANDBOX/soft_bak/build" ]
  rm "$BATS_TEST_TMPDIR/configure.args"
  : >"$STUB_LOG"
  run -0 "$script"
  [[ $output == *"already built with the primary's configure line"* && $output == *"already linked"* ]]
  [ ! -e "$BATS_TEST_TMPDIR/configure.args" ]
  [ -z "$(calls '^(install|ln|rm|tar|env) ')" ]
}

@test "build: --dry-run verifies the tarball and builds nothing" {
  run -0 "$(with_source "$(sha256sum "$TARBALL" | cut -d' ' -f1)")" --dry-run
  [[ $output == *"sha256 verified"* && $output == *"dry-run: would run in "*"./configure"* ]]
  [ ! -e "$SANDBOX/pgsql" ] && [ ! -e "$SANDBOX/pghome" ] && [ ! -e "$BATS_TEST_TMPDIR/configure.args" ]
}
