#!/usr/bin/env python3
"""End to end: `bitpipec MODEL -o train` for a schedule, then `mpirun -np D ./train` on a fixed batch,
against `bitpipec train` (one process, the whole batch as one graph) on the same batch: per-step loss
and gradient norm within a relative 1e-5, dropout off on both sides. The hyper-parameters are those of
models/<family>/pipeline_train_reference.json (PyTorch on the same model and batch: SGD lr 0.05, AdamW
lr 1e-3 weight decay 0.01), and the pipeline's losses and gradient norms must also equal PyTorch's within
a relative 1e-4 (the tolerance of the single-process tests against PyTorch).

Also compiles the emitted train.c on its own with -Wall -Wextra -Werror (the generated source is
warning-free), and checks the files the compiler writes (weights header, plan JSON).

With --save-onnx, the run also writes its trained weights into a copy of the ONNX file, and that
copy's loss on the batch (bitpipec train --steps 1) must equal the single process's loss at step
steps + 1: the parameters' raw_data offsets the compiler recorded are right (tied weights included);
and onnxruntime runs the copy: its logits equal `bitpipec run` on the copy (relative 1e-4) and differ
from the untrained model's (skipped with a note when onnxruntime is not importable).

The sequence length compiled for (--seq) is pipeline_input_ids.npy's second dimension (16 for the
committed families; the batch is N x micro-batch sequences).

--model FILE picks another export of the family than train.onnx (tests/families: the training recipe
with an attention_mask input); each --input NAME=FILE is a further graph input, given to ./train and
bitpipec train alike.

usage: test_compile_run.py BITPIPEC MODELS_DIR FAMILY SCHEDULE [-D 4] [-N 8] [--micro-batch 1] [--steps 5]
       [--optimizer sgd] [--save-onnx] [--cc CC] [--workdir DIR] [--model train.onnx] [--input NAME=FILE]...
Prints one line: family, schedule, worst relative differences, measured and predicted bubble."""
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def npy_shape(path):
    """The shape in a .npy file's header (numpy-free: CI's e2e tests need only the Python standard library)."""
    import ast
    with open(path, "rb") as f:
        magic = f.read(8)
        if magic[:6] != b"\x93NUMPY":
            raise ValueError(f"{path}: not a .npy file")
        n = struct.unpack("<H" if magic[6] == 1 else "<I", f.read(2 if magic[6] == 1 else 4))[0]
        return tuple(ast.literal_eval(f.read(n).decode("latin1"))["shape"])


def steps_of(text):
    out = []
    for line in text.splitlines():
        w = line.split()
        if len(w) >= 6 and w[0] == "step" and w[2] == "loss" and w[4] == "grad_norm":
            out.append((int(w[1]), float(w[3]), float(w[5])))
    return out


def ort_check(bitpipec, saved, original, ids, work):
    """onnxruntime on the --save-onnx copy: the trained model's logits (those bitpipec computes from the
    copy), not the original's."""
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return True, "onnxruntime not importable: ORT check skipped"
    x = np.load(ids)
    outs = []
    for path in (saved, original):
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {sess.get_inputs()[0].name: x})[0])
    odir = os.path.join(work, "run_saved")
    r = subprocess.run([bitpipec, "run", saved, "--input", "input_ids=" + ids, "--output-dir", odir],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return False, f"bitpipec run on the saved copy failed: {r.stderr.strip()}"
    mine = np.load(os.path.join(odir, sorted(os.listdir(odir))[0]))
    scale = float(np.max(np.abs(outs[0])))
    d_run = float(np.max(np.abs(outs[0] - mine))) / scale
    d_orig = float(np.max(np.abs(outs[0] - outs[1]))) / scale
    ok = d_run <= 1e-4 and d_orig > 1e-3
    return ok, f"onnxruntime on the copy vs bitpipec run: {d_run:.2e}, vs the untrained model: {d_orig:.2e}"


def main():
    bitpipec, models, fam, sched = sys.argv[1:5]
    D, N, steps = int(arg("-D", "4")), int(arg("-N", "8")), int(arg("--steps", "5"))
    B, save = int(arg("--micro-batch", "1")), "--save-onnx" in sys.argv
    opt, cc = arg("--optimizer", "sgd"), arg("--cc", "cc")
    d = os.path.join(models, fam)
    ids, tg = os.path.join(d, "pipeline_input_ids.npy"), os.path.join(d, "pipeline_targets.npy")
    model = os.path.join(d, arg("--model", "train.onnx"))
    extra_in = []
    for k, a in enumerate(sys.argv):
        if a == "--input" and k + 1 < len(sys.argv):
            extra_in += ["--input", sys.argv[k + 1]]
    work = tempfile.mkdtemp(prefix=f"bp_{fam}_{sched}_", dir=arg("--workdir", None))
    hyper = ["--optimizer", opt] + (["--lr", "0.001", "--weight-decay", "0.01"] if opt == "adamw" else ["--lr", "0.05"])
    torch_ref = json.load(open(os.path.join(d, "pipeline_train_reference.json")))[opt]
    try:
        train = os.path.join(work, "train")
        p = subprocess.run([bitpipec, model, "-o", train, "-D", str(D), "-N", str(N),
                            "--micro-batch", str(B), "--seq", str(npy_shape(ids)[1]), "--schedule", sched, "--no-dropout", "--device-model", "h100"] + hyper,
                           capture_output=True, text=True)
        if p.returncode != 0:
            print(f"FAIL {fam} {sched}: bitpipec exit {p.returncode}\n{p.stdout}\n{p.stderr}")
            return 1
        # the weights file: header magic, version, size; the plan file parses and agrees
        with open(train + ".weights", "rb") as f:
            head = f.read(64)
        magic, version, nst, fp, total = struct.unpack("<8sIIQQ", head[:32])
        plan = json.load(open(train + ".plan.json"))
        if magic != b"BPWEIGHT" or version != 1 or total != os.path.getsize(train + ".weights") or \
                nst != plan["n_stages"] or f"{fp:016x}" != plan["fingerprint"] or plan["D"] != D:
            print(f"FAIL {fam} {sched}: weights header / plan mismatch: {magic} v{version} {nst} {fp:016x} {total}")
            return 1
        # the generated source is warning-free
        root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
        cflags = ["-I" + root, "-std=gnu11",
                  "-Wall", "-Wextra", "-Werror", "-c", "-o", os.path.join(work, "train.o")]
        w = subprocess.run([cc] + cflags + [train + ".c"], capture_output=True, text=True)
        if w.returncode != 0:
            print(f"FAIL {fam} {sched}: train.c does not compile with -Wall -Wextra -Werror:\n{w.stderr[:3000]}")
            return 1
        mpirun = shutil.which("mpirun") or "mpirun"
        extra = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
        run = [mpirun] + extra + ["-np", str(D), train, "--input", "input_ids=" + ids, "--targets", tg,
                                  "--steps", str(steps)] + extra_in
        saved = os.path.join(work, "saved.onnx")
        if save:
            run += ["--save-onnx", saved]
        # a session directory of its own: two mpiruns starting at once (ctest -j) race to create the
        # shared /tmp/ompi.HOST.UID and one fails with "mkdir ... File exists"
        env = dict(os.environ, OMPI_MCA_orte_tmpdir_base=work)
        r = subprocess.run(run, capture_output=True, text=True, timeout=300, env=env)
        got = steps_of(r.stdout)
        if r.returncode != 0 or len(got) != steps:
            print(f"FAIL {fam} {sched}: {' '.join(map(shlex.quote, run))}: exit {r.returncode}\n{r.stdout[-3000:]}\n"
                  f"{r.stderr[-3000:]}")
            return 1
        ref = subprocess.run([bitpipec, "train", model, "--input", "input_ids=" + ids] + extra_in + [
                              "--targets", tg, "--steps", str(steps + save), "--no-dropout"] + hyper,
                             capture_output=True, text=True)
        want = steps_of(ref.stdout)
        if ref.returncode != 0 or len(want) != steps + save:
            print(f"FAIL {fam} {sched}: bitpipec train exit {ref.returncode}\n{ref.stderr}")
            return 1
        dl = max(abs(a[1] - b[1]) / abs(b[1]) for a, b in zip(got, want))
        dg = max(abs(a[2] - b[2]) / abs(b[2]) for a, b in zip(got, want))
        bub = ""
        for line in r.stdout.splitlines():
            w = line.split()
            if w and w[0] == "mean" and len(w) >= 3:
                bub = f"bubble measured {w[-2]} predicted {w[-1]}"
        ok = dl <= 1e-5 and dg <= 1e-5
        n_t = min(steps, len(torch_ref["loss"]))
        tl = max(abs(got[k][1] - torch_ref["loss"][k]) / abs(torch_ref["loss"][k]) for k in range(n_t))
        tg_ = max(abs(got[k][2] - torch_ref["grad_norm"][k]) / abs(torch_ref["grad_norm"][k]) for k in range(n_t))
        ok = ok and tl <= 1e-4 and tg_ <= 1e-4
        if save:
            sv = subprocess.run([bitpipec, "train", saved, "--input", "input_ids=" + ids, "--targets", tg, "--steps",
                                 "1", "--no-dropout"], capture_output=True, text=True)
            got_s = steps_of(sv.stdout)
            ds = abs(got_s[0][1] - want[steps][1]) / abs(want[steps][1]) if sv.returncode == 0 and got_s else float("inf")
            bub += f"; --save-onnx copy: loss {got_s[0][1] if got_s else None!r} vs step {steps + 1} {want[steps][1]!r} " \
                   f"(rel diff {ds:.2e})"
            ok = ok and ds <= 1e-5
            ok_ort, note = ort_check(bitpipec, saved, model, ids, work)
            bub += "; " + note
            ok = ok and ok_ort
        print(f"{'ok  ' if ok else 'FAIL'} {fam:6s} {sched:15s} D={D} N={N} B={B} {opt}: loss rel diff {dl:.2e}, "
              f"grad_norm rel diff {dg:.2e} over {steps} steps; vs PyTorch loss {tl:.2e} grad_norm {tg_:.2e} "
              f"over {n_t} steps; {bub}")
        if not ok:
            for a, b in zip(got, want):
                print(f"  step {a[0]}: pipeline loss {a[1]!r} grad_norm {a[2]!r} | single {b[1]!r} {b[2]!r}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
