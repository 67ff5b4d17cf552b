#!/usr/bin/env python3
"""The GPU profile through the commands (label gpu): `bitpipec MODEL -o train --emit-c` and
`bitpipec partition` with layer costs profiled on the GPU.

  - the compile's default on a machine with a GPU is gpu-profile, and its "costs" line says so;
  - a second compile hits the profile cache (its costs line says "from the profile cache") and
    chooses the identical partition and predicted step;
  - --device-model cpu-profile into the same cache misses (the GPU's entry has its own key) and the
    line names the CPU; --precision bf16 misses too (the key names the precision);
  - `bitpipec partition --device-model gpu-profile --json`: every layer's fwd and bwd positive, the
    memory cap the GPU's, the source the GPU's;
  - with CUDA_VISIBLE_DEVICES= (no GPU visible) --device-model gpu-profile is a one-line error, exit 1.

usage: test_gpu_profile_cli.py BITPIPEC GPU_PROBE MODELS
Exit 0 when everything passed, 1 on a failure, 77 ("skipped: no GPU") without a visible GPU."""
import json
import os
import subprocess
import sys
import tempfile

fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print("FAIL:", what)


def run(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


def line(text, prefix):
    for ln in text.splitlines():
        if ln.startswith(prefix):
            return ln
    return ""


def main():
    bitpipec, probe, models = sys.argv[1:4]
    if subprocess.run([probe], capture_output=True).returncode != 0:
        print("skipped: no GPU")
        return 77
    gpt2 = os.path.join(models, "gpt2", "train.onnx")
    with tempfile.TemporaryDirectory() as d:
        cache = os.path.join(d, "profiles.txt")
        base = [bitpipec, gpt2, "-o", os.path.join(d, "train"), "--emit-c", "-D", "2", "-N", "4", "--schedule", "1f1b",
                "--micro-batch", "4", "--seq", "64", "--profile-cache", cache]
        outs = []
        for k in range(2):
            rc, out, err = run(base)
            check(rc == 0, "compile %d: exit %d: %s" % (k + 1, rc, err.strip()))
            outs.append(out)
            print("compile %d: %s" % (k + 1, line(out, "costs")))
            print("           %s" % line(out, "partition"))
        c1, c2 = line(outs[0], "costs"), line(outs[1], "costs")
        check(c1.startswith("costs     gpu-profile: profiled on the GPU"), "the default on a GPU machine: %s" % c1)
        check("from the profile cache" not in c1, "first compile should profile: %s" % c1)
        check("from the profile cache" in c2, "second compile should hit the cache: %s" % c2)
        check(line(outs[0], "partition") == line(outs[1], "partition") and line(outs[0], "partition"),
              "partitions differ: %r vs %r" % (line(outs[0], "partition"), line(outs[1], "partition")))
        check(line(outs[0], "predicted step") == line(outs[1], "predicted step"), "predictions differ")
        # the CPU's key and another precision's are their own
        rc, out, err = run(base + ["--device-model", "cpu-profile"])
        c3 = line(out, "costs")
        print("cpu-profile: %s" % c3)
        check(rc == 0 and c3.startswith("costs     cpu-profile: profiled on the CPU backend") and
              "from the profile cache" not in c3, "cpu-profile into the GPU's cache: %s %s" % (c3, err.strip()))
        rc, out, err = run(base + ["--device-model", "cuda-profile", "--precision", "bf16"])
        c4 = line(out, "costs")
        print("bf16: %s" % c4)
        check(rc == 0 and "bf16 GEMMs" in c4 and "from the profile cache" not in c4, "bf16 profile: %s %s" % (c4, err.strip()))
        with open(cache) as f:
            keys = [ln.split(" device=")[1].split()[0] for ln in f if ln.startswith("profile ")]
        print("cache entries:", keys)
        check(len(keys) == 3 and len(set(keys)) == 3, "want 3 distinct entries: %s" % keys)
        # bitpipec partition --json
        rc, out, err = run([bitpipec, "partition", gpt2, "-D", "2", "-N", "4", "--schedule", "1f1b", "--bind",
                            "sequence=64", "--micro-batch", "4", "--device-model", "gpu-profile", "--precision", "bf16",
                            "--profile-cache", cache, "--json"])
        check(rc == 0, "partition --json: exit %d: %s" % (rc, err.strip()))
        if rc == 0:
            j = json.loads(out)
            check("profiled on the GPU" in j["costs_source"], "partition source: %s" % j["costs_source"])
            check(j["mem_cap_bytes"] > 1e9, "the memory cap should be the GPU's: %s" % j["mem_cap_bytes"])
            layers = j.get("layers", [])
            check(len(layers) > 0 and all(l["fwd_s"] > 0 and l["bwd_s"] > 0 for l in layers),
                  "partition layers: %s" % layers)
            print("partition --json: %d layers, source: %s" % (len(layers), j["costs_source"]))
    # no GPU visible: a one-line error
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    rc, out, err = run([bitpipec, gpt2, "-o", "/tmp/never", "--device-model", "gpu-profile"], env=env)
    print("no GPU visible: exit %d: %s" % (rc, err.strip()))
    check(rc == 1 and err.count("\n") == 1 and "no GPU is visible" in err, "the no-GPU error: %d %r" % (rc, err))
    print("%s" % ("all passed" if fails == 0 else "%d FAILED" % fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
