#!/usr/bin/env bats
# The VIP script (role "vip"), with `ip` and systemctl as stateful stubs (fake_ip.bash,
# fake_systemctl) and the unit file moved into a sandbox. The kernel's routing for real:
# tests/test_vip_netns.py.

load test_helper

setup() {
  VIP_SCRIPT_IN_BUNDLE=$(script_of vip)
  [[ -n $VIP_SCRIPT_IN_BUNDLE ]] || skip "no managed virtual IP in this bundle's host spec"
  setup_stubs
  fake_ownership
  fake_ip
  fake_systemctl
  export FAKE_UNIT_DIR=$SANDBOX/etc/systemd/system
  UNIT=$(query "facts['vip']['unit']")
  VIP=$(query "facts['vip']['address']")
  CIDR=$VIP/$(query "facts['vip']['prefix']")
  INTERFACE=$(query "facts['vip']['interface']")
  export FAKE_IP_LINKS="lo $INTERFACE eth9"
  export FAKE_IP_DEV=$INTERFACE
  mapfile -t NODES < <(query "facts['vip']['nodes']")
  VIP_SCRIPT=$(rebase "$VIP_SCRIPT_IN_BUNDLE" UNIT_FILE="$FAKE_UNIT_DIR/$UNIT")
}

# route_line NODE: the fake kernel's route to NODE (empty if none)
route_line() {
  awk -v d="$1" '$1 == d' "$SANDBOX/.net/routes" 2>/dev/null || true
}

# net_state: the fake kernel's addresses and routes
net_state() {
  cat "$SANDBOX/.net/addresses" "$SANDBOX/.net/routes" 2>/dev/null | sort
}

@test "vip: brings the address up on the spec's interface and routes every primary and HA partner from it" {
  run -0 "$VIP_SCRIPT"
  grep -qxF "$INTERFACE $CIDR" "$SANDBOX/.net/addresses"
  ((${#NODES[@]} > 0))
  for node in "${NODES[@]}"; do
    [[ $(route_line "$node") == "$node dev $INTERFACE scope link src $VIP" ]]
  done
  [[ $output == *"done: connections to ${NODES[*]} leave from $VIP"* ]]
}

@test "vip: a primary behind a gateway is routed through that gateway, from the VIP" {
  export FAKE_IP_ONLINK='^$' FAKE_IP_GATEWAY=10.9.8.1
  run -0 "$VIP_SCRIPT"
  for node in "${NODES[@]}"; do
    [[ $(route_line "$node") == "$node via 10.9.8.1 dev $INTERFACE src $VIP" ]]
  done
}

@test "vip: the enabled unit applies exactly what the script does, and its stop undoes it" {
  run -0 "$VIP_SCRIPT"
  applied=$(net_state)
  [ -e "$SANDBOX/.systemd/$UNIT.enabled" ]
  [ -e "$SANDBOX/.systemd/$UNIT.active" ]
  unit=$FAKE_UNIT_DIR/$UNIT
  grep -qx 'Type=oneshot' "$unit"
  grep -qx 'RemainAfterExit=yes' "$unit"
  grep -qx 'WantedBy=multi-user.target' "$unit"
  # stop: everything gone; start (as at boot): the same addresses and routes as the script's
  run -0 systemctl stop "$UNIT"
  [ -z "$(net_state)" ]
  run -0 systemctl start "$UNIT"
  [ "$(net_state)" = "$applied" ]
}

@test "vip: a re-run changes nothing and says so" {
  run -0 "$VIP_SCRIPT"
  before=$(world_state)
  : >"$STUB_LOG"
  run -0 "$VIP_SCRIPT"
  [ "$(world_state)" = "$before" ]
  [ -z "$(changing_calls | grep -Ev '^(ip -o |systemctl is-|stat )')" ]
  [[ $output == *"$CIDR on $INTERFACE: already present"* ]]
  [[ $output == *"already routed from $VIP"* ]]
  [[ $output == *"already up to date"* ]]
  [[ $output == *"already enabled"* && $output == *"already active"* ]]
}

@test "vip: --dry-run prints the commands and the unit, changes nothing" {
  run -0 "$VIP_SCRIPT" --dry-run
  [ -z "$(net_state)" ]
  [ ! -e "$FAKE_UNIT_DIR/$UNIT" ]
  [ -z "$(changing_calls | grep -Ev '^(ip -o |systemctl is-|stat )')" ]
  [[ $output == *"would run: "*"ip address replace $CIDR dev $INTERFACE"* ]]
  [[ $output == *"would write $FAKE_UNIT_DIR/$UNIT"* ]]
  [[ $output == *"+ExecStart="*"route replace ${NODES[0]}/32"* ]]
}

@test "vip: --remove undoes the routes, the address and the unit; it asks first" {
  run -0 "$VIP_SCRIPT"
  run -4 "$VIP_SCRIPT" --remove </dev/null
  grep -qxF "$INTERFACE $CIDR" "$SANDBOX/.net/addresses"
  run -0 "$VIP_SCRIPT" --remove --yes
  [ -z "$(net_state)" ]
  [ ! -e "$FAKE_UNIT_DIR/$UNIT" ]
  [ -z "$(ls -A "$SANDBOX/.systemd")" ]
  : >"$STUB_LOG"
  run -0 "$VIP_SCRIPT" --remove --yes
  [ -z "$(changing_calls | grep -Ev '^(ip -o |systemctl is-|stat )')" ]
}

@test "vip: --remove also takes down what a stopped unit left behind" {
  run -0 "$VIP_SCRIPT"
  rm "$SANDBOX/.systemd/$UNIT.active"
  run -0 "$VIP_SCRIPT" --remove --yes
  [ -z "$(net_state)" ]
  calls "^ip route del ${NODES[0]}/32$" | grep -q .
  calls "^ip address del $CIDR dev $INTERFACE$" | grep -q .
}

@test "vip: drops its route to an address the specs no longer name, keeps other routes" {
  run -0 "$VIP_SCRIPT"
  echo "10.99.0.7 via 192.168.1.1 dev $INTERFACE src $VIP" >>"$SANDBOX/.net/routes"
  echo "10.99.0.8 via 192.168.1.1 dev $INTERFACE src 192.168.1.200" >>"$SANDBOX/.net/routes"
  run -0 "$VIP_SCRIPT"
  [ -z "$(route_line 10.99.0.7)" ]
  [ -n "$(route_line 10.99.0.8)" ]
}

@test "vip: refuses when the address is already configured elsewhere, changes nothing" {
  mkdir -p "$SANDBOX/.net"
  echo "eth9 $VIP/32" >"$SANDBOX/.net/addresses"
  run -3 "$VIP_SCRIPT"
  [[ $output == *"$VIP is already configured as: eth9 $VIP/32"* ]]
  [ -z "$(changing_calls | grep -Ev '^(ip -o |systemctl is-|stat )')" ]
}

@test "vip: refuses when the interface does not exist" {
  export FAKE_IP_LINKS="lo eth9"
  run -3 "$VIP_SCRIPT"
  [[ $output == *"interface $INTERFACE not found"* ]]
  [ -z "$(net_state)" ]
}

@test "vip: refuses a primary that is an address of this host, before changing anything" {
  export FAKE_IP_HOST=${NODES[0]}
  run -3 "$VIP_SCRIPT"
  [[ $output == *"${NODES[0]} is an address of this host"* ]]
  [ -z "$(net_state)" ]
}
