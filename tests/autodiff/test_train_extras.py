#!/usr/bin/env python3
"""Training checks beyond the PyTorch loss curves (test_train_models.py), numpy only:

  inspect   `bitpipec inspect` on gpt2/ts.onnx lists the untied Identity parameters, the retied LM
            head (an exact transpose of the embedding) and the activation stash; on gpt2/train.onnx
            the stash with dropout exceeds the one without by the Dropout masks (bool, one byte each)
  buffers   llama/dynamo.onnx freezes rotary_emb.inv_freq (a buffer) and --train overrides it; no
            export freezes a real weight (only rank-0 literals and inv_freq)
  dynamo    every dynamo.onnx trains with the warning naming the training recipe; the loss falls; the
            first loss equals PyTorch's (the forward is the same function; later steps differ: the
            file merges equal parameters and drops zero biases, so it trains another parameterisation)
  dropout   gpt2/train.onnx with dropout on: the loss falls, the same --seed reproduces the run bit for
            bit, another seed gives another run
  clip      --clip C with SGD equals the unclipped run with lr * C / (norm + 1e-6) (torch's
            clip_grad_norm_), and a C above the norm changes nothing
  mse       --loss mse on a tiny Gemm model equals numpy's closed-form gradient descent

usage: test_train_extras.py BITPIPEC MODELS_DIR   (closing line `N passed, M failed`)"""
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

RECIPE = "training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False, dynamo=False"
results = []


def check(label, ok, detail=""):
    results.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'} {label}{': ' + detail if detail else ''}")


def run(args):
    return subprocess.run(args, capture_output=True, text=True)


def steps(p):
    return [(float(r.split()[3]), float(r.split()[5])) for r in p.stdout.splitlines() if r.startswith("step ")]


def stash_bytes(out):
    m = re.search(r"activation stash: (\d+) bytes per micro-batch", out)
    return int(m.group(1)) if m else None


def frozen_section(out):
    lines, on = [], False
    for l in out.splitlines():
        if l.startswith("frozen parameters:"):
            on = True
            continue
        if on and not l.startswith("  "):
            break
        if on:
            lines.append(l.split())
    return lines


def main():
    bitpipec, models = sys.argv[1:3]
    tmp = tempfile.mkdtemp()

    def fam_args(fam, variant):
        d = os.path.join(models, fam)
        return [os.path.join(d, variant + ".onnx"), "--input", "input_ids=" + os.path.join(d, "input_ids.npy")]

    def train(fam, variant, *extra):
        d = os.path.join(models, fam)
        return run([bitpipec, "train"] + fam_args(fam, variant) + ["--targets", os.path.join(d, "targets.npy")] +
                   list(extra))

    # ---- inspect ----
    p = run([bitpipec, "inspect"] + fam_args("gpt2", "ts"))
    out = p.stdout
    untied = re.findall(r"^  (\S+) <- Identity\((\S+)\)$", out, re.M)
    check("inspect gpt2/ts: exit 0", p.returncode == 0, p.stderr.strip()[-300:])
    check("inspect gpt2/ts: 14 Identity parameters untied", len(untied) == 14 and
          ("model.transformer.ln_f.weight", "model.transformer.h.0.ln_1.weight") in untied, f"{len(untied)} listed")
    check("inspect gpt2/ts: LM head retied as the transpose of wte",
          re.search(r"^  onnx::MatMul_\d+ = transpose\(model\.transformer\.wte\.weight\)$", out, re.M) is not None)
    check("inspect gpt2/ts: wte trainable with shape and elements",
          re.search(r"^  model\.transformer\.wte\.weight\s+\[256,64\]\s+16384$", out, re.M) is not None)
    sb = stash_bytes(out)
    check("inspect gpt2/ts: stash bytes printed", sb is not None and sb > 0, f"{sb} bytes")
    p2 = run([bitpipec, "inspect", "--no-retie"] + fam_args("gpt2", "ts"))
    check("inspect --no-retie: nothing retied", "retied: 0" in p2.stdout)
    on = stash_bytes(run([bitpipec, "inspect"] + fam_args("gpt2", "train")).stdout)
    off = stash_bytes(run([bitpipec, "inspect", "--no-dropout"] + fam_args("gpt2", "train")).stdout)
    # gpt2 train.onnx: 7 Dropouts, 5 on [2,16,64] activations and 2 on [2,4,16,16] attention weights
    check("inspect gpt2/train: stash with dropout = without + the 7 masks (14336 bytes)",
          on is not None and off is not None and on - off == 5 * 2 * 16 * 64 + 2 * 2 * 4 * 16 * 16,
          f"{on} vs {off}")

    # ---- buffers ----
    for fam in ("gpt2", "bert", "llama"):
        for variant in ("ts", "train", "dynamo"):
            p = run([bitpipec, "inspect"] + fam_args(fam, variant))
            fr = frozen_section(p.stdout)
            real = [r[0] for r in fr if r[1] != "[]" and not r[0].endswith("rotary_emb.inv_freq")]
            check(f"buffers {fam}/{variant}: no real weight frozen", p.returncode == 0 and not real,
                  f"{len(fr)} frozen: {' '.join(r[0] for r in fr)}")
    p = run([bitpipec, "inspect"] + fam_args("llama", "dynamo"))
    fr = {r[0]: " ".join(r[3:]) for r in frozen_section(p.stdout)}
    check("buffers llama/dynamo: rotary_emb.inv_freq frozen as a buffer",
          fr.get("model.model.rotary_emb.inv_freq", "").startswith("buffer"), str(fr))
    p = run([bitpipec, "inspect", "--train", "inv_freq|layers"] + fam_args("llama", "dynamo"))
    check("buffers llama/dynamo: --train overrides (inv_freq trained)",
          re.search(r"^trainable parameters:.*\n(  .*\n)*  model\.model\.rotary_emb\.inv_freq ", p.stdout, re.M)
          is not None)
    p = run([bitpipec, "inspect", "--freeze", "embed"] + fam_args("llama", "dynamo"))
    check("buffers llama/dynamo: --freeze freezes a weight",
          re.search(r"^  model\.model\.embed_tokens\.weight .*--freeze/--train$", p.stdout, re.M) is not None)

    # ---- dynamo exports ----
    import json
    for fam in ("gpt2", "bert", "llama"):
        ref = json.load(open(os.path.join(models, fam, "train_reference.json")))["sgd"]
        p = train(fam, "dynamo", "--steps", "5", "--lr", "0.05", "--no-dropout")
        s = steps(p)
        ok = p.returncode == 0 and len(s) == 5 and RECIPE in p.stderr and s[-1][0] < s[0][0]
        first = abs(s[0][0] - ref["loss"][0]) / ref["loss"][0] if s else 1
        check(f"dynamo {fam}: trains, warns with the recipe, loss falls, step-1 loss = torch's",
              ok and first < 1e-5, f"loss {s[0][0] if s else '?'} -> {s[-1][0] if s else '?'}, step-1 rel diff "
              f"{first:.2g}; {p.stderr.strip()[-200:] if p.returncode else ''}")

    # ---- dropout on ----
    a = train("gpt2", "train", "--steps", "6", "--optimizer", "adamw", "--lr", "1e-3", "--seed", "1")
    b = train("gpt2", "train", "--steps", "6", "--optimizer", "adamw", "--lr", "1e-3", "--seed", "1")
    c = train("gpt2", "train", "--steps", "6", "--optimizer", "adamw", "--lr", "1e-3", "--seed", "2")
    n = train("gpt2", "train", "--steps", "6", "--optimizer", "adamw", "--lr", "1e-3", "--no-dropout")
    sa, sb_, sc, sn = steps(a), steps(b), steps(c), steps(n)
    check("dropout gpt2/train: runs", all(x.returncode == 0 and len(y) == 6 for x, y in
                                          ((a, sa), (b, sb_), (c, sc), (n, sn))), a.stderr.strip()[-200:])
    if sa and sc and sn:
        check("dropout gpt2/train: loss falls", sa[-1][0] < sa[0][0], f"{sa[0][0]} -> {sa[-1][0]}")
        check("dropout gpt2/train: same seed, same run", sa == sb_)
        check("dropout gpt2/train: another seed, another run", sa != sc and sa[0][0] != sc[0][0],
              f"step 1 loss {sa[0][0]} vs {sc[0][0]}")
        check("dropout gpt2/train: differs from --no-dropout", sa[0][0] != sn[0][0])

    # ---- clip: torch.nn.utils.clip_grad_norm_ semantics ----
    base = ["--steps", "2", "--optimizer", "sgd", "--no-dropout"]
    p0 = train("gpt2", "train", *base, "--lr", "0.05")
    s0 = steps(p0)
    C = 0.25
    pc = train("gpt2", "train", *base, "--lr", "0.05", "--clip", repr(C))
    sc = steps(pc)
    if s0 and sc:
        norm = s0[0][1]
        lr_eff = 0.05 * C / (norm + 1e-6)
        pe = train("gpt2", "train", *base, "--lr", repr(lr_eff))
        se = steps(pe)
        rel = abs(sc[1][0] - se[1][0]) / se[1][0] if se else 1
        check("clip: --clip C equals lr * C / (norm + 1e-6), norm reported before clipping",
              sc[0] == s0[0] and norm > C and rel < 1e-6, f"norm {norm:.6g}, step-2 loss {sc[1][0]} vs {se[1][0] if se else '?'}"
              f" (rel {rel:.2g})")
        pb = train("gpt2", "train", *base, "--lr", "0.05", "--clip", repr(norm * 2))
        check("clip: C above the norm changes nothing", steps(pb) == s0)
    else:
        check("clip: runs", False, pc.stderr.strip()[-200:])

    # ---- MSE on a tiny model, against numpy ----
    try:
        from onnx import TensorProto, helper, save
    except ImportError:
        check("mse tiny model: skipped (no onnx module)", True)
    else:
        rng = np.random.default_rng(3)
        W = rng.standard_normal((5, 3)).astype(np.float32)
        bias = rng.standard_normal(3).astype(np.float32)
        X = rng.standard_normal((4, 5)).astype(np.float32)
        T = rng.standard_normal((4, 3)).astype(np.float32)
        g = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
                              [helper.make_tensor("w", TensorProto.FLOAT, [5, 3], W.ravel()),
                               helper.make_tensor("b", TensorProto.FLOAT, [3], bias)])
        mp = os.path.join(tmp, "tiny.onnx")
        save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), mp)
        np.save(os.path.join(tmp, "x.npy"), X)
        np.save(os.path.join(tmp, "t.npy"), T)
        lr, K = 0.1, 4
        p = run([bitpipec, "train", mp, "--input", "x=" + os.path.join(tmp, "x.npy"), "--targets",
                 os.path.join(tmp, "t.npy"), "--loss", "mse", "--steps", str(K), "--lr", repr(lr)])
        got = steps(p)
        w, bb, worst = W.astype(np.float64), bias.astype(np.float64), 0.0
        for k in range(K):
            d = X.astype(np.float64) @ w + bb - T
            loss = (d * d).mean()
            gy = 2 * d / d.size
            gw, gb = X.T.astype(np.float64) @ gy, gy.sum(0)
            norm = math.sqrt((gw * gw).sum() + (gb * gb).sum())
            if k < len(got):
                worst = max(worst, abs(got[k][0] - loss) / loss, abs(got[k][1] - norm) / norm)
            w, bb = w - lr * gw, bb - lr * gb
        check("mse tiny Gemm model: loss and grad norm = numpy's over 4 SGD steps",
              p.returncode == 0 and len(got) == K and worst < 1e-5, f"max rel diff {worst:.2g} {p.stderr.strip()[-200:]}")

    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
