#!/usr/bin/env python3
"""Run bitpipe on the exports of tests/families/export_families.py and print one table row per
family x exporter:

  run       `bitpipec run` logits vs onnxruntime on the same file (max |diff| / max |ORT|); when
            onnxruntime is not importable, vs logits.torch.npy; mask.onnx also with a padded mask
            (attention_mask_pad.npy; both numbers shown, ones/padded)
  train     `bitpipec train --no-dropout` SGD (lr 0.05), 5 steps, vs the PyTorch reference
            (train_reference.json): worst relative difference of the loss and the gradient norm
  pipeline  (train, mask, cache, sdpa_train) tests/codegen/test_compile_run.py: `bitpipec MODEL -o
            train -D 2 -N rows/2 --micro-batch 2 --schedule SCHED` + `mpirun -np 2 ./train` vs
            `bitpipec train` (1e-5) and vs PyTorch (1e-4)

A failing step shows its first error line instead of a number. The exports (variants) are those of
tests/families/export_families.py: train dynamo ts mask ext op14 op12 dyn18 raw cache sdpa_train
sdpa_dynamo sdpa_op23 (all by default).
usage: check_families.py BITPIPEC DIR [--family F ...] [--variant V ...] [--schedule 1f1b]
       [--no-pipeline] [--tol 1e-4]
Exit status 1 when any check fails (for a regression test of committed families)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def first_err(p):
    lines = [l for l in (p.stderr + "\n" + p.stdout).splitlines() if l.strip()]
    errs = [l for l in lines if "error" in l.lower()] or lines
    return (errs[0] if errs else f"exit {p.returncode}")[:160]


def extra_inputs(onnx_path, d, prefix=""):
    """--input arguments for the graph inputs besides input_ids (the mask variant's attention_mask)."""
    return ["--input", "attention_mask=" + os.path.join(d, prefix + "attention_mask.npy")] \
        if os.path.basename(onnx_path) == "mask.onnx" else []


def check_run(bitpipec, d, onnx_path, work, mask="attention_mask.npy"):
    ids = os.path.join(d, "input_ids.npy")
    out = os.path.join(work, "run")
    extra = ["--input", "attention_mask=" + os.path.join(d, mask)] if extra_inputs(onnx_path, d) else []
    p = subprocess.run([bitpipec, "run", onnx_path, "--input", "input_ids=" + ids, "--output-dir", out] + extra,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        return False, "run failed: " + first_err(p)
    mine = np.load(os.path.join(out, "logits.npy")).astype(np.float64)
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        feed = {"input_ids": np.load(ids)}
        if len(sess.get_inputs()) > 1:
            feed["attention_mask"] = np.load(os.path.join(d, mask))
        ref, what = sess.run(None, feed)[0].astype(np.float64), "ORT"
    except ImportError:
        ref, what = np.load(os.path.join(d, "logits.torch.npy")).astype(np.float64), "torch"
    except Exception as e:  # noqa: BLE001  (onnxruntime rejects the export: compare with PyTorch)
        if mask != "attention_mask.npy":
            return True, "-"
        ref, what = np.load(os.path.join(d, "logits.torch.npy")).astype(np.float64), "torch"
        print(f"  note: {os.path.basename(d)}/{os.path.basename(onnx_path)}: onnxruntime fails "
              f"({str(e).splitlines()[0][:150]}); bitpipec run compared with PyTorch", flush=True)
    if not np.isfinite(ref).all():
        return False, f"{what} gives non-finite logits"
    if mine.shape != ref.shape:
        return False, f"shape {mine.shape} vs {what} {ref.shape}"
    rel = float(np.abs(mine - ref).max() / max(np.abs(ref).max(), 1e-30))
    return rel <= 1e-4, f"{rel:.1e}" + ("" if what == "ORT" else f" ({what})")


def steps_of(text):
    return [(float(w[3]), float(w[5])) for w in (l.split() for l in text.splitlines())
            if len(w) >= 6 and w[0] == "step" and w[2] == "loss"]


def check_train(bitpipec, d, onnx_path, tol):
    ref = json.load(open(os.path.join(d, "train_reference.json")))["sgd"]
    cmd = [bitpipec, "train", onnx_path, "--input", "input_ids=" + os.path.join(d, "input_ids.npy"),
           "--targets", os.path.join(d, "targets.npy"), "--steps", str(len(ref["loss"])),
           "--optimizer", "sgd", "--lr", repr(ref["config"]["lr"]), "--no-dropout"] + extra_inputs(onnx_path, d)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    got = steps_of(p.stdout)
    if p.returncode != 0 or len(got) != len(ref["loss"]):
        return False, "train failed: " + first_err(p)
    w1 = max(abs(got[0][0] - ref["loss"][0]) / ref["loss"][0], abs(got[0][1] - ref["grad_norm"][0]) / ref["grad_norm"][0])
    w = max(max(abs(g[0] - l) / l, abs(g[1] - n) / n) for g, l, n in zip(got, ref["loss"], ref["grad_norm"]))
    return w <= tol, f"{w:.1e}" + ("" if w <= tol else f" (step 1 {w1:.1e})")


def check_pipeline(bitpipec, d, onnx_path, sched):
    models, fam = os.path.dirname(d), os.path.basename(d)
    rows = np.load(os.path.join(d, "pipeline_input_ids.npy")).shape[0]  # N micro-batches of 2 sequences
    cmd = [sys.executable, os.path.join(HERE, "..", "codegen", "test_compile_run.py"), bitpipec, models, fam,
           sched, "-D", "2", "-N", str(rows // 2), "--micro-batch", "2", "--model", os.path.basename(onnx_path)] \
        + extra_inputs(onnx_path, d, "pipeline_")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    line = (p.stdout.strip().splitlines() or [""])[0]
    if p.returncode != 0:
        return False, line[:200] or first_err(p)
    part = line.split("loss rel diff ")[1].split(",")[0] if "loss rel diff " in line else "?"
    tl = line.split("vs PyTorch loss ")[1].split(" ")[0] if "vs PyTorch loss " in line else "?"
    return True, f"{part} (vs torch {tl})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bitpipec")
    ap.add_argument("dir")
    ap.add_argument("--family", nargs="*")
    ap.add_argument("--variant", nargs="*", default=["train", "dynamo", "ts", "mask", "ext", "op14", "op12", "dyn18", "raw", "cache",
                                                            "sdpa_train", "sdpa_dynamo", "sdpa_op23"])
    ap.add_argument("--schedule", default="1f1b")
    ap.add_argument("--no-pipeline", action="store_true")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    fams = args.family or sorted(f for f in os.listdir(args.dir) if os.path.isdir(os.path.join(args.dir, f)))
    bad = 0
    print(f"{'family':11s} {'export':7s} {'run vs ORT':>12s}  {'train vs torch':>14s}  pipeline vs single")
    for fam in fams:
        d = os.path.join(args.dir, fam)
        for v in args.variant:
            path = os.path.join(d, v + ".onnx")
            if not os.path.exists(path):
                info = json.load(open(os.path.join(d, "export.json"))).get(v, {}) \
                    if os.path.exists(os.path.join(d, "export.json")) else {}
                print(f"{fam:11s} {v:7s} not exported: {info.get('error', 'no file')[:150]}")
                continue
            with tempfile.TemporaryDirectory(prefix="bp_fam_") as work:
                r = check_run(args.bitpipec, d, path, work)
                if r[0] and v == "mask" and os.path.exists(os.path.join(d, "attention_mask_pad.npy")):
                    rp = check_run(args.bitpipec, d, path, work, "attention_mask_pad.npy")
                    r = (rp[0], r[1] + "/" + rp[1] if rp[0] else "padded mask: " + rp[1])
            t = check_train(args.bitpipec, d, path, args.tol)
            pl = check_pipeline(args.bitpipec, d, path, args.schedule) \
                if v in ("train", "mask", "cache", "sdpa_train") and not args.no_pipeline \
                else (True, "-")
            bad += (not r[0]) + (not t[0]) + (not pl[0])
            cell = lambda c: c[1] if c[0] else "FAIL " + c[1]  # noqa: E731
            print(f"{fam:11s} {v:7s} {cell(r):>12s}  {cell(t):>14s}  {cell(pl)}", flush=True)
    print(f"{bad} failed checks")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
