#!/usr/bin/env python3
"""Views and folds in the compiled program (codegen/memplan.c, frontend/mmfold.c, runtime/plan.h's
bp_rt_fold) change no bit of the CPU runtime's results: the model is compiled twice for the same
schedule, once as is and once with BP_CG_FOLD=0 (no views, no folds: every node runs as written),
both programs train the same batch for a few steps with --save-onnx, and the step lines (loss and
gradient norm, %.9g) and the saved ONNX files (every trained parameter) must be identical byte for
byte. Also: the folded plan has view nodes and folded MatMuls (plan.json, train.c's listing) and the
unfolded one none; the fingerprints differ (a weights file of one is not the other's).

usage: test_folds.py BITPIPEC MODELS_DIR FAMILY SCHEDULE [-D 2] [-N 8] [--steps 3] [--optimizer adamw]
Prints one line per program and the verdict."""
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def seq_of(path):
    import ast
    import struct
    with open(path, "rb") as f:
        magic = f.read(8)
        n = struct.unpack("<H" if magic[6] == 1 else "<I", f.read(2 if magic[6] == 1 else 4))[0]
        return ast.literal_eval(f.read(n).decode("latin1"))["shape"][1]


def main():
    bitpipec, models, fam, sched = sys.argv[1:5]
    D, N, steps, opt = int(arg("-D", "2")), int(arg("-N", "8")), int(arg("--steps", "3")), arg("--optimizer", "adamw")
    d = os.path.join(models, fam)
    ids, tg, model = (os.path.join(d, f) for f in ("pipeline_input_ids.npy", "pipeline_targets.npy", "train.onnx"))
    hyper = ["--optimizer", opt] + (["--lr", "0.001", "--weight-decay", "0.01"] if opt == "adamw" else ["--lr", "0.05"])
    work = tempfile.mkdtemp(prefix=f"bp_folds_{fam}_")
    try:
        res = {}
        for tag, env_extra in (("folded", {}), ("unfolded", {"BP_CG_FOLD": "0"})):
            train = os.path.join(work, tag)
            env = dict(os.environ, **env_extra)
            env.pop("BP_CUDA_FOLD", None)
            p = subprocess.run([bitpipec, model, "-o", train, "-D", str(D), "-N", str(N), "--seq", str(seq_of(ids)),
                                "--schedule", sched, "--no-dropout", "--device-model", "h100"] + hyper,
                               capture_output=True, text=True, env=env)
            if p.returncode != 0:
                print(f"FAIL {fam} {tag}: bitpipec exit {p.returncode}\n{p.stdout}\n{p.stderr}")
                return 1
            plan = json.load(open(train + ".plan.json"))
            views = sum(s["view_nodes"] for s in plan["partition"]["stages"])
            folds = sum(s["folded_matmuls"] for s in plan["partition"]["stages"])
            listed = open(train + ".c").read().count(", a view: ")
            saved = os.path.join(work, tag + ".onnx")
            mpirun = shutil.which("mpirun") or "mpirun"
            extra = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
            run = [mpirun] + extra + ["-np", str(D), train, "--device", "cpu", "--input", "input_ids=" + ids,
                                      "--targets", tg, "--steps", str(steps), "--save-onnx", saved]
            r = subprocess.run(run, capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, OMPI_MCA_orte_tmpdir_base=work))
            lines = [l for l in r.stdout.splitlines() if l.startswith("step ")]
            if r.returncode != 0 or len(lines) != steps:
                print(f"FAIL {fam} {tag}: ./train exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
                return 1
            # the step lines without the throughput
            res[tag] = dict(views=views, folds=folds, listed=listed, fp=plan["fingerprint"], saved=saved,
                            steps=[" ".join(l.split()[:6]) for l in lines])
            print(f"{fam} {sched} {tag}: {views} view nodes ({listed} listed in train.c), {folds} folded MatMuls; "
                  f"last: {res[tag]['steps'][-1]}")
        f, u = res["folded"], res["unfolded"]
        bad = []
        if f["views"] == 0 or f["folds"] == 0 or f["listed"] != f["views"]:
            bad.append("the folded plan has no views or no folds, or train.c does not list them")
        if u["views"] or u["folds"] or u["listed"]:
            bad.append("BP_CG_FOLD=0 still planned views or folds")
        if f["fp"] == u["fp"]:
            bad.append("the two plans have the same fingerprint")
        if f["steps"] != u["steps"]:
            bad.append(f"step lines differ: {f['steps']} vs {u['steps']}")
        if not filecmp.cmp(f["saved"], u["saved"], shallow=False):
            bad.append("the trained parameters (saved ONNX files) differ")
        print("FAIL: " + "; ".join(bad) if bad else "ok: bitwise identical")
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
