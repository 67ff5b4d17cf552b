#!/usr/bin/env python3
"""PyTorch training references for `bitpipec train` (tests/autodiff/test_train_models.py).

For each family: the same model export_models.py exports (same seed, same random init), trained
on models/<family>/input_ids.npy against models/<family>/targets.npy (written here: int64 [2, 16],
numpy.random.default_rng(1)) with softmax cross-entropy (mean over tokens), 5 steps of
  sgd:      torch.optim.SGD(lr=0.05)
  adamw:    torch.optim.AdamW(lr=1e-3, weight_decay=0.01)
  sgd_clip: torch.optim.SGD(lr=0.05) after torch.nn.utils.clip_grad_norm_(params, 1.0) (bitpipec --clip 1)
with dropout disabled (the model in eval mode; bitpipec train --no-dropout), since the two RNGs
differ, and embedding padding_idx cleared (ONNX's Gather cannot express it; see run()). Per step it records the loss and the global L2 gradient norm before the update, into
models/<family>/train_reference.json.

With --pipeline the same is done for a larger batch, for the pipeline runtime's tests (N = 8 micro-batches
of one sequence): models/<family>/pipeline_input_ids.npy and pipeline_targets.npy (int64 [8, 16],
numpy.random.default_rng(2) and (3)) and pipeline_reference.json.

Usage:  python3 models/make_torch_training_reference.py [--family gpt2 bert llama] [--steps 5] [--pipeline]
Needs:  torch transformers numpy (and what export_models.py imports)
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models as em  # noqa: E402  (applies the same transformers patch)

CONFIGS = {
    "sgd": dict(lr=0.05),
    "adamw": dict(lr=1e-3, weight_decay=0.01),
    "sgd_clip": dict(lr=0.05, clip=1.0),
}


def run(family, opt_name, ids, targets, steps):
    model = em.make_model(family)
    # nn.Embedding(padding_idx=...) zeroes the gradient of the padding row (BERT: token 0). That is
    # autograd metadata the ONNX export cannot carry (Gather has no padding_idx), so every
    # ONNX-trained model updates that row; the reference trains the function the file holds.
    for mod in model.modules():
        if isinstance(mod, torch.nn.Embedding):
            mod.padding_idx = None
    wrapped = em.LogitsOnly(model).eval()  # eval: dropout off
    params = list(wrapped.parameters())
    cfg = dict(CONFIGS[opt_name])
    clip = cfg.pop("clip", None)
    if opt_name.startswith("sgd"):
        opt = torch.optim.SGD(params, **cfg)
    else:
        opt = torch.optim.AdamW(params, **cfg)
    losses, norms = [], []
    for _ in range(steps):
        opt.zero_grad()
        logits = wrapped(ids)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params if p.grad is not None))
        losses.append(float(loss.item()))
        norms.append(float(norm.item()))
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
    return {"loss": losses, "grad_norm": norms, "config": CONFIGS[opt_name]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--family", nargs="*", default=["gpt2", "bert", "llama"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--pipeline", action="store_true", help="the [8, 16] batch of the pipeline tests")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for fam in args.family:
        d = os.path.join(args.out, fam)
        if args.pipeline:
            ids_np = np.random.default_rng(2).integers(0, em.VOCAB, size=(8, 16), dtype=np.int64)
            tg_np = np.random.default_rng(3).integers(0, em.VOCAB, size=ids_np.shape, dtype=np.int64)
            prefix = "pipeline_"
            np.save(os.path.join(d, prefix + "input_ids.npy"), ids_np)
        else:
            ids_np = np.load(os.path.join(d, "input_ids.npy"))
            tg_np = np.random.default_rng(1).integers(0, em.VOCAB, size=ids_np.shape, dtype=np.int64)
            prefix = ""
        np.save(os.path.join(d, prefix + "targets.npy"), tg_np)
        ids, tg = torch.from_numpy(ids_np), torch.from_numpy(tg_np)
        ref = {"family": fam, "steps": args.steps, "dropout": "off (eval mode)",
               "loss": "cross_entropy mean", "embedding_padding_idx": "cleared", "torch": torch.__version__}
        for opt_name in CONFIGS:
            ref[opt_name] = run(fam, opt_name, ids, tg, args.steps)
            print(fam, opt_name, ref[opt_name]["loss"])
        with open(os.path.join(d, prefix + "train_reference.json"), "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
