#!/usr/bin/env python3
"""Writes the GELU-fusion test cases (tests/fuse/cases/): small ONNX graphs built with onnx.helper,
each with its input and onnxruntime's output, and cases.json saying how many chains bitpipe must
fuse in each (frontend/fuse_gelu.c). Positive cases are the chains exporters emit, in their operand
orders; negative cases differ from a GELU in one detail and must be left alone.

usage: python3 tests/fuse/make_cases.py [--out tests/fuse/cases]
Needs: onnx, onnxruntime, numpy (the committed files let the test run without onnx)."""
import argparse
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

K = 0.7978845608028654  # sqrt(2 / pi), as exporters write it (float32 0.7978846)
SHAPE = [2, 3, 8]


class G:
    """A graph under construction: nodes in order, scalar constants as Constant nodes (TorchScript)
    or as rank-0 initializers (dynamo)."""

    def __init__(self, dtype=TensorProto.FLOAT, const_style="node"):
        self.nodes, self.inits, self.n, self.dtype, self.style = [], [], 0, dtype, const_style
        self.np = np.float32 if dtype == TensorProto.FLOAT else np.float64

    def name(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def c(self, v, dtype=None, shape=()):
        arr = np.full(shape, v, dtype=dtype or self.np)
        nm = self.name("c")
        if self.style == "init" or shape != ():
            self.inits.append(numpy_helper.from_array(arr, nm))
        else:
            self.nodes.append(helper.make_node("Constant", [], [nm], value=numpy_helper.from_array(arr)))
        return nm

    def op(self, op, *ins):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, list(ins), [out], name=out))
        return out

    def model(self, outputs, inputs=("x",)):
        vi = [helper.make_tensor_value_info(i, self.dtype, SHAPE) for i in inputs]
        vo = [helper.make_tensor_value_info(o, self.dtype, SHAPE) for o in outputs]
        ren = []  # give the outputs stable names
        for k, o in enumerate(outputs):
            ren.append(helper.make_node("Identity", [o], [f"y{k}"]))
        vo = [helper.make_tensor_value_info(f"y{k}", self.dtype, SHAPE) for k in range(len(outputs))]
        g = helper.make_graph(self.nodes + ren, "gelu_case", vi, vo, self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_cases.py")


def tanh_gelu_new(g, x, kappa=0.044715, k=K, half=0.5, pow3=3.0, cube="pow"):
    """transformers' gelu_new as TorchScript/dynamo export it: 0.5x * (1 + tanh(k(x + kappa x^3)))."""
    h = g.op("Mul", x, g.c(half))
    p = g.op("Pow", x, g.c(pow3)) if cube == "pow" else g.op("Mul", g.op("Mul", x, x), x)
    s = g.op("Add", x, g.op("Mul", p, g.c(kappa)))
    t = g.op("Tanh", g.op("Mul", s, g.c(k)))
    return g.op("Mul", h, g.op("Add", t, g.c(1.0)))


def tanh_torch(g, x):
    """torch's gelu(approximate='tanh') below opset 20: constants first, x^3 as x*x*x, the 0.5 last."""
    p = g.op("Mul", g.op("Mul", x, x), x)
    s = g.op("Add", x, g.op("Mul", g.c(0.044715), p))
    t = g.op("Tanh", g.op("Mul", g.c(K), s))
    return g.op("Mul", g.c(0.5), g.op("Mul", x, g.op("Add", g.c(1.0), t)))


def tanh_fast(g, x):
    """transformers' gelu_fast: 0.5x(1 + tanh(x k (1 + 0.044715 x^2)))."""
    inner = g.op("Add", g.op("Mul", g.op("Mul", g.c(0.044715), x), x), g.c(1.0))
    t = g.op("Tanh", g.op("Mul", g.op("Mul", x, g.c(K)), inner))
    return g.op("Mul", g.op("Mul", x, g.c(0.5)), g.op("Add", t, g.c(1.0)))


def erf_div(g, x, sqrt2=1.4142135, half=0.5):
    """BERT's exact GELU (TorchScript): x * (1 + erf(x / sqrt2)) * 0.5."""
    e = g.op("Erf", g.op("Div", x, g.c(sqrt2)))
    return g.op("Mul", g.op("Mul", x, g.op("Add", e, g.c(1.0))), g.c(half))


def erf_mul(g, x):
    """x * 0.70710678 into Erf, 1 first in the Add, 0.5 * x as its own product."""
    e = g.op("Erf", g.op("Mul", g.c(0.7071067811865476), x))
    return g.op("Mul", g.op("Add", g.c(1.0), e), g.op("Mul", g.c(0.5), x))


def pre(g):
    """x = input + 0.25 through a node, so x is an activation used by the chain more than once."""
    return g.op("Add", "x", g.c(0.25))


def cases():
    out = {}

    def add(name, model, tanh, erf, why, inputs=("x",)):
        out[name] = (model, {"tanh": tanh, "erf": erf, "why": why, "inputs": list(inputs)})

    g = G(); add("tanh_gelu_new", g.model([tanh_gelu_new(g, pre(g))]), 1, 0, "gelu_new, TorchScript order")
    g = G(const_style="init"); add("tanh_gelu_new_init", g.model([tanh_gelu_new(g, "x")]), 1, 0,
                                   "gelu_new, rank-0 initializers (dynamo), x a graph input")
    g = G(); add("tanh_cube_mul", g.model([tanh_gelu_new(g, pre(g), cube="mul")]), 1, 0, "x^3 as x*x*x")
    g = G(); add("tanh_torch", g.model([tanh_torch(g, pre(g))]), 1, 0, "gelu(approximate='tanh') below opset 20")
    g = G(); add("tanh_fast", g.model([tanh_fast(g, pre(g))]), 1, 0, "gelu_fast")
    g = G(dtype=TensorProto.DOUBLE); add("tanh_f64", g.model([tanh_gelu_new(g, pre(g))]), 1, 0, "float64")
    g = G(); add("erf_div", g.model([erf_div(g, pre(g))]), 0, 1, "BERT, Div by sqrt(2)")
    g = G(); add("erf_mul", g.model([erf_mul(g, pre(g))]), 0, 1, "Mul by 1/sqrt(2), operands swapped")
    g = G()
    x = pre(g)
    y = g.op("Mul", tanh_gelu_new(g, x), "x2")  # GeGLU-like: the gelu multiplied by another input
    add("tanh_times_gate", g.model([y], inputs=("x", "x2")), 1, 0, "the chain's output read by a Mul with another input",
        inputs=("x", "x2"))
    g = G()
    x = pre(g)
    add("two_chains", g.model([g.op("Add", erf_div(g, x), tanh_gelu_new(g, g.op("Neg", x)))]), 1, 1,
        "two chains, one input shared")
    # negative cases: one detail off, nothing fused
    g = G(); add("neg_kappa", g.model([tanh_gelu_new(g, pre(g), kappa=0.044715 * 1.001)]), 0, 0, "0.044715 off by 1e-3")
    g = G(); add("neg_k", g.model([tanh_gelu_new(g, pre(g), k=K * 0.999)]), 0, 0, "sqrt(2/pi) off by 1e-3")
    g = G(); add("neg_half", g.model([tanh_gelu_new(g, pre(g), half=0.5005)]), 0, 0, "0.5 off by 1e-3")
    g = G(); add("neg_pow", g.model([tanh_gelu_new(g, pre(g), pow3=3.001)]), 0, 0, "Pow exponent 3.001 (NaN below 0)")
    g = G(); add("neg_pow2", g.model([tanh_gelu_new(g, pre(g), pow3=2.0)]), 0, 0, "x^2 instead of x^3")
    g = G(); add("neg_sqrt2", g.model([erf_div(g, pre(g), sqrt2=1.4142135 * 1.001)]), 0, 0, "sqrt(2) off by 1e-3")
    g = G()
    x = pre(g)
    y = tanh_gelu_new(g, x)
    tanh_out = [n.output[0] for n in g.nodes if n.op_type == "Tanh"][0]
    add("neg_tanh_second_use", g.model([y, tanh_out]), 0, 0, "the Tanh's output is also a graph output")
    g = G()
    x = pre(g)
    y = erf_div(g, x)
    add_out = [n.output[0] for n in g.nodes if n.op_type == "Add" and n.input[0].startswith("erf")][0]
    add("neg_erf_second_use", g.model([g.op("Add", y, g.op("Mul", add_out, g.c(2.0)))]), 0, 0,
        "1 + erf(...) also read by another node")
    g = G()
    x = pre(g)
    h = g.op("Mul", "x2", g.c(0.5))  # 0.5 * x2 instead of 0.5 * x
    p = g.op("Pow", x, g.c(3.0))
    t = g.op("Tanh", g.op("Mul", g.op("Add", x, g.op("Mul", p, g.c(0.044715))), g.c(K)))
    add("neg_other_x", g.model([g.op("Mul", h, g.op("Add", t, g.c(1.0)))], inputs=("x", "x2")), 0, 0,
        "the outer 0.5 x reads another tensor", inputs=("x", "x2"))
    g = G()
    x = pre(g)
    half = g.c(0.5, shape=(1,))  # a rank-1 initializer: could be a parameter, never folded in
    p = g.op("Pow", x, g.c(3.0))
    t = g.op("Tanh", g.op("Mul", g.op("Add", x, g.op("Mul", p, g.c(0.044715))), g.c(K)))
    add("neg_param_const", g.model([g.op("Mul", g.op("Mul", x, half), g.op("Add", t, g.c(1.0)))]), 0, 0,
        "0.5 is a rank-1 initializer (a possible parameter)")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(0)
    manifest = {}
    for name, (model, info) in cases().items():
        onnx.checker.check_model(model)
        path = os.path.join(a.out, name + ".onnx")
        onnx.save(model, path)
        dt = np.float64 if model.graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE else np.float32
        feeds = {}
        for i in info["inputs"]:
            v = (rng.standard_normal(SHAPE) * 2.5).astype(dt)
            np.save(os.path.join(a.out, f"{name}.{i}.npy"), v)
            feeds[i] = v
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        for o, v in zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)):
            np.save(os.path.join(a.out, f"{name}.{o}.ort.npy"), v)
        info["outputs"] = [o.name for o in sess.get_outputs()]
        manifest[name] = info
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(manifest)} cases to {a.out}")


if __name__ == "__main__":
    main()
