# Shared helpers of the bats suites that ship with pitr-bundle. They work on any bundle:
# everything they need to know of the specs comes from the bundle's MANIFEST.json.
#
# Each test gets PATH = a stub bin/ + the system's folders, a call log ($STUB_LOG), a fake
# zpool/zfs state ($FAKE_ZFS_STATE) and a sandbox folder for files scripts write.

bats_require_minimum_version 1.5.0

BUNDLE=${PITR_BUNDLE_DIR:?run through: pitr-bundle check BUNDLE_DIR}
SUITES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# the Python the helpers run: check's own interpreter (PITR_PYTHON). The first `python3` on
# PATH may be a launcher (pyenv's shim: 0.1 s a start, the suites start hundreds) or, on the
# stubbed PATH of setup_stubs (system folders only), missing (a Python only in a virtualenv)
PYTHON=${PITR_PYTHON:-python3}

# query EXPR: evaluate a Python expression on the manifest (bound to m); prints str/list lines.
# The bundle does not change during a run: answers are kept in $PITR_QUERY_CACHE (shared by
# the suites `pitr-bundle check` runs) or this run's temporary folder. A cached answer is read
# with builtins alone (the suites ask thousands of times): its file is named by the
# expression's letters and digits and starts with the whole expression, so two expressions
# named alike never answer for each other (the second one is just not cached).
query() {
  local cache=${PITR_QUERY_CACHE:-${BATS_RUN_TMPDIR:-}} key expr line
  [[ -n $cache ]] || { _query "$1"; return; }
  key=${1//[^A-Za-z0-9]/_}
  key=$cache/query-${key:0:200}
  if [[ ! -f $key ]]; then
    { printf '%s\n' "$1" && _query "$1"; } >"$key.$$" && mv -f "$key.$$" "$key" || return 1
  fi
  {
    IFS= read -r expr
    if [[ $expr != "$1" ]]; then
      _query "$1"
      return
    fi
    while IFS= read -r line; do printf '%s\n' "$line"; done
  } <"$key"
}

# _query EXPR: the answer from MANIFEST.json. In a suite's view (check: generator/views.py,
# PITR_VIEW_WHOLE set) also from the whole bundle: an answer that differs (a fact or file the
# view leaves out) is a read outside the view, written to PITR_VIEW_MISSES for check to report,
# and fails here, whatever the caller makes of the failure.
# The first call of a run also answers, into the cache, what suites ask most: every fact of
# the first cluster (cluster_fact) and its scripts by role (script_of), each only where the
# view and the whole bundle agree; one Python start instead of one per question.
_query() {
  "$PYTHON" -S - "$BUNDLE/MANIFEST.json" "$1" "${PITR_VIEW_WHOLE:-}" "${PITR_VIEW_MISSES:-}" \
    "${PITR_QUERY_CACHE:-${BATS_RUN_TMPDIR:-}}" <<'PY'
import json, os, re, sys
manifest, expr, whole, misses, cache = sys.argv[1:]
view_m = json.load(open(manifest))
whole_m = json.load(open(whole)) if whole else None

def answer(m, expr):
    try:
        value = eval(expr, {"m": m, "facts": m["facts"]})
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not isinstance(value, (list, tuple)):
        return ([] if value is None else [str(value)]), None
    return [json.dumps(v) if isinstance(v, (dict, list)) else str(v) for v in value], None

def agreed(expr):
    found = answer(view_m, expr)
    return found if whole_m is None or answer(whole_m, expr) == found else None

def warm():
    """Cache entries, named as query() names them, for the questions suites ask most."""
    questions = []
    def walk(expr, value):
        questions.append(expr)
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{expr}['{key}']", item)
    for index, cluster in enumerate(view_m["facts"].get("clusters", [])[:1]):
        walk(f"facts['clusters'][{index}]", cluster)
    for f in view_m["files"]:
        if f.get("cluster"):
            questions.append(f"[f['path'] for f in m['files'] if f['role'] == '{f['role']}' "
                             f"and f['cluster'] == '{f['cluster']}' and f['path'].endswith('.sh')]")
    for question in questions:
        found = agreed(question)
        if found is None or found[1] is not None:
            continue
        key = os.path.join(cache, "query-" + re.sub("[^A-Za-z0-9]", "_", question)[:200])
        with open(f"{key}.{os.getpid()}", "w") as out:
            out.write("".join(line + "\n" for line in [question] + found[0]))
        os.replace(f"{key}.{os.getpid()}", key)

if cache and not os.path.exists(os.path.join(cache, "warmed")):
    open(os.path.join(cache, "warmed"), "w").close()
    warm()
lines, error = answer(view_m, expr)
if whole_m is not None and answer(whole_m, expr) != (lines, error):
    with open(misses or "/dev/null", "a") as log:
        log.write(expr + "\n")
    sys.exit(f"query: {expr}: outside this suite's view (add it to the suite's '# view' lines)")
if error:
    sys.exit(f"query: {expr}: {error}")
for line in lines:
    print(line)
PY
}

# script_of ROLE [CLUSTER]: absolute path of the bundle script with that role
script_of() {
  local path
  if [[ -n ${2:-} ]]; then
    path=$(query "[f['path'] for f in m['files'] if f['role'] == '$1' and f['cluster'] == '$2' and f['path'].endswith('.sh')]")
  else
    path=$(query "[f['path'] for f in m['files'] if f['role'] == '$1' and f['path'].endswith('.sh')]")
  fi
  path=${path%%$'\n'*}
  [[ -z $path ]] || printf '%s/%s\n' "$BUNDLE" "$path"
}

# world_setup_file MAKE_WORLD: in a suite's setup_file. The world its tests start from (the
# stubs, the fake ZFS, the sandbox and what MAKE_WORLD puts there) is built once per file, into
# $PITR_WORLD, and saved; world_reset (in setup) puts the saved copy back before each test. Building
# it costs a test hundreds of processes; copying it back costs two. The world stays at one path
# for the whole file, so the absolute paths written into it stay right. Every variable
# MAKE_WORLD sets is exported (set -a), so that each test sees it (not arrays: bash cannot
# export them; a suite sets those in setup). MAKE_WORLD may set PITR_WORLD_SKIP to a reason: every
# test of the file is then skipped with it.
world_setup_file() {
  export PITR_WORLD=$BATS_FILE_TMPDIR/world PITR_WORLD_SAVED=$BATS_FILE_TMPDIR/world.saved PITR_WORLD_SKIP=""
  # one world at one path: the file's tests run one after the other, even under bats --jobs
  export BATS_NO_PARALLELIZE_WITHIN_FILE=true
  PITR_WORLD_BUILDING=1
  set -a
  "$@"
  set +a
  unset PITR_WORLD_BUILDING
  [[ -n $PITR_WORLD_SKIP ]] || /bin/cp -a "$PITR_WORLD" "$PITR_WORLD_SAVED"
}

# world_reset: in a suite's setup, after world_setup_file: the saved world back in place
world_reset() {
  [[ -z $PITR_WORLD_SKIP ]] || skip "$PITR_WORLD_SKIP"
  /bin/rm -rf "$PITR_WORLD"
  /bin/cp -a "$PITR_WORLD_SAVED" "$PITR_WORLD"
}

setup_stubs() {
  local base=${PITR_WORLD:-$BATS_TEST_TMPDIR}
  STUB_BIN=$base/bin
  STUB_LOG=$base/calls.log
  FAKE_ZFS_STATE=$base/zfs-state
  SANDBOX=$base/root
  export STUB_LOG FAKE_ZFS_STATE SANDBOX
  mkdir -p "$STUB_BIN" "$FAKE_ZFS_STATE" "$SANDBOX"
  : >"$STUB_LOG"
  PATH="$STUB_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  export PATH
  # never fall through to a real zpool/zfs: the bundle's device and pool names are real ones
  [[ -f $SUITES_DIR/fake_zfs.bash ]] || {
    echo "test_helper: $SUITES_DIR/fake_zfs.bash missing" >&2
    return 1
  }
  local name
  for name in zpool zfs; do
    # the running bash itself, and the fake sourced: one process a call, not three (env,
    # bash, bash): the suites make thousands of calls
    printf '#!%s\nFAKE_CMD=%s\n. %q "$@"\n' "$BASH" "$name" "$SUITES_DIR/fake_zfs.bash" >"$STUB_BIN/$name"
  done
  chmod +x "$STUB_BIN/zpool" "$STUB_BIN/zfs"
  stub id 'echo 0'
}

# stub NAME [BODY]: put a command NAME on PATH that logs its arguments, then runs BODY
# (bash, with "$@" available; default: succeed silently)
stub() {
  local name=$1 body=${2:-exit 0} target=${STUB_TARGET:-$STUB_BIN}
  [[ -d $target ]] || mkdir -p "$target"
  {
    printf '#!%s\n' "$BASH"  # the running bash: no env lookup on each call
    # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
    printf 'line=%q; for a in "$@"; do line+=" $a"; done\n' "$name"
    # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
    printf 'printf "%%s\\n" "$line" >>"$STUB_LOG"\n'
    printf '%s\n' "$body"
  } >"$target/$name"
  chmod +x "$target/$name"
}

# calls [PATTERN]: the logged calls (of the stubs and the fake zfs) matching an ERE
calls() {
  grep -E -- "${1:-.}" "$STUB_LOG" || true
}

# changing_calls: logged calls that change state (zpool/zfs queries excluded)
changing_calls() {
  grep -Ev '^(zpool (list|status|get)|zfs (list|get)|id|blkid|realpath|getent)( |$)' "$STUB_LOG" || true
}

# rebase SCRIPT VAR=VALUE...: a copy of SCRIPT whose readonly constants VAR point into the
# sandbox instead of the host's real paths; fails if a VAR is not found (the script changed),
# unless written ?VAR=VALUE (a constant only some versions of the script have)
rebase() {
  local script=$1 copy
  shift
  copy=$BATS_TEST_TMPDIR/${script##*/}
  [[ -z ${PITR_WORLD_BUILDING:-} ]] || copy=$PITR_WORLD/${script##*/}  # no test folder yet
  "$PYTHON" -S - "$script" "$copy" "$@" <<'PY'
import re, shlex, sys
source, target, *assignments = sys.argv[1:]
lines = open(source).read().split("\n")
# only `readonly` statements, with their backslash-continued lines, hold constants
statement, in_readonly = [], False
for index, line in enumerate(lines):
    if line.startswith("readonly ") or in_readonly:
        statement.append(index)
    in_readonly = (line.startswith("readonly ") or in_readonly) and line.endswith("\\")
for assignment in assignments:
    name, _, value = assignment.partition("=")
    optional = name.startswith("?")
    name = name.lstrip("?")
    pattern = re.compile(r"(?<![A-Za-z0-9_])" + re.escape(name) + r"=(?:'[^']*'|[^\s\\]+)")
    for index in statement:
        lines[index], count = pattern.subn(name + "=" + shlex.quote(value), lines[index], 1)
        if count:
            break
    else:
        if not optional:
            sys.exit(f"rebase: constant {name} not found in {source}")
open(target, "w").write("\n".join(lines))
PY
  chmod +x "$copy"
  printf '%s\n' "$copy"
}

# rebase_installer SCRIPT VAR=VALUE...: rebase an installer that still finds the files it
# installs where SCRIPT lies in its bundle (or in a copy of the bundle, see bundle_copy)
rebase_installer() {
  local script=$1
  shift
  rebase "$script" INSTALLER_PATH="$script" "$@"
}

# bundle_copy: a copy of the bundle in this test's folder (to alter a file of it), its path
bundle_copy() {
  local copy=$BATS_TEST_TMPDIR/bundle
  [[ -d $copy ]] || cp -R -- "$BUNDLE" "$copy"
  printf '%s\n' "$copy"
}

# fake_ownership: install/stat stubs so that scripts can "chown" inside the sandbox without
# root or real users: install drops -o/-g but records them, stat reports what was recorded
fake_ownership() {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub install '
args=() owner=root group=root mode="" target=""
while (($#)); do
  case $1 in
    -o) owner=$2; shift 2 ;;
    -g) group=$2; shift 2 ;;
    -m) mode=$2; args+=(-m "$2"); shift 2 ;;
    --) shift ;;
    *) args+=("$1"); shift ;;
  esac
done
target=${args[${#args[@]}-1]}
case $target in "$SANDBOX"/*) ;; *) echo "install outside the sandbox: $target" >&2; exit 99 ;; esac
/usr/bin/install "${args[@]}" || exit  # a failed install fails, as the real one
printf "%s\t%s %s %s\n" "$target" "$owner" "$group" "$((8#${mode:-755}))" >>"$SANDBOX/.owners"'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub stat '
path=${*: -1} recorded=""
# the last record of the path (builtins only: the scripts stat often)
if [[ -f $SANDBOX/.owners ]]; then
  while IFS=$'"'"'\t'"'"' read -r recorded_path owner_group_mode; do
    [[ $recorded_path != "$path" ]] || recorded=$owner_group_mode
  done <"$SANDBOX/.owners"
fi
if [[ -n $recorded ]]; then
  read -r o g m <<<"$recorded"
  format="%U %G %a"
  args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do [[ ${args[i]} == -c ]] && format=${args[i+1]}; done
  format=${format//%U/$o}
  format=${format//%G/$g}
  printf "%s\n" "${format//%a/$(printf %o "$m")}"
else
  exec /usr/bin/stat "$@"
fi'
}

# a PostgreSQL source tarball in miniature: configure, make and make install really run (as in
# the build), and install a pg_config that reports what the build script expects of a finished
# build; installs go to PREFIX in the sandbox (the configure line keeps the real prefix)
fake_source_tarball() {
  local tarball=$1 prefix=$2 script=$3 src EXPECTED_VERSION EXPECTED_CONFIGURE
  eval "$(grep -E '^readonly EXPECTED_(VERSION|CONFIGURE)=' "$script" | sed 's/^readonly //')"
  src=$BATS_TEST_TMPDIR/src/postgresql-fake
  mkdir -p "$src/contrib"
  printf '#!/bin/sh\nprintf "%%s\\n" "$@" >config.args\ncp config.args %q\n' "$BATS_TEST_TMPDIR/configure.args" >"$src/configure"
  chmod +x "$src/configure"
  {
    # shellcheck disable=SC2016 # the quoted text is the fake pg_config's own code
    printf '#!/bin/sh\ncase $1 in\n'
    printf '  --version) printf "%%s\\n" %q ;;\n' "$EXPECTED_VERSION"
    printf '  --configure) printf "%%s\\n" %q ;;\n' "$EXPECTED_CONFIGURE"
    printf 'esac\n'
  } >"$src/pg_config.in"
  printf 'all:\n\tcp pg_config.in pg_config\ninstall: all\n\tmkdir -p %s/bin\n\tinstall -m 0755 pg_config %s/bin/pg_config\n' \
    "$prefix" "$prefix" >"$src/Makefile"
  printf 'all:\n\ttouch built\ninstall: all\n\tmkdir -p %s/share/extension\n\ttouch %s/share/extension/contrib.control\n' \
    "$prefix" "$prefix" >"$src/contrib/Makefile"
  tar -czf "$tarball" -C "$BATS_TEST_TMPDIR/src" postgresql-fake
}

# jq_get JSON KEY: one field of a JSON object printed by query
jq_get() {
  "$PYTHON" -S -c 'import json, sys; v = json.loads(sys.argv[1])[sys.argv[2]]; print("" if v is None else v)' "$1" "$2"
}

# fake_users: getent/groupadd/useradd/runuser/chown/id stubs over files in the sandbox, so
# scripts can create and act as users without touching the machine's accounts
fake_users() {
  : >"$SANDBOX/.passwd"
  : >"$SANDBOX/.group"
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub getent '
case $1 in
  passwd) grep -q "^$2:" "$SANDBOX/.passwd" && grep "^$2:" "$SANDBOX/.passwd" ;;
  group) grep -q "^$2:" "$SANDBOX/.group" && grep "^$2:" "$SANDBOX/.group" ;;
  *) exit 2 ;;
esac'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub groupadd 'echo "${*: -1}:x:2000:" >>"$SANDBOX/.group"'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub useradd 'home=""; while (($# > 1)); do [[ $1 == -d ]] && home=$2; shift; done
echo "$1:x:2000:2000::$home:/bin/bash" >>"$SANDBOX/.passwd"
[[ -z $home ]] || mkdir -p "$home"'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub runuser 'while (($#)) && [[ $1 != -- ]]; do shift; done; shift; exec "$@"'
  stub chown
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub id 'case $1 in -u) echo 0 ;; -un) echo root ;; -gn) echo "${2:-root}" ;; *) echo "uid=0(root)" ;; esac'
}

# cluster_fact NAME EXPR: a fact of the first cluster, e.g. cluster_fact "['paths']['pgdata']"
cluster_fact() {
  query "facts['clusters'][${CLUSTER_INDEX:-0}]$1"
}

# cluster_script ROLE: the first cluster's script with that role
cluster_script() {
  script_of "$1" "$(cluster_fact "['name']")"
}

# cluster_file NAME: absolute path of the first cluster's bundle file named NAME (any role)
cluster_file() {
  local path
  path=$(query "[f['path'] for f in m['files'] if f['cluster'] == '$(cluster_fact "['name']")' and f['path'].rsplit('/', 1)[-1] == '$1']")
  [[ -n $path ]] || return 1
  printf '%s/%s\n' "$BUNDLE" "${path%%$'\n'*}"
}

# fake_pghome DIR [MAJOR]: PostgreSQL binaries of a cluster as stubs: pg_ctl keeps "running"
# in a state file, and a restore's clone (pitr-restore.conf) logs into pg_ctl's -l file the
# lines of a recovery that reached its target, or the file $FAKE_RECOVERY_LOG; pg_basebackup writes a tar-format backup (base.tar, pg_wal.tar, one
# tablespace) whose PG_VERSION says MAJOR, and fails without one (a suite that needs a backup
# says which major; one that does not need not read the cluster's: see generator/views.py)
fake_pghome() {
  local dir=$1
  export FAKE_PG_MAJOR=${2:-}
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$dir/bin stub pg_ctl '
data="" log=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ ${args[i]} == -D ]] && data=${args[i+1]}
  [[ ${args[i]} == -l ]] && log=${args[i+1]}
done
case " $* " in
  *" status "*) [[ -f $data/postmaster.pid ]] ;;
  *" start"*)
    sleep 0.01
    echo 4242 >"$data/postmaster.pid"
    if [[ -n $log && -f $data/pitr-restore.conf ]]; then
      if [[ -n ${FAKE_RECOVERY_LOG:-} ]]; then
        cat "$FAKE_RECOVERY_LOG" >>"$log"
      else
        printf "%s\n" "LOG:  database system was interrupted while in recovery at log time 2026-11-24 08:00:00 UTC" \
          "LOG:  restored log file \"000000010000000000000006\" from archive" \
          "LOG:  recovery stopping before commit of transaction 740, time 2026-11-24 12:00:00.5+00" \
          "LOG:  redo done at 0/6000A10" "LOG:  last completed transaction was at log time 2026-11-24 11:59:58.25+00" \
          "LOG:  selected new timeline ID: 2" "LOG:  database system is ready to accept connections" >>"$log"
      fi
    fi ;;
  *" stop"*) rm -f "$data/postmaster.pid" ;;
esac'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$dir/bin stub pg_basebackup '
[[ -n $FAKE_PG_MAJOR ]] || { echo "fake pg_basebackup: fake_pghome was given no major" >&2; exit 99; }
target=""
while (($#)); do [[ $1 == -D ]] && target=$2; shift; done
src=$(mktemp -d)
mkdir -p "$src/base/pg_tblspc" "$src/wal" "$src/ts"
echo "$FAKE_PG_MAJOR" >"$src/base/PG_VERSION"
echo "# primary config" >"$src/base/postgresql.conf"
echo "local all all trust" >"$src/base/pg_hba.conf"
ln -s /primary/tablespace "$src/base/pg_tblspc/16385"
echo wal >"$src/wal/000000010000000000000002"
echo data >"$src/ts/PG_DATA"
tar -cf "$target/base.tar" -C "$src/base" .
tar -cf "$target/pg_wal.tar" -C "$src/wal" .
tar -cf "$target/16385.tar" -C "$src/ts" .
((${FAKE_PG_MAJOR%%.*} < 13)) || echo "{ \"PostgreSQL-Backup-Manifest-Version\": 1 }" >"$target/backup_manifest"
rm -rf "$src"'
  STUB_TARGET=$dir/bin stub psql
}

# fake_standby PGHOME PGDATA MAJOR: a standby's PGDATA (a finished base backup of MAJOR) whose
# server runs in recovery, with stubs in PGHOME: pg_ctl status (running while postmaster.pid is
# there) and pg_controldata (prints PGDATA/.fake-controldata, which write_controldata writes)
fake_standby() {
  local pghome=$1
  FAKE_PGDATA=$2
  mkdir -p "$FAKE_PGDATA/global"
  : >"$FAKE_PGDATA/global/pg_control"
  echo "$3" >"$FAKE_PGDATA/PG_VERSION"
  echo 4242 >"$FAKE_PGDATA/postmaster.pid"
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub runuser 'while (($#)) && [[ $1 != -- ]]; do shift; done; shift; exec "$@"'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$pghome/bin stub pg_ctl '[[ $1 == -D && $3 == status && -f $2/postmaster.pid ]]'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$pghome/bin stub pg_controldata 'cat "$1/.fake-controldata"'
  write_controldata 2/A3000028 1 16777216 0000000100000002000000A3
}

# write_controldata REDO TLI SEGSIZE [REDO_FILE_LINE [STATE [MIN_RECOVERY_TLI [SYSID]]]]: what
# pg_controldata says of fake_standby's PGDATA (default state: in archive recovery)
write_controldata() {
  {
    printf 'pg_control version number:            1300\n'
    printf 'Database system identifier:           %s\n' "${7:-7301234567890123456}"
    printf 'Database cluster state:               %s\n' "${5:-in archive recovery}"
    printf "Latest checkpoint's REDO location:    %s\n" "$1"
    [[ -z ${4:-} ]] || printf "Latest checkpoint's REDO WAL file:    %s\n" "$4"
    printf "Latest checkpoint's TimeLineID:       %s\n" "$2"
    [[ -z ${6:-} ]] || printf "Min recovery ending loc's timeline:   %s\n" "$6"
    printf 'Bytes per WAL segment:                %s\n' "$3"
  } >"$FAKE_PGDATA/.fake-controldata"
}

# wal_file PATH SYSID OFFSET: a WAL segment whose first page header names system SYSID at
# OFFSET (24 from PostgreSQL 9.3 on, 16 before)
wal_file() {
  mkdir -p "${1%/*}"
  "$PYTHON" -S -c 'import struct, sys
path, sysid, offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
page = bytearray(64)
page[offset:offset + 8] = struct.pack("<Q", sysid)
open(path, "wb").write(bytes(page))' "$@"
}

# setup_cluster_user: stubs, fake ownership and accounts, and the cluster's user with its home
# in the sandbox (what the cluster suites start from)
setup_cluster_user() {
  setup_stubs
  fake_ownership
  fake_users
  USER_NAME=$(cluster_fact "['user']")
  echo "$USER_NAME:x:2000:2000::$SANDBOX/home:/bin/bash" >>"$SANDBOX/.passwd"
}

# fault_point COMMAND [GLOB]: COMMAND (a name on the stub PATH, or the path of a stub elsewhere)
# counts as a change when its arguments match GLOB (default: any). With FAKE_FAIL_AT=k the k-th
# change of a run fails with exit 1 and does nothing; zpool/zfs changes share the same count.
# An existing stub keeps its behaviour behind the gate; otherwise the real command runs.
fault_point() {
  local target=$1 glob=${2:-*} real
  [[ $target == */* ]] || target=$STUB_BIN/$target
  if [[ -e $target.ungated ]]; then
    real=$target.ungated
  elif [[ -e $target ]]; then
    real=$target.ungated
    mv "$target" "$real"
  else
    real=$(PATH=${PATH#"$STUB_BIN:"} command -v "${target##*/}") || {
      echo "fault_point: no command ${target##*/}" >&2
      return 1
    }
  fi
  {
    printf '#!%s\n' "$BASH"
    printf 'glob=%q real=%q name=%q\n' "$glob" "$real" "${target##*/}"
    # shellcheck disable=SC2016 # the quoted text is the gate's own code, expanded when it runs
    printf '%s\n' '# shellcheck disable=SC2053 # glob is a pattern on purpose
if [[ -n ${FAKE_FAIL_AT:-} && "$*" == $glob ]]; then
  changes=$(($(cat "$FAKE_ZFS_STATE/.changes" 2>/dev/null || echo 0) + 1))
  echo "$changes" >"$FAKE_ZFS_STATE/.changes"
  if ((changes == FAKE_FAIL_AT)); then
    echo "$name: injected failure at change $changes" >&2
    exit 1
  fi
fi
exec "$real" "$@"'
  } >"$target"
  chmod +x "$target"
}

# world_state: what a script leaves behind, in a comparable form: the fake ZFS pools and
# datasets (creation times aside), the sandbox's files with their type, mode and content, and
# the owners recorded by fake_ownership (the last one of each path wins)
world_state() {
  local f
  (
    cd "$FAKE_ZFS_STATE" || exit 1
    for f in pools/* ds/* snapprops/*; do
      [[ -e $f ]] || continue
      echo "== $f"
      grep -v '^creation=' "$f" | sort
    done
    # snapshots: name and hold count (their creation follows the clock)
    for f in snaps/*; do
      [[ -e $f ]] && printf '== %s %s\n' "$f" "$(cut -d' ' -f2 "$f")"
    done
  )
  (
    cd "$SANDBOX" || exit 1
    find . ! -name .owners -printf '%p %y %m\n' | sort
    find . -type f ! -name .owners -exec sha256sum {} + | sort -k2
    [[ ! -f .owners ]] || awk -F '\t' '{ owner[$1] = $2 } END { for (p in owner) print p, owner[p] }' .owners | sort
  )
}

# each_fault PREPARE SCRIPT ARGS...: PREPARE builds the world a script starts from (on an empty
# fake ZFS and sandbox). For every k up to the number of changes of a clean run, a fault at change
# k stops SCRIPT with a non-zero exit and the failed step named; running SCRIPT again without the
# fault ends in the same world as the clean run.
# shellcheck disable=SC2154 # status and output are set by bats' run
each_fault() {
  local prepare=$1 script=$2 clean changes k
  shift 2
  local saved=$BATS_TEST_TMPDIR/saved-world
  # PREPARE runs once; later worlds are copies of that one (quicker than building it again)
  fresh_world() {
    /bin/rm -rf "${FAKE_ZFS_STATE:?}" "${SANDBOX:?}"
    if [[ -d $saved ]]; then
      /bin/cp -a "$saved/zfs" "$FAKE_ZFS_STATE"
      /bin/cp -a "$saved/sandbox" "$SANDBOX"
    else
      /bin/mkdir -p "$FAKE_ZFS_STATE" "$SANDBOX"
      "$prepare"
      /bin/rm -f "$FAKE_ZFS_STATE/.changes"
      /bin/mkdir -p "$saved"
      /bin/cp -a "$FAKE_ZFS_STATE" "$saved/zfs"
      /bin/cp -a "$SANDBOX" "$saved/sandbox"
    fi
  }
  fresh_world
  run -0 "$script" "$@"
  clean=$(world_state)
  fresh_world
  FAKE_FAIL_AT=999999 run -0 "$script" "$@"
  changes=$(cat "$FAKE_ZFS_STATE/.changes" 2>/dev/null || echo 0)
  ((changes > 0)) || { echo "no change of $script passes a fault point"; return 1; }
  [ "$(world_state)" = "$clean" ] || { echo "the counting run ended elsewhere than the clean run"; return 1; }
  for ((k = 1; k <= changes; k++)); do
    fresh_world
    FAKE_FAIL_AT=$k run "$script" "$@"
    [ "$status" -ne 0 ] || { echo "fault at change $k: exit 0"; return 1; }
    [[ $output == *"step '"*"' failed"* ]] || { echo "fault at change $k: no step named: $output"; return 1; }
    run "$script" "$@"
    [ "$status" -eq 0 ] || { echo "fault at change $k: the re-run failed: $output"; return 1; }
    [ "$(world_state)" = "$clean" ] || {
      echo "fault at change $k: the re-run ended elsewhere:"
      diff <(echo "$clean") <(world_state) || true
      return 1
    }
  done
  echo "# $changes fault positions checked" >&3
}

# fake_exportfs: exportfs as a stub with a state: -ra loads the exports file into the "kernel"
# (a file in the sandbox), -s prints what is loaded. EXPORTS_FILE must be set.
fake_exportfs() {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub exportfs 'case $1 in
  -ra) cp "$EXPORTS_FILE" "$SANDBOX/.kernel-exports" ;;
  -s) cat "$SANDBOX/.kernel-exports" 2>/dev/null || true ;;
esac'
}

# make_pool: the bundle's pool ($POOL) in the fake ZFS, a small one
make_pool() {
  "$STUB_BIN/zpool" create -o ashift=12 "$POOL" mirror /dev/a /dev/b
}

# fake_primary_server: the primary's PostgreSQL as the primary-side script sees it, in the
# sandbox, Debian-like (postgresql.conf and pg_hba.conf in $SANDBOX/etc, outside the data
# directory). A psql stub answers the script's questions from $SANDBOX/.pg/<key> files
# (pg_fact KEY VALUE changes one), reloads and restarts (a pg_ctl stub beside the fake
# postgres in $SANDBOX/proc) put the include's values in effect, and slots are files.
# Defaults: a server below every need (wal_level minimal, archiving off, no walsenders).
fake_primary_server() {
  local major version_num name
  major=$(cluster_fact "['postgres_major']")
  if [[ $major == 9.* ]]; then
    version_num=$((90000 + ${major#9.} * 100))
  else
    version_num=$((major * 10000))
  fi
  PG_DATA=$SANDBOX/pgdata
  PG_ETC=$SANDBOX/etc
  mkdir -p "$PG_DATA" "$PG_ETC" "$SANDBOX/.pg" "$SANDBOX/pgbin" "$SANDBOX/proc/4242/fd" "$SANDBOX/sbin" \
    "$SANDBOX/units" "$SANDBOX/sudoers.d"
  echo "$major" >"$PG_DATA/PG_VERSION"
  echo 4242 >"$PG_DATA/postmaster.pid"
  printf "data_directory = '%s'\nport = 5432\ninclude_dir = 'conf.d'\n" "$PG_DATA" >"$PG_ETC/postgresql.conf"
  printf 'local all all peer\n' >"$PG_ETC/pg_hba.conf"
  chmod 0644 "$PG_ETC/postgresql.conf"
  chmod 0640 "$PG_ETC/pg_hba.conf"
  : >"$SANDBOX/server.log"
  ln -sfn "$SANDBOX/pgbin/postgres" "$SANDBOX/proc/4242/exe"
  ln -sfn "$SANDBOX/server.log" "$SANDBOX/proc/4242/fd/2"
  echo "0::/" >"$SANDBOX/proc/4242/cgroup"
  pg_fact version "$version_num"
  pg_fact recovery no
  pg_fact data_directory "$PG_DATA"
  pg_fact config_file "$PG_ETC/postgresql.conf"
  pg_fact hba_file "$PG_ETC/pg_hba.conf"
  pg_setting wal_level minimal postmaster
  pg_setting archive_mode off postmaster
  pg_setting archive_command "" sighup
  pg_setting archive_library "" sighup
  pg_setting max_wal_senders 0 postmaster
  pg_setting max_replication_slots 0 postmaster
  pg_setting archive_timeout 0 sighup
  pg_setting max_slot_wal_keep_size -1 sighup
  pg_fact senders_other 0
  pg_fact slots_other 0
  pg_fact ssl on  # asked only when the spec asks for TLS (replication.tls)
  # the replication role, there already: what it needs (9.0: a superuser; later: REPLICATION)
  if [[ $major == 9.0 ]]; then
    pg_fact role "login super noreplication password"
  else
    pg_fact role "login nosuper replication password"
  fi
  # the include's lines put in effect: for a reload only the settings a reload changes
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$SANDBOX/pgbin stub apply-include '
config_file=$(<"$SANDBOX/.pg/config_file")
include=${config_file%/*}/pitr-archive.conf
if [[ ! -f $include ]] || ! grep -qxF "include \x27pitr-archive.conf\x27" "$config_file"; then
  # the include taken out (a retired cluster): its settings fall back to the values of the files
  for f in "$SANDBOX"/.pg/base:*; do
    name=${f##*/base:}
    [[ $1 == all || $(<"$SANDBOX/.pg/context:$name") == sighup ]] || continue
    /bin/cp "$f" "$SANDBOX/.pg/cur:$name"
  done
  exit 0
fi
# a setting the include set before and no longer sets falls back to the value of the files
for f in "$SANDBOX"/.pg/srcfile:*; do
  name=${f##*/srcfile:}
  [[ $(<"$f") == "$include" ]] && ! grep -q "^$name = " "$include" || continue
  [[ $1 == all || $(<"$SANDBOX/.pg/context:$name") == sighup ]] || continue
  /bin/cp "$SANDBOX/.pg/base:$name" "$SANDBOX/.pg/cur:$name"
done
pattern="^([a-z_]+) = \x27(.*)\x27\$"
while IFS= read -r line; do
  [[ $line =~ $pattern ]] || continue
  name=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
  [[ $1 == all || $(<"$SANDBOX/.pg/context:$name") == sighup ]] || continue
  printf "%s" "$value" >"$SANDBOX/.pg/cur:$name"
done <"$include"'
  sed -i "s/\\\\x27/'/g" "$SANDBOX/pgbin/apply-include"
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$SANDBOX/pgbin stub pg_ctl '[[ $1 == restart ]] && "$SANDBOX/pgbin/apply-include" all; exit 0'
  STUB_TARGET=$SANDBOX/pgbin stub postgres
  # the stub is made once per test (a fault gate may wrap it): later worlds reuse it
  [[ ! -e $STUB_BIN/psql ]] || return 0
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub psql '
sql="" sep="|"
while (($#)); do
  case $1 in
    -c) sql=$2; shift ;;
    -F) sep=$2; shift ;;
    -f) [[ $2 == - ]] && sql=$(cat); shift ;;
  esac
  shift
done
[[ -e $SANDBOX/.pg/.down ]] && { echo "psql: could not connect to server" >&2; exit 2; }
case $sql in
  "select 1") echo 1 ;;
  *pg_reload_conf*) "$SANDBOX/pgbin/apply-include" sighup; echo t ;;
  *pg_terminate_backend*) echo t ;;
  *pg_drop_replication_slot*) /bin/rm -f "$SANDBOX/.pg/slot"; echo ;;
  *" ROLE "*) # the role statement (on standard input): kept for the suite to read
    printf "%s\n" "$sql" >"$SANDBOX/.pg/.role-sql"
    case $sql in
      *"CREATE ROLE"*"SUPERUSER"*) printf "login super noreplication password" >"$SANDBOX/.pg/role" ;;
      *"CREATE ROLE"*) printf "login nosuper replication password" >"$SANDBOX/.pg/role" ;;
      *"ALTER ROLE"*) sed -i "s/nopassword\$/password/" "$SANDBOX/.pg/role" ;;
    esac ;;
  *pg_create_physical_replication_slot*)
    [[ -e $SANDBOX/.pg/slot ]] || echo physical >"$SANDBOX/.pg/slot"
    echo "(slot)" ;;
  *server_version_num*)
    for f in "$SANDBOX"/.pg/*; do
      [[ -f $f ]] && printf "%s%s%s\n" "${f##*/}" "$sep" "$(<"$f")"
    done ;;
  *) echo "fake psql: unexpected SQL: $sql" >&2; exit 3 ;;
esac'
}

# tls_ca_file [DIR]: when the cluster's spec asks for TLS (replication.tls), its CA file in
# DIR (default: the sandbox): TLS_CA (empty without TLS) and TLS_REBASE, the rebase argument
# that points the script's TLS_CA_FILE at it
tls_ca_file() {
  local dir=${1:-$SANDBOX/tls}
  # shellcheck disable=SC2034 # TLS_REBASE is read by the suites that call this
  TLS_CA="" TLS_REBASE=()
  [[ -n $(cluster_fact "['replication_tls'] and facts['clusters'][${CLUSTER_INDEX:-0}]['replication_tls']['ca_file']") ]] || return 0
  TLS_CA=$dir/ca.crt
  mkdir -p "$dir"
  echo "-----BEGIN CERTIFICATE-----" >"$TLS_CA"
  # shellcheck disable=SC2034 # TLS_REBASE is read by the suites that call this
  TLS_REBASE=(TLS_CA_FILE="$TLS_CA")
}

# pg_fact KEY VALUE: what the fake primary answers for KEY
pg_fact() {
  printf '%s' "$2" >"$SANDBOX/.pg/$1"
}

# pg_setting NAME VALUE CONTEXT [SOURCE [FILE]]: a setting of the fake primary, the same in
# effect and in its configuration files (default: PostgreSQL's default)
pg_setting() {
  local source=${4:-default} file=${5:-}
  pg_fact "cur:$1" "$2"
  pg_fact "context:$1" "$3"
  pg_fact "source:$1" "$source"
  pg_fact "srcfile:$1" "$file"
  pg_fact "base:$1" "$2"
  pg_fact "basefile:$1" "$file"
}

# nfs_era NAME: the fake primary (fake_primary_server) of cluster NAME as a bundle of
# archive.method nfs left it: the helper, mount script, unit, sudo rule, the rc.local lines,
# and the include archiving with the helper
nfs_era() {
  for piece in sbin/pitr-archive-wal sbin/pitr-archive-mount units/pitr-archive-mount.service sudoers.d/pitr; do
    echo old >"$SANDBOX/$piece"
  done
  printf '# BEGIN pitr-bundle %s\n/x || true\n# END pitr-bundle %s\n' "$1" "$1" >"$SANDBOX/rc.local"
  printf "archive_mode = 'on'\narchive_command = 'sudo -n %s \"%%p\" \"%%f\"'\n" "$SANDBOX/sbin/pitr-archive-wal" >"$PG_ETC/pitr-archive.conf"
  printf "\ninclude 'pitr-archive.conf'\n" >>"$PG_ETC/postgresql.conf"
  pg_setting archive_mode on postmaster "configuration file" "$PG_ETC/pitr-archive.conf"
  pg_fact "base:archive_mode" off
  pg_fact "basefile:archive_mode" ""
  pg_setting archive_command "sudo -n $SANDBOX/sbin/pitr-archive-wal \"%p\" \"%f\"" sighup "configuration file" "$PG_ETC/pitr-archive.conf"
  pg_fact "base:archive_command" ""
}

# primary_script: the cluster's primary-side script with its system paths in the sandbox
primary_script() {
  # (?: archive.method standby has no helper, mount, sudo rule or state folder on the primary)
  rebase "$(script_of primary "$(cluster_fact "['name']")")" \
    "?HELPER=$SANDBOX/sbin/pitr-archive-wal" "?MOUNT_SCRIPT=$SANDBOX/sbin/pitr-archive-mount" \
    "?UNIT_FILE=$SANDBOX/units/pitr-archive-mount.service" "?SUDOERS_FILE=$SANDBOX/sudoers.d/pitr" \
    "?RC_LOCAL=$SANDBOX/rc.local" PROC="$SANDBOX/proc" "?SYSTEMD_RUN_DIR=$SANDBOX/run-systemd" \
    "?STATE_DIR=$SANDBOX/state" "?ARCHIVE_MOUNT=$SANDBOX/pgarch"
}

# fake_ip: `ip` as a stateful stub (fake_ip.bash): addresses and routes under $SANDBOX/.net
fake_ip() {
  [[ -f $SUITES_DIR/fake_ip.bash ]] || {
    echo "test_helper: $SUITES_DIR/fake_ip.bash missing" >&2
    return 1
  }
  printf '#!%s\n. %q "$@"\n' "$BASH" "$SUITES_DIR/fake_ip.bash" >"$STUB_BIN/ip"
  chmod +x "$STUB_BIN/ip"
}

# fake_systemctl: systemctl as a stub with a state: enable/disable and start/stop mark a unit
# in $SANDBOX/.systemd, is-enabled/is-active read the marks; start and stop run the unit's
# ExecStart/ExecStop lines from $FAKE_UNIT_DIR/<unit> as systemd would (a "-" prefix ignores
# a failure); every call is logged
fake_systemctl() {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub systemctl 'state=$SANDBOX/.systemd
/bin/mkdir -p "$state"
unit=${*: -1}
# exec_lines KEY: run the unit file'"'"'s KEY= lines, stop at the first failure not ignored
exec_lines() {
  local line command
  [[ -f ${FAKE_UNIT_DIR:-}/$unit ]] || return 0
  while IFS= read -r line; do
    [[ $line == "$1="* ]] || continue
    command=${line#*=}
    if [[ $command == -* ]]; then
      ${command#-} || true
    else
      $command || return 1
    fi
  done <"$FAKE_UNIT_DIR/$unit"
}
case $1 in
  is-enabled) [[ -e $state/$unit.enabled ]] ;;
  is-active) [[ -e $state/$unit.active ]] ;;
  enable) : >"$state/$unit.enabled" ;;
  disable) /bin/rm -f "$state/$unit.enabled" ;;
  start) exec_lines ExecStart && : >"$state/$unit.active" ;;
  stop) exec_lines ExecStop; /bin/rm -f "$state/$unit.active" ;;
  daemon-reload) ;;
  *) echo "fake systemctl: $1 is not faked" >&2; exit 2 ;;
esac'
}

# set_clock TIME: what `date` says from now on (UTC), for scripts that read the clock
set_clock() {
  /bin/date -u -d "$1" +%s >"$SANDBOX/.now"
  {
    printf '#!%s\n' "$BASH"
    cat <<'DATE'
for arg in "$@"; do
  case $arg in -d* | --date*) exec /bin/date "$@" ;; esac
done
exec /bin/date -d "@$(<"$SANDBOX/.now")" "$@"
DATE
  } >"$STUB_BIN/date"
  chmod +x "$STUB_BIN/date"
}

# advance SECONDS: move the clock of set_clock on
advance() {
  echo $(($(<"$SANDBOX/.now") + $1)) >"$SANDBOX/.now"
}

# encrypted_copy SCRIPT: with encryption key: file, a copy of the script whose key folder is
# $PITR_WORLD/keys, holding a good key per cluster (root's, 0400, 32 bytes); else SCRIPT
encrypted_copy() {
  local key_dir
  key_dir=$(query "(facts['encryption'] or {}).get('key_dir') or ''")
  if [[ -z $key_dir || $(query "facts['encryption']['key']") != file ]]; then
    printf '%s\n' "$1"
    return 0
  fi
  mkdir -p "$PITR_WORLD/keys"
  sed "s#$key_dir/#$PITR_WORLD/keys/#g" "$1" >"$PITR_WORLD/datasets.sh"
  chmod +x "$PITR_WORLD/datasets.sh"
  local cluster
  for cluster in $(query "' '.join(c['name'] for c in facts['clusters'])"); do
    head -c 32 /dev/urandom >"$PITR_WORLD/keys/$cluster.key"
    chmod 0400 "$PITR_WORLD/keys/$cluster.key"
  done
  printf '%s\n' "$PITR_WORLD/datasets.sh"
}
