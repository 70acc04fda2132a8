#!/usr/bin/env python3
"""ringwire's strict gate over an Autobahn|Testsuite report (index.json).

    summarize.py REPORT_DIR [--allow-unimplemented PREFIX ...]

Prints one line per agent with the count of each behaviour (OK, NON-STRICT,
INFORMATIONAL, UNIMPLEMENTED, FAILED, ...) and the close behaviours, then
the ids of every case that fails the gate. A case passes when its behaviour
is OK or INFORMATIONAL and its close behaviour is OK or INFORMATIONAL;
NON-STRICT fails. UNIMPLEMENTED passes only for cases whose id starts with
an --allow-unimplemented prefix (e.g. "12." and "13." until
permessage-deflate exists). Exit status 0 when every case passes, 1
otherwise, 2 when the report is missing or empty.
"""
import argparse
import json
import os
import sys
from collections import Counter

PASS = ("OK", "INFORMATIONAL")


def case_key(cid):
    return tuple(int(p) if p.isdigit() else p for p in cid.split("."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report_dir")
    ap.add_argument("--allow-unimplemented", action="append", default=[], metavar="PREFIX")
    a = ap.parse_args()
    path = os.path.join(a.report_dir, "index.json")
    try:
        index = json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"no report at {path}: {e}")
        return 2
    if not index:
        print(f"empty report at {path}")
        return 2
    failed_any = False
    for agent, cases in sorted(index.items()):
        beh = Counter(c["behavior"] for c in cases.values())
        close = Counter(c["behaviorClose"] for c in cases.values())
        failing = []
        for cid, c in cases.items():
            ok = c["behavior"] in PASS and c["behaviorClose"] in PASS
            if c["behavior"] == "UNIMPLEMENTED":
                ok = any(cid.startswith(p) for p in a.allow_unimplemented)
            if not ok:
                failing.append(cid)
        failing.sort(key=case_key)
        order = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
        parts = [f"{k} {beh[k]}" for k in order] + [f"{k} {v}" for k, v in beh.items() if k not in order]
        print(f"{agent}: {len(cases)} cases | " + ", ".join(parts)
              + " | close: " + ", ".join(f"{k} {v}" for k, v in sorted(close.items())))
        if a.allow_unimplemented and beh["UNIMPLEMENTED"]:
            print(f"  UNIMPLEMENTED allowed for {', '.join(p + '*' for p in a.allow_unimplemented)}"
                  " (permessage-deflate is not built yet)")
        if failing:
            failed_any = True
            print(f"  FAILING ({len(failing)}): " + ", ".join(failing))
            for cid in failing[:10]:
                c = cases[cid]
                print(f"    {cid}: behavior {c['behavior']}, close {c['behaviorClose']}, report {c.get('reportfile')}")
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
