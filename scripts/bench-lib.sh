# Shared by scripts/bench.sh and scripts/bench-crtd.sh (sourced): figures
# from runs, as text.

# median of the arguments (numbers); the mean of the middle two for an even count
median() {
  printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
    END { if (NR == 0) exit 1
          if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
minimum() { printf '%s\n' "$@" | sort -g | head -n 1; }
maximum() { printf '%s\n' "$@" | sort -g | tail -n 1; }
# ratio A/B with two decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) exit 1; printf "%.2f\n", a / b }'; }
# "yes" if  VALUE OP LIMIT  holds (OP: le | ge)
met() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    ok = (op == "le") ? (v <= l) : (v >= l); print (ok ? "yes" : "no") }'
}
fmt1() { awk -v v="$1" 'BEGIN { printf "%.1f\n", v }'; }
fmt0() { awk -v v="$1" 'BEGIN { printf "%.0f\n", v }'; }

# Starts a crtd of the caller's own: its config (TOML on stdin) goes to DIR/config.toml,
# its log to DIR/crtd.log; waits up to 10 s for its root socket DIR/crtd.sock (the
# config must put it there). Sets crtd_pid. Fails, showing crtd's log, if it does
# not come up.
start_own_crtd() {
  local dir=$1 i
  cat >"$dir/config.toml"
  crtd --config "$dir/config.toml" 2>"$dir/crtd.log" &
  crtd_pid=$!
  for i in $(seq 1 100); do [ -S "$dir/crtd.sock" ] && return 0; sleep 0.1; done
  cat "$dir/crtd.log" >&2
  return 1
}
