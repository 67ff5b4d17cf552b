#!/usr/bin/env python3
"""Bad training inputs give a clear error (exit 1 or 2, message naming the problem), never a crash.

usage: test_train_bad_inputs.py BITPIPEC MODELS_DIR   (closing line `N passed, M failed`)"""
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    bitpipec, models = sys.argv[1:3]
    d = os.path.join(models, "gpt2")
    model, ids = os.path.join(d, "train.onnx"), os.path.join(d, "input_ids.npy")
    tmp = tempfile.mkdtemp()
    good = np.load(os.path.join(d, "targets.npy"))

    def save(name, arr):
        p = os.path.join(tmp, name)
        np.save(p, arr)
        return p

    base = [bitpipec, "train", model, "--input", "input_ids=" + ids, "--no-dropout"]
    cases = [
        ("targets of the wrong shape", base + ["--targets", save("short.npy", good[:, :15])], "targets: given"),
        ("targets out of vocab range", base + ["--targets", save("big.npy", np.where(good == good[0, 0], 300, good))],
         "outside the 256 classes"),
        ("float targets for cross-entropy", base + ["--targets", save("f.npy", good.astype(np.float32))],
         "targets: given float32"),
        ("no trainable parameter", base + ["--targets", os.path.join(d, "targets.npy"), "--freeze", ".*"],
         "no trainable parameter"),
        ("unknown output", base + ["--targets", os.path.join(d, "targets.npy"), "--output", "nope"],
         "no output named 'nope'"),
        ("NaN loss", base + ["--targets", os.path.join(d, "targets.npy"), "--lr", "1e30", "--steps", "4"], "step "),
        ("bad regex", base + ["--targets", os.path.join(d, "targets.npy"), "--freeze", "("],
         "invalid regular expression"),
    ]
    try:
        import onnx
        from onnx import helper, TensorProto
        w = helper.make_tensor("w", TensorProto.FLOAT, [3, 4], np.ones(12, np.float32))
        g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"]),
                               helper.make_node("ArgMax", ["y"], ["idx"], axis=1)], "argmax",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("idx", TensorProto.INT64, [2, 1])], [w])
        mp = os.path.join(tmp, "argmax.onnx")
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), mp)
        cases.append(("loss on a non-float output",
                      [bitpipec, "train", mp, "--input", "x=" + save("x.npy", np.ones((2, 3), np.float32)),
                       "--targets", save("t.npy", np.zeros((2,), np.int64)), "--output", "idx"],
                      "needs a float output"))
    except ImportError:
        pass
    passed = failed = 0
    for label, cmd, want in cases:
        p = subprocess.run(cmd, capture_output=True, text=True)
        ok = p.returncode in (1, 2) and want in p.stderr
        print(f"{'ok  ' if ok else 'FAIL'} {label}: exit {p.returncode}: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}")
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
