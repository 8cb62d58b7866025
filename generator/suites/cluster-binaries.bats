#!/usr/bin/env bats
# The check of installed PostgreSQL binaries (role "binaries", clusters with postgres.binaries),
# against a fake installation in the sandbox. For real, with Debian's PostgreSQL 15:
# tests/test_packaged_postgres.py.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: binaries
# view facts: name extensions postgres_version

load test_helper

setup() {
  CHECK_IN_BUNDLE=$(cluster_script binaries)
  [[ -n $CHECK_IN_BUNDLE ]] || skip "this cluster is built from source (35-build.sh)"
  setup_stubs
  VERSION=$(cluster_fact "['postgres_version']")
  mapfile -t EXTENSIONS < <(cluster_fact "['extensions']")
  FAKE_HOME=$SANDBOX/pg
  CHECK=$(rebase "$CHECK_IN_BUNDLE" BINARIES="$FAKE_HOME/bin" PGHOME="$FAKE_HOME")
  fake_install "$VERSION"
}

# fake_install VERSION: programs reporting VERSION as Debian's do, pg_config with its folders,
# and every extension of the spec with its control file and library
fake_install() {
  local program name
  mkdir -p "$FAKE_HOME/bin" "$FAKE_HOME/lib" "$FAKE_HOME/share/extension"
  for program in pg_ctl psql pg_basebackup; do
    printf '#!/bin/sh\necho "%s (PostgreSQL) %s"\n' "$program" "$1" >"$FAKE_HOME/bin/$program"
  done
  printf '#!/bin/sh\necho "postgres (PostgreSQL) %s (Debian %s-1.pgdg120+1)"\n' "$1" "$1" >"$FAKE_HOME/bin/postgres"
  cat >"$FAKE_HOME/bin/pg_config" <<PG_CONFIG
#!/bin/sh
case \$1 in
  --version) echo "PostgreSQL $1 (Debian $1-1.pgdg120+1)" ;;
  --pkglibdir) echo "$FAKE_HOME/lib" ;;
  --sharedir) echo "$FAKE_HOME/share" ;;
esac
PG_CONFIG
  chmod +x "$FAKE_HOME/bin/"*
  for name in "${EXTENSIONS[@]}"; do
    printf "comment = 'fake'\nmodule_pathname = '\$libdir/%s'\n" "$name" >"$FAKE_HOME/share/extension/$name.control"
    : >"$FAKE_HOME/lib/$name.so"
  done
}

@test "binaries: an installation of the primary's version with its extensions passes, and nothing changes" {
  before=$(world_state)
  run -0 "$CHECK"
  [[ $output == *"postgres: PostgreSQL $VERSION, the primary's"* ]]
  [[ $output == *"pg_config: PostgreSQL $VERSION, the primary's"* ]]
  for name in "${EXTENSIONS[@]}"; do
    [[ $output == *"extension $name: "* ]]
  done
  [ "$(world_state)" = "$before" ]
  [ -z "$(changing_calls)" ]
}

@test "binaries: a newer minor release passes, saying why that is fine" {
  other=${VERSION%.*}.$((${VERSION##*.} + 1))
  fake_install "$other"
  run -0 "$CHECK"
  [[ $output == *"postgres: PostgreSQL $other, a newer minor release than the primary's $VERSION: fine (PostgreSQL's advice is to update standbys first"* ]]
  [[ $output != *"WARNING: postgres"* && $output != *"WARNING: pg_config"* ]]
}

@test "binaries: an older minor release passes with a warning to update it, and why" {
  ((${VERSION##*.} > 0)) || skip "the primary's minor is 0: there is no older one"
  other=${VERSION%.*}.$((${VERSION##*.} - 1))
  fake_install "$other"
  run -0 "$CHECK"
  [[ $output == *"WARNING: postgres: PostgreSQL $other is an older minor release than the primary's $VERSION: update it to $VERSION or newer. PostgreSQL's advice is to update standbys before their primary"* ]]
  [[ $output == *"WARNING: pg_config: PostgreSQL $other is an older minor"* ]]
}

@test "binaries: another major version is refused" {
  fake_install "99.1"
  run -3 "$CHECK"
  [[ $output == *"reports 99.1"* ]]
  [[ $output == *"the primary runs $VERSION: install PostgreSQL ${VERSION%.*} ($VERSION or a newer minor release)"* ]]
  # the same minor number of another major is no newer minor
  fake_install "99.${VERSION##*.}"
  run -3 "$CHECK"
}

@test "binaries: an extension without its library is refused, naming it" {
  ((${#EXTENSIONS[@]})) || skip "the spec names no extensions"
  rm "$FAKE_HOME/lib/${EXTENSIONS[0]}.so"
  run -3 "$CHECK"
  [[ $output == *"extension ${EXTENSIONS[0]}: "*"names ${EXTENSIONS[0]}.so, missing in $FAKE_HOME/lib"* ]]
  rm "$FAKE_HOME/share/extension/${EXTENSIONS[0]}.control"
  run -3 "$CHECK"
  [[ $output == *"extension ${EXTENSIONS[0]} of the primary: neither"* ]]
}

@test "binaries: a library without a control file (a plain module) counts, as does SQL only" {
  ((${#EXTENSIONS[@]})) || skip "the spec names no extensions"
  rm "$FAKE_HOME/share/extension/${EXTENSIONS[0]}.control"
  run -0 "$CHECK"
  [[ $output == *"extension ${EXTENSIONS[0]}: $FAKE_HOME/lib/${EXTENSIONS[0]}.so"* ]]
  printf "comment = 'sql only'\n" >"$FAKE_HOME/share/extension/${EXTENSIONS[0]}.control"
  rm "$FAKE_HOME/lib/${EXTENSIONS[0]}.so"
  run -0 "$CHECK"
  [[ $output == *"(no library)"* ]]
}

@test "binaries: a program the scripts run that is not installed is refused" {
  rm "$FAKE_HOME/bin/pg_ctl"
  run -3 "$CHECK"
  [[ $output == *"not installed in $FAKE_HOME/bin: pg_ctl"* ]]
}

@test "binaries: without pg_config, the extensions are looked for under PGHOME" {
  rm "$FAKE_HOME/bin/pg_config"
  run -0 "$CHECK"
  [[ $output == *"no pg_config in $FAKE_HOME/bin"* ]]
}
