#!/usr/bin/env bash
# bench/plot.sh: the plots of a bench/run-peers.sh run, with gnuplot (Debian gnuplot-nox,
# installed when missing), as PNG next to its table.
#
# usage: bench/plot.sh [DIR]   (default bench/results/latest)
# Reads DIR/results.txt through bench/peers/summarize.py (which also rewrites DIR/table.md)
# and writes:
#   DIR/latency-CASE.png   round-trip latency at p50/p90/p99/p99.9, every server on one
#                          chart, log scale, one chart per scenario (medians over the rounds;
#                          servers with errors in that case left out, named in the title)
#   DIR/throughput.png     msg/s of every server divided by the raw echo's, per echo case
# env: FORMAT=svg writes SVG instead of PNG.
set -u
DIR=${1:-bench/results/latest}
HERE=$(cd "$(dirname "$0")" && pwd)
FORMAT=${FORMAT:-png}

if [ ! -f "$DIR/results.txt" ]; then
    echo "plot.sh: no $DIR/results.txt (run bench/run-peers.sh first)" >&2
    exit 2
fi
if ! command -v gnuplot >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    echo "plot.sh: installing gnuplot-nox" >&2
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gnuplot-nox; } >&2 ||
        { echo "plot.sh: gnuplot not available" >&2; exit 1; }
fi
python3 "$HERE/peers/summarize.py" "$DIR" >/dev/null || exit 1

if [ "$FORMAT" = svg ]; then
    TERM_LINE="set terminal svg size 900,560 dynamic font 'sans,13' background '#ffffff'"
else
    TERM_LINE="set terminal pngcairo size 900,560 font 'sans,11' background '#ffffff'"
fi
STYLE="
set style line 1 lc rgb '#d62728' lw 3 pt 7 ps 1.4
set style line 2 lc rgb '#7f7f7f' lw 2 pt 5 ps 1.2 dt 2
set style line 3 lc rgb '#1f77b4' lw 2 pt 9 ps 1.3
set style line 4 lc rgb '#2ca02c' lw 2 pt 11 ps 1.3
set style line 5 lc rgb '#9467bd' lw 2 pt 13 ps 1.3
set style line 6 lc rgb '#ff7f0e' lw 2 pt 15 ps 1.3
set style line 7 lc rgb '#8c564b' lw 2 pt 3 ps 1.3
set grid ytics mytics lc rgb '#dddddd'
set border 3
set tics nomirror
"
meta="$(sed -n 's/^date: //p' "$DIR/meta.txt"), commit $(sed -n 's/^commit: //p' "$DIR/meta.txt")"
# plot_clauses FILE FORMAT: one plot clause per data column, each in its server's line style
# (the "# styles:" line), FORMAT's %d being the column
plot_clauses() {
    local f=$1 fmt=$2 k=2 st out=""
    local styles
    read -r -a styles <<<"$(sed -n 's/^# styles: //p' "$f")"
    for st in "${styles[@]}"; do
        # shellcheck disable=SC2059
        out="$out${out:+, }'$f' $(printf "$fmt" $k) ls $st title columnheader($k)"
        k=$((k + 1))
    done
    echo "$out"
}
rc=0
for dat in "$DIR"/pct-*.dat; do
    [ -e "$dat" ] || continue
    c=${dat##*/pct-}; c=${c%.dat}
    title=$(sed -n 's/^# title: //p' "$dat")
    left=$(sed -n 's/^# left out (errors): //p' "$dat")
    grep -q '^# styles: .' "$dat" || continue
    sub="medians over $(sed -n 's/^runs: \([0-9]*\) rounds.*/\1/p' "$DIR/meta.txt") round(s); $meta"
    [ -n "$left" ] && sub="$sub; left out for errors: $left"
    gnuplot <<EOF || rc=1
$TERM_LINE
set output '$DIR/latency-$c.$FORMAT'
$STYLE
set title "{/:Bold Round-trip latency: $title}\n{/*0.8 $sub}"
set ylabel 'latency (us, log scale)'
set xlabel 'percentile'
set logscale y
set format y '%g'
set key outside right top vertical
set offsets 0.2, 0.2, 0, 0
set datafile missing '-'
plot $(plot_clauses "$dat" "using 0:%d:xtic(1) with linespoints")
EOF
done

tdat=$DIR/throughput.dat
if [ -f "$tdat" ]; then
    gnuplot <<EOF || rc=1
$TERM_LINE
set output '$DIR/throughput.$FORMAT'
$STYLE
set title "{/:Bold Echo throughput relative to the raw TCP echo (1 = physical limit)}\n{/*0.8 msg/s divided by raw echo's, median of per-round pairs; 0 = not run or errors; $meta}"
set ylabel 'msg/s / raw echo msg/s'
set yrange [0:*]
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#555555'
plot $(plot_clauses "$tdat" "using %d:xtic(1)")
EOF
fi
ls "$DIR"/*."$FORMAT" 2>/dev/null
exit $rc
