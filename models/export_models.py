#!/usr/bin/env python3
"""Export the tiny, randomly initialised transformer models bitpipe's tests use.

No download and no hub access: every model is built from a `transformers` config
object with random weights (torch.manual_seed fixed), so the exports are
reproducible from this script alone (given the same torch/transformers versions,
see models/README.md).

Families (directory models/<family>/):
  gpt2   GPT2LMHeadModel    (tied LM head, Conv1D weights, learned positions)
  bert   BertForMaskedLM    (tied decoder, post-LN, token_type embeddings)
  llama  LlamaForCausalLM   (RMSNorm, RoPE, SwiGLU, GQA: 4 heads / 2 kv heads)

Sizes: 2 layers, hidden 64, 4 heads, intermediate 128, vocab 256 (bytes),
max positions 64. Dropout probabilities are 0.1 (Llama: attention_dropout 0.1)
so the training-mode export carries Dropout nodes.

Each model is exported three ways, input `input_ids` int64 [batch, sequence]
only, output `logits` only (a wrapper returns model(...)[0]):
  ts.onnx      torch.onnx.export(dynamo=False, opset_version=17), eval mode,
               constant folding on (the default TorchScript export);
  dynamo.onnx  torch.onnx.export(dynamo=True) default (optimize=True), eval
               mode, dynamic_shapes with Dim("batch")/Dim("sequence"); saved as
               one file (no external data);
  train.onnx   torch.onnx.export(training=TrainingMode.TRAINING,
               do_constant_folding=False, dynamo=False, opset_version=17):
               the training recipe (every parameter its own initializer).

Side files per family:
  input_ids.npy              int64 [2, 16], values in [0, 256), fixed seed
  logits.torch.npy           PyTorch eval-mode logits for that input
  <variant>.logits.ort.npy   onnxruntime (CPUExecutionProvider) logits for it

Usage:  python3 models/export_models.py [--out models] [--family gpt2 ...]
Needs:  torch transformers onnx onnxruntime onnxscript numpy
"""
import argparse
import collections
import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import transformers

SEED = 0
VOCAB = 256
HIDDEN = 64
HEADS = 4
KV_HEADS = 2
LAYERS = 2
INTER = 128
MAX_POS = 64
DROPOUT = 0.1
TEST_SHAPE = (2, 16)
VARIANTS = ("ts", "dynamo", "train")


def _no_packed_sequences(position_ids):
    """Eager-mode result of transformers.masking_utils.find_packed_sequence_indices
    for our inputs (positions are always arange(seq), never packed): None.

    Under tracing transformers keeps the packed-sequence mask in the graph
    (torch.diff + cumsum), and aten::diff has no TorchScript ONNX symbolic at
    opset 17. Returning None is exactly what the model does in eager mode."""
    return None


transformers.masking_utils.find_packed_sequence_indices = _no_packed_sequences


def make_model(family):
    """Build the tiny model of `family` with random weights (seeded)."""
    torch.manual_seed(SEED)
    if family == "gpt2":
        cfg = transformers.GPT2Config(
            vocab_size=VOCAB, n_positions=MAX_POS, n_embd=HIDDEN, n_layer=LAYERS,
            n_head=HEADS, n_inner=INTER, resid_pdrop=DROPOUT, embd_pdrop=DROPOUT,
            attn_pdrop=DROPOUT, bos_token_id=0, eos_token_id=0, use_cache=False)
        cls = transformers.GPT2LMHeadModel
    elif family == "bert":
        cfg = transformers.BertConfig(
            vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, intermediate_size=INTER,
            max_position_embeddings=MAX_POS, hidden_dropout_prob=DROPOUT,
            attention_probs_dropout_prob=DROPOUT, type_vocab_size=2,
            pad_token_id=0)
        cls = transformers.BertForMaskedLM
    elif family == "llama":
        cfg = transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER,
            num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            num_key_value_heads=KV_HEADS, max_position_embeddings=MAX_POS,
            attention_dropout=DROPOUT, tie_word_embeddings=False,
            bos_token_id=0, eos_token_id=0, pad_token_id=None, use_cache=False)
        cls = transformers.LlamaForCausalLM
    else:
        raise ValueError(family)
    cfg._attn_implementation = "eager"
    try:
        model = cls(cfg, attn_implementation="eager")
    except TypeError:
        model = cls(cfg)
    model.config._attn_implementation = "eager"
    return model


class LogitsOnly(torch.nn.Module):
    """forward(input_ids) -> logits (no cache, no extra outputs).

    Parameter names in the exports are therefore "model." + the transformers
    state_dict name (e.g. model.transformer.wte.weight)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        # BERT's forward has no use_cache; the decoders must not build a cache.
        self.kwargs = {} if isinstance(model, transformers.BertForMaskedLM) \
            else {"use_cache": False}

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, return_dict=False, **self.kwargs)[0]


def export_ts(wrapped, ids, path, training):
    kw = dict(input_names=["input_ids"], output_names=["logits"],
              dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                            "logits": {0: "batch", 1: "sequence"}},
              opset_version=17, dynamo=False)
    if training:
        wrapped.train()
        kw.update(training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    else:
        wrapped.eval()
    torch.onnx.export(wrapped, (ids,), path, **kw)
    wrapped.eval()


def export_dynamo(wrapped, ids, path):
    wrapped.eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    seq = torch.export.Dim("sequence", min=2, max=MAX_POS)
    prog = torch.onnx.export(wrapped, (ids,), None, dynamo=True,
                             input_names=["input_ids"], output_names=["logits"],
                             dynamic_shapes={"input_ids": {0: batch, 1: seq}})
    m = prog.model_proto
    onnx.save(m, path, save_as_external_data=False)
    data = path + ".data"
    if os.path.exists(data):
        os.remove(data)


def histogram(model):
    h = collections.Counter(n.op_type for n in model.graph.node)
    return dict(sorted(h.items()))


def io_desc(model):
    def dims(vi):
        return [d.dim_param if d.dim_param else d.dim_value
                for d in vi.type.tensor_type.shape.dim]
    inits = {i.name for i in model.graph.initializer}
    ins = [(i.name, onnx.TensorProto.DataType.Name(i.type.tensor_type.elem_type), dims(i))
           for i in model.graph.input if i.name not in inits]
    outs = [(o.name, onnx.TensorProto.DataType.Name(o.type.tensor_type.elem_type), dims(o))
            for o in model.graph.output]
    return ins, outs


def run_ort(path, ids, optimize=True):
    """ORT CPU inference. With ORT's default graph optimisations (as
    make_reference.py runs it) the EliminateDropout rewrite removes every
    Dropout node, even those whose training_mode input is a constant True, so
    train.onnx then computes the eval-mode function deterministically. With
    optimize=False ORT executes those Dropout nodes (random masks)."""
    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input_ids": ids})[0]


EXTRA_SHAPES = ((1, 5), (3, MAX_POS))


def max_diffs(got, ref):
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    rel = diff / np.maximum(np.abs(ref.astype(np.float64)), 1e-6)
    return float(diff.max()), float(rel.max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--family", nargs="*", default=["gpt2", "bert", "llama"])
    ap.add_argument("--summary", default=None,
                    help="JSON summary path (default: <out>/manifest.json)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    summary = {"versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                            "transformers": transformers.__version__,
                            "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                            "numpy": np.__version__}}
    for fam in args.family:
        d = os.path.join(args.out, fam)
        os.makedirs(d, exist_ok=True)
        model = make_model(fam)
        wrapped = LogitsOnly(model).eval()
        rng = np.random.default_rng(SEED)
        ids_np = rng.integers(0, VOCAB, size=TEST_SHAPE, dtype=np.int64)
        np.save(os.path.join(d, "input_ids.npy"), ids_np)
        ids = torch.from_numpy(ids_np)
        with torch.no_grad():
            ref = wrapped(ids).numpy()
        np.save(os.path.join(d, "logits.torch.npy"), ref)
        fs = {"params": sum(p.numel() for p in model.parameters())}
        for v in VARIANTS:
            path = os.path.join(d, v + ".onnx")
            if v == "ts":
                export_ts(wrapped, ids, path, training=False)
            elif v == "train":
                export_ts(wrapped, ids, path, training=True)
            else:
                export_dynamo(wrapped, ids, path)
            m = onnx.load(path)
            onnx.checker.check_model(m)
            got = run_ort(path, ids_np)
            again = run_ort(path, ids_np)
            np.save(os.path.join(d, v + ".logits.ort.npy"), got)
            max_abs, max_rel = max_diffs(got, ref)
            # the dynamic axes must really be dynamic: other [batch, sequence]
            other = {}
            for shape in EXTRA_SHAPES:
                x = np.random.default_rng(SEED + 1).integers(0, VOCAB, size=shape, dtype=np.int64)
                with torch.no_grad():
                    r = wrapped(torch.from_numpy(x)).numpy()
                other["x".join(map(str, shape))] = max_diffs(run_ort(path, x), r)[0]
            if v == "train":
                raw = [run_ort(path, ids_np, optimize=False) for _ in range(2)]
                unopt = {"max_abs_vs_torch_eval": max_diffs(raw[0], ref)[0],
                         "repeat_equal": bool(np.array_equal(raw[0], raw[1]))}
            ins, outs = io_desc(m)
            info = {
                "bytes": os.path.getsize(path),
                "opset": [(o.domain or "ai.onnx", o.version) for o in m.opset_import],
                "inputs": ins, "outputs": outs,
                "nodes": len(m.graph.node), "initializers": len(m.graph.initializer),
                "histogram": histogram(m),
                "max_abs": max_abs, "max_rel": max_rel,
                "ort_deterministic": bool(np.array_equal(got, again)),
                "max_abs_other_shapes": other,
            }
            if v == "train":
                info["ort_unoptimized"] = unopt
            fs[v] = info
            print(f"{fam}/{v}.onnx: {info['bytes']} B, {info['nodes']} nodes, "
                  f"{info['initializers']} initializers, in={ins} out={outs}")
            print(f"  ops: {info['histogram']}")
            print(f"  torch vs ORT: max abs {info['max_abs']:.3g}, max rel {info['max_rel']:.3g}, "
                  f"ORT repeat-deterministic={info['ort_deterministic']}, "
                  f"other shapes max abs {other}")
            if v == "train":
                print(f"  ORT with optimisations off (Dropout executed): max abs vs torch eval "
                      f"{unopt['max_abs_vs_torch_eval']:.3g}, repeat-equal={unopt['repeat_equal']}")
        summary[fam] = fs
    path = args.summary or os.path.join(args.out, "manifest.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
