#!/usr/bin/env python3
"""`bitpipec partition` end to end: JSON parsed and checked, auto against uniform, and errors.

usage: test_partition_cli.py BITPIPEC MODELS_DIR   (closing line `N passed, M failed`)

- On the committed exports (GPT-2, BERT, Llama training recipe), for 1f1b, interleaved, chimera and
  bitpipe at D=2: the JSON is well formed, every candidate's stages cover the layers in order, the
  ranks' loads add up to N x the layers' work, GLPK's optimum closes its gap, and auto's proxy is
  no worse than uniform's.
- GPT-2 at fine granularity (11 layers) with the analytic H100 model: every partition of the layers
  is given to the command as a manual candidate (C(10, S-1) of them, 15 per run), so the command's
  own evaluator enumerates them; auto's proxy equals the smallest. For 1F1B the proxy is also
  recomputed here from the JSON's layer table (loads, pace, boundary transfer, the tied wte
  all-reduce between the embedding's and the head's ranks).
- The profile cache at the command level: miss, hit (same figures), changed shape misses, --no-cache.
- The GPU profile source without a GPU (CUDA_VISIBLE_DEVICES= hides any): the default device model
  is cpu-profile for `partition` and `bitpipec MODEL -o` (their costs say so); --device-model
  gpu-profile (and its alias cuda-profile) is a one-line error naming why (no CUDA backend in this
  build, or no GPU visible), exit 1, for both commands; --precision without gpu-profile, and
  gpu-profile with --synthetic, are usage errors. (With a GPU: tests/gpu/test_gpu_profile*.)
- Errors, each a clear one-line message and a non-zero exit (never a signal): a memory cap no
  partition meets (the message names the smallest cap, which then works, and a cap 2 % under it
  does not), D odd for a two-direction schedule, fewer layers than chunks, N the schedule does not
  allow, bad --partition / --mem-cap / schedule / model.
"""
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

TIE = 0.01  # BP_PART_TIE, partitioner/partition.h
SCHEDS = ["1f1b", "interleaved", "chimera", "bitpipe"]

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)
    return cond


def run(bitpipec, args, env=None):
    p = subprocess.run([bitpipec, "partition"] + args, capture_output=True, text=True, timeout=300, env=env)
    return p.returncode, p.stdout, p.stderr


def run_json(bitpipec, args, env=None):
    rc, out, err = run(bitpipec, args + ["--json"], env)
    if not check(rc == 0, "%s: exit %d: %s" % (" ".join(args), rc, err.strip())):
        return None
    try:
        return json.loads(out)
    except ValueError as ex:
        check(False, "%s: JSON does not parse (%s): %s" % (" ".join(args), ex, out[:300]))
        return None


def close(a, b, rel=1e-7):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def check_result(j, what):
    """What holds for every JSON result."""
    L, S, D, N = len(j["layers"]), j["stages"], j["D"], j["N"]
    work = sum(l["fwd_s"] + l["bwd_s"] for l in j["layers"])
    names = [c["name"] for c in j["candidates"]]
    check("auto" in names and "uniform" in names, "%s: candidates %s" % (what, names))
    for c in j["candidates"]:
        st = c["stages"]
        ok = len(st) == S and st[0][0] == 0 and st[-1][1] == L - 1
        ok = ok and all(a <= b for a, b in st) and all(st[i][1] + 1 == st[i + 1][0] for i in range(S - 1))
        check(ok, "%s %s: stages %s do not cover 0..%d in order" % (what, c["name"], st, L - 1))
        check(len(c["rank_load_s"]) == D and len(c["rank_mem_bytes"]) == D, "%s %s: per-rank lists" % (what, c["name"]))
        # every micro-batch passes every layer once, forward and backward
        check(close(sum(c["rank_load_s"]), N * work, 1e-6),
              "%s %s: loads add up to %.9g, want N x work = %.9g" % (what, c["name"], sum(c["rank_load_s"]), N * work))
        check(close(c["max_load_s"], max(c["rank_load_s"])), "%s %s: max load" % (what, c["name"]))
        check(close(c["peak_mem_bytes"], max(c["rank_mem_bytes"]), 1e-9), "%s %s: peak memory" % (what, c["name"]))
        check(c["step_time_s"] > 0 and 0 <= c["bubble_mean"] < 1, "%s %s: step %.3g bubble %.3g" %
              (what, c["name"], c["step_time_s"], c["bubble_mean"]))
        check(close(c["proxy_s"], max(c["max_load_s"], c["pace_s"]) + TIE * c["max_load_s"] + c["comm_s"], 1e-6),
              "%s %s: proxy is not max(load, pace) + TIE load + comm" % (what, c["name"]))
    cand = {c["name"]: c for c in j["candidates"]}
    s = j.get("solver")
    if check(s is not None, "%s: no solver report" % what):
        check(not s["timed_out"] and s["gap"] <= 1e-6, "%s: GLPK gap %.3g timed out %s" % (what, s["gap"], s["timed_out"]))
        check(close(s["proxy_s"], cand["auto"]["proxy_s"], 1e-9), "%s: solver's proxy is auto's" % what)
        check(s["bound_s"] <= s["proxy_s"] * (1 + 1e-9), "%s: bound above the optimum" % what)
    check(cand["auto"]["proxy_s"] <= cand["uniform"]["proxy_s"] * (1 + 1e-9),
          "%s: auto proxy %.6g above uniform %.6g" % (what, cand["auto"]["proxy_s"], cand["uniform"]["proxy_s"]))
    if j["mem_cap_bytes"] > 0:
        check(cand["auto"]["feasible"] and cand["auto"]["peak_mem_bytes"] <= j["mem_cap_bytes"],
              "%s: auto over the cap" % what)


def fmt(first):
    return ",".join("%d-%d" % (first[i], first[i + 1] - 1) if first[i + 1] - 1 > first[i] else "%d" % first[i]
                    for i in range(len(first) - 1))


def proxy_1f1b(j, st):
    """partition.h's proxy for 1F1B, from the layer table alone."""
    N, lay = j["N"], j["layers"]
    w = [sum(lay[l]["fwd_s"] + lay[l]["bwd_s"] for l in range(a, b + 1)) for a, b in st]
    loads = [N * x for x in w]  # one chunk per rank, N micro-batches each
    pace = N * max(w)           # K = N
    bw, lat = j["link_bw"], j["link_lat_s"]
    comm = sum(2 * (lat + (lay[b]["out_bytes"] / bw if bw > 0 else 0)) for a, b in st[:-1])
    stage = {l: s for s, (a, b) in enumerate(st) for l in range(a, b + 1)}
    for t in j["tied"]:
        if stage[t["layers"][0]] != stage[t["layers"][1]]:  # two ranks: a ring of 2
            comm += 2 * lat + (t["bytes"] / bw if bw > 0 else 0)
    return max(max(loads), pace) + TIE * max(loads) + comm


def exhaustive(bitpipec, base, j, what):
    """Every partition through the command's evaluator; auto must be the best."""
    L, S = len(j["layers"]), j["stages"]
    parts = [[0] + list(c) + [L] for c in itertools.combinations(range(1, L), S - 1)]
    best, best_p, n = None, None, 0
    for i in range(0, len(parts), 15):
        chunk = parts[i:i + 15]
        args = base[:]
        for p in chunk:
            args += ["--partition", fmt(p)]
        r = run_json(bitpipec, args)
        if r is None:
            return
        got = [c for c in r["candidates"] if c["name"].startswith("manual")]
        if not check(len(got) == len(chunk), "%s: %d manual candidates back, gave %d" % (what, len(got), len(chunk))):
            return
        for p, c in zip(chunk, got):
            check([[a, b] for a, b in c["stages"]] == [[p[k], p[k + 1] - 1] for k in range(S)],
                  "%s: candidate %s came back as %s" % (what, fmt(p), c["stages"]))
            if j["schedule"] == "1f1b":
                check(close(c["proxy_s"], proxy_1f1b(j, c["stages"]), 1e-6),
                      "%s %s: proxy %.9g, recomputed %.9g" % (what, fmt(p), c["proxy_s"], proxy_1f1b(j, c["stages"])))
            n += 1
            if best is None or c["proxy_s"] < best:
                best, best_p = c["proxy_s"], fmt(p)
    auto = [c for c in j["candidates"] if c["name"] == "auto"][0]
    check(close(auto["proxy_s"], best, 1e-7),
          "%s: auto %s proxy %.9g, best of all %d partitions %s %.9g" % (what, auto["partition"], auto["proxy_s"], n,
                                                                          best_p, best))
    print("  %-12s %3d partitions enumerated: best %.6g ms (%s), auto %.6g ms (%s)" %
          (j["schedule"], n, best * 1e3, best_p, auto["proxy_s"] * 1e3, auto["partition"]))


def expect_error(bitpipec, args, pattern, what, env=None):
    rc, out, err = run(bitpipec, args, env)
    msg = err.strip()
    ok = check(rc > 0, "%s: exit %d (want a non-zero exit, not a signal)" % (what, rc))
    ok = check(re.search(pattern, msg) is not None, "%s: message %r does not match %r" % (what, msg, pattern)) and ok
    check("\n" not in msg or msg.count("\n") <= 2, "%s: the message should be short: %r" % (what, msg))
    if ok:
        print("  %-28s -> %s" % (what, msg.splitlines()[0][:160]))
    return msg


def main():
    bitpipec, models = sys.argv[1:3]
    tmp = tempfile.mkdtemp(prefix="bp_partition_cli_")
    cache = os.path.join(tmp, "profiles.txt")
    env = dict(os.environ, BITPIPE_PROFILE_CACHE=cache)
    gpt2 = os.path.join(models, "gpt2", "train.onnx")
    shape = ["--micro-batch", "2", "--bind", "sequence=16"]

    print("auto against uniform on the committed exports (profiled on this CPU, D=2 N=8):")
    for fam in ["gpt2", "bert", "llama"]:
        m = os.path.join(models, fam, "train.onnx")
        for s in SCHEDS:
            j = run_json(bitpipec, [m, "-D", "2", "-N", "8", "--schedule", s, "--repeats", "1"] + shape, env)
            if j is None:
                continue
            what = "%s %s" % (fam, s)
            check_result(j, what)
            check(j["profile_cache"] in ("hit", "miss"), "%s: profile cache %r" % (what, j["profile_cache"]))
            c = {x["name"]: x for x in j["candidates"]}
            print("  %-6s %-12s auto %-12s proxy %.4f ms, uniform %-12s %.4f ms" %
                  (fam, s, c["auto"]["partition"], c["auto"]["proxy_s"] * 1e3, c["uniform"]["partition"],
                   c["uniform"]["proxy_s"] * 1e3))
            if fam == "gpt2":
                check([t["name"] for t in j["tied"]] == ["model.transformer.wte.weight"] and
                      j["tied"][0]["layers"] == [0, len(j["layers"]) - 1], "gpt2: tied %s" % j["tied"])
            if fam == "llama":
                check(j["tied"] == [], "llama: tied %s" % j["tied"])

    print("every partition of GPT-2 at fine granularity (analytic H100, D=2 N=8):")
    for s in SCHEDS:
        base = [gpt2, "-D", "2", "-N", "8", "--schedule", s, "--layers", "fine", "--device-model", "h100"] + shape
        j = run_json(bitpipec, base)
        if j is None:
            continue
        check_result(j, "gpt2 fine %s" % s)
        c = {x["name"]: x for x in j["candidates"]}
        tied = [t for t in j["tied"] if t["name"] == "model.transformer.wte.weight"]
        check(len(tied) == 1, "gpt2 fine: wte tied %s" % j["tied"])
        if s == "1f1b":
            for x in j["candidates"]:
                check(close(x["proxy_s"], proxy_1f1b(j, x["stages"]), 1e-6), "1f1b %s: proxy recomputed" % x["name"])
            # uniform puts the embedding (rank 0) and the head (rank 1) apart: a ring of two ranks
            want = 2 * j["link_lat_s"] + tied[0]["bytes"] / j["link_bw"]
            check(close(c["uniform"]["tied_s"], want, 1e-7), "1f1b uniform: tied %.6g s, want %.6g" %
                  (c["uniform"]["tied_s"], want))
        if s in ("chimera", "bitpipe"):  # embedding and head on the same ranks: summed locally
            check(c["uniform"]["tied_s"] == 0 and c["auto"]["tied_s"] == 0, "%s: tied all-reduce should be 0" % s)
        exhaustive(bitpipec, base, j, "gpt2 fine %s" % s)

    print("the profile cache through the command:")
    pc = os.path.join(tmp, "cli_cache.txt")
    base = [gpt2, "-D", "2", "-N", "4", "--schedule", "1f1b", "--repeats", "1", "--profile-cache", pc]
    j1 = run_json(bitpipec, base + shape)
    j2 = run_json(bitpipec, base + shape)
    j3 = run_json(bitpipec, base + ["--micro-batch", "1", "--bind", "sequence=16"])
    j4 = run_json(bitpipec, base + shape + ["--no-cache"])
    if j1 and j2 and j3 and j4:
        check(j1["profile_cache"] == "miss", "first run: %s" % j1["profile_cache"])
        check(j2["profile_cache"] == "hit", "second run: %s" % j2["profile_cache"])
        check([(l["fwd_s"], l["bwd_s"]) for l in j1["layers"]] == [(l["fwd_s"], l["bwd_s"]) for l in j2["layers"]],
              "a hit returns the stored figures")
        check("from the profile cache" in j2["costs_source"], "hit source: %s" % j2["costs_source"])
        check(j3["profile_cache"] == "miss", "micro-batch 1: %s" % j3["profile_cache"])
        check(j4["profile_cache"] == "off", "--no-cache: %s" % j4["profile_cache"])
        print("  miss, hit, changed shape miss, --no-cache off")

    print("the GPU profile source, with no GPU visible:")
    nogpu = dict(env, CUDA_VISIBLE_DEVICES="")
    j = run_json(bitpipec, base + shape, nogpu)
    if j:
        check("profiled on the CPU backend" in j["costs_source"], "default without a GPU: %s" % j["costs_source"])
    why = r"--device-model gpu-profile: (this bitpipec was built without the CUDA backend|no GPU is visible)"
    for dm in ["gpu-profile", "cuda-profile"]:
        msg = expect_error(bitpipec, base + shape + ["--device-model", dm], why, "partition %s, no GPU" % dm, nogpu)
        check(msg.count("\n") == 0, "one line: %r" % msg)
    for dm, pat in [("gpu-profile", why), ("cpu-profile", r"--precision sets the GEMM precision of --device-model gpu-profile")]:
        p = subprocess.run([bitpipec, gpt2, "-o", os.path.join(tmp, "never"), "--seq", "16", "-D", "2", "--device-model",
                            dm, "--precision", "bf16", "--emit-c"], capture_output=True, text=True, timeout=300, env=nogpu)
        msg = p.stderr.strip()
        check(p.returncode > 0 and re.search(pat, msg) and msg.count("\n") == 0,
              "bitpipec MODEL -o --device-model %s --precision bf16, no GPU: exit %d, %r" % (dm, p.returncode, msg))
        print("  compile %-20s -> %s" % (dm, msg[:160]))
        check(not os.path.exists(os.path.join(tmp, "never.c")), "nothing written after the error")
    p = subprocess.run([bitpipec, gpt2, "-o", os.path.join(tmp, "t"), "--seq", "16", "-D", "2", "--emit-c"],
                       capture_output=True, text=True, timeout=300, env=nogpu)
    costs = [ln for ln in p.stdout.splitlines() if ln.startswith("costs")]
    check(p.returncode == 0 and costs and costs[0].startswith("costs     cpu-profile: profiled on the CPU backend"),
          "compile default without a GPU: %s %s" % (costs, p.stderr.strip()))
    expect_error(bitpipec, base + shape + ["--device-model", "h100", "--precision", "bf16"],
                 r"--precision sets the GEMM precision", "--precision with h100")
    expect_error(bitpipec, base + shape + ["--device-model", "gpu-profile", "--precision", "fp16"],
                 r"--precision is fp32, tf32 or bf16", "bad --precision")
    expect_error(bitpipec, ["--synthetic", "gpt2", "-D", "2", "-N", "4", "--schedule", "1f1b", "--device-model",
                            "gpu-profile"], r"--synthetic needs an analytic --device-model", "--synthetic gpu-profile")

    print("errors:")
    syn = ["--synthetic", "gpt2", "--layers", "fine", "-D", "8", "-N", "32", "--schedule", "1f1b"]
    msg = expect_error(bitpipec, syn + ["--mem-cap", "0.5G"], r"smallest cap that fits is [0-9.]+ GiB", "memory cap")
    m = re.search(r"smallest cap that fits is ([0-9.]+) GiB", msg)
    if m:
        need = float(m.group(1))
        j = run_json(bitpipec, syn + ["--mem-cap", "%.2fG" % need])
        if j:
            check_result(j, "at the smallest cap")
            auto = [c for c in j["candidates"] if c["name"] == "auto"][0]
            check(auto["feasible"] and auto["peak_mem_bytes"] <= need * 2 ** 30, "auto at the named cap")
        expect_error(bitpipec, syn + ["--mem-cap", "%.3fG" % (need * 0.98)], r"smallest cap that fits is",
                     "2 % under the named cap")
    for s in ["chimera", "bitpipe"]:
        expect_error(bitpipec, [gpt2, "-D", "3", "-N", "6", "--schedule", s], r"D must be even; D=3 is odd",
                     "D odd (%s)" % s)
    expect_error(bitpipec, [gpt2, "-D", "4", "-N", "8", "--schedule", "bitpipe", "--device-model", "h100"] + shape,
                 r"has 4 layers but schedule 'bitpipe' with D=4 has 8 stages", "fewer layers than chunks")
    expect_error(bitpipec, [gpt2, "-D", "4", "-N", "6", "--schedule", "interleaved"], r"N to be a multiple of D=4",
                 "N not allowed (interleaved)")
    expect_error(bitpipec, [gpt2, "-D", "2", "-N", "3", "--schedule", "chimera"], r"N to be a multiple of D=2",
                 "N not allowed (chimera)")
    expect_error(bitpipec, [gpt2, "-D", "2", "-N", "4", "--schedule", "1f1b", "--device-model", "h100",
                            "--partition", "0-1,3"] + shape, r"--partition 0-1,3", "bad --partition")
    expect_error(bitpipec, [gpt2, "-D", "2", "-N", "4", "--schedule", "1f1b", "--mem-cap", "lots"], r"--mem-cap",
                 "bad --mem-cap")
    expect_error(bitpipec, [gpt2, "-D", "2", "-N", "4", "--schedule", "nope"], r"nope", "unknown schedule")
    expect_error(bitpipec, [os.path.join(tmp, "missing.onnx"), "-D", "2", "-N", "4", "--schedule", "1f1b",
                            "--device-model", "h100"], r"missing\.onnx", "missing model")
    expect_error(bitpipec, [gpt2, "-D", "2", "-N", "4", "--schedule", "1f1b", "--device-model", "tpu"] + shape,
                 r"unknown --device-model 'tpu'", "unknown device model")
    expect_error(bitpipec, [gpt2, "-D", "2", "-N", "4", "--schedule", "1f1b", "--device-model", "h100"],
                 r"sequence.*--bind sequence=N", "unbound dimension")
    shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
