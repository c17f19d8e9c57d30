#!/bin/sh
# Starts one node of the StatefulSet wavix-redis: the primary, or a replica of the primary find-primary.sh
# names. The configuration is written afresh at every start (RUN_DIR, an emptyDir; the data is in /data), so
# a pod never comes back in a role the Sentinels have since given to another. The password is in the file,
# not on the command line.
set -eu
. "$(dirname "$0")/find-primary.sh"
: "${RUN_DIR:?}" "${REDIS_PASSWORD:?}" "${MAXMEMORY:?}"
me=$(node "${HOSTNAME##*-}")
leader=$(primary "$me")
umask 077
{
  echo "port 6379"
  echo "dir /data"
  echo "appendonly yes"
  echo "appendfsync everysec"
  echo "maxmemory $MAXMEMORY"
  echo "maxmemory-policy noeviction"
  echo "replica-announce-ip $me"
  echo "requirepass $REDIS_PASSWORD"
  echo "masterauth $REDIS_PASSWORD"
  if [ "$leader" != "$me" ]; then echo "replicaof $leader 6379"; fi
} > "$RUN_DIR/redis.conf"
echo "redis-start: $me starts as $([ "$leader" = "$me" ] && echo primary || echo "replica of $leader")"
exec redis-server "$RUN_DIR/redis.conf"
