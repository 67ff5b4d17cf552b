#!/usr/bin/env python3
"""Run an ONNX model with onnxruntime (CPU) and save every output as .npy.

Needs only numpy and onnxruntime (no torch), so CI can make reference outputs.

Usage:
  python3 models/make_reference.py MODEL.onnx --input input_ids=FILE.npy [--input NAME=FILE.npy ...]
                                   --out-dir DIR [--no-optimize [--seed N]]

Writes DIR/<output_name>.npy for each graph output (characters other than
[A-Za-z0-9._-] in the name become '_'), and prints name, shape, dtype per output.

ORT runs with its default graph optimisations unless --no-optimize is given.
Note: with the defaults ORT's EliminateDropout rewrite removes every Dropout
node, including those of a training-mode export whose training_mode input is a
constant True, so such a model yields its eval-mode (deterministic) output.
--no-optimize (ORT_DISABLE_ALL) executes those Dropout nodes: random masks,
repeatable only under --seed (onnxruntime.set_seed) within one ORT build.
"""
import argparse
import os
import re
import sys

import numpy as np
import onnxruntime as ort


def parse_inputs(pairs):
    feeds = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            sys.exit(f"make_reference: --input wants NAME=FILE.npy, got {pair!r}")
        feeds[name] = np.load(path)
    return feeds


def safe_name(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "output"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="path to the .onnx file")
    ap.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                    help="a graph input and the .npy file holding it (repeatable)")
    ap.add_argument("--out-dir", required=True, help="folder for <output_name>.npy")
    ap.add_argument("--no-optimize", action="store_true",
                    help="disable ORT graph optimisations (Dropout nodes then run)")
    ap.add_argument("--seed", type=int, default=None, help="onnxruntime.set_seed(N) first")
    args = ap.parse_args(argv)

    feeds = parse_inputs(args.input)
    so = ort.SessionOptions()
    if args.no_optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if args.seed is not None:
        ort.set_seed(args.seed)
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])

    wanted = [i.name for i in sess.get_inputs()]
    missing = [n for n in wanted if n not in feeds]
    extra = [n for n in feeds if n not in wanted]
    if missing or extra:
        sys.exit(f"make_reference: model inputs are {wanted}; missing {missing}, unknown {extra}")

    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, feeds)
    os.makedirs(args.out_dir, exist_ok=True)
    for name, value in zip(names, outs):
        value = np.asarray(value)
        path = os.path.join(args.out_dir, safe_name(name) + ".npy")
        np.save(path, value)
        print(f"{name}: shape {list(value.shape)} {value.dtype} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
