#!/usr/bin/env python3
"""tests/conformance/make_seq_models.py — writes the small models of tests/conformance/seq/
(committed; rerun only to change them): SplitToSequence read back by SequenceAt at constant
positions, as PyTorch's dynamo exporter writes torch.split without its optimizer. bitpipe rewrites
them at load (frontend/onnx_seq.c); test_seq_models.py compares `bitpipec run` with the outputs
onnxruntime gave here (<name>.y<k>.npy), on the input x.npy.

One model per form: split sizes 1-D (with a negative position and a repeated position), split a
scalar size (last chunk shorter), no split with keepdims 1 and 0 (Gather), the position as a
Constant node and as an initializer of int32; and unsupported.onnx, a sequence that is a graph
output (bitpipe must refuse it with a one-line error).
Needs: numpy onnx onnxruntime"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seq")
X = np.random.default_rng(0).standard_normal((2, 7, 5)).astype(np.float32)


def i64(name, v, dt=np.int64):
    return numpy_helper.from_array(np.array(v, dtype=dt), name)


def model(name, nodes, inits, outs, check=True):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 7, 5])],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
                          if check else outs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="bitpipe-tests")
    m.ir_version = 8
    path = os.path.join(HERE, name + ".onnx")
    onnx.save(m, path)
    if check:
        ys = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": X})
        for k, y in enumerate(ys):
            np.save(os.path.join(HERE, f"{name}.y{k}.npy"), y)


def at(seq, pos, out, name):
    return helper.make_node("SequenceAt", [seq, pos], [out], name=name)


os.makedirs(HERE, exist_ok=True)
np.save(os.path.join(HERE, "x.npy"), X)
# split sizes [2, 4, 1] on axis 1; positions 0, -1 (last), 1 and 1 again
model("split_sizes", [
    helper.make_node("SplitToSequence", ["x", "sizes"], ["s"], name="split", axis=1),
    at("s", "p0", "y0", "at0"), at("s", "pm1", "y1", "at_last"), at("s", "p1", "y2", "at1"),
    at("s", "p1", "y3", "at1_again")],
    [i64("sizes", [2, 4, 1]), i64("p0", 0), i64("pm1", -1), i64("p1", 1)], ["y0", "y1", "y2", "y3"])
# scalar size 2 on axis -1 (5 = 2 + 2 + 1): chunks 0 and 2 (the short one); positions from Constant nodes
model("split_scalar", [
    helper.make_node("Constant", [], ["c0"], name="c0", value=numpy_helper.from_array(np.array(0, np.int64))),
    helper.make_node("Constant", [], ["c2"], name="c2", value_int=2),
    helper.make_node("SplitToSequence", ["x", "size"], ["s"], name="split", axis=-1),
    at("s", "c0", "y0", "at0"), at("s", "c2", "y1", "at2")],
    [i64("size", 2)], ["y0", "y1"])
# no split: chunks of one along axis 0, keepdims 1 (the axis stays, size 1) and 0 (it goes); int32 position
model("split_ones_keep", [
    helper.make_node("SplitToSequence", ["x"], ["s"], name="split", axis=0),
    at("s", "p1", "y0", "at1"), at("s", "pm2", "y1", "at_m2")],
    [i64("p1", 1, np.int32), i64("pm2", -2)], ["y0", "y1"])
model("split_ones_squeeze", [
    helper.make_node("SplitToSequence", ["x"], ["s"], name="split", axis=2, keepdims=0),
    at("s", "p3", "y0", "at3"), at("s", "pm1", "y1", "at_m1")],
    [i64("p3", 3), i64("pm1", -1)], ["y0", "y1"])
# the sequence itself is a graph output: not rewritten, refused with the op's name
model("unsupported", [helper.make_node("SplitToSequence", ["x"], ["s"], name="split_out", axis=1)], [],
      [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)], check=False)
print("wrote", sorted(os.listdir(HERE)))
