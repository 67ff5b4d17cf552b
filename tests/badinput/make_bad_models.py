#!/usr/bin/env python3
"""tests/badinput/make_bad_models.py — writes the small malformed models the bad-input tests use
into tests/badinput/data/ (committed; rerun only to change them). Needs the `onnx` package.

Each file exercises one way user input can be wrong; run_bad_inputs.sh checks that bitpipec
ends with a clear one-line error naming the culprit and a non-zero exit, never a crash."""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
os.makedirs(here, exist_ok=True)


def save(graph, name, opset=17):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="bitpipe-tests")
    model.ir_version = 8
    onnx.save(model, os.path.join(here, name))


x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)

# Unsupported ops: two unknown types, one of them twice; the message lists each with its first node.
save(helper.make_graph([
    helper.make_node("Relu", ["x"], ["a"], name="relu0"),
    helper.make_node("FancyOp", ["a"], ["b"], name="fancy_first"),
    helper.make_node("FancyOp", ["b"], ["c"], name="fancy_second"),
    helper.make_node("LSTMish", ["c"], ["y"], name="lstmish_node", domain="com.example"),
], "unsupported", [x], [y]), "unsupported_ops.onnx")

# Shape mismatch at a node: MatMul of [2,3] by a [4,5] weight.
w = numpy_helper.from_array(np.ones((4, 5), np.float32), "w")
save(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="proj_matmul")],
                       "mismatch", [x], [y], [w]), "shape_mismatch.onnx")

# Unbound symbolic dimension.
xs = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
save(helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu0")], "symbolic", [xs], [y]),
     "symbolic.onnx")


def external_model(name, location, offset=0, length=None):
    t = onnx.TensorProto()
    t.name = "w"
    t.data_type = TensorProto.FLOAT
    t.dims.extend([2, 3])
    t.data_location = TensorProto.EXTERNAL
    for k, v in [("location", location), ("offset", str(offset))] + ([("length", str(length))] if length is not None else []):
        e = t.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")], "ext", [x], [y], [t])
    save(g, name)


with open(os.path.join(here, "weights.bin"), "wb") as f:
    f.write(np.arange(6, dtype=np.float32).tobytes())
external_model("external_ok.onnx", "weights.bin", 0, 24)
external_model("external_missing.onnx", "no_such_weights.bin", 0, 24)
external_model("external_escape.onnx", "../../CMakeLists.txt", 0, 24)
external_model("external_absolute.onnx", "/etc/passwd", 0, 24)
external_model("external_past_end.onnx", "weights.bin", 16, 24)
external_model("external_symlink.onnx", "escape_link.bin", 0, 24)  # the test makes the link point outside

np.save(os.path.join(here, "x.npy"), np.arange(6, dtype=np.float32).reshape(2, 3))
print("wrote", sorted(os.listdir(here)))
