#!/bin/sh
# preStop of a node: a primary about to stop (rollout, node drain) first hands over to a replica through
# the Sentinels (SENTINEL FAILOVER), so a planned restart costs one quick switch instead of DOWN_AFTER_MS of
# a silent primary and then an election. Waits at most 20 s; a replica just stops.
. "$(dirname "$0")/find-primary.sh"
role() { timeout 3 redis-cli INFO replication 2>/dev/null | tr -d '\r' | sed -n 's/^role://p'; }
[ "$(role)" = master ] || exit 0
i=0
while [ "$i" -lt "$SENTINELS" ]; do
  REDISCLI_AUTH='' timeout 3 redis-cli -h "wavix-redis-sentinel-$i.wavix-redis-sentinel" -p 26379 \
    SENTINEL FAILOVER "$SENTINEL_MASTER" 2>/dev/null | grep -q OK && break
  i=$((i + 1))
done
waited=0
while [ "$(role)" = master ] && [ "$waited" -lt 20 ]; do
  sleep 1; waited=$((waited + 1))
done
exit 0
