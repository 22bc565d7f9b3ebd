#!/usr/bin/env python3
"""The table (and JSON) of tests/bench/run.sh: medians of the raw measurements, ratios, targets.

  report.py RAW [JSON_OUT]

RAW has one "KEY VALUE" per line (a key may repeat: one line per run). Every ratio is
regpress/peer measured in the same run on the same input; the targets are issue 7's.
"""
import json
import statistics
import sys

MB = 1e6


def load(path):
    vals, text = {}, {}
    with open(path) as f:
        for line in f:
            key, _, val = line.rstrip("\n").partition(" ")
            try:
                num = float(val)
            except ValueError:
                text[key] = val
                continue
            vals.setdefault(key, []).append(num)
    return {k: statistics.median(v) for k, v in vals.items()}, text


def main():
    m, text = load(sys.argv[1])
    out = sys.argv[2] if len(sys.argv) > 2 else ""
    rows = []

    def row(group, what, unit, rp, peer, peer_name, target=None, op=None, ratio=None):
        if ratio is None:
            ratio = rp / peer if peer else float("nan")
        ok = None
        if target is not None:
            ok = ratio <= target if op == "<=" else ratio < target if op == "<" else ratio >= target
        rows.append({"group": group, "metric": what, "unit": unit, "regpress": rp,
                     "peer": peer, "peer_name": peer_name, "ratio": ratio,
                     "target": target, "op": op, "pass": ok})

    def b(key):
        return m[key]

    for comp in ("gzip", "zstd", "none"):
        g = "build " + comp
        rp, sk = "build.%s.regpress" % comp, "build.%s.skopeo" % comp
        if comp == "gzip":
            row(g, "wall", "s", b(rp + ".wall"), b(sk + ".wall"), "skopeo gzip", 0.66, "<=")
        elif comp == "zstd":
            row(g, "wall", "s", b(rp + ".wall"), b(sk + ".wall"), "skopeo zstd")
            row(g, "wall vs skopeo gzip", "s", b(rp + ".wall"), b("build.gzip.skopeo.wall"),
                "skopeo gzip", 0.40, "<=")
        else:
            row(g, "wall", "s", b(rp + ".wall"), b(sk + ".wall"), "skopeo none")
        row(g, "CPU user+sys", "s", b(rp + ".cpu"), b(sk + ".cpu"), "skopeo " + comp)
        row(g, "peak RSS", "MB", b(rp + ".rss") * 1024 / MB, b(sk + ".rss") * 1024 / MB,
            "skopeo " + comp)
        if comp == "gzip":
            row(g, "output", "MB", b(rp + ".bytes") / MB, b(sk + ".bytes") / MB, "skopeo gzip",
                1.02, "<=")
        elif comp == "zstd":
            row(g, "output", "MB", b(rp + ".bytes") / MB, b(sk + ".bytes") / MB, "skopeo zstd")
            row(g, "output vs skopeo gzip", "MB", b(rp + ".bytes") / MB,
                b("build.gzip.skopeo.bytes") / MB, "skopeo gzip", 1.0, "<")
        else:
            row(g, "output", "MB", b(rp + ".bytes") / MB, b(sk + ".bytes") / MB, "skopeo none")
            rate = b("input.bytes") / MB / b(rp + ".wall")
            row(g, "input rate", "MB/s", rate, b("input.bytes") / MB / b(sk + ".wall"),
                "skopeo none", 600, ">=", ratio=rate)
    first, again = b("build.gzip.regpress.wall"), b("build.rebuild.regpress.wall")
    row("rebuild", "unchanged input, gzip: speedup", "s", again, first, "first build", 5, ">=",
        ratio=first / again)
    for comp in ("gzip", "zstd"):
        rss = b("big.%s.regpress.rss" % comp) * 1024 / MB
        row("big layer", "peak RSS, %.0f MB layer, %s" % (b("big.bytes") / MB, comp), "MB", rss,
            b("big.bytes") / MB / b("big.%s.regpress.wall" % comp), "(build MB/s)", 64, "<=",
            ratio=rss)
    for key, what, target in (("manifest", "manifest GET/s", 10),
                              ("config", "config blob GET/s (%.0f B)" % b("serve.config.size"), 5),
                              ("small", "small blob GET/s (%.0f KB)" % (b("serve.small.size") / 1e3), 5)):
        row("serve", what, "req/s", b("serve.%s.regpress" % key), b("serve.%s.registry" % key),
            "registry:2", target, ">=")
    size = b("serve.large.size")
    row("serve", "large blob GB/s (%.0f MB)" % (size / MB), "GB/s",
        b("serve.large.regpress") * size / 1e9, b("serve.large.registry") * size / 1e9,
        "registry:2", 1, ">=")
    row("serve", "large blob: wrk client CPU", "% core", b("serve.large.regpress.client_cpu"),
        b("serve.large.registry.client_cpu"), "registry:2")

    print("regpress benchmark: input %.1f MB (%d layers), %d run(s), medians, %d cores%s" % (
        b("input.bytes") / MB, b("input.layers"), b("runs"), b("cores"),
        ", QUICK (smoke test)" if b("quick") else ""))
    print(text.get("versions", ""))
    print()
    hdr = "%-11s %-34s %11s %11s  %-12s %8s %9s  %s" % (
        "", "metric", "regpress", "peer", "peer", "ratio", "target", "result")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        target = "" if r["target"] is None else "%s%g" % (r["op"], r["target"])
        res = "" if r["pass"] is None else "PASS" if r["pass"] else "MISS"
        unit = r["unit"]
        print("%-11s %-34s %11s %11s  %-12s %8s %9s  %s" % (
            r["group"], r["metric"] + " (" + unit + ")", fmt(r["regpress"]), fmt(r["peer"]),
            r["peer_name"], fmt(r["ratio"]), target, res))
    misses = [r for r in rows if r["pass"] is False]
    print()
    print("kTLS: " + text.get("serve.ktls", "?"))
    print("%d targets: %d PASS, %d MISS" % (sum(r["pass"] is not None for r in rows),
                                           sum(r["pass"] is True for r in rows), len(misses)))
    if out:
        with open(out, "w") as f:
            json.dump({"input_bytes": b("input.bytes"), "runs": b("runs"), "quick": bool(b("quick")),
                       "versions": text.get("versions", ""), "ktls": text.get("serve.ktls", ""),
                       "rows": rows}, f, indent=2)
            f.write("\n")


def fmt(v):
    if v != v:
        return "nan"
    if abs(v) >= 1000:
        return "%.0f" % v
    if abs(v) >= 100:
        return "%.1f" % v
    return "%.2f" % v


if __name__ == "__main__":
    main()
