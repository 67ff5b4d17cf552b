#!/usr/bin/env python3
"""tests/conformance/make_half_models.py — writes tests/conformance/half/ (committed; rerun only to
change it): a half-precision export in miniature, the way model.half() / .to(torch.bfloat16) before
torch.onnx.export writes one: float16 and bfloat16 weights, the float32 input cast to float16, the
result cast to float16 and declared float16. bitpipe computes such a model in float32
(frontend/onnx_half.c); test_half_models.py checks `bitpipec run` against numpy's float32 function of
the same (half-rounded) weights, written here as half.y.npy, and that the output is float32.
Needs: numpy onnx"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "half")
os.makedirs(HERE, exist_ok=True)
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 4)).astype(np.float32)
w = rng.standard_normal((4, 5)).astype(np.float16)
b = numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "b")
b.data_type = TensorProto.BFLOAT16  # bfloat16: the top 16 bits of each float32
b.raw_data = (np.frombuffer(b.raw_data, np.uint32) >> 16).astype(np.uint16).tobytes()
b_f32 = (np.frombuffer(b.raw_data, np.uint16).astype(np.uint32) << 16).view(np.float32)
g = helper.make_graph([
    helper.make_node("Cast", ["x"], ["xh"], name="cast_in", to=TensorProto.FLOAT16),
    helper.make_node("MatMul", ["xh", "w"], ["m"], name="matmul"),
    helper.make_node("Cast", ["b"], ["bh"], name="cast_b", to=TensorProto.FLOAT16),
    helper.make_node("Add", ["m", "bh"], ["a"], name="add"),
    helper.make_node("Tanh", ["a"], ["t"], name="tanh"),
    helper.make_node("Cast", ["t"], ["y"], name="cast_out", to=TensorProto.FLOAT16)],
    "half", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, 3, 5])],
    initializer=[numpy_helper.from_array(w, "w"), b])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="bitpipe-tests")
m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, os.path.join(HERE, "half.onnx"))
np.save(os.path.join(HERE, "x.npy"), x)
y = np.tanh(x.astype(np.float64) @ w.astype(np.float64) + b_f32.astype(np.float64)).astype(np.float32)
np.save(os.path.join(HERE, "half.y.npy"), y)
print("wrote", sorted(os.listdir(HERE)))
