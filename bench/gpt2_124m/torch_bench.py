#!/usr/bin/env python3
"""Training throughput of GPT-2 124M in PyTorch (eager or torch.compile) on one GPU.

The model is the one bench/gpt2_124m/export.py exports (transformers GPT2LMHeadModel,
12 layers, 768 wide, 12 heads, vocab 50304, 1024 positions, dropout 0), here with
attention through SDPA (attn_implementation="sdpa": flash attention for the causal
mask), bf16 autocast, fused AdamW (lr 1e-4, weight decay 0.1), TF32 allowed for the
float32 matmuls that autocast leaves (torch.set_float32_matmul_precision("high"),
as nanoGPT). The loss is cross-entropy of the logits against the given targets
(mean over tokens), the same loss bitpipec train appends; the batch is the same
fixed batch every step, as bitpipec train does.

Timing: --warmup steps first (torch.compile compiles in the first), then --steps
timed steps between CUDA events with a synchronisation at the end; ms/step is the
mean over the timed steps (the per-step times, each a CUDA-event interval, give
the median too). Prints one line

    RESULT system=pytorch-eager precision=bf16 batch=B seq=T ms_per_step=X tokens_per_s=Y
           median_ms=M peak_mem_gib=G loss_first=L0 loss_last=L1

Usage: python3 bench/gpt2_124m/torch_bench.py --mode eager|compile --input IDS.npy
       --targets TGT.npy [--steps 20] [--warmup 5]"""
import argparse
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import transformers


def make_model(vocab, positions, layers, embd, heads):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=vocab, n_positions=positions, n_embd=embd, n_layer=layers, n_head=heads,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
        use_cache=False)
    cfg._attn_implementation = "sdpa"  # the constructor takes no attn_implementation argument
    model = transformers.GPT2LMHeadModel(cfg)
    model.config._attn_implementation = "sdpa"
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["eager", "compile"], required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--embd", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    args = ap.parse_args()
    torch.set_float32_matmul_precision("high")
    dev = torch.device("cuda")
    ids = torch.from_numpy(np.load(args.input)).to(dev)
    tgt = torch.from_numpy(np.load(args.targets)).to(dev)
    b, t = ids.shape
    model = make_model(args.vocab, 1024, args.layers, args.embd, args.heads).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    fwd = torch.compile(model) if args.mode == "compile" else model

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(input_ids=ids, use_cache=False, return_dict=False)[0]
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), tgt.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.time()
    losses = []
    for _ in range(args.warmup):
        losses.append(step().item())
    torch.cuda.synchronize()
    warm_s = time.time() - t0
    torch.cuda.reset_peak_memory_stats()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(args.steps + 1)]
    ev[0].record()
    for i in range(args.steps):
        loss = step()
        ev[i + 1].record()
    torch.cuda.synchronize()
    per = [ev[i].elapsed_time(ev[i + 1]) for i in range(args.steps)]
    total = ev[0].elapsed_time(ev[-1])
    ms = total / args.steps
    print(f"warm-up: {args.warmup} steps in {warm_s:.1f} s (compilation included for compile)")
    print(f"RESULT system=pytorch-{args.mode} precision=bf16 batch={b} seq={t} ms_per_step={ms:.3f} "
          f"tokens_per_s={b * t / (ms / 1e3):.0f} median_ms={float(np.median(per)):.3f} "
          f"peak_mem_gib={torch.cuda.max_memory_allocated() / 2**30:.1f} "
          f"loss_first={losses[0]:.4f} loss_last={loss.item():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
