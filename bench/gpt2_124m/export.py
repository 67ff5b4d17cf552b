#!/usr/bin/env python3
"""Export GPT-2 124M (random weights) as bitpipe's training recipe, plus a token batch.

The model is transformers' GPT2LMHeadModel with n_layer 12, n_embd 768, n_head 12,
vocab 50304 (50257 rounded up to a multiple of 128, as llm.c and nanoGPT do),
n_positions 1024, GELU-tanh ("gelu_new"), LM head tied to wte, dropout 0 (the
benchmark trains without dropout in all three systems). It is exported the way
models/export_models.py exports the committed train.onnx files:

    torch.onnx.export(..., training=TrainingMode.TRAINING, do_constant_folding=False,
                      dynamo=False, opset_version=17)

with the same patch (transformers.masking_utils.find_packed_sequence_indices -> None:
aten::diff has no TorchScript symbolic; None is what eager mode returns for
positions arange(sequence)) and the same LogitsOnly wrapper (input `input_ids`,
output `logits`, dynamic batch/sequence axes). Attention is "eager" (matmul,
mask, softmax, matmul), the only form the TorchScript exporter writes out.

The export is traced at a small batch (2 x 64): the graph is the same for every
shape (dynamic axes), and tracing at 16 x 1024 would only cost time and memory.
The ~500 MB file (fp32 weights inside the .onnx) is written where --out says,
on the GPU machine; it is never committed.

Also writes input_ids.npy / targets.npy (int64 [batch, seq], uniform random
tokens; targets = inputs shifted by one, the last one random) for each
--batch given, as BATCHxSEQ.input_ids.npy / BATCHxSEQ.targets.npy.

Usage: python3 bench/gpt2_124m/export.py --out DIR [--batch 16 8 4] [--seq 1024]
       [--layers 12 --embd 768 --heads 12 --vocab 50304]   (smaller for a local try)
Needs: torch, transformers, onnx (as on the GPU machine)."""
import argparse
import os
import sys
import time
import warnings

import numpy as np
import onnx
import torch
import transformers


def _no_packed_sequences(position_ids):
    """Eager-mode result of find_packed_sequence_indices for arange positions (see the docstring)."""
    return None


transformers.masking_utils.find_packed_sequence_indices = _no_packed_sequences


def make_model(layers, embd, heads, vocab, positions, seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        vocab_size=vocab, n_positions=positions, n_embd=embd, n_layer=layers, n_head=heads,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
        use_cache=False)
    cfg._attn_implementation = "eager"
    model = transformers.GPT2LMHeadModel(cfg)
    model.config._attn_implementation = "eager"
    return model


class LogitsOnly(torch.nn.Module):
    """forward(input_ids) -> logits (as models/export_models.py)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, return_dict=False, use_cache=False)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, nargs="+", default=[16])
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--embd", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--positions", type=int, default=1024)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    model = make_model(args.layers, args.embd, args.heads, args.vocab, args.positions)
    nparams = sum(p.numel() for p in model.parameters())
    wrapped = LogitsOnly(model).train()
    trace_ids = torch.randint(0, args.vocab, (2, min(64, args.seq)), dtype=torch.int64)
    path = os.path.join(args.out, "train.onnx")
    torch.onnx.export(wrapped, (trace_ids,), path, input_names=["input_ids"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                    "logits": {0: "batch", 1: "sequence"}},
                      opset_version=17, dynamo=False, training=torch.onnx.TrainingMode.TRAINING,
                      do_constant_folding=False)
    m = onnx.load(path, load_external_data=False)
    ops = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    print(f"export: {path}: {os.path.getsize(path) / 1e6:.1f} MB, {nparams} parameters "
          f"({nparams / 1e6:.2f} M), {len(m.graph.node)} nodes, {len(m.graph.initializer)} initializers, "
          f"{time.time() - t0:.1f} s")
    print("export ops:", dict(sorted(ops.items())))
    rng = np.random.default_rng(0)
    for b in args.batch:
        toks = rng.integers(0, args.vocab, size=(b, args.seq + 1), dtype=np.int64)
        np.save(os.path.join(args.out, f"{b}x{args.seq}.input_ids.npy"), np.ascontiguousarray(toks[:, :-1]))
        np.save(os.path.join(args.out, f"{b}x{args.seq}.targets.npy"), np.ascontiguousarray(toks[:, 1:]))
    with open(os.path.join(args.out, "params.txt"), "w") as f:
        f.write(f"{nparams}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
