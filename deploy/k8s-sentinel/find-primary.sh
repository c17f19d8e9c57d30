# Sourced by redis-start.sh and sentinel-start.sh: `primary` prints the host name of the current primary.
#   1. what a Sentinel says (after a failover the primary may be any pod; the Sentinels know which);
#   2. else a node that says it is a primary (every Sentinel restarted at once: ask the nodes themselves);
#   3. else pod 0 (the very first start: nobody has an answer yet).
# Every question has a 3 s bound, so a pod that is gone costs that long, not a TCP timeout.
# Environment (redis.yaml, sentinel.yaml): SENTINEL_MASTER, NODES, SENTINELS, REDIS_PASSWORD (the nodes'; the
# Sentinels have none, so they are asked without it).

node() { echo "wavix-redis-$1.wavix-redis"; }

sentinel_says() {
  i=0
  while [ "$i" -lt "$SENTINELS" ]; do
    host=$(REDISCLI_AUTH='' timeout 3 redis-cli -h "wavix-redis-sentinel-$i.wavix-redis-sentinel" -p 26379 \
      --raw SENTINEL get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null | head -n 1) || host=''
    case "$host" in
      wavix-redis-*) echo "$host"; return 0 ;;
    esac
    i=$((i + 1))
  done
  return 1
}

node_says() {
  i=0
  while [ "$i" -lt "$NODES" ]; do
    if [ "$(node "$i")" != "$1" ] &&
      REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli -h "$(node "$i")" INFO replication 2>/dev/null |
      grep -q '^role:master'; then
      node "$i"
      return 0
    fi
    i=$((i + 1))
  done
  return 1
}

# `primary ME`: ME is this pod's own name (a node asks the others, not itself); empty for a Sentinel.
primary() {
  sentinel_says || node_says "$1" || node 0
}
