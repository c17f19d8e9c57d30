#!/bin/sh
# Starts one Sentinel of the StatefulSet wavix-redis-sentinel, watching the primary find-primary.sh names.
# A Sentinel keeps what it learns in its configuration (RUN_DIR, an emptyDir): a restarted container keeps
# it; a new pod asks the others. Host names, not addresses, are announced and handed out (a pod's address
# changes when it is re-created; its name does not).
set -eu
. "$(dirname "$0")/find-primary.sh"
: "${RUN_DIR:?}" "${REDIS_PASSWORD:?}" "${QUORUM:?}" "${DOWN_AFTER_MS:?}" "${FAILOVER_TIMEOUT_MS:?}"
conf="$RUN_DIR/sentinel.conf"
if [ ! -s "$conf" ]; then
  leader=$(primary '')
  # Sentinel refuses to start on a name it cannot resolve: wait until the primary's pod has an address.
  tries=0
  until timeout 3 redis-cli -h "$leader" PING >/dev/null 2>&1 || [ "$tries" -ge 40 ]; do
    tries=$((tries + 1)); sleep 3
  done
  umask 077
  {
    echo "port 26379"
    echo "dir $RUN_DIR"
    echo "sentinel resolve-hostnames yes"
    echo "sentinel announce-hostnames yes"
    echo "sentinel announce-ip ${HOSTNAME}.wavix-redis-sentinel"
    echo "sentinel monitor $SENTINEL_MASTER $leader 6379 $QUORUM"
    echo "sentinel auth-pass $SENTINEL_MASTER $REDIS_PASSWORD"
    echo "sentinel down-after-milliseconds $SENTINEL_MASTER $DOWN_AFTER_MS"
    echo "sentinel failover-timeout $SENTINEL_MASTER $FAILOVER_TIMEOUT_MS"
    echo "sentinel parallel-syncs $SENTINEL_MASTER 1"
  } > "$conf"
  echo "sentinel-start: watching $SENTINEL_MASTER at $leader"
fi
exec redis-server "$conf" --sentinel
