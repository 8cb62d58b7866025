#!/usr/bin/env bash
# A small stateful stand-in for iproute2's `ip`, for the bats suites: the addresses and routes
# the VIP script reads and changes, kept as files under $SANDBOX/.net (so world_state sees
# them), each call logged to $STUB_LOG. The kernel's own routing is two rules: addresses
# matching $FAKE_IP_ONLINK (an ERE) are on the link of $FAKE_IP_DEV, all others go through
# $FAKE_IP_GATEWAY. Like the kernel, deleting an address drops the routes whose source it is,
# and a route's source must be an address of the host. The real command is proven in
# tests/test_vip_netns.py.
set -euo pipefail
# the suites may gate commands on PATH (fault_point): the fake's own file work is not a change
mv() { /bin/mv "$@"; }
rm() { /bin/rm "$@"; }
net=${SANDBOX:?SANDBOX not set}/.net
/bin/mkdir -p "$net"
touch "$net/addresses" "$net/routes"
line=ip
for arg in "$@"; do line+=" $arg"; done
printf '%s\n' "$line" >>"${STUB_LOG:?STUB_LOG not set}"

links=${FAKE_IP_LINKS:-lo eth0 bond0}
dev=${FAKE_IP_DEV:-bond0}
host_address=${FAKE_IP_HOST:-192.168.1.200}
onlink=${FAKE_IP_ONLINK:-^192\.168\.1\.}
gateway=${FAKE_IP_GATEWAY:-192.168.1.1}

# addresses: "<dev> <address>/<prefix>"; routes: lines as `ip -o route show` prints them
is_local() { [[ $1 == "$host_address" ]] || grep -q " $1/" "$net/addresses"; }
route_of() { awk -v d="$1" '$1 == d' "$net/routes"; }
without_route() {
  awk -v d="$1" '$1 != d' "$net/routes" >"$net/routes.new"
  mv "$net/routes.new" "$net/routes"
}
fail() {
  echo "$1" >&2
  exit 2
}

while [[ ${1:-} == -* ]]; do shift; done  # -o, -4: the output is always one line per item
object=${1:-} verb=${2:-}
shift 2 || true
case "$object $verb" in
  "link show")
    [[ $1 == dev && " $links " == *" $2 "* ]] || fail "Device \"${2:-}\" does not exist."
    echo "2: $2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP"
    ;;
  "address show")
    [[ $1 == to ]] || fail "fake ip: address show needs: to ADDRESS/32"
    awk -v a="${2%/*}" '{ split($2, p, "/") } p[1] == a {
      print "2: " $1 "    inet " $2 " scope global " $1 "\\       valid_lft forever" }' "$net/addresses"
    ;;
  "address replace" | "address del")
    cidr=$1 device=$3
    [[ $2 == dev && " $links " == *" $device "* ]] || fail "Cannot find device \"$device\""
    grep -vxF "$device $cidr" "$net/addresses" >"$net/addresses.new" || true
    if [[ $verb == replace ]]; then
      echo "$device $cidr" >>"$net/addresses.new"
    else
      grep -qxF "$device $cidr" "$net/addresses" || fail "RTNETLINK answers: Cannot assign requested address"
      awk -v s="${cidr%/*}" '{ for (i = 1; i < NF; i++) if ($i == "src" && $(i + 1) == s) next; print }' \
        "$net/routes" >"$net/routes.new"
      mv "$net/routes.new" "$net/routes"
    fi
    mv "$net/addresses.new" "$net/addresses"
    ;;
  "route get")
    target=$1
    if is_local "$target"; then
      echo "local $target dev lo table local src $target uid 0 \\    cache <local>"
    elif [[ -n $(route_of "$target") ]]; then
      echo "$(route_of "$target") uid 0 \\    cache"
    elif [[ $target =~ $onlink ]]; then
      echo "$target dev $dev src $host_address uid 0 \\    cache"
    else
      echo "$target via $gateway dev $dev src $host_address uid 0 \\    cache"
    fi
    ;;
  "route show")
    case ${1:-} in
      exact) route_of "${2%/32}" ;;
      table) cat "$net/routes" ;;
      *) fail "fake ip: route show needs exact or table" ;;
    esac
    ;;
  "route replace")
    target=${1%/32}
    shift
    words="$*" src=""
    while (($#)); do [[ $1 == src ]] && src=$2; shift; done
    is_local "$src" || fail "Error: Invalid prefsrc address."
    [[ $words == *via* ]] || words=${words/ src / scope link src }
    without_route "$target"
    echo "$target $words" >>"$net/routes"
    ;;
  "route del")
    target=${1%/32}
    [[ -n $(route_of "$target") ]] || fail "RTNETLINK answers: No such process"
    without_route "$target"
    ;;
  *) fail "fake ip: $object $verb is not faked" ;;
esac
