/* runtime/main.c — bp_rt_main, the whole of ./train: the command line, start-up (MPI, plan
 * check, device and transport, memory, weights, data, resume, groups), the step loop with its log
 * line, checkpoints, and the closing summary (measured step time and bubble per rank next to the
 * plan's prediction, planned vs allocated memory), trace and --save-onnx.
 *
 * Errors. Start-up errors are agreed on by all ranks (one all-reduce per phase), so a bad file
 * gives one line from the lowest rank that found it and every rank exits 1. An error in the
 * middle of a step is local to one rank: it prints "train: rank R: ..." and aborts the job
 * (MPI_Abort), so the others never wait for it. */
#include "runtime/rt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(const bp_rt_plan *plan, FILE *f) {
  const bp_rt_model *m = plan->model;
  const bp_program *p = plan->program;
  fprintf(f,
          "usage: mpirun -np K ./train [options]     (K = D x R: D pipeline ranks, R data-parallel replicas)\n"
          "\n"
          "Trains the compiled model: schedule %s, D=%d pipeline ranks, N=%d micro-batches of B=%d sequences of\n"
          "T=%d tokens per replica and step, %d stages. Prints 'step K loss X grad_norm G tokens/s T' per step (loss:\n"
          "mean over the step's counted tokens, grad_norm: global L2 norm before clipping, both before the\n"
          "update), then the measured step time and bubble per rank next to the plan's prediction.\n"
          "\n"
          "data (one of):\n"
          "  --data FILE            token file, llm.c format (256 int32 header: 20240520, 1, count; uint16\n"
          "                         tokens), e.g. from 'bitpipec tokenize'; windows of T+1 tokens in an order\n"
          "                         drawn from --seed\n"
          "  --input NAME=FILE      a fixed batch (the same every step): graph input NAME as .npy with N*R*B rows\n"
          "  --targets FILE         its targets (.npy), N*R*B rows\n"
          "run:\n"
          "  --steps K              train until step K (default 10); a resumed run continues to K\n"
          "  --seed N               data order and dropout streams (default %llu)\n"
          "  --weights FILE         initial weights (default: %s next to the program)\n"
          "  --timeout SECONDS      a rank waiting longer than this for another aborts the job, naming the\n"
          "                         rank it waited for (default 20)\n"
          "  --quiet                only the step lines (and errors)\n"
          "device:\n"
          "  --device cuda|cpu      where the ranks compute (default: cuda when this program was built with the\n"
          "                         CUDA backend and a GPU is visible, else cpu); each rank takes GPU (local rank\n"
          "                         mod visible GPUs); arenas, kernels, gradients and the optimizer on the GPU\n"
          "  --precision fp32|tf32|bf16   GEMM precision on cuda (default fp32; bf16: bfloat16 GEMM inputs,\n"
          "                         fp32 accumulation, fp32 weights and optimizer state)\n"
          "  --transport mpi|nccl   how GPU ranks exchange activations and gradients (default: nccl when it was\n"
          "                         built in and every rank has a GPU of its own, else mpi staging through\n"
          "                         host memory, as ranks sharing one GPU need)\n"
          "optimizer (defaults compiled in):\n"
          "  --optimizer sgd|adamw  (%s)    --lr X (%g)    --momentum M (%g)    --weight-decay W (%g)\n"
          "  --beta1 B (%g)   --beta2 B (%g)   --eps E (%g)\n"
          "  --clip C               clip to global norm C, as torch.nn.utils.clip_grad_norm_ (%g; 0: off)\n"
          "  --dropout | --no-dropout   Dropout draws masks / is the identity (%s)\n"
          "checkpoints:\n"
          "  --save-every K --checkpoint DIR   write DIR/checkpoint.bin every K steps (atomically)\n"
          "  --resume DIR           continue from DIR/checkpoint.bin (weights, optimizer state, step, data\n"
          "                         position); the losses continue bit-identically\n"
          "output:\n"
          "  --trace FILE           Chrome/Perfetto trace of what every rank did (compute, waits, transfers)\n"
          "  --save-onnx FILE       the trained weights written into a copy of %s\n"
          "\n"
          "environment: BITPIPE_FAULT=RANK:STEP:kill|exit|hang (tests only) makes world rank RANK SIGKILL itself\n"
          "at the start of step STEP, or exit / stop responding in its middle; STEP 'init': before the GPU\n"
          "transport is chosen; RANK:nccl:hang: before RANK joins the NCCL communicator. BP_RT_SYNC=1: on a\n"
          "GPU, wait for the kernels after every compute instruction (to find asynchronous faults).\n",
          p->schedule, p->D, p->N, m->batch, m->seq, m->n_stages, (unsigned long long)plan->hp.seed,
          m->weights_file ? m->weights_file : "train.weights", plan->hp.optimizer == 1 ? "adamw" : "sgd", plan->hp.lr,
          plan->hp.momentum, plan->hp.weight_decay, plan->hp.beta1, plan->hp.beta2, plan->hp.eps, plan->hp.clip,
          plan->hp.dropout ? "--dropout" : "--no-dropout", m->model_path ? m->model_path : "the model");
}

/* Before MPI is up, only the first rank of an mpirun job should print a usage error. */
static int first_rank_hint(void) {
  const char *v = getenv("OMPI_COMM_WORLD_RANK");
  if (!v) v = getenv("PMIX_RANK");
  if (!v) v = getenv("PMI_RANK");
  return !v || strcmp(v, "0") == 0;
}

static int num(const char *opt, const char *s, double *out) {
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  if (!*s || *end || errno || !isfinite(*out)) {
    if (first_rank_hint()) fprintf(stderr, "train: %s expects a number, got '%s'\n", opt, s);
    return -1;
  }
  return 0;
}

/* 1: run, 0: --help printed, -1: usage error (printed) */
static int parse(const bp_rt_plan *plan, int argc, char **argv, bp_rt_opts *o) {
  memset(o, 0, sizeof *o);
  o->hp = plan->hp;
  o->steps = 10;
  o->timeout_s = 20;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    double x;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      if (first_rank_hint()) help(plan, stdout);
      return 0;
    }
    if (!strcmp(a, "--quiet")) { o->quiet = 1; continue; }
    if (!strcmp(a, "--dropout")) { o->hp.dropout = 1; continue; }
    if (!strcmp(a, "--no-dropout")) { o->hp.dropout = 0; continue; }
    if (!v) goto bad;
    i++;
    if (!strcmp(a, "--data")) o->data = v;
    else if (!strcmp(a, "--device")) {
      if (!strcmp(v, "cpu")) o->device = 1;
      else if (!strcmp(v, "cuda")) o->device = 2;
      else {
        if (first_rank_hint()) fprintf(stderr, "train: --device is cuda or cpu, got '%s'\n", v);
        return -1;
      }
    } else if (!strcmp(a, "--precision")) {
      if (!strcmp(v, "fp32")) o->precision = 0;
      else if (!strcmp(v, "tf32")) o->precision = 1;
      else if (!strcmp(v, "bf16")) o->precision = 2;
      else {
        if (first_rank_hint()) fprintf(stderr, "train: --precision is fp32, tf32 or bf16, got '%s'\n", v);
        return -1;
      }
      o->precision_given = 1;
    } else if (!strcmp(a, "--transport")) {
      if (!strcmp(v, "mpi")) o->transport = 1;
      else if (!strcmp(v, "nccl")) o->transport = 2;
      else {
        if (first_rank_hint()) fprintf(stderr, "train: --transport is mpi or nccl, got '%s'\n", v);
        return -1;
      }
    }
    else if (!strcmp(a, "--targets")) o->targets = v;
    else if (!strcmp(a, "--weights")) o->weights = v;
    else if (!strcmp(a, "--checkpoint")) o->checkpoint = v;
    else if (!strcmp(a, "--resume")) o->resume = v;
    else if (!strcmp(a, "--save-onnx")) o->save_onnx = v;
    else if (!strcmp(a, "--trace")) o->trace = v;
    else if (!strcmp(a, "--input")) {
      const char *eq = strchr(v, '=');
      if (!eq || eq == v || !eq[1]) {
        if (first_rank_hint()) fprintf(stderr, "train: --input expects NAME=FILE, got '%s'\n", v);
        return -1;
      }
      if (o->ninputs == BP_RT_MAX_INPUTS) {
        if (first_rank_hint()) fprintf(stderr, "train: at most %d --input\n", BP_RT_MAX_INPUTS);
        return -1;
      }
      char *name = strndup(v, (size_t)(eq - v));
      if (!name) return -1;
      o->input_name[o->ninputs] = name;
      o->input_file[o->ninputs++] = eq + 1;
    } else if (!strcmp(a, "--optimizer")) {
      if (!strcmp(v, "sgd")) o->hp.optimizer = 0;
      else if (!strcmp(v, "adamw")) o->hp.optimizer = 1;
      else {
        if (first_rank_hint()) fprintf(stderr, "train: --optimizer is sgd or adamw, got '%s'\n", v);
        return -1;
      }
    } else {
      if (num(a, v, &x) < 0) {
        if (!strcmp(a, "--steps") || !strcmp(a, "--seed") || !strcmp(a, "--lr") || !strcmp(a, "--momentum") ||
            !strcmp(a, "--weight-decay") || !strcmp(a, "--beta1") || !strcmp(a, "--beta2") || !strcmp(a, "--eps") ||
            !strcmp(a, "--clip") || !strcmp(a, "--save-every") || !strcmp(a, "--timeout"))
          return -1;
        goto bad;
      }
      if (!strcmp(a, "--steps") && x >= 0 && x <= 1e9 && x == floor(x)) o->steps = (long)x;
      else if (!strcmp(a, "--save-every") && x >= 1 && x <= 1e9 && x == floor(x)) o->save_every = (long)x;
      else if (!strcmp(a, "--seed") && x >= 0 && x < 1.8e19 && x == floor(x)) o->hp.seed = (uint64_t)x;
      else if (!strcmp(a, "--timeout") && x > 0) o->timeout_s = x;
      else if (!strcmp(a, "--lr") && x >= 0) o->hp.lr = x;
      else if (!strcmp(a, "--momentum") && x >= 0) o->hp.momentum = x;
      else if (!strcmp(a, "--weight-decay") && x >= 0) o->hp.weight_decay = x;
      else if (!strcmp(a, "--beta1") && x >= 0 && x < 1) o->hp.beta1 = x;
      else if (!strcmp(a, "--beta2") && x >= 0 && x < 1) o->hp.beta2 = x;
      else if (!strcmp(a, "--eps") && x > 0) o->hp.eps = x;
      else if (!strcmp(a, "--clip") && x >= 0) o->hp.clip = x;
      else if (!strcmp(a, "--steps") || !strcmp(a, "--save-every") || !strcmp(a, "--seed") || !strcmp(a, "--timeout") ||
               !strcmp(a, "--lr") || !strcmp(a, "--momentum") || !strcmp(a, "--weight-decay") || !strcmp(a, "--beta1") ||
               !strcmp(a, "--beta2") || !strcmp(a, "--eps") || !strcmp(a, "--clip")) {
        if (first_rank_hint()) fprintf(stderr, "train: %s %s is out of range (see --help)\n", a, v);
        return -1;
      } else
        goto bad;
    }
    continue;
  bad:
    if (first_rank_hint()) fprintf(stderr, "train: unknown option or missing value '%s' (see --help)\n", a);
    return -1;
  }
  const char *why = NULL;
  if (o->save_every && !o->checkpoint) why = "--save-every needs --checkpoint DIR";
  else if (o->checkpoint && !o->save_every) why = "--checkpoint DIR needs --save-every K";
  else if (!o->data && !o->ninputs && !o->targets) why = "no data: give --data FILE, or --input NAME=FILE ... --targets FILE";
  if (why) {
    if (first_rank_hint()) fprintf(stderr, "train: %s\n", why);
    return -1;
  }
  return 1;
}

/* All ranks learn whether any failed; the lowest failing rank prints its message. Returns 1 when
 * some rank failed (everyone then exits 1), 0 otherwise. */
static int agree(bp_rt *rt, int failed, const bp_err *e) {
  double *v = calloc((size_t)rt->W, sizeof(double));
  if (!v) {
    fprintf(stderr, "train: rank %d: out of memory\n", rt->wrank);
    bp_tp_abort(rt->tp, 1);
  }
  v[rt->wrank] = failed;
  if (bp_tp_allreduce(rt->tp, 0, v, rt->W, BP_TP_F64, "start-up") < 0) {
    fprintf(stderr, "train: %s\n", rt->tp->err);
    bp_tp_abort(rt->tp, 1);
  }
  int first = -1;
  for (int w = 0; w < rt->W && first < 0; w++)
    if (v[w] != 0) first = w;
  free(v);
  if (first >= 0 && first == rt->wrank) {
    fprintf(stderr, "train: %s\n", e->set ? e->msg : "failed");
    fflush(stderr);
  }
  return first >= 0;
}

/* Gathers one double per world rank on every rank. */
static int per_rank(bp_rt *rt, double mine, double *out, const char *what) {
  for (int w = 0; w < rt->W; w++) out[w] = 0;
  out[rt->wrank] = mine;
  return bp_tp_allreduce(rt->tp, 0, out, rt->W, BP_TP_F64, what);
}

static void fail_local(bp_rt *rt, const bp_err *e) {
  fprintf(stderr, "train: %s\n", e->set ? e->msg : "failed");
  fflush(stderr);
  bp_tp_abort(rt->tp, 1);
}

static void print_config(bp_rt *rt, const double *planned, const double *alloc) {
  const bp_rt_model *m = rt->model;
  const bp_program *p = rt->prog;
  const bp_rt_hparams *hp = &rt->o.hp;
  bp_rt_say(rt, "train: schedule %s, D=%d pipeline ranks x R=%d replicas, N=%d micro-batches of B=%d x T=%d tokens, "
                "%d stages, %d parameter tensors\n", p->schedule, rt->D, rt->R, rt->N, m->batch, m->seq, m->n_stages,
            m->n_params);
  bp_rt_say(rt, "train: optimizer %s lr %g, clip %g, dropout %s, seed %llu, data %s%s\n",
            hp->optimizer == 1 ? "adamw" : "sgd", hp->lr, hp->clip,
            hp->dropout ? "on" : "off", (unsigned long long)hp->seed, rt->o.data ? rt->o.data : "fixed batch",
            rt->step ? " (resumed)" : "");
  if (rt->step) bp_rt_say(rt, "train: resumed at step %ld (data position %lld sequences)\n", rt->step, (long long)rt->data_pos);
  bp_rt_say(rt, "train: device %s\n", rt->device_desc);
  bp_rt_say(rt, "train: memory per rank (bytes: weights, gradients, optimizer state, constants, slots, work%s)\n",
            rt->dev->host_memory ? "" : "; on the GPU");
  bp_rt_say(rt, "  rank  stages            planned (compiler)   allocated (runtime)\n");
  for (int w = 0; w < rt->W; w++) {
    char st[64] = "";
    int r = w % rt->D;
    for (int c = 0; c < p->chunks_per_rank && strlen(st) < 48; c++)
      snprintf(st + strlen(st), sizeof st - strlen(st), "%s%d", c ? "," : "", bp_program_chunk(p, r, c)->stage);
    char pl[32];
    if (planned[w] >= 0) snprintf(pl, sizeof pl, "%.0f", planned[w]);
    else snprintf(pl, sizeof pl, "-");
    bp_rt_say(rt, "  %4d  %-16s  %19s  %20.0f%s\n", w, st, pl, alloc[w],
              planned[w] >= 0 && planned[w] != alloc[w] ? "  (differs: optimizer overridden?)" : "");
  }
}

static void print_summary(bp_rt *rt) {
  int W = rt->W;
  double *busy = calloc((size_t)W * 3, sizeof(double));
  if (!busy) return;
  double *step = busy + W, *wait = busy + 2 * W;
  long n = rt->measured_steps;
  if (per_rank(rt, n ? rt->sum_busy / n : 0, busy, "the summary") < 0 ||
      per_rank(rt, n ? rt->sum_step / n : 0, step, "the summary") < 0 ||
      per_rank(rt, n ? rt->sum_wait / n : 0, wait, "the summary") < 0) {
    free(busy);
    return;
  }
  if (rt->wrank == 0 && n > 0) {
    const bp_rt_model *m = rt->model;
    double st = 0;
    for (int w = 0; w < W; w++) st = step[w] > st ? step[w] : st;
    double tokens = (double)rt->N * rt->R * m->batch * m->seq;
    printf("summary (measured with each rank's clock over %ld step%s%s):\n", n, n > 1 ? "s" : "",
           rt->warmup_skipped ? ", the first step left out as warm-up" : "");
    printf("  step time      %.3f ms (slowest rank's mean)", st * 1e3);
    if (rt->plan->predicted_step_s > 0) printf("; plan predicted %.3f ms (compile-time costs, simulated)", rt->plan->predicted_step_s * 1e3);
    printf("\n  tokens/s       %.0f", tokens / st);
    if (m->flops_per_token > 0) printf("; achieved %.3f GFLOP/s (compiler's FLOPs per token x tokens/s)", m->flops_per_token * tokens / st / 1e9);
    printf("\n  rank  busy ms   waiting ms  bubble measured (1 - busy/step)  bubble predicted (simulated)\n");
    double mb = 0, pb = 0;
    for (int w = 0; w < W; w++) {
      double b = step[w] > 0 ? 1 - busy[w] / step[w] : 0;
      double pr = rt->plan->predicted_bubble ? rt->plan->predicted_bubble[w % rt->D] : -1;
      mb += b;
      pb += pr;
      char pbs[32] = "-";
      if (pr >= 0) snprintf(pbs, sizeof pbs, "%.3f", pr);
      printf("  %4d  %8.3f  %10.3f  %31.3f  %27s\n", w, busy[w] * 1e3, wait[w] * 1e3, b, pbs);
    }
    printf("  mean                          %31.3f", mb / W);
    if (rt->plan->predicted_bubble) printf("  %27.3f", pb / W);
    printf("\n  (busy: forward, backward and optimizer compute; waiting: blocked on transfers and all-reduces)\n");
    fflush(stdout);
  }
  free(busy);
}

static int parse_fault(bp_rt *rt) {
  const char *f = getenv("BITPIPE_FAULT");
  if (!f || !*f) return 0;
  int rank;
  char at[16], kind[16];
  long step = 0;
  char *end = NULL;
  int ok = sscanf(f, "%d:%15[^:]:%15s", &rank, at, kind) == 3 &&
           (!strcmp(kind, "kill") || !strcmp(kind, "exit") || !strcmp(kind, "hang"));
  if (ok && !strcmp(at, "init")) step = -1;
  else if (ok && !strcmp(at, "nccl")) {
    step = -2;
    ok = !strcmp(kind, "hang");
  } else if (ok) {
    step = strtol(at, &end, 10);
    ok = end && *end == 0 && end != at;
  }
  if (!ok) {
    if (rt->wrank == 0)
      fprintf(stderr, "train: BITPIPE_FAULT is RANK:STEP|init:kill|exit|hang or RANK:nccl:hang, got '%s'\n", f);
    return -1;
  }
  rt->fault_rank = rank;
  rt->fault_step = step;
  rt->fault_kind = !strcmp(kind, "kill") ? 1 : !strcmp(kind, "exit") ? 2 : 3;
  return 0;
}

static void rt_free(bp_rt *rt) {
  bp_rt_memory_free(rt);
  bp_rt_device_close(rt);
  bp_rt_data_close(&rt->data);
  free(rt->tied);
  free(rt->tied_off);
  free(rt->tied_buf);
  free(rt->norm_x);
  free(rt->norm_n);
  free(rt->hostbuf);
  free(rt->holder_rank);
  free(rt->mb_weight);
  free(rt->mb_loss);
  free(rt->mb_done);
  free(rt->mb_loss_raw);
  free(rt->ev);
  for (int i = 0; i < rt->o.ninputs; i++) free((char *)rt->o.input_name[i]);
}

int bp_rt_main(const bp_rt_plan *plan, int argc, char **argv) {
  bp_rt rt;
  memset(&rt, 0, sizeof rt);
  int pr = parse(plan, argc, argv, &rt.o);
  if (pr <= 0) {
    for (int i = 0; i < rt.o.ninputs; i++) free((char *)rt.o.input_name[i]);
    return pr == 0 ? 0 : 2;
  }
  bp_tp tp;
  if (bp_tp_mpi_init(&tp, &argc, &argv) < 0) return 1;
  tp.timeout_s = rt.o.timeout_s;
  rt.tp = &tp;
  rt.plan = plan;
  rt.model = plan->model;
  rt.prog = plan->program;
  rt.W = tp.size;
  rt.wrank = tp.rank;
  bp_err e = {0};
  int rc = 1;
  /* checks that give the same answer on every rank: rank 0 reports */
  if (bp_rt_plan_check(plan, &e) == 0 && bp_rt_resolve_ops(plan->model, &e) == 0 && rt.W % plan->program->D != 0)
    bp_errf(&e, "the job has %d ranks, not a multiple of the program's D=%d pipeline ranks (run mpirun -np %d, or a "
                "multiple of it for data-parallel replicas)", rt.W, plan->program->D, plan->program->D);
  if (!e.set && 2 * (int64_t)plan->program->N * plan->program->n_stages > (int64_t)tp.max_tag + 1)
    bp_errf(&e, "the program's %d micro-batches x %d stages need message tags up to %d, beyond this MPI's %d",
            plan->program->N, plan->program->n_stages, 2 * plan->program->N * plan->program->n_stages - 1, tp.max_tag);
  if (e.set || parse_fault(&rt) < 0) {
    if (e.set && rt.wrank == 0) fprintf(stderr, "train: %s\n", e.msg);
    goto finalize;
  }
  rt.D = rt.prog->D;
  rt.R = rt.W / rt.D;
  rt.r = rt.wrank % rt.D;
  rt.replica = rt.wrank / rt.D;
  rt.C = rt.prog->chunks_per_rank;
  rt.N = rt.prog->N;
  rt.S = rt.prog->n_stages;
  rt.tracing = rt.o.trace != NULL;
  rt.mb_weight = malloc(sizeof(double) * (size_t)rt.N * rt.R);
  rt.mb_loss = malloc(sizeof(double) * (size_t)rt.N);
  rt.mb_done = malloc((size_t)rt.N);
  rt.mb_loss_raw = calloc((size_t)rt.N, 16);
  if (!rt.mb_weight || !rt.mb_loss || !rt.mb_done || !rt.mb_loss_raw) bp_errf(&e, "rank %d: out of memory", rt.wrank);
  /* the device (a GPU: arenas in its memory), then the transport for it (collective) */
  if (!e.set) bp_rt_device_open(&rt, &e);
  if (agree(&rt, e.set, &e)) goto finalize;
  bp_rt_device_transport(&rt, &e);
  if (agree(&rt, e.set, &e)) goto finalize;
  bp_rt_memory_init(&rt, &e);
  if (agree(&rt, e.set, &e)) goto finalize;
  char wbuf[4096];
  const char *wpath = rt.o.weights ? rt.o.weights : bp_rt_default_weights(rt.model, wbuf, sizeof wbuf);
  bp_rt_weights_load(&rt, wpath, &e);
  if (agree(&rt, e.set, &e)) goto finalize;
  bp_rt_data_open(&rt, &e);
  if (agree(&rt, e.set, &e)) goto finalize;
  if (rt.o.resume) bp_rt_checkpoint_load(&rt, rt.o.resume, &e);
  if (agree(&rt, e.set, &e)) goto finalize;
  bp_rt_groups_init(&rt, &e);
  if (agree(&rt, e.set, &e)) goto finalize;
  /* memory: what the compiler planned and what was allocated, per rank */
  double *planned = calloc((size_t)rt.W * 2, sizeof(double));
  if (!planned) fail_local(&rt, &e);
  double *alloc = planned + rt.W;
  if (per_rank(&rt, plan->planned_rank_bytes ? (double)plan->planned_rank_bytes[rt.r] : -1, planned, "start-up") < 0 ||
      per_rank(&rt, (double)rt.allocated_bytes, alloc, "start-up") < 0) {
    bp_errf(&e, "%s", tp.err);
    fail_local(&rt, &e);
  }
  if (!rt.o.quiet) print_config(&rt, planned, alloc);
  free(planned);
  if (bp_tp_barrier(&tp, 0, "the start barrier") < 0) {
    bp_errf(&e, "%s", tp.err);
    fail_local(&rt, &e);
  }
  rt.t_start = bp_tp_now();
  long first = rt.step + 1;
  while (rt.step < rt.o.steps) {
    double w0 = tp.waited_s;
    if (bp_rt_exec_step(&rt, &e) < 0) {
      if (rt.err_everywhere) {
        if (rt.wrank == 0) fprintf(stderr, "train: %s\n", e.msg);
        goto finalize;
      }
      fail_local(&rt, &e);
    }
    rt.step++;
    rt.data_pos += rt.data.per_step;
    const bp_rt_model *m = rt.model;
    double tokens = (double)rt.N * rt.R * m->batch * m->seq;
    bp_rt_say(&rt, "step %ld loss %.9g grad_norm %.9g tokens/s %.0f\n", rt.step, rt.loss, rt.grad_norm,
              rt.step_s > 0 ? tokens / rt.step_s : 0);
    /* the first step of a run warms caches and pages in the arenas: left out when there are more */
    if (rt.step > first || rt.o.steps == first) {
      rt.warmup_skipped = rt.step > first;
      rt.sum_busy += rt.busy_s;
      rt.sum_step += rt.step_s;
      rt.sum_wait += tp.waited_s - w0;
      rt.measured_steps++;
    }
    if (rt.o.save_every && rt.step % rt.o.save_every == 0 && bp_rt_checkpoint_save(&rt, &e) < 0) {
      if (rt.err_everywhere) {
        if (rt.wrank == 0) fprintf(stderr, "train: %s\n", e.msg);
        goto finalize;
      }
      fail_local(&rt, &e);
    }
  }
  if (!rt.o.quiet) print_summary(&rt);
  /* the closing phases gather to rank 0 and write files: the watchdog allows for the disk */
  tp.timeout_s = bp_rt_io_timeout(&rt, 0) + (rt.o.trace ? 120 : 0);
  if (rt.o.trace && bp_rt_trace_write(&rt, rt.o.trace, &e) < 0) fail_local(&rt, &e);
  if (rt.o.save_onnx) {
    if (bp_rt_save_onnx(&rt, rt.o.save_onnx, &e) < 0) fail_local(&rt, &e);
    bp_rt_say(&rt, "train: wrote the trained weights into %s\n", rt.o.save_onnx);
  }
  if (rt.o.trace) bp_rt_say(&rt, "train: wrote the trace of every rank to %s\n", rt.o.trace);
  /* nobody leaves before everyone is done with the others (the trace and --save-onnx gathers) */
  if (bp_tp_barrier(&tp, 0, "the final barrier") < 0) {
    bp_errf(&e, "%s", tp.err);
    fail_local(&rt, &e);
  }
  rc = 0;
finalize:
  rt_free(&rt);
  if (tp.impl->finalize(&tp) < 0) {
    fprintf(stderr, "train: %s\n", tp.err);
    return 1;
  }
  return rc;
}
