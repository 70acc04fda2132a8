#!/usr/bin/env python3
"""Turns criterion's saved estimates (target/criterion) into the Markdown
tables of BENCHMARKS.md: medians, throughput, and the ratios the issues set
targets for (unmask vs memcpy, incremental UTF-8 vs raw simdutf8), all from
the same run."""
import json
import os
import sys

roots = sys.argv[1:] or ["target/criterion"]
rows = {}
for dirpath, _, files in (w for root in roots for w in os.walk(root)):
    if "benchmark.json" not in files or not dirpath.endswith("/new"):
        continue
    bench = json.load(open(os.path.join(dirpath, "benchmark.json")))
    est = json.load(open(os.path.join(dirpath, "estimates.json")))
    rows[bench["full_id"]] = (bench, est["median"]["point_estimate"])


def median_ns(full_id):
    return rows[full_id][1] if full_id in rows else None


def fmt_time(ns):
    if ns is None:
        return "–"
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.2f} {unit}"
    return f"{ns:.1f} ns"


def gibs(n, ns):
    return "–" if ns is None else f"{n / ns * 1e9 / 2**30:.2f} GiB/s"


def ratio(a, b):
    return "–" if a is None or b is None else f"{a / b:.2f}×"


sizes = [16, 125, 1024, 65536, 1048576]
print("### mask (in place, GiB/s of payload; ratio = throughput vs memcpy)\n")
print("| N | memcpy | unmask (SIMD) | unmask_u64 | unmask / memcpy | u64 / memcpy |")
print("|---:|---:|---:|---:|---:|---:|")
for n in sizes:
    m, u, w = (median_ns(f"mask/{f}/{n}") for f in ("memcpy", "unmask", "unmask_u64"))
    print(f"| {n} | {gibs(n, m)} | {gibs(n, u)} | {gibs(n, w)} | {ratio(m, u)} | {ratio(m, w)} |")

for suffix, label in (("", "ASCII"), ("_mixed", "mixed multi-byte text")):
    print(f"\n### utf8, {label} (GiB/s; ratio = incremental throughput vs raw simdutf8::basic)\n")
    print("| N | simdutf8 | incremental | incremental / simdutf8 |")
    print("|---:|---:|---:|---:|")
    for n in sizes:
        s, i = median_ns(f"utf8/simdutf8{suffix}/{n}"), median_ns(f"utf8/incremental{suffix}/{n}")
        print(f"| {n} | {gibs(n, s)} | {gibs(n, i)} | {ratio(s, i)} |")

print("\n### parse (full decoder: header, unmask, UTF-8, event; 10,000 masked frames)\n")
print("| stream | median time | frames/s | ns/frame |")
print("|---|---:|---:|---:|")
for name in ("text16", "binary16", "text125", "text1024"):
    t = median_ns(f"parse/{name}/10000")
    if t is None:
        continue
    print(f"| {name} | {fmt_time(t)} | {10000 / t * 1e9 / 1e6:.1f} M | {t / 10000:.2f} |")
