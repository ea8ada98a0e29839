#!/usr/bin/env bash
# cluster.sh - throw-away N-node RabbitMQ cluster on ONE machine (loopback only),
# for automated node-failure tests with quorum queues.
#
# Source: copied from the project's shared operations notes (ops/rabbitmq-cluster/cluster.sh,
# "3-node RabbitMQ cluster with quorum queues on ONE 2-core machine"), unchanged below this
# note, so the repository stands alone. Used by tests/cluster/ (node-failure tests) and by
# scripts that need a throw-away cluster. Read the gotchas in docs/operations.md
# ("Broker cluster") before changing how it is used.
#
# Usage: cluster.sh [-d BASE_DIR] COMMAND [N]
#   up             wipe BASE_DIR/nodes, boot nodes c1..cN, join c2..cN to c1, wait
#   down           stop every node of this cluster (graceful, then SIGKILL), keep logs
#   clean          down + rm -rf BASE_DIR/nodes BASE_DIR/home
#   status         cluster_status as seen from the first running node
#   kill-node N    SIGKILL node N's Erlang VM (hard crash)
#   stop-node N    graceful stop of node N's VM (rabbitmqctl stop)
#   start-node N   boot node N again (it rejoins the cluster from its own data dir)
#   stop-app N     rabbitmqctl stop_app on node N (VM and Erlang distribution stay up)
#   start-app N    rabbitmqctl start_app on node N
#   env N          print the environment used for node N (eval-able)
#   ctl N ARGS...  run rabbitmqctl ARGS against node N (e.g. ctl 1 list_queues)
#   queues N ARGS  run rabbitmq-queues ARGS against node N (e.g. queues 1 quorum_status q)
#   diag N ARGS    run rabbitmq-diagnostics ARGS against node N
#   pids           print "N PID" for every running node
#
# BASE_DIR defaults to $RMQ_CLUSTER_DIR, then to the directory holding this script.
# Tunables (environment):
#   RMQ_NODES=3            number of nodes
#   RMQ_PREFIX=c           node names: ${RMQ_PREFIX}1@localhost ...
#   RMQ_AMQP_BASE=5680     node i listens for AMQP on 127.0.0.1:$((RMQ_AMQP_BASE+i))
#   RMQ_DIST_BASE=25680    node i uses Erlang distribution port $((RMQ_DIST_BASE+i))
#   RMQ_SBIN=...           dir holding rabbitmq-server/rabbitmqctl. Default: /usr/lib/rabbitmq/bin
#                          when present (deb/rpm packages; avoids the /usr/sbin wrappers, which
#                          su to the 'rabbitmq' user, cd to /var/lib/rabbitmq and log to
#                          /var/log/rabbitmq), else the dir of `rabbitmq-server` in PATH.
#   RMQ_ERL_ARGS=""        extra VM flags, e.g. "+S 1:1" to give each node one scheduler
#   RMQ_BOOT_TIMEOUT=120   seconds to wait for a node to boot
# Runs as any user that can write BASE_DIR (root works too). Never touches the
# system node (rabbit@host), /var/lib/rabbitmq or /etc/rabbitmq, and never kills epmd
# (the nodes register with whatever epmd runs on 4369; if none runs, the first node
# starts one as the current user and it stays after `down`, which is harmless).
set -euo pipefail

BASE="${RMQ_CLUSTER_DIR:-$(cd "$(dirname "$0")" && pwd)}"
if [ "${1:-}" = "-d" ]; then BASE="$2"; shift 2; fi
mkdir -p "$BASE"; BASE="$(cd "$BASE" && pwd)"

NODES="${RMQ_NODES:-3}"
PREFIX="${RMQ_PREFIX:-c}"
AMQP_BASE="${RMQ_AMQP_BASE:-5680}"
DIST_BASE="${RMQ_DIST_BASE:-25680}"
BOOT_TIMEOUT="${RMQ_BOOT_TIMEOUT:-120}"
if [ -z "${RMQ_SBIN:-}" ]; then
  if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then RMQ_SBIN=/usr/lib/rabbitmq/bin
  else RMQ_SBIN="$(dirname "$(command -v rabbitmq-server)")"; fi
fi

log() { printf '%s %s\n' "$(date +%H:%M:%S.%N | cut -c1-12)" "$*" >&2; }
name() { echo "${PREFIX}$1@localhost"; }
ndir() { echo "$BASE/nodes/${PREFIX}$1"; }
pidfile() { echo "$(ndir "$1")/rabbit.pid"; }   # written by RabbitMQ, DELETED by it on clean stop
ourpidfile() { echo "$(ndir "$1")/node.pid"; }  # our copy, survives stop/kill
# is PID $2 the Erlang VM of node $1 of THIS cluster? (guards against PID reuse and
# against ever touching the system node: its VM has a different -home / NODENAME)
is_ours() {
  local i="$1" p="$2"
  [ -n "$p" ] && [ -r "/proc/$p/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$p/cmdline" | grep -qF -- "-home $BASE/home " || return 1
  if [ -r "/proc/$p/environ" ]; then
    tr '\0' '\n' < "/proc/$p/environ" | grep -qx "RABBITMQ_NODENAME=$(name "$i")" || return 1
  fi
}
nodepid() {
  local i="$1" f p
  for f in "$(ourpidfile "$i")" "$(pidfile "$i")"; do
    [ -s "$f" ] || continue; p="$(cat "$f")"
    if is_ours "$i" "$p"; then echo "$p"; return 0; fi
  done
  return 0
}
alive() { [ -n "$(nodepid "$1")" ]; }
# pid exists and is not a zombie
running() { [ -r "/proc/$1/status" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
wait_gone() { local p="$1" n; for n in $(seq 1 "${2:-300}"); do running "$p" || return 0; sleep 0.1; done; return 1; }

# Environment of node $1, exported into the *current* (sub)shell.
node_env() {
  local i="$1" d; d="$(ndir "$i")"
  export HOME="$BASE/home"                 # $HOME/.erlang.cookie: shared by nodes AND CLI
  export RABBITMQ_NODENAME; RABBITMQ_NODENAME="$(name "$i")"
  export RABBITMQ_USE_LONGNAME=false
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$((AMQP_BASE + i))
  export RABBITMQ_DIST_PORT=$((DIST_BASE + i))
  export RABBITMQ_MNESIA_BASE="$d/mnesia"
  export RABBITMQ_LOG_BASE="$d/log"
  export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"   # "[]." => no management
  export RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"         # empty: ignore /etc/rabbitmq
  export RABBITMQ_PID_FILE; RABBITMQ_PID_FILE="$(pidfile "$i")"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} ${RMQ_ERL_ARGS:-}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"   # CLI: loopback too
}

ctl() { local i="$1"; shift; ( node_env "$i"; "$RMQ_SBIN/rabbitmqctl" -n "$(name "$i")" "$@" ); }
tool() { local t="$1" i="$2"; shift 2; ( node_env "$i"; "$RMQ_SBIN/$t" -n "$(name "$i")" "$@" ); }

write_node_files() {
  local i="$1" d; d="$(ndir "$i")"
  mkdir -p "$d/mnesia" "$d/log"
  : > "$d/rabbitmq-env.conf"
  echo '[].' > "$d/enabled_plugins"
  echo '[].' > "$d/advanced.config"
  cat > "$d/rabbitmq.conf" <<EOF
# node $(name "$i") - generated by cluster.sh
log.console = false
log.file.level = info
disk_free_limit.absolute = 50MB
# guest/guest is accepted from loopback only, which is all we use
cluster_partition_handling = ignore
EOF
}

boot() {   # start node $1 detached and wait until the rabbit app runs
  local i="$1"
  if alive "$i"; then log "$(name "$i") already running (pid $(nodepid "$i"))"; return 0; fi
  rm -f "$(pidfile "$i")"
  ( node_env "$i"; cd "$(ndir "$i")"; "$RMQ_SBIN/rabbitmq-server" -detached ) \
      > "$(ndir "$i")/log/startup.out" 2>&1
}

wait_booted() {
  local i="$1"
  ctl "$i" wait --timeout "$BOOT_TIMEOUT" "$(pidfile "$i")" >/dev/null \
    || { log "node $(name "$i") failed to boot; see $(ndir "$i")/log"; return 1; }
  cp "$(pidfile "$i")" "$(ourpidfile "$i")"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_up() {
  local t0 i port; t0=$(date +%s.%N)
  cmd_down >/dev/null 2>&1 || true
  for i in $(seq 1 "$NODES"); do
    for port in $((AMQP_BASE + i)) $((DIST_BASE + i)); do
      if port_busy "$port"; then log "port $port on 127.0.0.1 is already in use"; exit 1; fi
    done
  done
  trap 'log "up failed: tearing down"; cmd_down; exit 1' ERR
  rm -rf "$BASE/nodes"; mkdir -p "$BASE/home" "$BASE/nodes"
  if [ ! -s "$BASE/home/.erlang.cookie" ]; then
    ( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$BASE/home/.erlang.cookie" )
  fi
  chmod 400 "$BASE/home/.erlang.cookie"
  for i in $(seq 1 "$NODES"); do write_node_files "$i"; done
  for i in $(seq 1 "$NODES"); do boot "$i"; done          # boot all in parallel
  for i in $(seq 1 "$NODES"); do wait_booted "$i"; log "$(name "$i") up, pid $(nodepid "$i")"; done
  for i in $(seq 2 "$NODES"); do
    ctl "$i" stop_app >/dev/null
    ctl "$i" join_cluster "$(name 1)" >/dev/null
    ctl "$i" start_app >/dev/null
    log "$(name "$i") joined $(name 1)"
  done
  ctl 1 await_online_nodes "$NODES" --timeout 60 >/dev/null
  trap - ERR
  log "cluster of $NODES up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s; AMQP ports $((AMQP_BASE+1))-$((AMQP_BASE+NODES))"
}

cmd_down() {
  local i p pids=()
  for i in $(seq 1 "$NODES"); do
    p="$(nodepid "$i")"; [ -n "$p" ] || continue
    pids[$i]="$p"
    ( ctl "$i" stop >/dev/null 2>&1 || true ) &    # graceful: stops the app AND the VM
  done
  wait
  for i in "${!pids[@]}"; do
    p="${pids[$i]}"
    if ! wait_gone "$p" 300 && is_ours "$i" "$p"; then
      log "$(name "$i") pid $p still alive after 30 s: SIGKILL"; kill -9 "$p" || true
    fi
    log "$(name "$i") stopped (pid $p)"
  done
  for i in $(seq 1 "$NODES"); do rm -f "$(pidfile "$i")" "$(ourpidfile "$i")"; done
}

cmd_status() {
  local i
  for i in $(seq 1 "$NODES"); do
    if alive "$i"; then ctl "$i" cluster_status; return; fi
  done
  echo "no node running"; return 1
}

need_n() { [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$NODES" ] || { echo "need node number 1..$NODES" >&2; exit 2; }; }

cmd="${1:-}"; shift || true
case "$cmd" in
  up)         cmd_up ;;
  down)       cmd_down ;;
  clean)      cmd_down; rm -rf "$BASE/nodes" "$BASE/home" ;;
  status)     cmd_status ;;
  kill-node)  need_n "${1:-}"; p="$(nodepid "$1")"; [ -n "$p" ] || { log "$(name "$1") not running"; exit 1; }
              kill -9 "$p"; wait_gone "$p" 100; log "SIGKILLed $(name "$1") pid $p" ;;
  stop-node)  need_n "${1:-}"; p="$(nodepid "$1")"; [ -n "$p" ] || { log "$(name "$1") not running"; exit 1; }
              ctl "$1" stop >/dev/null; wait_gone "$p" 300; log "stopped $(name "$1") pid $p" ;;
  start-node) need_n "${1:-}"; boot "$1"; wait_booted "$1"; log "$(name "$1") up, pid $(nodepid "$1")" ;;
  stop-app)   need_n "${1:-}"; ctl "$1" stop_app ;;
  start-app)  need_n "${1:-}"; ctl "$1" start_app ;;
  env)        need_n "${1:-}"; ( node_env "$1"; env | grep -E '^(HOME|RABBITMQ_)' | sed 's/^/export /;s/=\(.*\)$/="\1"/' ) ;;
  ctl)        need_n "${1:-}"; n="$1"; shift; ctl "$n" "$@" ;;
  queues)     need_n "${1:-}"; n="$1"; shift; tool rabbitmq-queues "$n" "$@" ;;
  diag)       need_n "${1:-}"; n="$1"; shift; tool rabbitmq-diagnostics "$n" "$@" ;;
  pids)       for i in $(seq 1 "$NODES"); do alive "$i" && echo "$i $(nodepid "$i")"; done; true ;;
  *)          awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; exit 2 ;;
esac
