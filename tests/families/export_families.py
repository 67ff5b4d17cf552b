#!/usr/bin/env python3
"""Export tiny random-weight transformers of families bitpipe's committed models (gpt2, bert, llama)
do not cover, for robustness checks (tests/families/check_families.py) and the regression models
committed under models/<family>/.

No download and no hub access: each model is built from a `transformers` config object, seeded
(torch.manual_seed(0)), 2 layers, hidden 64, vocab 256, then every parameter is perturbed
(p += 0.02 * N(0, 1), seeded): a fresh model has every norm gamma 1 and every bias 0, which the
default dynamo export merges into one tensor (models/README.md, Quirks); perturbed weights look like
a trained model's and keep every parameter apart, so a dynamo export can be trained and compared with
PyTorch step by step too. Dropout probabilities are 0.1 where the config has them, so the training
recipe's export carries Dropout nodes.

Each family is exported up to five ways (input `input_ids` int64 [batch, sequence], output `logits`):
  train.onnx   the training recipe: torch.onnx.export(training=TrainingMode.TRAINING,
               do_constant_folding=False, dynamo=False, opset_version=17), model in train mode;
  dynamo.onnx  torch.onnx.export(dynamo=True) default (optimize=True), eval mode, dynamic
               Dim("batch")/Dim("sequence"); one file (no external data);
  ts.onnx      TorchScript default (eval, constant folding on, opset 17);
  mask.onnx    the training recipe with a second input `attention_mask` int64 [batch, sequence]
               (as optimum and pipeline exports have it; attention_mask.npy holds ones,
               attention_mask_pad.npy pads the first sequence's last 5 tokens);
  ext.onnx     dynamo as torch.onnx.export(model, args, "ext.onnx", dynamo=True) saves it: the
               weights in ext.onnx.data (external data);
  op14, op12   the training recipe at opset 14 / 12 (older exports: LayerNorm decomposed);
  dyn18, raw   dynamo at opset 18; dynamo with optimize=False;
  cache.onnx   the training recipe with use_cache=True: logits, then each layer's present key and
               value as further outputs (decoders only);
  sdpa_*       with transformers' default attention (sdpa) instead of eager: training recipe,
               dynamo default, dynamo at opset 23 (ONNX Attention / RotaryEmbedding ops).
The default is train dynamo ts mask ext (--variant picks others).

Side files per family (directory OUT/<family>/), the conventions of models/<family>/:
  input_ids.npy, targets.npy           int64 [2, 16] (gpt2_odd: [3, 13]); default_rng(0) and (1)
  logits.torch.npy                     PyTorch eval-mode logits for input_ids.npy
  train_reference.json                 5 steps of SGD (lr 0.05) and AdamW (lr 1e-3, wd 0.01) in
                                       PyTorch, dropout off: loss and gradient norm per step
  pipeline_input_ids.npy, pipeline_targets.npy, pipeline_train_reference.json
                                       the same for [8, 16] (gpt2_odd: [6, 13]), default_rng(2)/(3),
                                       for tests/codegen/test_compile_run.py
  export.json                          what happened: per variant bytes, nodes, op histogram, torch
                                       vs onnxruntime max abs difference, or the exporter's error

Committed (models/<family>/, < 400 KB each): gemma2, falcon, albert, mixtral; export_families.py --commit
copies train.onnx, the inputs, targets and references of those into models/.

Usage:  python3 tests/families/export_families.py [--out DIR] [--family mistral qwen2 ...] [--variant ...]
        python3 tests/families/export_families.py --commit   (regenerates models/{gemma2,falcon,albert,mixtral})
Needs:  torch transformers onnx onnxruntime onnxscript numpy (versions: models/README.md)
"""
import argparse
import collections
import inspect
import json
import os
import sys
import traceback
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import transformers as T

# models/export_models.py applies the transformers patch every export needs (packed-sequence
# detection returns None, as in eager mode for our inputs); reuse it.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
import export_models as em  # noqa: E402

SEED = 0
VOCAB = 256
H = 64
L = 2
DROP = 0.1
STEPS = 5
OPTS = {"sgd": dict(lr=0.05), "adamw": dict(lr=1e-3, weight_decay=0.01)}

# family -> (model class, config class, config kwargs, test shape, pipeline shape, note)
DEC = dict(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=L, num_attention_heads=4,
           max_position_embeddings=64, bos_token_id=0, eos_token_id=0, pad_token_id=None,
           use_cache=False)
FAMILIES = {
    "mistral": (T.MistralForCausalLM, T.MistralConfig,
                dict(DEC, intermediate_size=96, num_key_value_heads=2, sliding_window=8,
                     attention_dropout=DROP, tie_word_embeddings=True),
                "GQA, sliding window 8 < sequence 16"),
    "qwen2": (T.Qwen2ForCausalLM, T.Qwen2Config,
              dict(DEC, intermediate_size=96, num_key_value_heads=2, attention_dropout=DROP,
                   tie_word_embeddings=True),
              "q/k/v biases, GQA"),
    "qwen3": (T.Qwen3ForCausalLM, T.Qwen3Config,
              dict(DEC, intermediate_size=96, num_key_value_heads=2, head_dim=16,
                   attention_dropout=DROP, tie_word_embeddings=True),
              "q/k RMSNorm per head"),
    "gemma": (T.GemmaForCausalLM, T.GemmaConfig,
              dict(DEC, intermediate_size=96, num_key_value_heads=1, head_dim=16,
                   hidden_activation="gelu_pytorch_tanh", attention_dropout=DROP),
              "embedding * sqrt(hidden), RMSNorm (1 + w), gelu tanh GLU, MQA, tied head"),
    "gemma2": (T.Gemma2ForCausalLM, T.Gemma2Config,
               dict(DEC, intermediate_size=64, num_key_value_heads=2, head_dim=16,
                    hidden_activation="gelu_pytorch_tanh", attention_dropout=DROP,
                    sliding_window=8, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                    query_pre_attn_scalar=16, layer_types=["sliding_attention", "full_attention"]),
               "softcapping (tanh) of scores and logits, sliding/full layers, 4 norms per layer"),
    "phi": (T.PhiForCausalLM, T.PhiConfig,
            dict(DEC, intermediate_size=128, partial_rotary_factor=0.5, resid_pdrop=DROP,
                 embd_pdrop=DROP, attention_dropout=DROP, tie_word_embeddings=False),
            "parallel attention + MLP, partial rotary (half), LayerNorm, gelu_new, biased head"),
    "phi3": (T.Phi3ForCausalLM, T.Phi3Config,
             dict(DEC, intermediate_size=96, num_key_value_heads=2, resid_pdrop=DROP,
                  embd_pdrop=DROP, attention_dropout=DROP, tie_word_embeddings=True),
             "fused qkv and gate_up projections (split/chunk)"),
    "gpt_neox": (T.GPTNeoXForCausalLM, T.GPTNeoXConfig,
                 dict(DEC, intermediate_size=128, rotary_pct=0.25, use_parallel_residual=True,
                      attention_dropout=DROP, hidden_dropout=DROP, tie_word_embeddings=False),
                 "Pythia: parallel residual, rotary on a quarter of each head"),
    "gptj": (T.GPTJForCausalLM, T.GPTJConfig,
             dict(vocab_size=VOCAB, n_embd=H, n_layer=L, n_head=4, n_inner=128, rotary_dim=8,
                  n_positions=64, resid_pdrop=DROP, embd_pdrop=DROP, attn_pdrop=DROP,
                  bos_token_id=0, eos_token_id=0, use_cache=False, tie_word_embeddings=False),
             "interleaved rotary (rotate_every_two), parallel block"),
    "opt": (T.OPTForCausalLM, T.OPTConfig,
            dict(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=L, num_attention_heads=4,
                 ffn_dim=128, max_position_embeddings=64, word_embed_proj_dim=H, dropout=DROP,
                 attention_dropout=DROP, activation_function="relu", bos_token_id=0,
                 eos_token_id=0, pad_token_id=1, use_cache=False),
            "ReLU, learned positions with offset 2 from a cumsum of the mask"),
    "falcon": (T.FalconForCausalLM, T.FalconConfig,
               dict(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=L, num_attention_heads=4,
                    ffn_hidden_size=128, multi_query=True, parallel_attn=True, new_decoder_architecture=False,
                    bias=False, alibi=False, hidden_dropout=DROP, attention_dropout=DROP,
                    bos_token_id=0, eos_token_id=0, use_cache=False),
               "multi-query, parallel attention, rotary"),
    "bloom": (T.BloomForCausalLM, T.BloomConfig,
              dict(vocab_size=VOCAB, hidden_size=H, n_layer=L, n_head=4, hidden_dropout=DROP,
                   attention_dropout=DROP, bos_token_id=0, eos_token_id=0, pad_token_id=None,
                   use_cache=False),
              "ALiBi, embedding LayerNorm, fused qkv (per-head interleaved)"),
    "roberta": (T.RobertaForMaskedLM, T.RobertaConfig,
                dict(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=L, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=80, hidden_dropout_prob=DROP,
                     attention_probs_dropout_prob=DROP, pad_token_id=1, type_vocab_size=1),
                "encoder, positions from cumsum(input_ids != pad) + pad"),
    "distilbert": (T.DistilBertForMaskedLM, T.DistilBertConfig,
                   dict(vocab_size=VOCAB, dim=H, n_layers=L, n_heads=4, hidden_dim=128,
                        max_position_embeddings=64, dropout=DROP, attention_dropout=DROP,
                        pad_token_id=0),
                   "encoder, no token types, exact GELU"),
    "electra": (T.ElectraForMaskedLM, T.ElectraConfig,
                dict(vocab_size=VOCAB, embedding_size=32, hidden_size=H, num_hidden_layers=L,
                     num_attention_heads=4, intermediate_size=128, max_position_embeddings=64,
                     hidden_dropout_prob=DROP, attention_probs_dropout_prob=DROP, pad_token_id=0),
                "encoder, embedding 32 projected to hidden 64, generator head"),
    "mixtral": (T.MixtralForCausalLM, T.MixtralConfig,
                dict(DEC, intermediate_size=8, num_key_value_heads=2, num_local_experts=4,
                     num_experts_per_tok=2, attention_dropout=DROP, tie_word_embeddings=True,
                     experts_implementation="batched_mm"),
                "mixture of experts: router softmax, TopK 2 of 4 experts; experts_implementation "
                "batched_mm (the default grouped_mm exports neither way: aten::histc, and 'eager' "
                "gathers tokens with NonZero, a data-dependent shape)"),
    "qwen2_moe": (T.Qwen2MoeForCausalLM, T.Qwen2MoeConfig,
                  dict(DEC, intermediate_size=64, moe_intermediate_size=32, shared_expert_intermediate_size=64,
                       num_key_value_heads=2, num_experts=4, num_experts_per_tok=2, norm_topk_prob=False,
                       decoder_sparse_step=1, attention_dropout=DROP, tie_word_embeddings=True,
                       experts_implementation="batched_mm"),
                  "mixture of experts with a sigmoid-gated shared expert, top-2 of 4"),
    "gpt_bigcode": (T.GPTBigCodeForCausalLM, T.GPTBigCodeConfig,
                    dict(vocab_size=VOCAB, n_embd=H, n_layer=L, n_head=4, n_inner=128, n_positions=64,
                         multi_query=True, resid_pdrop=DROP, embd_pdrop=DROP, attn_pdrop=DROP,
                         bos_token_id=0, eos_token_id=0, use_cache=False),
                    "StarCoder 1: multi-query attention, fused c_attn, learned positions"),
    "starcoder2": (T.Starcoder2ForCausalLM, T.Starcoder2Config,
                   dict(DEC, intermediate_size=128, num_key_value_heads=2, sliding_window=8,
                        attention_dropout=DROP, residual_dropout=DROP, embedding_dropout=DROP,
                        use_bias=True, tie_word_embeddings=True),
                   "LayerNorm with biases, gelu MLP, sliding window, GQA"),
    "stablelm": (T.StableLmForCausalLM, T.StableLmConfig,
                 dict(DEC, intermediate_size=96, num_key_value_heads=2, partial_rotary_factor=0.25,
                      qk_layernorm=True, use_parallel_residual=False, attention_dropout=DROP,
                      hidden_dropout=DROP, tie_word_embeddings=False),
                 "per-head q/k LayerNorm, partial rotary"),
    "cohere": (T.CohereForCausalLM, T.CohereConfig,
               dict(DEC, intermediate_size=96, num_key_value_heads=2, logit_scale=0.25,
                    attention_dropout=DROP, use_qk_norm=False),
               "LayerNorm without bias, parallel block, interleaved rotary, logit scale"),
    "olmo2": (T.Olmo2ForCausalLM, T.Olmo2Config,
              dict(DEC, intermediate_size=96, num_key_value_heads=2, attention_dropout=DROP,
                   tie_word_embeddings=False),
              "post-norm (norm after attention/MLP), q/k RMSNorm over the whole projection"),
    "gemma3": (T.Gemma3ForCausalLM, T.Gemma3TextConfig,
               dict(DEC, intermediate_size=96, num_key_value_heads=2, head_dim=16,
                    hidden_activation="gelu_pytorch_tanh", attention_dropout=DROP, sliding_window=8,
                    query_pre_attn_scalar=16, layer_types=["sliding_attention", "full_attention"]),
               "q/k norm, local and global rotary bases, sliding layers"),
    "mpt": (T.MptForCausalLM, T.MptConfig,
            dict(vocab_size=VOCAB, d_model=H, n_layers=L, n_heads=4, expansion_ratio=2, max_seq_len=64,
                 resid_pdrop=DROP, emb_pdrop=DROP, no_bias=True, use_cache=False,
                 attn_config={"alibi": True}),
            "ALiBi, no biases, LayerNorm without bias"),
    "codegen": (T.CodeGenForCausalLM, T.CodeGenConfig,
                dict(vocab_size=VOCAB, n_embd=H, n_layer=L, n_head=4, n_inner=128, rotary_dim=8,
                     n_positions=64, n_ctx=64, resid_pdrop=DROP, embd_pdrop=DROP, attn_pdrop=DROP,
                     bos_token_id=0, eos_token_id=0, use_cache=False, tie_word_embeddings=False),
                "qkv fused in mp_num groups, interleaved partial rotary"),
    "gpt_neo": (T.GPTNeoForCausalLM, T.GPTNeoConfig,
                dict(vocab_size=VOCAB, hidden_size=H, num_layers=L, num_heads=4, intermediate_size=128,
                     max_position_embeddings=64, attention_types=[[["global", "local"], 1]],
                     window_size=8, resid_dropout=DROP, embed_dropout=DROP, attention_dropout=DROP,
                     bos_token_id=0, eos_token_id=0, use_cache=False),
                "alternating global/local attention, unscaled scores"),
    "persimmon": (T.PersimmonForCausalLM, T.PersimmonConfig,
                  dict(DEC, intermediate_size=128, qk_layernorm=True, partial_rotary_factor=0.5,
                       hidden_act="relu2", attention_dropout=DROP, hidden_dropout=DROP,
                       tie_word_embeddings=False),
                  "squared ReLU, q/k LayerNorm, partial rotary"),
    "xglm": (T.XGLMForCausalLM, T.XGLMConfig,
             dict(vocab_size=VOCAB, d_model=H, num_layers=L, attention_heads=4, ffn_dim=128,
                  max_position_embeddings=64, dropout=DROP, attention_dropout=DROP,
                  activation_dropout=DROP, bos_token_id=0, eos_token_id=2, pad_token_id=1,
                  use_cache=False),
             "sinusoidal positions from a cumsum of the mask, scaled embedding"),
    "albert": (T.AlbertForMaskedLM, T.AlbertConfig,
               dict(vocab_size=VOCAB, embedding_size=32, hidden_size=H, num_hidden_layers=L,
                    num_attention_heads=4, intermediate_size=128, max_position_embeddings=64,
                    hidden_dropout_prob=DROP, attention_probs_dropout_prob=DROP, pad_token_id=0),
               "one layer's weights shared by every layer, factorised embedding"),
    "deberta_v2": (T.DebertaV2ForMaskedLM, T.DebertaV2Config,
                   dict(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=L, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=64, relative_attention=True,
                        position_buckets=32, max_relative_positions=64, pos_att_type=["p2c", "c2p"],
                        position_biased_input=False, hidden_dropout_prob=DROP,
                        attention_probs_dropout_prob=DROP, pad_token_id=0),
                   "disentangled relative-position attention (log buckets, gathers)"),
    "gpt2_odd": (T.GPT2LMHeadModel, T.GPT2Config,
                 dict(vocab_size=VOCAB, n_positions=64, n_embd=H, n_layer=L, n_head=4, n_inner=128,
                      resid_pdrop=DROP, embd_pdrop=DROP, attn_pdrop=DROP, bos_token_id=0,
                      eos_token_id=0, use_cache=False),
                 "GPT-2 at batch 3, sequence 13"),
}
VARIANTS = {"train": "training recipe", "dynamo": "dynamo default, one file",
            "ts": "TorchScript eval, constant folding on", "mask": "training recipe with an attention_mask input",
            "ext": "dynamo default saved by torch.onnx.export(path): weights in path.data",
            "op14": "training recipe at opset 14 (no LayerNormalization op)",
            "op12": "training recipe at opset 12", "dyn18": "dynamo at opset 18",
            "raw": "dynamo with optimize=False (the decomposed graph as translated)",
            "cache": "training recipe of the model with use_cache=True: logits then every present key/value",
            "sdpa_train": "training recipe, transformers' default attention (sdpa)",
            "sdpa_dynamo": "dynamo default, sdpa attention", "sdpa_op23": "dynamo at opset 23, sdpa attention"}
SHAPES = {"gpt2_odd": ((3, 13), (6, 13))}
DEFAULT_SHAPES = ((2, 16), (8, 16))


def make_model(family, attn="eager"):
    """The family's tiny model, seeded random init then seeded perturbation (see the docstring).
    attn: transformers' attention implementation ("sdpa" is transformers' default, "eager" ours)."""
    cls, cfg_cls, kw, _ = FAMILIES[family]
    torch.manual_seed(SEED)
    cfg = cfg_cls(**kw)
    cfg._attn_implementation = attn
    try:
        model = cls(cfg, attn_implementation=attn)
    except TypeError:
        model = cls(cfg)
    model.config._attn_implementation = attn
    g = torch.Generator().manual_seed(SEED + 7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    # nn.Embedding(padding_idx) zeroes the padding row's gradient; an ONNX Gather cannot express it,
    # so the references train the function the file holds (as models/make_torch_training_reference.py)
    for mod in model.modules():
        if isinstance(mod, torch.nn.Embedding):
            mod.padding_idx = None
    return model


class LogitsOnly(torch.nn.Module):
    """forward(input_ids) -> logits; parameter names are "model." + the transformers name."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        sig = inspect.signature(model.forward).parameters
        self.kwargs = {"use_cache": False} if "use_cache" in sig else {}

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, return_dict=False, **self.kwargs)[0]


class WithMask(torch.nn.Module):
    """forward(input_ids, attention_mask) -> logits: the inputs an optimum/pipeline export has."""

    def __init__(self, model):
        super().__init__()
        self.model = model.model
        self.kwargs = model.kwargs

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False, **self.kwargs)[0]


class WithCache(torch.nn.Module):
    """forward(input_ids) -> logits, then every layer's present key and value (use_cache=True): the
    outputs of an export made for generation, which training must carry along unused."""

    def __init__(self, model):
        super().__init__()
        self.model = model.model

    def forward(self, input_ids):
        o = self.model(input_ids=input_ids, use_cache=True, return_dict=True)
        outs = [o.logits]
        for layer in o.past_key_values.layers:
            outs += [layer.keys, layer.values]
        return tuple(outs)


def export(wrapped, ids, path, variant):
    if variant == "cache":
        wrapped = WithCache(wrapped).train()
        with torch.no_grad():
            n = len(wrapped(ids)) - 1
        names = ["logits"] + [f"present.{i // 2}.{'key' if i % 2 == 0 else 'value'}" for i in range(n)]
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
        axes.update({nm: {0: "batch", 2: "sequence"} for nm in names[1:]})
        torch.onnx.export(wrapped, (ids,), path, input_names=["input_ids"], output_names=names, dynamic_axes=axes,
                          opset_version=17, dynamo=False, training=torch.onnx.TrainingMode.TRAINING,
                          do_constant_folding=False)
        return
    if variant in ("train", "ts", "mask", "op14", "op12", "sdpa_train"):
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
        names, args = ["input_ids"], (ids,)
        if variant == "mask":
            wrapped = WithMask(wrapped)
            axes["attention_mask"] = {0: "batch", 1: "sequence"}
            names, args = ["input_ids", "attention_mask"], (ids, torch.ones_like(ids))
        kw = dict(training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False) if variant != "ts" else {}
        wrapped.train() if variant != "ts" else wrapped.eval()
        opset = {"op14": 14, "op12": 12}.get(variant, 17)
        torch.onnx.export(wrapped, args, path, input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=opset, dynamo=False, **kw)
    elif variant == "ext":
        # torch.onnx.export(..., path, dynamo=True) as documented: weights in path + ".data"
        wrapped.eval()
        dyn = {"input_ids": {0: torch.export.Dim("batch", min=1, max=1024),
                             1: torch.export.Dim("sequence", min=2, max=64)}}
        torch.onnx.export(wrapped, (ids,), path, dynamo=True, input_names=["input_ids"],
                          output_names=["logits"], dynamic_shapes=dyn, external_data=True)
    else:
        wrapped.eval()
        dyn = {"input_ids": {0: torch.export.Dim("batch", min=1, max=1024),
                             1: torch.export.Dim("sequence", min=2, max=64)}}
        kw = {"dyn18": dict(opset_version=18), "raw": dict(optimize=False),
              "sdpa_op23": dict(opset_version=23)}.get(variant, {})
        prog = torch.onnx.export(wrapped, (ids,), None, dynamo=True, input_names=["input_ids"],
                                 output_names=["logits"], dynamic_shapes=dyn, **kw)
        onnx.save(prog.model_proto, path, save_as_external_data=False)
        if os.path.exists(path + ".data"):
            os.remove(path + ".data")
    wrapped.eval()


def train_reference(family, ids_np, tg_np):
    ids, tg = torch.from_numpy(ids_np), torch.from_numpy(tg_np)
    ref = {"family": family, "steps": STEPS, "dropout": "off (eval mode)", "loss": "cross_entropy mean",
           "embedding_padding_idx": "cleared", "weights": "init + 0.02 N(0,1)", "torch": torch.__version__}
    for name, cfg in OPTS.items():
        wrapped = LogitsOnly(make_model(family)).eval()
        params = list(wrapped.parameters())
        opt = (torch.optim.SGD if name == "sgd" else torch.optim.AdamW)(params, **cfg)
        losses, norms = [], []
        for _ in range(STEPS):
            opt.zero_grad()
            logits = wrapped(ids)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tg.reshape(-1))
            loss.backward()
            norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params if p.grad is not None))
            losses.append(float(loss.item()))
            norms.append(float(norm.item()))
            opt.step()
        ref[name] = {"loss": losses, "grad_norm": norms, "config": cfg}
    return ref


def run_ort(path, ids_np):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids_np}
    if any(i.name == "attention_mask" for i in sess.get_inputs()):
        feed["attention_mask"] = np.ones_like(ids_np)
    return sess.run(None, feed)[0]


def one(family, out, variants):
    d = os.path.join(out, family)
    os.makedirs(d, exist_ok=True)
    shape, pshape = SHAPES.get(family, DEFAULT_SHAPES)
    ids_np = np.random.default_rng(0).integers(0, VOCAB, size=shape, dtype=np.int64)
    tg_np = np.random.default_rng(1).integers(0, VOCAB, size=shape, dtype=np.int64)
    pids = np.random.default_rng(2).integers(0, VOCAB, size=pshape, dtype=np.int64)
    ptg = np.random.default_rng(3).integers(0, VOCAB, size=pshape, dtype=np.int64)
    for name, a in (("input_ids", ids_np), ("targets", tg_np), ("pipeline_input_ids", pids),
                    ("pipeline_targets", ptg)):
        np.save(os.path.join(d, name + ".npy"), a)
    model = make_model(family)
    wrapped = LogitsOnly(model).eval()
    with torch.no_grad():
        ref = wrapped(torch.from_numpy(ids_np)).numpy()
    np.save(os.path.join(d, "logits.torch.npy"), ref)
    old = os.path.join(d, "export.json")
    info = json.load(open(old)) if os.path.exists(old) else {}
    info.update({"note": FAMILIES[family][3], "class": FAMILIES[family][0].__name__,
            "params": sum(p.numel() for p in model.parameters()), "input": list(shape)})
    np.save(os.path.join(d, "attention_mask.npy"), np.ones_like(ids_np))
    pad = np.ones_like(ids_np)
    pad[0, -5:] = 0  # right padding of the first sequence: the forward check of mask.onnx
    np.save(os.path.join(d, "attention_mask_pad.npy"), pad)
    np.save(os.path.join(d, "pipeline_attention_mask.npy"), np.ones_like(pids))
    for v in variants:
        path = os.path.join(d, v + ".onnx")
        try:
            attn = "sdpa" if v.startswith("sdpa") else "eager"
            export(LogitsOnly(make_model(family, attn)), torch.from_numpy(ids_np), path, v)
            m = onnx.load(path)
            try:
                got = run_ort(path, ids_np)
            except Exception as e:  # noqa: BLE001  (an export onnxruntime rejects: kept, for bitpipe's error)
                info[v] = {"bytes": os.path.getsize(path), "ort_error": str(e).splitlines()[0][:400]}
                print(f"{family}/{v}: {json.dumps(info[v])}", flush=True)
                continue
            info[v] = {"bytes": os.path.getsize(path), "nodes": len(m.graph.node),
                       "initializers": len(m.graph.initializer),
                       "opset": max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")),
                       "histogram": dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items())),
                       "torch_vs_ort_max_abs": float(np.abs(got.astype(np.float64) - ref).max())}
        except Exception as e:  # noqa: BLE001  (record the exporter's failure, go on)
            info[v] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:400]}
            traceback.print_exc(limit=3)
            for f in (path, path + ".data"):
                if os.path.exists(f):
                    os.remove(f)
        print(f"{family}/{v}: {json.dumps({k: x for k, x in info[v].items() if k != 'histogram'})}", flush=True)
    for prefix, a, t in (("", ids_np, tg_np), ("pipeline_", pids, ptg)):
        with open(os.path.join(d, prefix + "train_reference.json"), "w") as f:
            json.dump(train_reference(family, a, t), f, indent=1)
            f.write("\n")
    with open(os.path.join(d, "export.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")


COMMITTED = ("gemma2", "falcon", "albert", "mixtral")
COMMITTED_FILES = ("train.onnx", "input_ids.npy", "targets.npy", "train_reference.json", "pipeline_input_ids.npy",
                   "pipeline_targets.npy", "pipeline_train_reference.json")


def commit(out):
    """The regression set: the training recipe of COMMITTED with its references, into models/<family>/."""
    import shutil
    models = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models")
    for fam in COMMITTED:
        one(fam, out, ["train"])
        dst = os.path.join(models, fam)
        os.makedirs(dst, exist_ok=True)
        for f in COMMITTED_FILES:
            shutil.copyfile(os.path.join(out, fam, f), os.path.join(dst, f))
        size = os.path.getsize(os.path.join(dst, "train.onnx"))
        print(f"models/{fam}/train.onnx: {size} bytes{'' if size < 400_000 else ' (over 400 KB!)'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="families_out")
    ap.add_argument("--family", nargs="*", default=list(FAMILIES))
    ap.add_argument("--variant", nargs="*", default=["train", "dynamo", "ts", "mask", "ext"], choices=list(VARIANTS))
    ap.add_argument("--commit", action="store_true",
                    help="export the committed families' training recipe and copy it into models/")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    if args.commit:
        commit(args.out)
        return
    for fam in args.family:
        one(fam, args.out, args.variant)


if __name__ == "__main__":
    main()
