# Helpers shared by the bench scripts; `source bench/lib.sh` from the repository root.

# Waits until a server answers on ADDR: ordergate's /healthz, or any answer to
# POST /orders from the bare handler, which has no other route.
wait_up() { until curl -sf "http://$1/healthz" >/dev/null 2>&1 || curl -sf -o /dev/null -X POST "http://$1/orders" 2>/dev/null; do sleep 0.1; done; }

# The median of the numbers on standard input, one a line.
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
