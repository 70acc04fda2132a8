#!/usr/bin/env python3
"""Aggregates bench/compare.sh runs: medians per setting and server, ratios
of ringwire to the best peer, a JSON summary, an SVG bar chart, and the
Markdown table written into BENCHMARKS.md between the compare markers.

    compare_report.py RUNS.jsonl OUT_PREFIX COMMIT ROUNDS SECS
"""
import html
import json
import os
import platform
import statistics
import subprocess
import sys

runs_path, out, commit, rounds, secs = sys.argv[1:6]
rows = [json.loads(line) for line in open(runs_path) if line.strip()]
ok = [r for r in rows if "msgs_per_sec" in r and not r.get("failed")]
servers = list(dict.fromkeys(r["server"] for r in rows))
settings = list(dict.fromkeys(r["setting"] for r in rows))
OURS = [s for s in servers if s.startswith("ringwire")]
PEERS = [s for s in servers if not s.startswith("ringwire")]


def med(setting, server, key, sub=None):
    vals = []
    for r in ok:
        if r["setting"] == setting and r["server"] == server:
            v = r.get(key)
            if sub is not None and isinstance(v, dict):
                v = v.get(sub)
            if isinstance(v, (int, float)):
                vals.append(v)
    return statistics.median(vals) if vals else None


summary = {"commit": commit, "rounds": int(rounds), "secs": float(secs), "settings": {}}
for st in settings:
    summary["settings"][st] = {
        sv: {
            "msgs_per_sec": med(st, sv, "msgs_per_sec"),
            "p50_us": med(st, sv, "latency_us", "p50"),
            "p99_us": med(st, sv, "latency_us", "p99"),
            "p999_us": med(st, sv, "latency_us", "p999"),
            "server_cpu_percent": med(st, sv, "server_cpu_percent"),
            "client_cpu_percent": med(st, sv, "client_cpu_percent"),
            "runs": sum(1 for r in ok if r["setting"] == st and r["server"] == sv),
            "failed": sum(1 for r in rows if r["setting"] == st and r["server"] == sv and (r.get("failed") or r.get("mismatches") or r.get("errors_total"))),
        }
        for sv in servers
    }
json.dump(summary, open(out + ".json", "w"), indent=1)



def fmt(v, unit=""):
    if v is None:
        return "–"
    if unit == "rate":
        return f"{v/1e6:.2f}M" if v >= 1e6 else (f"{v/1e3:.0f}k" if v >= 1e4 else f"{v:,.0f}")
    if unit == "%":
        return f"{v:.0f}%"
    return f"{v:,.0f}"


def put_table(marker, title, table):
    """Writes `table` into BENCHMARKS.md between the `marker` comments."""
    path = "BENCHMARKS.md"
    text = open(path).read()
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    block = f"{begin}\n{table}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text += f"\n## {title}\n\n" + block + "\n"
    open(path, "w").write(text)


def cpu_per_msg_us(d):
    """Server CPU time per message in µs (CPU share over msgs/s)."""
    if d["server_cpu_percent"] is None or not d["msgs_per_sec"]:
        return None
    return d["server_cpu_percent"] / 100 * 1e6 / d["msgs_per_sec"]


# A/B mode (BASE_BIN): new build against an older one, per backend.
BASES = [s for s in servers if s.startswith("ringwire-base-")]
if BASES:
    lines = [f"Commit {commit} against `{os.environ.get('BASE_BIN', '?')}`"
             f" ({os.environ.get('BASE_DESC', 'the base build')}); {rounds} rounds × {secs} s, servers "
             "interleaved, medians; server on CPU 1 (one reactor), `ringwire load` on CPU 0. "
             "CPU/msg: the server's CPU time per message from /proc/PID/stat in the window.", ""]
    lines.append("| setting | backend | base msgs/s | new msgs/s | new / base | base CPU/msg | new CPU/msg | new / base |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for st in settings:
        for base in BASES:
            be = base[len("ringwire-base-"):]
            new = f"ringwire-{be}"
            if new not in servers:
                continue
            b, n = summary["settings"][st][base], summary["settings"][st][new]
            if st.startswith("rate-"):
                key, unit = "p99_us", "p99 µs"
            else:
                key, unit = "msgs_per_sec", ""
            bv, nv = b[key], n[key]
            bc, nc = cpu_per_msg_us(b), cpu_per_msg_us(n)
            r = f"{nv / bv:.2f}" if bv and nv else "–"
            rc = f"{nc / bc:.2f}" if bc and nc else "–"
            lines.append(f"| {st}{' (' + unit + ')' if unit else ''} | {be} | {fmt(bv)} | {fmt(nv)} | {r} | "
                         f"{bc:.2f} µs | {nc:.2f} µs | {rc} |" if bc and nc else
                         f"| {st} | {be} | {fmt(bv)} | {fmt(nv)} | {r} | – | – | – |")
    lines.append("")
    lines.append(f"Every run: `{out}.jsonl`; medians: `{out}.json`.")
    table = "\n".join(lines)
    marker = os.environ.get("AB_MARKER", "compare-ab")
    put_table(marker, f"A/B against an older build ({marker})", table)
    print(table)
    sys.exit(0)


def best_peer(st, key, lower=False):
    vals = [(summary["settings"][st][p][key], p) for p in PEERS if summary["settings"][st][p][key] is not None]
    if not vals:
        return None, None
    return (min if lower else max)(vals)


lines = []
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
lines.append(f"Machine: {os.cpu_count()} vCPU ({cpu}), kernel {platform.release()}; commit {commit}; "
             f"{rounds} rounds × {secs} s per run, servers interleaved, medians. Server on CPU 1, "
             "`ringwire load` on CPU 0. Command: `bench/compare.sh " + f"{rounds} {secs}`.")
lines.append("")
head = "| setting | " + " | ".join(servers) + " | best peer | " + " | ".join(f"{o} / best" for o in OURS) + " |"
lines.append("msgs/s (server CPU, and server CPU time per message from /proc/PID/stat in the window):")
lines.append("")
lines.append(head)
lines.append("|---|" + "---:|" * (len(servers) + 1 + len(OURS)))
for st in settings:
    if st.startswith("rate-"):
        continue
    cells = []
    for sv in servers:
        d = summary["settings"][st][sv]
        c = fmt(d["msgs_per_sec"], "rate")
        if d["server_cpu_percent"] is not None:
            per = cpu_per_msg_us(d)
            c += f" ({fmt(d['server_cpu_percent'], '%')}" + (f", {per:.2f} µs/msg)" if per else ")")
        if d["failed"]:
            c += " ⚠"
        cells.append(c)
    bv, bp = best_peer(st, "msgs_per_sec")
    ratios = []
    for o in OURS:
        v = summary["settings"][st][o]["msgs_per_sec"]
        ratios.append(f"**{v / bv:.2f}×**" if v and bv else "–")
    lines.append(f"| {st} | " + " | ".join(cells) + f" | {bp or '–'} | " + " | ".join(ratios) + " |")
for st in settings:
    if not st.startswith("rate-"):
        continue
    lines.append("")
    lines.append(f"Fixed rate {st[5:]} (50% of the best peer's median maximum in the 1 KiB setting): "
                 "latency from the intended send time, p99 / p99.9 in µs (server CPU):")
    lines.append("")
    lines.append("| | " + " | ".join(servers) + " | best peer p99 | " + " | ".join(f"{o} p99 / best" for o in OURS) + " |")
    lines.append("|---|" + "---:|" * (len(servers) + 1 + len(OURS)))
    cells = []
    for sv in servers:
        d = summary["settings"][st][sv]
        cells.append(f"{fmt(d['p99_us'])} / {fmt(d['p999_us'])} ({fmt(d['server_cpu_percent'], '%')})")
    bv, bp = best_peer(st, "p99_us", lower=True)
    ratios = []
    for o in OURS:
        v = summary["settings"][st][o]["p99_us"]
        ratios.append(f"**{v / bv:.2f}×**" if v and bv else "–")
    lines.append("| p99 / p99.9 | " + " | ".join(cells) + f" | {bp or '–'} | " + " | ".join(ratios) + " |")
lines.append("")
lines.append(f"Chart: `{out}.svg`; every run: `{out}.jsonl`; medians: `{out}.json`. "
             "⚠ marks a setting where a run failed, mismatched or had errors.")
table = "\n".join(lines)

# SVG bar chart: one group per setting, one bar per server, log-free
# (each group scaled to its own maximum, labelled with the value).
colors = ["#1f77b4", "#6baed6", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
groups = [st for st in settings if not st.startswith("rate-")]
W, gh, pad = 900, 120, 10
H = 60 + len(groups) * (gh + 20) + 30
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2}" y="20" text-anchor="middle" font-size="15">Echo msgs/s per setting (median of {rounds}; bars scaled per setting)</text>']
for i, sv in enumerate(servers):
    x = 20 + i * 120
    svg.append(f'<rect x="{x}" y="32" width="10" height="10" fill="{colors[i % len(colors)]}"/>'
               f'<text x="{x+14}" y="41">{html.escape(sv)}</text>')
for gi, st in enumerate(groups):
    y0 = 60 + gi * (gh + 20)
    svg.append(f'<text x="10" y="{y0+12}" font-size="12" font-weight="bold">{html.escape(st)}</text>')
    vals = [summary["settings"][st][sv]["msgs_per_sec"] or 0 for sv in servers]
    top = max(vals) or 1
    bh = (gh - 20) / max(1, len(servers))
    for i, (sv, v) in enumerate(zip(servers, vals)):
        w = (W - 260) * v / top
        y = y0 + 18 + i * bh
        svg.append(f'<rect x="160" y="{y:.1f}" width="{w:.1f}" height="{bh-2:.1f}" fill="{colors[i % len(colors)]}"/>')
        svg.append(f'<text x="{165 + w:.1f}" y="{y + bh - 4:.1f}">{fmt(v, "rate")}</text>')
svg.append("</svg>")
open(out + ".svg", "w").write("\n".join(svg))

# Into BENCHMARKS.md between the markers.
put_table("compare", "Side by side with the peers (issue #6)", table)
print(table)
