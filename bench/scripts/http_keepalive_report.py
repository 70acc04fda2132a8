#!/usr/bin/env python3
"""Markdown tables from a bench/scripts/http_keepalive.sh JSONL file.

    python3 bench/scripts/http_keepalive_report.py FILE.jsonl [--busy-limit 0.15]
        [--cmdline CMD] [--load-before L] [--load-after L]

Every attempt of every run is a line of FILE. An attempt is *quiet* when
its measured window is valid and the rest of the machine used at most
--busy-limit cores in it (others_cpu). The first table gives, per
connection count and server, medians over the quiet attempts (all attempts,
marked †, where none was quiet): requests/s, wrk's p50/p99, the server's
CPU share and CPU µs per request, wrk's CPU share, others; and the server
CPU µs per request over every valid attempt, quiet or not (the figure that
depends least on what else runs). The second table gives ringwire/hyper
ratios of those medians.
"""

import argparse
import json
import statistics


def valid(r):
    # Older files have no window_ok: a vanished process read as 0 ticks.
    return r.get("window_ok", r.get("gen_cpu", 0) >= 0 and r.get("others_cpu") is not None)


def fmt_us(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--busy-limit", type=float, default=0.15)
    ap.add_argument("--cmdline", default=None)
    ap.add_argument("--load-before", default=None)
    ap.add_argument("--load-after", default=None)
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.jsonl) if line.strip()]
    if not rows:
        raise SystemExit(f"{a.jsonl}: no runs")
    servers, conns = [], []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])
        if r["conns"] not in conns:
            conns.append(r["conns"])
    rounds = max(r["round"] for r in rows)
    secs = rows[0]["secs"]
    quiet = [r for r in rows if valid(r) and r["others_cpu"] <= a.busy_limit]
    med = statistics.median

    head = f"`{a.cmdline}`: " if a.cmdline else ""
    load = (f" Load average before / after: {a.load_before} / {a.load_after}."
            if a.load_before else "")
    print(f"{head}{rounds} round(s), servers interleaved, {secs:g} s per run after a warm-up; "
          f"`GET /` ({rows[0]['bytes_per_response']:.0f} B per response with headers); server pinned "
          f"to CPU 1, `wrk -t1 -cN --latency` pinned to CPU 0.{load} {len(rows)} attempts, "
          f"{len(quiet)} quiet (the rest of the machine used ≤ {a.busy_limit:g} cores in the "
          f"window). Every attempt: `{a.jsonl}`.\n")
    print("Medians over the quiet attempts (n = quiet / all; † = none was quiet, medians over all): "
          "requests/s; wrk p50 / p99; server CPU share of one core; server CPU µs per request "
          "(/proc/PID/stat inside the measured window); the same over every attempt; wrk's CPU "
          "share; others: CPU the rest of the machine used in the window (busy time in "
          "/proc/stat outside softirq, less the server's and wrk's, % of one core). "
          "✗ = an attempt with errors or non-2xx answers.\n")
    print("| conns | server | n | req/s | p50 | p99 | server CPU | CPU µs/req | CPU µs/req (all) | wrk CPU | others |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    m = {}
    for c in conns:
        for s in servers:
            every = [r for r in rows if r["server"] == s and r["conns"] == c]
            if not every:
                continue
            rs = [r for r in quiet if r["server"] == s and r["conns"] == c]
            dagger = "" if rs else " †"
            rs = rs or [r for r in every if valid(r)] or every
            per = [r["cpu_us_per_req"] for r in rs if r["cpu_us_per_req"]]
            per_all = [r["cpu_us_per_req"] for r in every if valid(r) and r["cpu_us_per_req"]]
            others = [r["others_cpu"] for r in rs if valid(r)]
            m[(s, c)] = d = {
                "rps": med(r["rps"] for r in rs),
                "per": med(per) if per else None,
                "per_all": med(per_all) if per_all else None,
            }
            bad = " ✗" if any(r["errors"] for r in every) else ""
            per_s = f"{d['per']:.2f}" if d["per"] else "—"
            per_all_s = f"{d['per_all']:.2f}" if d["per_all"] else "—"
            others_s = f"{med(others) * 100:.0f}%" if others else "—"
            print(f"| {c} | {s}{bad} | {len(rs) if not dagger else 0} / {len(every)}{dagger} | "
                  f"{d['rps']:,.0f} | {fmt_us(med(r['p50_us'] for r in rs))} | "
                  f"{fmt_us(med(r['p99_us'] for r in rs))} | {med(r['server_cpu'] for r in rs) * 100:.0f}% | "
                  f"{per_s} | {per_all_s} | {med(r['gen_cpu'] for r in rs) * 100:.0f}% | {others_s} |")
    if "hyper" not in servers:
        return
    print("\nringwire / hyper, from the medians above:\n")
    print("| conns | server | req/s ratio | hyper CPU µs/req ÷ this server's | the same, all attempts |")
    print("|---:|---|---:|---:|---:|")
    for c in conns:
        h = m.get(("hyper", c))
        if not h:
            continue
        for s in servers:
            if s == "hyper" or (s, c) not in m:
                continue
            d = m[(s, c)]
            eff = f"{h['per'] / d['per']:.2f}×" if h["per"] and d["per"] else "—"
            eff_all = f"{h['per_all'] / d['per_all']:.2f}×" if h["per_all"] and d["per_all"] else "—"
            print(f"| {c} | {s} | {d['rps'] / h['rps']:.2f}× | {eff} | {eff_all} |")


if __name__ == "__main__":
    main()
