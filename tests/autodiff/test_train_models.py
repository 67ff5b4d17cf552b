#!/usr/bin/env python3
"""Whole-model training check: `bitpipec train` on a committed export against the PyTorch reference
(models/<family>/train_reference.json, made by models/make_torch_training_reference.py): per-step
loss and gradient norm within a relative 1e-4, dropout off on both sides.

usage: test_train_models.py BITPIPEC MODELS_DIR FAMILY VARIANT [--tol 1e-4]
Prints one line per optimizer and a closing line `N passed, M failed`."""
import json
import os
import subprocess
import sys


def main():
    bitpipec, models, fam, variant = sys.argv[1:5]
    tol = float(sys.argv[sys.argv.index("--tol") + 1]) if "--tol" in sys.argv else 1e-4
    d = os.path.join(models, fam)
    ref = json.load(open(os.path.join(d, "train_reference.json")))
    passed = failed = 0
    for name in ("sgd", "adamw", "sgd_clip"):
        if name not in ref:
            continue
        r = ref[name]
        opt = name.split("_")[0]
        cmd = [bitpipec, "train", os.path.join(d, variant + ".onnx"), "--input",
               "input_ids=" + os.path.join(d, "input_ids.npy"), "--targets", os.path.join(d, "targets.npy"),
               "--steps", str(len(r["loss"])), "--optimizer", opt, "--lr", repr(r["config"]["lr"]),
               "--weight-decay", repr(r["config"].get("weight_decay", 0.0)), "--no-dropout"]
        if "clip" in r["config"]:
            cmd += ["--clip", repr(r["config"]["clip"])]
        p = subprocess.run(cmd, capture_output=True, text=True)
        got = [l.split() for l in p.stdout.splitlines() if l.startswith("step ")]
        if p.returncode != 0 or len(got) != len(r["loss"]):
            print(f"FAIL {fam}/{variant} {name}: exit {p.returncode}\n{p.stderr}")
            failed += 1
            continue
        worst = 0.0
        for k, row in enumerate(got):
            loss, gn = float(row[3]), float(row[5])
            worst = max(worst, abs(loss - r["loss"][k]) / abs(r["loss"][k]),
                        abs(gn - r["grad_norm"][k]) / abs(r["grad_norm"][k]))
        ok = worst <= tol
        print(f"{'ok  ' if ok else 'FAIL'} {fam}/{variant} {name}: max rel diff (loss, grad_norm) {worst:.3g} "
              f"over {len(got)} steps (tol {tol:g})")
        if not ok:
            for k, row in enumerate(got):
                print(f"   step {k+1}: loss {row[3]} vs {r['loss'][k]!r}, grad_norm {row[5]} vs {r['grad_norm'][k]!r}")
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
