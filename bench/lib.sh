# Shared by the bench/*/run scripts (sourced): timing whole commands so that a repetition's time
# counts only once its result has been checked.
#
# The caller sets: $work (with a logs/ folder), $results (NAME\tREP\tSECONDS\tPEAK_RSS_KIB lines)
# and $failures (the names of measurements that failed, one per line).

# /usr/bin/time (Debian's package time) gives every measurement its peak RSS.
if [ ! -x /usr/bin/time ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time > /dev/null
fi

now() { date +%s.%N; }

# measure NAME REP EXPECTED_EXIT COMMAND…: runs COMMAND with stdout in logs/NAME-REP.out and
# stderr in logs/NAME-REP.err; when it exits with EXPECTED_EXIT, its wall time and peak RSS wait
# in logs/NAME-REP.time for `keep` to accept them. Returns 1 (and records the failure) otherwise.
measure() {
  local name=$1 rep=$2 expected=$3; shift 3
  local out="$work/logs/$name-$rep.out" err="$work/logs/$name-$rep.err" t0 t1 rc=0
  rm -f "$work/logs/$name-$rep.time"
  t0=$(now)
  /usr/bin/time -f %M -o "$work/logs/rss" "$@" > "$out" 2> "$err" || rc=$?
  t1=$(now)
  if [ "$rc" != "$expected" ]; then
    echo "   $name (repetition $rep) exited with $rc, not $expected:"
    tail -30 "$err" | sed 's/^/     /'
    echo "$name" >> "$failures"
    return 1
  fi
  printf '%s\t%s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
    "$(tail -1 "$work/logs/rss")" > "$work/logs/$name-$rep.time"
}

# keep NAME REP CHECK…: counts the repetition's time only when the command CHECK accepts its
# result (a repetition that `measure` refused is skipped).
keep() {
  local name=$1 rep=$2; shift 2
  local timing="$work/logs/$name-$rep.time" secs rss
  [ -f "$timing" ] || return 0
  if ! "$@"; then
    echo "   $name (repetition $rep): wrong result, its time is left out"
    echo "$name" >> "$failures"
    return 0
  fi
  IFS=$'\t' read -r secs rss < "$timing"
  echo -e "$name\t$rep\t$secs\t$rss" >> "$results"
  printf '   %-18s rep %s: %8.2f s  peak RSS %6d MiB  (result checked)\n' "$name" "$rep" "$secs" $((rss / 1024))
}

# startup NAME FILE COMMAND…: appends NAME\tSECONDS to FILE, the best of five wall times of
# COMMAND, which starts the program and exits: the start-up inside every whole-process time.
startup() {
  local name=$1 file=$2 best="" t0 t1 secs; shift 2
  for _ in 1 2 3 4 5; do
    t0=$(now)
    "$@" > /dev/null 2>&1 || { echo "   start-up of $name failed: $*"; echo "startup_$name" >> "$failures"; return 0; }
    t1=$(now)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    if [ -z "$best" ] || awk -v a="$secs" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$secs; fi
  done
  echo -e "$name\t$best" >> "$file"
}
