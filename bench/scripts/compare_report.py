#!/usr/bin/env python3
"""Aggregates bench/compare.sh runs: medians per setting, generator and
server, ratios of ringwire to the best peer (per generator), the server's
CPU time per message, a JSON summary, an SVG bar chart, and the Markdown
tables written into BENCHMARKS.md between markers.

    compare_report.py RUNS.jsonl OUT_PREFIX COMMIT ROUNDS SECS

Environment (set by compare.sh): COMPARE_MODE (compare | cpu-table),
COMPARE_CMD (the command line), COMPARE_LAYOUT (which CPUs ran what),
SERVER_CORES / GEN_CORES (marker names for layouts other than 1/1),
WRITE_DOC=0 (leave BENCHMARKS.md alone), AB_MARKER / BASE_BIN / BASE_DESC
(A/B mode). Runs recorded before there were two generators (no "gen" key)
count as `ringwire load` runs.
"""
import html
import json
import os
import platform
import statistics
import subprocess
import sys

runs_path, out, commit, rounds, secs = sys.argv[1:6]
MODE = os.environ.get("COMPARE_MODE", "compare")
CMD = os.environ.get("COMPARE_CMD", f"bench/compare.sh {rounds} {secs}")
LAYOUT = os.environ.get("COMPARE_LAYOUT", "server on CPU 1 (one core), generator on CPU 0 (one thread)")
SERVER_CORES = int(os.environ.get("SERVER_CORES", "1"))
GEN_CORES = int(os.environ.get("GEN_CORES", "1"))
WRITE_DOC = os.environ.get("WRITE_DOC", "1") != "0"
# Marker suffix: the 2-core defaults keep the historical marker names.
SUFFIX = "" if (SERVER_CORES, GEN_CORES) == (1, 1) else f"-server{SERVER_CORES}-gen{GEN_CORES}"

rows = [json.loads(line) for line in open(runs_path) if line.strip()]
for r in rows:
    r.setdefault("gen", "ringwire")
ok = [r for r in rows if "msgs_per_sec" in r and not r.get("failed")]
servers = list(dict.fromkeys(r["server"] for r in rows))
settings = list(dict.fromkeys(r["setting"] for r in rows))
gens = list(dict.fromkeys(r["gen"] for r in rows))
OURS = [s for s in servers if s.startswith("ringwire")]
PEERS = [s for s in servers if not s.startswith("ringwire")]
GEN_NAME = {"ringwire": "`ringwire load`", "raw": "raw-echo-client"}


def run_cpu_us(r):
    """Server CPU time per message in µs for one run."""
    c, m = r.get("server_cpu_percent"), r.get("msgs_per_sec")
    if not isinstance(c, (int, float)) or not m:
        return None
    return c / 100 * 1e6 / m


def values(gen, setting, server, key, sub=None):
    out_ = []
    for r in ok:
        if r["gen"] == gen and r["setting"] == setting and r["server"] == server:
            v = run_cpu_us(r) if key == "cpu_us" else r.get(key)
            if sub is not None and isinstance(v, dict):
                v = v.get(sub)
            if isinstance(v, (int, float)):
                out_.append(v)
    return out_


def med(*a, **k):
    v = values(*a, **k)
    return statistics.median(v) if v else None


def stats(gen, st, sv):
    cpu = values(gen, st, sv, "cpu_us")
    return {
        "msgs_per_sec": med(gen, st, sv, "msgs_per_sec"),
        "p50_us": med(gen, st, sv, "latency_us", "p50"),
        "p99_us": med(gen, st, sv, "latency_us", "p99"),
        "p999_us": med(gen, st, sv, "latency_us", "p999"),
        "server_cpu_percent": med(gen, st, sv, "server_cpu_percent"),
        "client_cpu_percent": med(gen, st, sv, "client_cpu_percent"),
        # Median of the per-run figures (not a ratio of medians), and its range.
        "cpu_us_per_msg": statistics.median(cpu) if cpu else None,
        "cpu_us_per_msg_min": min(cpu) if cpu else None,
        "cpu_us_per_msg_max": max(cpu) if cpu else None,
        "runs": sum(1 for r in ok if r["gen"] == gen and r["setting"] == st and r["server"] == sv),
        "failed": sum(1 for r in rows if r["gen"] == gen and r["setting"] == st and r["server"] == sv
                      and (r.get("failed") or r.get("mismatches") or r.get("errors_total"))),
    }


S = {g: {st: {sv: stats(g, st, sv) for sv in servers} for st in settings} for g in gens}
summary = {"commit": commit, "rounds": int(rounds), "secs": float(secs), "mode": MODE,
           "command": CMD, "layout": LAYOUT, "generators": S,
           # Before #14 there was one generator: "settings" stays `ringwire load`'s.
           "settings": S.get("ringwire", S[gens[0]] if gens else {})}
json.dump(summary, open(out + ".json", "w"), indent=1)


def fmt(v, unit=""):
    if v is None:
        return "–"
    if unit == "rate":
        return f"{v/1e6:.2f}M" if v >= 1e6 else (f"{v/1e3:.0f}k" if v >= 1e4 else f"{v:,.0f}")
    if unit == "%":
        return f"{v:.0f}%"
    return f"{v:,.0f}"


def fus(v):
    """µs with about three significant digits."""
    if v is None:
        return "–"
    if v < 1:
        return f"{v:.3f}"
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def put_table(marker, title, table):
    """Writes `table` into BENCHMARKS.md between the `marker` comments."""
    if not WRITE_DOC:
        return
    path = "BENCHMARKS.md"
    text = open(path).read()
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    block = f"{begin}\n{table}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text += f"\n## {title}\n\n" + block + "\n"
    open(path, "w").write(text)


def machine_line():
    cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
    return (f"Machine: {os.cpu_count()} vCPU ({cpu}), kernel {platform.release()}; commit {commit}; "
            f"{rounds} rounds × {secs} s per run, servers interleaved, medians; {LAYOUT}. "
            f"Generators: {', '.join(GEN_NAME.get(g, g) for g in gens)}. Command: `{CMD}`.")


def best_peer(gen, st, key, lower=False):
    vals = [(S[gen][st][p][key], p) for p in PEERS if S[gen][st][p][key] is not None]
    if not vals:
        return None, None
    return (min if lower else max)(vals)


def ratio(a, b):
    return f"**{a / b:.2f}×**" if a and b else "–"


# A/B mode (BASE_BIN): new build against an older one, per backend and generator.
BASES = [s for s in servers if s.startswith("ringwire-base-")]
if BASES:
    lines = [f"Commit {commit} against `{os.environ.get('BASE_BIN', '?')}`"
             f" ({os.environ.get('BASE_DESC', 'the base build')}); {rounds} rounds × {secs} s, servers "
             f"interleaved, medians; {LAYOUT}. Command: `{CMD}`. "
             "CPU/msg: the server's CPU time per message from /proc/PID/stat in the window "
             "(median of the runs).", ""]
    lines.append("| setting | generator | backend | base msgs/s | new msgs/s | new / base | base CPU/msg | new CPU/msg | new / base |")
    lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for st in settings:
        for g in gens:
            for base in BASES:
                be = base[len("ringwire-base-"):]
                new = f"ringwire-{be}"
                if new not in servers:
                    continue
                b, n = S[g][st][base], S[g][st][new]
                if b["runs"] == 0 and n["runs"] == 0:
                    continue
                if st.startswith("rate-"):
                    key, unit = "p99_us", "p99 µs"
                else:
                    key, unit = "msgs_per_sec", ""
                bv, nv = b[key], n[key]
                bc, nc = b["cpu_us_per_msg"], n["cpu_us_per_msg"]
                r = f"{nv / bv:.2f}" if bv and nv else "–"
                rc = f"{nc / bc:.2f}" if bc and nc else "–"
                label = f"{st} ({unit})" if unit else st
                lines.append(f"| {label} | {GEN_NAME.get(g, g)} | {be} | {fmt(bv)} | {fmt(nv)} | {r} | "
                             f"{fus(bc)} µs | {fus(nc)} µs | {rc} |" if bc and nc else
                             f"| {label} | {GEN_NAME.get(g, g)} | {be} | {fmt(bv)} | {fmt(nv)} | {r} | – | – | – |")
    lines.append("")
    lines.append(f"Every run: `{out}.jsonl`; medians: `{out}.json`.")
    table = "\n".join(lines)
    marker = os.environ.get("AB_MARKER", "compare-ab")
    put_table(marker, f"A/B against an older build ({marker})", table)
    print(table)
    sys.exit(0)


if MODE == "cpu-table":
    data = [st for st in settings if not st.startswith("rate-")]
    uring = "ringwire-uring" if "ringwire-uring" in servers else None
    epoll = "ringwire-epoll" if "ringwire-epoll" in servers else None
    lines = [machine_line(), ""]
    lines.append("Server CPU time per echoed message, µs (median of the rounds; the range over the rounds "
                 "in parentheses), from /proc/PID/stat in each run's window. Best peer: the peer with the "
                 "lowest median; ratios below 1 mean ringwire spends less CPU per message.")
    lines.append("")
    ratio_heads = [f"{o} / best" for o in OURS] + (["io_uring / epoll"] if uring and epoll else [])
    lines.append("| setting | generator | " + " | ".join(servers) + " | best peer | " + " | ".join(ratio_heads) + " |")
    lines.append("|---|---|" + "---:|" * (len(servers) + 1 + len(ratio_heads)))
    for st in data:
        for g in gens:
            cells = []
            for sv in servers:
                d = S[g][st][sv]
                c = fus(d["cpu_us_per_msg"])
                if d["runs"] > 1:
                    c += f" ({fus(d['cpu_us_per_msg_min'])}–{fus(d['cpu_us_per_msg_max'])})"
                if d["failed"]:
                    c += " ⚠"
                cells.append(c)
            bv, bp = best_peer(g, st, "cpu_us_per_msg", lower=True)
            ratios = [ratio(S[g][st][o]["cpu_us_per_msg"], bv) for o in OURS]
            if uring and epoll:
                ratios.append(ratio(S[g][st][uring]["cpu_us_per_msg"], S[g][st][epoll]["cpu_us_per_msg"]))
            best = f"{bp} {fus(bv)}" if bp else "–"
            lines.append(f"| {st} | {GEN_NAME.get(g, g)} | " + " | ".join(cells) + f" | {best} | " + " | ".join(ratios) + " |")
    lines.append("")
    lines.append("The same runs, msgs/s (server CPU share of one core); ratios against the peer with the most msgs/s:")
    lines.append("")
    lines.append("| setting | generator | " + " | ".join(servers) + " | best peer | " + " | ".join(f"{o} / best" for o in OURS) + " |")
    lines.append("|---|---|" + "---:|" * (len(servers) + 1 + len(OURS)))
    for st in data:
        for g in gens:
            cells = []
            for sv in servers:
                d = S[g][st][sv]
                cells.append(f"{fmt(d['msgs_per_sec'], 'rate')} ({fmt(d['server_cpu_percent'], '%')})")
            bv, bp = best_peer(g, st, "msgs_per_sec")
            ratios = [ratio(S[g][st][o]["msgs_per_sec"], bv) for o in OURS]
            lines.append(f"| {st} | {GEN_NAME.get(g, g)} | " + " | ".join(cells) + f" | {bp or '–'} | " + " | ".join(ratios) + " |")
    lines.append("")
    lines.append(f"Every run: `{out}.jsonl`; medians: `{out}.json`. ⚠ marks a cell where a run failed, "
                 "mismatched or had errors.")
    table = "\n".join(lines)
    put_table("cpu-table" + SUFFIX, "Server CPU per message" + (f" ({SERVER_CORES} server cores, {GEN_CORES} generator cores)" if SUFFIX else ""), table)
    print(table)
    sys.exit(0)


lines = [machine_line(), ""]
for g in gens:
    data = [st for st in settings if not st.startswith("rate-") and any(S[g][st][sv]["runs"] for sv in servers)]
    if not data:
        continue
    lines.append(f"Generator {GEN_NAME.get(g, g)}: msgs/s (server CPU share of one core, server CPU µs per "
                 "message from /proc/PID/stat in the window); ratios against the peer with the most msgs/s "
                 "and against the peer with the least CPU per message:")
    lines.append("")
    heads = [f"{o} / best" for o in OURS] + [f"{o} CPU/msg / best" for o in OURS]
    lines.append("| setting | " + " | ".join(servers) + " | best peer (msgs/s) | best peer (CPU/msg) | " + " | ".join(heads) + " |")
    lines.append("|---|" + "---:|" * (len(servers) + 2 + len(heads)))
    for st in data:
        cells = []
        for sv in servers:
            d = S[g][st][sv]
            c = fmt(d["msgs_per_sec"], "rate")
            if d["server_cpu_percent"] is not None:
                per = d["cpu_us_per_msg"]
                c += f" ({fmt(d['server_cpu_percent'], '%')}" + (f", {fus(per)} µs/msg)" if per else ")")
            if d["failed"]:
                c += " ⚠"
            cells.append(c)
        bv, bp = best_peer(g, st, "msgs_per_sec")
        cv, cp = best_peer(g, st, "cpu_us_per_msg", lower=True)
        ratios = [ratio(S[g][st][o]["msgs_per_sec"], bv) for o in OURS]
        ratios += [ratio(S[g][st][o]["cpu_us_per_msg"], cv) for o in OURS]
        cbest = f"{cp} {fus(cv)} µs" if cp else "–"
        lines.append(f"| {st} | " + " | ".join(cells) + f" | {bp or '–'} | {cbest} | " + " | ".join(ratios) + " |")
    lines.append("")
for st in settings:
    if not st.startswith("rate-"):
        continue
    g = "ringwire"
    lines.append(f"Fixed rate {st[5:]} (50% of the best peer's median maximum in the 1 KiB setting, "
                 "`ringwire load`): latency from the intended send time, p99 / p99.9 in µs (server CPU):")
    lines.append("")
    lines.append("| | " + " | ".join(servers) + " | best peer p99 | " + " | ".join(f"{o} p99 / best" for o in OURS) + " |")
    lines.append("|---|" + "---:|" * (len(servers) + 1 + len(OURS)))
    cells = []
    for sv in servers:
        d = S[g][st][sv]
        cells.append(f"{fmt(d['p99_us'])} / {fmt(d['p999_us'])} ({fmt(d['server_cpu_percent'], '%')})")
    bv, bp = best_peer(g, st, "p99_us", lower=True)
    ratios = [ratio(S[g][st][o]["p99_us"], bv) for o in OURS]
    lines.append("| p99 / p99.9 | " + " | ".join(cells) + f" | {bp or '–'} | " + " | ".join(ratios) + " |")
    lines.append("")
lines.append(f"Chart: `{out}.svg`; every run: `{out}.jsonl`; medians: `{out}.json`. "
             "⚠ marks a setting where a run failed, mismatched or had errors.")
table = "\n".join(lines)

# SVG bar chart: one group per setting and generator, one bar per server
# (each group scaled to its own maximum, labelled with the value).
colors = ["#1f77b4", "#6baed6", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
groups = [(st, g) for st in settings if not st.startswith("rate-") for g in gens
          if any(S[g][st][sv]["runs"] for sv in servers)]
W, gh = 900, 120
H = 60 + len(groups) * (gh + 20) + 30
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2}" y="20" text-anchor="middle" font-size="15">Echo msgs/s per setting and generator (median of {rounds}; bars scaled per group)</text>']
for i, sv in enumerate(servers):
    x = 20 + i * 120
    svg.append(f'<rect x="{x}" y="32" width="10" height="10" fill="{colors[i % len(colors)]}"/>'
               f'<text x="{x+14}" y="41">{html.escape(sv)}</text>')
for gi, (st, g) in enumerate(groups):
    y0 = 60 + gi * (gh + 20)
    svg.append(f'<text x="10" y="{y0+12}" font-size="12" font-weight="bold">{html.escape(st)}</text>'
               f'<text x="10" y="{y0+28}">{html.escape(g)}</text>')
    vals = [S[g][st][sv]["msgs_per_sec"] or 0 for sv in servers]
    top = max(vals) or 1
    bh = (gh - 20) / max(1, len(servers))
    for i, (sv, v) in enumerate(zip(servers, vals)):
        w = (W - 260) * v / top
        y = y0 + 18 + i * bh
        svg.append(f'<rect x="160" y="{y:.1f}" width="{w:.1f}" height="{bh-2:.1f}" fill="{colors[i % len(colors)]}"/>')
        svg.append(f'<text x="{165 + w:.1f}" y="{y + bh - 4:.1f}">{fmt(v, "rate")}</text>')
svg.append("</svg>")
open(out + ".svg", "w").write("\n".join(svg))

put_table("compare" + SUFFIX, "Side by side with the peers" + (f" ({SERVER_CORES} server cores, {GEN_CORES} generator cores)" if SUFFIX else " (issue #6)"), table)
print(table)
