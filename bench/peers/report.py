#!/usr/bin/env python3
"""Parsing and reporting for bench/peers/run.sh.

  report.py record RUNS.jsonl --target T --rep R --mode {ka,close,rate} --tool {wrk,h2load}
            --output FILE --cpu-ticks N --clk-tck HZ [--accepts N]
      parse one wrk/h2load output, append one JSON line to RUNS.jsonl, print a one-line summary.
  report.py table RUNS.jsonl META.json
      print the markdown table of medians (plus drover/HAProxy ratios) to stdout.
"""
import argparse
import json
import re
import statistics
import sys

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"cannot parse latency {text!r}")
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def parse_wrk(text):
    out = {}
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)", text, re.M)
    if not m:
        raise ValueError("no 'requests in' line in wrk output")
    out["requests"] = int(m.group(1))
    out["duration_s"] = to_ms(m.group(2) + m.group(3)) / 1000.0
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    out["rps"] = float(m.group(1)) if m else out["requests"] / out["duration_s"]
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}%\s+([0-9.]+(?:us|ms|s|m))\s*$", text, re.M)
        out[f"p{pct}_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return out


def parse_h2load(text):
    out = {}
    m = re.search(r"^finished in ([0-9.]+)(us|ms|s|m), ([0-9.]+) req/s", text, re.M)
    if not m:
        raise ValueError("no 'finished in' line in h2load output")
    out["duration_s"] = to_ms(m.group(1) + m.group(2)) / 1000.0
    out["rps"] = float(m.group(3))
    m = re.search(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
        text, re.M)
    if not m:
        raise ValueError("no 'requests:' line in h2load output")
    total, started, done, ok, failed, errored, timeout = (int(x) for x in m.groups())
    out["requests"] = done
    out["non2xx"] = done - ok
    out["socket_errors"] = errored + timeout
    m = re.search(r"^status codes: (\d+) 2xx", text, re.M)
    if m:
        out["non2xx"] = done - int(m.group(1))
    # h2load's latency table: "time for request:  min  max  mean  sd  +/- sd"
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    out["mean_ms"] = to_ms(m.group(3)) if m else None
    return out


def cmd_record(a):
    with open(a.output) as f:
        text = f.read()
    rec = parse_wrk(text) if a.tool == "wrk" else parse_h2load(text)
    rec.update(target=a.target, rep=a.rep, mode=a.mode, tool=a.tool, cpu_ticks=a.cpu_ticks,
               clk_tck=a.clk_tck, output=a.output)
    cpu_us = a.cpu_ticks * 1e6 / a.clk_tck
    rec["cpu_us_per_req"] = cpu_us / rec["requests"] if rec["requests"] else None
    rec["cpu_util"] = cpu_us / 1e6 / rec["duration_s"] if rec["duration_s"] else None
    if a.foreign_ticks is not None:
        # CPU used during the run by processes that are not ours (not the targets, the member, or
        # the load generator), in % of one core: other work on the machine skews the figures.
        rec["foreign_cpu_pct"] = max(0, a.foreign_ticks) * 100.0 / a.clk_tck / rec["duration_s"]
    if a.accepts is not None:
        rec["backend_accepts"] = a.accepts
        rec["accepts_per_1k_req"] = 1000.0 * a.accepts / rec["requests"] if rec["requests"] else None
    with open(a.runs, "a") as f:
        f.write(json.dumps(rec) + "\n")
    s = f"{a.target:8s} rep {a.rep} {a.mode:5s} {rec['requests']:>9d} req {rec['rps']:>10.0f} req/s"
    if rec.get("p99_ms") is not None:
        s += f"  p50 {rec['p50_ms']:.2f} ms  p99 {rec['p99_ms']:.2f} ms"
    cpu = rec["cpu_us_per_req"]
    s += f"  CPU {cpu:.1f} us/req ({rec['cpu_util'] * 100:.0f}% of a core)" if cpu is not None else "  CPU n/a"
    if a.accepts is not None:
        s += f"  backend accepts {a.accepts}"
    if rec.get("foreign_cpu_pct") is not None:
        s += f"  other load {rec['foreign_cpu_pct']:.0f}%"
    if rec["non2xx"] or rec["socket_errors"]:
        s += f"  !! non-2xx {rec['non2xx']} socket errors {rec['socket_errors']}"
    print(s)


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec, suffix=""):
    return "n/a" if v is None else format(v, spec) + suffix


def cmd_table(a):
    runs = [json.loads(l) for l in open(a.runs) if l.strip()]
    meta = json.load(open(a.meta))
    labels = meta["labels"]
    order = [t for t in meta["targets"]]
    rows, medians = [], {}
    for t in order:
        by = lambda mode: [r for r in runs if r["target"] == t and r["mode"] == mode]
        ka, close, rate = by("ka"), by("close"), by("rate")
        m = {
            "rps": med([r["rps"] for r in ka]),
            "p50": med([r["p50_ms"] for r in ka]),
            "p99": med([r["p99_ms"] for r in ka]),
            "cpu": med([r["cpu_us_per_req"] for r in ka]),
            "cpu_close": med([r["cpu_us_per_req"] for r in close]),
            "cpu_rate": med([r["cpu_us_per_req"] for r in rate]),
            "rate_rps": med([r["rps"] for r in rate]),
            "acc": med([r.get("backend_accepts") for r in ka]),
            "acc_1k": med([r.get("accepts_per_1k_req") for r in ka]),
            "n": len(ka),
        }
        medians[t] = m
        conns = "n/a" if m["acc"] is None else f"{m['acc']:.0f} ({m['acc_1k']:.2f} per 1k req)"
        rows.append([labels.get(t, t), fmt(m["rps"], ",.0f"), fmt(m["p50"], ".2f", " ms"),
                     fmt(m["p99"], ".2f", " ms"), fmt(m["cpu"], ".1f"), fmt(m["cpu_close"], ".1f"),
                     fmt(m["cpu_rate"], ".1f"), conns])
    reps = meta["reps"]
    print(f"## drover vs peers: medians of {reps} repetition(s), {meta['duration']} s measured runs\n")
    print("| target | keep-alive rps | p50 | p99 | CPU us/req | close-mode CPU us/req "
          "| CPU us/req at 5,120 req/s | backend conns opened (keep-alive run) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    d, h = medians.get("drover"), medians.get("haproxy")
    if d and h and d["n"] and h["n"]:
        def ratio(k):
            return "n/a" if d[k] is None or not h[k] else f"{d[k] / h[k]:.2f}"
        print(f"drover / HAProxy: CPU us/req {ratio('cpu')} (keep-alive), {ratio('cpu_close')} (close), "
              f"{ratio('cpu_rate')} (at 5,120 req/s); p99 {ratio('p99')}  (< 1.00 means drover is better)")
    else:
        print("drover / HAProxy: n/a (drover or HAProxy not measured in this run)")
    alt = medians.get("drover-alt")
    if d and alt and d["n"] and alt["n"]:
        def alt_ratio(k):
            return "n/a" if alt[k] is None or not d[k] else f"{alt[k] / d[k]:.3f}"
        print(f"\ndrover-alt ({labels.get('drover-alt', 'drover-alt')}) / drover: CPU us/req "
              f"{alt_ratio('cpu')} (keep-alive), {alt_ratio('cpu_close')} (close), "
              f"{alt_ratio('cpu_rate')} (at 5,120 req/s); p99 {alt_ratio('p99')}")
    print()
    # warnings: errors, rate not reached
    warn = []
    for r in runs:
        if r["non2xx"] or r["socket_errors"]:
            warn.append(f"{r['target']} rep {r['rep']} {r['mode']}: non-2xx {r['non2xx']}, "
                        f"socket errors {r['socket_errors']} ({r['output']})")
    FOREIGN_MAX = 10.0
    busy = [r for r in runs if (r.get("foreign_cpu_pct") or 0) > FOREIGN_MAX]
    if busy:
        worst = max(busy, key=lambda r: r["foreign_cpu_pct"])
        warn.append(f"{len(busy)} of {len(runs)} runs had other work on the machine using > {FOREIGN_MAX:.0f}% "
                    f"of a core (worst: {worst['target']} rep {worst['rep']} {worst['mode']}, "
                    f"{worst['foreign_cpu_pct']:.0f}%); those figures are skewed, re-run on a quiet machine")
    for t, m in medians.items():
        if m["rate_rps"] is not None and m["rate_rps"] < 0.95 * 5120:
            warn.append(f"{t}: fixed-rate run reached only {m['rate_rps']:.0f} req/s of 5,120 offered")
    for w in warn:
        print(f"WARNING: {w}")
    if warn:
        print()
    print("Notes: CPU us/req = user+system time of the target's process(es) (/proc/PID/stat fields 14+15) over the "
          "measured run / requests completed; for 'direct' it is the member nginx's own CPU. Backend conns "
          "opened = delta of the member nginx's stub_status 'accepts' over the keep-alive run (connections the "
          "member accepted; HAProxy's TCP checks reset before nginx accepts them and do not show up).")
    fc = [r["foreign_cpu_pct"] for r in runs if r.get("foreign_cpu_pct") is not None]
    if fc:
        print(f"\nOther load on the machine during the measured runs (CPU of processes not started by this "
              f"script, % of one core): median {statistics.median(fc):.0f}%, max {max(fc):.0f}%.")
    print()
    print("Machine:")
    for k, v in meta["machine"].items():
        print(f"- {k}: {v}")
    print(f"\nPIDs measured: " + ", ".join(f"{t}={' '.join(map(str, p))}" for t, p in meta["pids"].items()))
    print(f"\nCommand: `{meta['command']}`")
    print(f"Raw numbers: {meta['out_dir']}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("runs")
    r.add_argument("--target", required=True)
    r.add_argument("--rep", type=int, required=True)
    r.add_argument("--mode", required=True, choices=["ka", "close", "rate"])
    r.add_argument("--tool", required=True, choices=["wrk", "h2load"])
    r.add_argument("--output", required=True)
    r.add_argument("--cpu-ticks", type=int, required=True)
    r.add_argument("--clk-tck", type=int, required=True)
    r.add_argument("--accepts", type=int)
    r.add_argument("--foreign-ticks", type=int)
    t = sub.add_parser("table")
    t.add_argument("runs")
    t.add_argument("meta")
    a = p.parse_args()
    {"record": cmd_record, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
