#!/usr/bin/env bash
# A small stateful stand-in for zpool and zfs, for the bats suites: it keeps pools, datasets
# and their properties as files under $FAKE_ZFS_STATE, logs every call to $STUB_LOG, and
# fails a call whose command line matches the glob in $FAKE_FAIL (fault injection); runs
# $FAKE_HOOK before a call that matches the glob in $FAKE_HOOK_ON.
set -euo pipefail
cmd=${FAKE_CMD:?run through the zpool and zfs stubs of test_helper.bash}
# the suites may gate these commands on PATH (fault_point): the fake's own file work must not
# count as a change of the script under test
mv() { /bin/mv "$@"; }
cp() { /bin/cp "$@"; }
rm() { /bin/rm "$@"; }
mkdir() { /bin/mkdir "$@"; }
state=${FAKE_ZFS_STATE:?FAKE_ZFS_STATE not set}
# the fake's folders, made by its first call (a test runs hundreds of calls: no mkdir each time)
[[ -d $state/snapprops ]] || mkdir -p "$state/pools" "$state/ds" "$state/snaps" "$state/snapprops"
line="$cmd"
for arg in "$@"; do line+=" $arg"; done
printf '%s\n' "$line" >>"${STUB_LOG:?STUB_LOG not set}"
# FAKE_HOOK_ON, a glob of a call line: FAKE_HOOK is run before that call (what happens at that
# moment: a writer archiving while a script works, say); its failure does not fail the call
# shellcheck disable=SC2053 # FAKE_HOOK_ON is a glob on purpose
if [[ -n ${FAKE_HOOK_ON:-} && $line == $FAKE_HOOK_ON ]]; then
  eval "${FAKE_HOOK:-}" || true
fi
# shellcheck disable=SC2053 # FAKE_FAIL is a glob on purpose
if [[ -n ${FAKE_FAIL:-} && $line == $FAKE_FAIL ]]; then
  echo "$cmd: injected failure" >&2
  exit 1
fi

# FAKE_FAIL_AT=k: the k-th changing call of this state fails (fault injection by step)
if [[ -n ${FAKE_FAIL_AT:-} && "$cmd ${1:-}" =~ ^(zpool\ create|zfs\ (create|set|inherit|snapshot|destroy|clone|unmount|hold|release|receive|allow|unallow))$ ]]; then
  changes=0
  [[ ! -f $state/.changes ]] || read -r changes <"$state/.changes"
  changes=$((changes + 1))
  echo "$changes" >"$state/.changes"
  if ((changes == FAKE_FAIL_AT)); then
    echo "$cmd: injected failure at change $changes" >&2
    exit 1
  fi
fi

# The helpers answer in REPLY, with builtins alone, never through $(...): each command
# substitution is a process, and the suites call the fake thousands of times.
# ds_file DATASET / snap_file SNAPSHOT / snap_props SNAPSHOT: the file that stands for it
ds_file() { REPLY=$state/ds/${1//\//%}; }
snap_file() { REPLY=$state/snaps/${1//\//%}; }
# user properties of snapshots (zfs snapshot -o), one name=value line each
snap_props() { REPLY=$state/snapprops/${1//\//%}; }
# value_in FILE KEY: the value of the first KEY=value line of FILE (empty if none)
value_in() {
  local line
  REPLY=""
  [[ -f $1 ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line == "$2="* ]]; then
      REPLY=${line#*=}
      return 0
    fi
  done <"$1"
}
exists() { ds_file "$1"; [[ -f $REPLY ]]; }
default_of() {
  case $1 in
    mountpoint) REPLY=/$2 ;;
    compression | dedup) REPLY=off ;;
    atime | canmount) REPLY=on ;;
    type) REPLY=filesystem ;;
    *) REPLY=- ;;
  esac
}
# prop_of PROPERTY DATASET: its value (or default) in REPLY; get_prop prints it
prop_of() {
  ds_file "$2"
  value_in "$REPLY" "$1"
  [[ -n $REPLY ]] || default_of "$1" "$2"
}
get_prop() {
  prop_of "$1" "$2"
  printf '%s\n' "$REPLY"
}
set_prop() {
  local file line kept=()
  ds_file "$2"
  file=$REPLY
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line == "${1%%=*}="* ]] || kept+=("$line")
  done <"$file"
  printf '%s\n' "${kept[@]}" "$1" >"$file"
}

# With FAKE_ZFS_MOUNTS set, a dataset whose mountpoint lies in $SANDBOX is "mounted" there: the
# mountpoint becomes a link to the dataset's own folder ($state/mnt/<dataset>), made when the
# dataset is created or its mountpoint set, and a mountpoint that is a folder holding files
# is refused, as ZFS without overlay refuses it. fake_mount DATASET MOUNTPOINT / fake_unmount
fake_mount() {
  [[ -n ${FAKE_ZFS_MOUNTS:-} && $2 == "${SANDBOX:-/nonexistent}"/* ]] || return 0
  local data=$state/mnt/${1//\//%} mountpoint=$2
  if [[ -L $mountpoint ]]; then
    rm -f "$mountpoint"
  elif [[ -d $mountpoint ]]; then
    [[ -z $(/usr/bin/find "$mountpoint" -mindepth 1 -maxdepth 1 -print -quit) ]] ||
      { echo "cannot mount '$mountpoint': directory is not empty" >&2; exit 1; }
    /bin/rmdir "$mountpoint"
  fi
  mkdir -p "$data" "${mountpoint%/*}"
  /bin/ln -s "$data" "$mountpoint"
}
fake_unmount() {
  [[ -n ${FAKE_ZFS_MOUNTS:-} ]] || return 0
  prop_of mountpoint "$1"
  [[ ! -L $REPLY ]] || rm -f "$REPLY"
}

zpool_create() {
  local root_props=() pool_opts=() mountpoint=""
  while [[ $1 == -* ]]; do
    case $1 in
      -f) shift ;;
      -o) pool_opts+=("$2"); shift 2 ;;
      -O) root_props+=("$2"); shift 2 ;;
      -m) mountpoint=$2; shift 2 ;;
      *) echo "fake zpool: unknown option $1" >&2; exit 2 ;;
    esac
  done
  local pool=$1 section="" group=0 word config=""
  shift
  [[ ! -e $state/pools/$pool ]] || { echo "cannot create '$pool': pool already exists" >&2; exit 1; }
  local n=0
  for word in "$@"; do
    case $word in
      raidz1 | raidz2 | raidz3 | mirror)
        config+=$'\t  '"$word-$n"$'\n'; n=$((n + 1)); group=1 ;;
      log | cache | spare)
        section=$word; group=0
        case $word in log) config+=$'\tlogs\n' ;; cache) config+=$'\tcache\n' ;; spare) config+=$'\tspares\n' ;; esac ;;
      *)
        if ((group)); then config+=$'\t    '"$word"$'\n'; else config+=$'\t  '"$word"$'\n'; fi ;;
    esac
  done
  printf '%s' "$config" >"$state/pools/$pool"
  local ashift=0 opt
  for opt in "${pool_opts[@]}"; do [[ $opt == ashift=* ]] && ashift=${opt#ashift=}; done
  echo "$ashift" >"$state/pools/$pool.ashift"
  ds_file "$pool"
  : >"$REPLY"
  [[ -n $mountpoint ]] && set_prop "mountpoint=$mountpoint" "$pool"
  for opt in "${root_props[@]}"; do set_prop "$opt" "$pool"; done
  [[ -z $section ]] || true
}

zpool_status() {
  local pool
  local pools=("$@")
  ((${#pools[@]})) || mapfile -t pools < <(find "$state/pools" -maxdepth 1 -type f ! -name '*.ashift' -printf '%f\n')
  for pool in "${pools[@]}"; do
    [[ -f $state/pools/$pool ]] || { echo "cannot open '$pool': no such pool" >&2; exit 1; }
    printf '  pool: %s\n state: ONLINE\nconfig:\n\n\tNAME STATE READ WRITE CKSUM\n\t%s ONLINE 0 0 0\n' "$pool" "$pool"
    cat "$state/pools/$pool"
    printf '\nerrors: No known data errors\n'
  done
}

snap_prop() {
  snap_props "$2"
  value_in "$REPLY" "$1"
  printf '%s\n' "${REPLY:--}"
}

# list_snapshots DATASET: name<TAB>userrefs, oldest first (creation, then name)
list_snapshots() {
  local prefix name
  snap_file "$1@"
  prefix=$REPLY
  for f in "$prefix"*; do
    [[ -e $f ]] || continue
    read -r created refs <"$f"
    name=${f##*/}
    printf '%s\t%s\t%s\n' "$created" "${name//%//}" "$refs"
  done | sort -n -k1,1 -s | cut -f2-
}

destroy_snapshot() {
  local f
  snap_file "$1"
  f=$REPLY
  [[ -e $f ]] || { echo "could not find any snapshots to destroy; check snapshot names." >&2; exit 1; }
  if grep -rqxF "origin=$1" "$state/ds"; then
    echo "cannot destroy '$1': snapshot has dependent clones" >&2
    exit 1
  fi
  snap_props "$1"
  rm -f "$f" "$REPLY"
}

# guid_of SNAPSHOT: its guid: the one it was received with (a guid= line of its properties),
# else a number made of its name (two snapshots are "the same" only when received from one)
guid_of() {
  snap_props "$1"
  value_in "$REPLY" guid
  [[ -z $REPLY ]] || return 0
  local sum
  sum=$(cksum <<<"$1")
  REPLY=${sum%% *}
}

# fake_send [-w] [-I @FROM] SNAPSHOT | -t TOKEN | -n -v -t TOKEN: a recognisable text stream
# on stdout: a header (raw or not, the guid it starts from), then "snap NAME GUID CREATION"
# lines, oldest first. A resume token is a file $state/tokens/TOKEN holding the send's
# arguments (a suite writes one); -n -v prints what it would send, as OpenZFS does
fake_send() {
  local raw="" from="" to dry=0 token="" ds f n c r started=0 base="-"
  while (($#)); do
    case $1 in
      -w) raw=raw ;;
      -I) from=$2; shift ;;
      -n) dry=1 ;;
      -v) ;;
      -t) token=$2; shift ;;
      -*) echo "fake zfs send: unknown option $1" >&2; exit 2 ;;
      *) to=$1 ;;
    esac
    shift
  done
  if [[ -n $token ]]; then
    [[ -f $state/tokens/$token ]] || { echo "cannot resume send: invalid token" >&2; exit 1; }
    read -r from to <"$state/tokens/$token"
    [[ $from != - ]] || from=""
    if ((dry)); then
      printf 'resume token contents:\nnvlist version: 0\n\tobject = 0x1\n\ttoname = %s\n' "$to"
      exit 0
    fi
  fi
  snap_file "$to"
  [[ -e $REPLY ]] || { echo "cannot open '$to': dataset does not exist" >&2; exit 1; }
  ds=${to%@*}
  if [[ -n $from ]]; then
    snap_file "$ds$from"
    [[ -e $REPLY ]] || { echo "cannot open '$ds$from': dataset does not exist" >&2; exit 1; }
    guid_of "$ds$from"
    base=$REPLY
  fi
  printf 'FAKE-ZFS-STREAM %s %s%s\n' "$base" "${raw:-plain}" "${token:+ resumed}"
  while IFS=$'\t' read -r n _; do
    if [[ -n $from && $started == 0 ]]; then
      [[ $n == "$ds$from" ]] && started=1
      continue
    fi
    if [[ -n $from || $n == "$to" ]]; then
      snap_file "$n"
      read -r c r <"$REPLY"
      guid_of "$n"
      printf 'snap %s %s %s\n' "${n#*@}" "$REPLY" "$c"
    fi
    [[ $n != "$to" ]] || break
  done < <(list_snapshots "$ds")
}

# fake_receive -u [-s] DATASET: reads fake_send's stream: a full one makes DATASET (its parent
# must exist, DATASET must not), an incremental one needs DATASET's newest snapshot to be the
# stream's base. A resumed stream clears DATASET's receive_resume_token
fake_receive() {
  local target="" header base resumed word name guid created newest=""
  while (($#)); do
    case $1 in
      -u | -s) ;;
      -*) echo "fake zfs receive: unknown option $1" >&2; exit 2 ;;
      *) target=$1 ;;
    esac
    shift
  done
  read -r header base _ resumed || { echo "cannot receive: failed to read from stream" >&2; exit 1; }
  [[ $header == FAKE-ZFS-STREAM ]] || { echo "cannot receive: invalid stream (bad magic number)" >&2; exit 1; }
  if [[ $base == - ]]; then
    if [[ -z $resumed ]]; then
      exists "$target" && { echo "cannot receive new filesystem stream: destination '$target' exists" >&2; exit 1; }
      exists "${target%/*}" || { echo "cannot receive: parent of '$target' does not exist" >&2; exit 1; }
      ds_file "$target"
      : >"$REPLY"
    fi
  else
    exists "$target" || { echo "cannot receive incremental stream: destination '$target' does not exist" >&2; exit 1; }
    newest=$(list_snapshots "$target" | tail -n 1 | cut -f1)
    [[ -n $newest ]] && guid_of "$newest" && [[ $REPLY == "$base" ]] ||
      { echo "cannot receive incremental stream: most recent snapshot of $target does not match incremental source" >&2; exit 1; }
  fi
  while read -r word name guid created; do
    [[ $word == snap ]] || { echo "cannot receive: invalid stream" >&2; exit 1; }
    snap_file "$target@$name"
    printf '%s 0\n' "$created" >"$REPLY"
    snap_props "$target@$name"
    printf 'guid=%s\n' "$guid" >"$REPLY"
  done
  [[ -z $resumed ]] || { ds_file "$target"; grep -v '^receive_resume_token=' "$REPLY" >"$REPLY.new" || true; mv "$REPLY.new" "$REPLY"; }
}

case "$cmd $*" in
  "zfs version"*)
    [[ -n ${FAKE_OPENZFS:-} ]] || { echo "unrecognized command 'version'" >&2; exit 2; }
    echo "zfs-2.1.11-1" ;;
  "zfs snapshot "*)
    shift
    props=()
    while [[ $1 == -o ]]; do props+=("$2"); shift 2; done
    # several snapshots in one call (all or none, in one transaction): OpenZFS (and ZoL from
    # 0.6.2), not zfs-fuse; the fake takes them where it knows `zfs version`
    (($# == 1)) || [[ -n ${FAKE_OPENZFS:-} ]] || { echo "too many arguments" >&2; exit 2; }
    for snapshot in "$@"; do
      snap_file "$snapshot"
      [[ -e $REPLY ]] && { echo "cannot create snapshot '$snapshot': dataset already exists" >&2; exit 1; }
      exists "${snapshot%@*}" || { echo "cannot open '${snapshot%@*}': dataset does not exist" >&2; exit 1; }
    done
    # creation from `date`: the suites put a fake one on PATH to choose it
    created=$(date -u +%s)
    for snapshot in "$@"; do
      snap_file "$snapshot"
      printf '%s 0\n' "$created" >"$REPLY"
      snap_props "$snapshot"
      rm -f "$REPLY"
      if ((${#props[@]})); then printf '%s\n' "${props[@]}" >"$REPLY"; fi
    done ;;
  "zfs list -H -t snapshot -o name,userrefs -d 1 -s creation "*) list_snapshots "${11}" ;;
  "zfs list -H -t snapshot -o name,"*:*" -d 1 -s creation "*)
    list_snapshots "${11}" | while IFS=$'\t' read -r n _; do
      snap_props "$n"
      value_in "$REPLY" "${6#name,}"
      printf '%s\t%s\n' "$n" "${REPLY:--}"
    done ;;
  "zfs list -H -t snapshot -o name -d 1 -s creation "*) list_snapshots "${11}" | cut -f1 ;;
  "zfs list -H -t filesystem,volume -o origin -r "*)
    for f in "$state/ds"/*; do
      value_in "$f" origin
      echo "${REPLY:--}"
    done ;;
  "zfs list -H -t filesystem,volume -o name,origin")
    for f in "$state/ds"/*; do
      value_in "$f" origin
      n=${f##*/}
      printf '%s\t%s\n' "${n//%//}" "${REPLY:--}"
    done ;;
  "zfs destroy -R "*)
    # the dataset, its children, their snapshots and every clone of those snapshots
    exists "$3" || { echo "cannot open '$3': dataset does not exist" >&2; exit 1; }
    for f in "$state/ds"/*; do
      n=${f##*/}
      n=${n//%//}
      value_in "$f" origin
      o=$REPLY
      if [[ $n == "$3" || $n == "$3/"* || $o == "$3@"* || $o == "$3/"*@* ]]; then
        fake_unmount "$n"
        rm -f "$f"
      fi
    done
    for f in "$state/snaps"/* "$state/snapprops"/*; do
      n=${f##*/}
      n=${n//%//}
      if [[ $n == "$3@"* || $n == "$3/"*@* ]]; then rm -f "$f"; fi
    done ;;
  "zfs destroy -d "*)
    target=$3
    if [[ $target == *,* ]]; then
      [[ -n ${FAKE_OPENZFS:-} ]] || { echo "cannot destroy '$target': invalid character ',' in name" >&2; exit 1; }
      ds=${target%@*}
      IFS=, read -r -a names <<<"${target#*@}"
      for n in "${names[@]}"; do destroy_snapshot "$ds@$n"; done
    else
      destroy_snapshot "$target"
    fi ;;
  "zfs hold "* | "zfs release "*)
    # holds by tag ($state/holds/<snapshot>: one tag a line), counted in the snapshot's userrefs
    snap_file "$3"
    f=$REPLY
    [[ -e $f ]] || { echo "cannot $1 snapshot '$3': dataset does not exist" >&2; exit 1; }
    mkdir -p "$state/holds"
    tags=$state/holds/${3//\//%}
    held=0
    [[ -f $tags ]] && grep -qxF -- "$2" "$tags" && held=1
    read -r c r <"$f"
    if [[ $1 == hold ]]; then
      ((!held)) || { echo "cannot hold snapshot '$3': tag already exists on this dataset" >&2; exit 1; }
      echo "$2" >>"$tags"
      echo "$c $((r + 1))" >"$f"
    else
      ((held)) || { echo "cannot release '$2' from snapshot '$3': no such tag on this dataset" >&2; exit 1; }
      grep -vxF -- "$2" "$tags" >"$tags.new" || true
      mv "$tags.new" "$tags"
      [[ -s $tags ]] || rm -f "$tags"
      echo "$c $((r - 1))" >"$f"
    fi ;;
  "zfs allow -u "* | "zfs unallow -u "*)
    # delegated permissions: an allow:USER=PERMISSIONS line of the dataset
    exists "$5" || { echo "cannot open '$5': dataset does not exist" >&2; exit 1; }
    if [[ $1 == allow ]]; then
      set_prop "allow:$3=$4" "$5"
    else
      ds_file "$5"
      grep -v "^allow:$3=" "$REPLY" >"$REPLY.new" || true
      mv "$REPLY.new" "$REPLY"
    fi ;;
  "zfs get -H -p -o name,property,value "*@*)
    # snapshot_table's question: NAME<TAB>PROPERTY<TAB>VALUE for each snapshot and property
    IFS=, read -r -a wanted <<<"$6"
    shift 6
    for snapshot in "$@"; do
      snap_file "$snapshot"
      [[ -e $REPLY ]] || { echo "cannot open '$snapshot': dataset does not exist" >&2; exit 1; }
      read -r c r <"$REPLY"
      for property in "${wanted[@]}"; do
        case $property in
          creation) value=$c ;;
          userrefs) value=$r ;;
          guid) guid_of "$snapshot"; value=$REPLY ;;
          *) snap_props "$snapshot"; value_in "$REPLY" "$property"; value=${REPLY:--} ;;
        esac
        printf '%s\t%s\t%s\n' "$snapshot" "$property" "$value"
      done
    done ;;
  "zfs list -H -o origin -t filesystem -r "*)
    for f in "$state/ds"/*; do
      value_in "$f" origin
      echo "${REPLY:--}"
    done ;;
  "zfs set "*@*)
    snap_file "$3"
    [[ -e $REPLY ]] || { echo "cannot open '$3': dataset does not exist" >&2; exit 1; }
    snap_props "$3"
    props_file=$REPLY
    kept=()
    if [[ -f $props_file ]]; then
      while IFS= read -r l; do [[ $l == "${2%%=*}="* ]] || kept+=("$l"); done <"$props_file"
    fi
    printf '%s\n' "${kept[@]}" "$2" | grep -v '^$' >"$props_file" || true ;;
  "zfs send "*) shift; fake_send "$@" ;;
  "zfs receive "* | "zfs recv "*) shift; fake_receive "$@" ;;
  "zfs get -H -p -o value creation "*) snap_file "$7"; read -r c _ <"$REPLY"; echo "$c" ;;
  "zfs clone "*)
    shift
    props=()
    while [[ $1 == -o ]]; do props+=("$2"); shift 2; done
    snap_file "$1"
    [[ -e $REPLY ]] || { echo "cannot open '$1'" >&2; exit 1; }
    exists "${2%/*}" || { echo "cannot create '$2': parent does not exist" >&2; exit 1; }
    ds_file "$2"
    : >"$REPLY"
    set_prop "origin=$1" "$2"
    for p in "${props[@]}"; do set_prop "$p" "$2"; done
    # a clone holds what the dataset held (the fake keeps no snapshot contents)
    prop_of mountpoint "${1%@*}"
    source_root=$REPLY/pg_root
    prop_of mountpoint "$2"
    clone_root=$REPLY/pg_root
    mkdir -p "${clone_root%/*}"
    if [[ -d $source_root ]]; then cp -a "$source_root" "$clone_root"; else mkdir -p "$clone_root"; fi
    ;;
  "zfs create -p "*)
    shift 2
    props=()
    while [[ $1 == -o ]]; do props+=("$2"); shift 2; done
    ds_file "$1"
    : >"$REPLY"
    for p in "${props[@]}"; do set_prop "$p" "$1"; done
    prop_of mountpoint "$1"
    fake_mount "$1" "$REPLY" ;;
  "zfs destroy "*)
    exists "$2" || { echo "cannot open '$2': dataset does not exist" >&2; exit 1; }
    ds_file "$2"
    rm -f "$REPLY" ;;
  "zpool list -H -o name "*) [[ -f $state/pools/$5 ]] || { echo "cannot open '$5': no such pool" >&2; exit 1; }; echo "$5" ;;
  "zpool status"*) shift; zpool_status "$@" ;;
  "zpool create "*) shift; zpool_create "$@" ;;
  "zpool get ashift "*) printf 'NAME PROPERTY VALUE SOURCE\n%s ashift %s local\n' "$3" "$(<"$state/pools/$3.ashift")" ;;
  "zfs list -H -o name "*@*) snap_file "$5"; [[ -e $REPLY ]] || { echo "cannot open '$5': dataset does not exist" >&2; exit 1; }; echo "$5" ;;
  "zfs list -H -o name "*) exists "$5" || { echo "cannot open '$5': dataset does not exist" >&2; exit 1; }; echo "$5" ;;
  "zfs get -H -o value "*@*) snap_file "$6"; [[ -e $REPLY ]] || { echo "cannot open '$6'" >&2; exit 1; }; snap_prop "$5" "$6" ;;
  "zfs get -H -o value mounted "*)
    exists "$6" || { echo "cannot open '$6': dataset does not exist" >&2; exit 1; }
    prop_of mountpoint "$6"
    if [[ -n ${FAKE_ZFS_MOUNTS:-} && -L $REPLY ]]; then echo yes; else get_prop mounted "$6"; fi ;;
  "zfs unmount "*) exists "$2" || { echo "cannot open '$2': dataset does not exist" >&2; exit 1; }; fake_unmount "$2" ;;
  "zfs get -H -o value "*) exists "$6" || { echo "cannot open '$6': dataset does not exist" >&2; exit 1; }; get_prop "$5" "$6" ;;
  "zfs set mountpoint="*)
    exists "$3" || exit 1
    if [[ -n ${FAKE_ZFS_MOUNTS:-} && -d ${2#*=} && ! -L ${2#*=} ]] &&
      [[ -n $(/usr/bin/find "${2#*=}" -mindepth 1 -maxdepth 1 -print -quit) ]]; then
      echo "cannot mount '${2#*=}': directory is not empty" >&2
      exit 1
    fi
    fake_unmount "$3"
    set_prop "$2" "$3"
    fake_mount "$3" "${2#*=}" ;;
  "zfs set "*) exists "$3" || exit 1; set_prop "$2" "$3" ;;
  "zfs load-key "*) exists "$2" || exit 1; set_prop keystatus=available "$2" ;;
  "zfs mount "*) exists "$2" || exit 1 ;;
  "zfs get -H -p -o value available "*) exists "$7" || exit 1; echo "${FAKE_AVAILABLE:-1000000000000}" ;;
  "zfs inherit "*)
    # a user property set locally goes (the fake has no inheritance from parents)
    exists "$3" || exit 1
    ds_file "$3"
    grep -v "^$2=" "$REPLY" >"$REPLY.new" || true
    mv "$REPLY.new" "$REPLY" ;;
  "zfs create "*)
    shift
    props=()
    while [[ $1 == -o ]]; do props+=("$2"); shift 2; done
    exists "$1" && { echo "cannot create '$1': dataset already exists" >&2; exit 1; }
    exists "${1%/*}" || { echo "cannot create '$1': parent does not exist" >&2; exit 1; }
    ds_file "$1"
    : >"$REPLY"
    for p in "${props[@]}"; do set_prop "$p" "$1"; done
    ;;
  *) echo "fake $cmd: unsupported call: $*" >&2; exit 2 ;;
esac
