/* runtime/device_cuda.c — a rank's arenas on a GPU (bp_rt_dev "cuda", runtime/rt.h): every arena
 * is one cudaMalloc; the stage's nodes run through the CUDA op table (kernels/cuda, the CPU's eval
 * signature on device pointers) on the context's stream; data inputs, the loss weight and the
 * weights file go up, the loss and checkpoints come back; parameter gradients accumulate, and
 * SGD / AdamW update, on the device (kernels/cuda's versions are bit-identical to the CPU's).
 *
 * Which GPU: local rank (Open MPI's OMPI_COMM_WORLD_LOCAL_RANK, MPICH's MPI_LOCALRANKID, Slurm's
 * SLURM_LOCALID; else the world rank) modulo the visible devices, so several ranks on one machine
 * spread over its GPUs and share them when there are fewer (then the MPI transport stages
 * through host memory: transport_select.c).
 *
 * Host views. Kernels whose parameters are inputs (Reshape's shape, Slice's starts, reduction
 * axes) read them on the host: every input that lives in the CONST arena is handed to the kernel
 * from the host copy of that arena (bp_cuda_set_host_inputs), as kernels/cuda/exec.c does with a
 * graph's constants; any other one is downloaded by the kernel (bp_cuda_host_view).
 *
 * Synchronisation. Everything is queued on the context's stream and the host runs ahead: a compute
 * instruction's kernels are not waited for (timing events around it give the device's busy time
 * and the trace); data inputs and the loss weight go up from pinned staging blocks that are reused
 * once their copy is done; the loss comes back into pinned memory and is read after the next
 * `sync`. The host waits for the GPU only in `sync` (the optimizer step: before the loss and norm
 * are read, after the update; the tied parameters' host sum) and before plain copies (weights,
 * checkpoints) — always by polling an event under the transport's watchdog, so a GPU stuck behind a
 * transfer from a dead rank ends the job with a message instead of hanging. Kernels' device flags
 * (an index or target out of range) are read at every `sync`; the tag a kernel raises encodes the
 * instruction and the node, so the error names both. BP_RT_SYNC=1 waits after every instruction
 * (errors of asynchronous faults then name the instruction that ran). The transports order their
 * own copies / NCCL calls against the stream with events (transport_staged.c, transport_nccl.c).
 *
 * Folds. A MatMul the compiler folded a Transpose or a power-of-two Mul into (runtime/plan.h,
 * bp_rt_fold) runs as one GEMM with the transpose flags and alpha set (exact: a power of two
 * commutes with rounding). In bf16 precision, GEMM operands inside the chunk's PARAM arena keep
 * their bf16 copy for the rest of the step (nothing writes parameters between the step's start and
 * the optimizer), so each weight is converted once per step, not once per GEMM.
 *
 * BP_CUDA_PROFILE=1 (as for bitpipec train): a CUDA event pair around every node run; after the
 * first step (a warm-up), the time per node is summed, and when the run ends each rank prints the
 * time per step by op type, by op and output shape, and the slowest nodes (kernels/cuda/profile.c's
 * layout), so a row of the pipeline can be compared op by op with the single-GPU trainer. */
#include "runtime/rt.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/cuda_rt.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct up_block {     /* pinned staging of uploads (data inputs, the loss weight) */
  uint8_t *p;
  int64_t cap, used;
  cudaEvent_t done;           /* recorded after the block's copies */
  int pending;                /* copies queued from it since `done` was last waited for */
} up_block;

typedef struct fetch_rec {    /* an asynchronous download: bytes at `at` in `fetch_host` go to dst */
  void *dst;
  int64_t at, n;
} fetch_rec;

typedef struct timed {        /* one compute instruction's span on the stream */
  int op, chunk, mb;
} timed;

enum { UP_BLOCKS = 4 };

typedef struct rt_gpu {
  bp_cuda *dc;
  cudaStream_t stream;
  int device, count, local_rank;
  int *stage_off;            /* [S+1]: where each stage's nodes start in ops / nodes */
  int total_nodes;
  const bp_cuda_op **ops;    /* the CUDA entry of every node of every stage */
  bp_node **nodes;           /* the nodes, for the device flag's messages */
  double *acc;               /* device: a sum of squares */
  double *sq_host;           /* pinned: its download */
  int sync_each;             /* BP_RT_SYNC=1 */
  cudaEvent_t idle;          /* recorded to wait for the stream */
  up_block up[UP_BLOCKS];
  int up_cur;                /* block being filled, -1: none */
  int up_next;
  uint8_t *fetch_host;       /* pinned landing area of fetches */
  int64_t fetch_cap, fetch_used;
  fetch_rec *fetch;
  int nfetch, capfetch;
  cudaEvent_t *tev;          /* timing events: 2 per compute instruction of a step, + the reference */
  timed *tinfo;
  int ntimed, captimed;
  double t_ref;              /* host time when tev[0] was recorded on an idle stream */
  /* BP_CUDA_PROFILE=1: per node run an event pair (pev[2i], pev[2i+1]) and the node (pnode[i]) */
  int prof, prof_count, steps_seen, prof_steps;
  cudaEvent_t *pev;
  int *pnode;
  int npev, cappev;
  double *node_ms;           /* [total_nodes], summed over the counted steps */
  long *node_runs;
  double span_ms;            /* the compute instructions' spans, summed over the counted steps */
} rt_gpu;

#define GPU(rt) ((rt_gpu *)(rt)->gpu)

static int cu_fail(bp_err *e, const char *what, const char *call, cudaError_t rc) {
  return bp_errf(e, "%s: CUDA call '%s' failed: %s", what ? what : "GPU", call, cudaGetErrorString(rc));
}
#define CU(call, what)                                                                             \
  do {                                                                                             \
    cudaError_t cu_rc_ = (call);                                                                   \
    if (cu_rc_ != cudaSuccess) return cu_fail(e, (what), #call, cu_rc_);                           \
  } while (0)

/* Waits for `ev` under the transport's watchdog: polls it (letting transfers progress, sleeping
 * between polls as bp_tp_wait does) and, after the timeout, prints what the GPU may be waiting for
 * (the transport's oldest transfer the stream depends on) and aborts the job. */
static int wait_event(bp_rt *rt, cudaEvent_t ev, const char *what, bp_err *e) {
  double t0 = bp_tp_now();
  long polls = 0;
  for (;;) {
    cudaError_t q = cudaEventQuery(ev);
    if (q == cudaSuccess) return 0;
    if (q != cudaErrorNotReady) return cu_fail(e, what, "cudaEventQuery (waiting for the GPU)", q);
    rt->tp->impl->progress(rt->tp);
    double now = bp_tp_now();
    if (now - t0 > rt->tp->timeout_s) {
      char pend[256] = "";
      if (rt->tp->impl->pending) rt->tp->impl->pending(rt->tp, pend, sizeof pend);
      fprintf(stderr, "rank %d: the GPU's queued work (%s) not complete after %.0f s (%s)\n", rt->wrank,
              what ? what : "the step", now - t0,
              pend[0] ? pend : "a rank it waits for may have died, or a kernel hangs");
      fflush(stderr);
      bp_tp_abort(rt->tp, 1);
      return bp_errf(e, "the GPU's queued work did not complete"); /* not reached */
    }
    bp_tp_backoff(++polls);
  }
}

/* Every device flag raised since the last look: the first raiser's tag names the instruction and
 * the node (g_eval), or the node alone when the program is too long for the code. */
static int check_flags(bp_rt *rt, bp_err *e) {
  rt_gpu *g = GPU(rt);
  int flag = 0;
  if (bp_cuda_take_flag(g->dc, &flag, e) < 0) return -1;
  if (!flag) return 0;
  int tag = flag - 1, node = tag % g->total_nodes, instr = tag / g->total_nodes - 1;
  int s = 0;
  while (s + 1 < rt->model->n_stages && node >= g->stage_off[s + 1]) s++;
  const bp_node *n = g->nodes[node];
  const bp_rank_program *rp = &rt->prog->rank[rt->r];
  if (instr >= 0 && instr < rp->n)
    return bp_errf(e, "stage %d micro-batch %d (%s, instruction %d): node '%s' (%s): an index or target is out of "
                   "range (found by the GPU kernel)", s, rp->code[instr].mb, bp_op_name((bp_op)rp->code[instr].op),
                   instr, n->name ? n->name : "", n->op_type);
  return bp_errf(e, "stage %d: node '%s' (%s): an index or target is out of range (found by the GPU kernel)", s,
                 n->name ? n->name : "", n->op_type);
}

/* Waits for everything queued on the stream (under the watchdog). */
static int drain(bp_rt *rt, const char *what, bp_err *e) {
  rt_gpu *g = GPU(rt);
  CU(cudaEventRecord(g->idle, g->stream), what);
  return wait_event(rt, g->idle, what, e);
}

static void *g_alloc(bp_rt *rt, int64_t n, const char *what, bp_err *e) {
  void *p = NULL;
  size_t bytes = (size_t)(n > 0 ? n : 1);
  cudaError_t rc = cudaMalloc(&p, bytes);
  if (rc != cudaSuccess) {
    size_t free_b = 0, total_b = 0;
    (void)cudaGetLastError();
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
    bp_errf(e, "%s: cudaMalloc of %lld bytes failed: %s (GPU %d: %.0f MiB free of %.0f MiB)", what, (long long)n,
            cudaGetErrorString(rc), GPU(rt)->device, free_b / 1048576.0, total_b / 1048576.0);
    return NULL;
  }
  rc = cudaMemsetAsync(p, 0, bytes, GPU(rt)->stream);
  if (rc == cudaSuccess) rc = cudaStreamSynchronize(GPU(rt)->stream); /* start-up: nothing else queued */
  if (rc != cudaSuccess) {
    cu_fail(e, what, "cudaMemsetAsync(arena, 0, bytes, stream)", rc);
    cudaFree(p);
    return NULL;
  }
  return p;
}

/* Teardown: a failure is reported but changes nothing else (the run's results are out already). */
static void g_release(bp_rt *rt, void *p) {
  (void)rt;
  if (!p) return;
  cudaError_t rc = cudaFree(p);
  if (rc != cudaSuccess) fprintf(stderr, "train: rank %d: cudaFree(arena) failed: %s\n", rt->wrank, cudaGetErrorString(rc));
}

/* Plain copies (weights, checkpoints, tied gradients): the stream is drained under the watchdog
 * first, so the blocking copy never waits on a transfer that may not come. */
static int g_put(bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e) {
  if (n <= 0) return 0;
  if (drain(rt, what, e) < 0) return -1;
  CU(cudaMemcpy(dst, src, (size_t)n, cudaMemcpyHostToDevice), what);
  return 0;
}

static int g_get(bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e) {
  if (n <= 0) return 0;
  if (drain(rt, what, e) < 0) return -1;
  CU(cudaMemcpy(dst, src, (size_t)n, cudaMemcpyDeviceToHost), what);
  return 0;
}

static int g_copy(bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e) {
  if (n <= 0) return 0;
  CU(cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyDeviceToDevice, GPU(rt)->stream), what);
  return 0;
}

static int g_zero(bp_rt *rt, void *dst, int64_t n, const char *what, bp_err *e) {
  if (n <= 0) return 0;
  CU(cudaMemsetAsync(dst, 0, (size_t)n, GPU(rt)->stream), what);
  return 0;
}

/* A pinned block with room for n bytes of uploads: the next one round the ring, once its earlier
 * copies are done (it was used UP_BLOCKS uploads ago, so this rarely waits). */
static void *g_stage(bp_rt *rt, int64_t n, bp_err *e) {
  rt_gpu *g = GPU(rt);
  up_block *b = &g->up[g->up_next];
  if (b->pending && wait_event(rt, b->done, "an upload's staging block", e) < 0) return NULL;
  b->pending = 0;
  if (n > b->cap) {
    if (b->p && cudaFreeHost(b->p) != cudaSuccess) (void)cudaGetLastError();
    b->p = NULL;
    b->cap = 0;
    cudaError_t rc = cudaHostAlloc((void **)&b->p, (size_t)(n > 0 ? n : 1), cudaHostAllocDefault);
    if (rc != cudaSuccess) {
      cu_fail(e, "pinned staging of data inputs", "cudaHostAlloc", rc);
      return NULL;
    }
    b->cap = n;
  }
  b->used = 0;
  g->up_cur = g->up_next;
  g->up_next = (g->up_next + 1) % UP_BLOCKS;
  return b->p;
}

/* src lies in the block g_stage gave; the copy is queued, the block's event recorded after it. */
static int g_upload(bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e) {
  rt_gpu *g = GPU(rt);
  if (g->up_cur < 0) return bp_errf(e, "internal: %s: an upload without a staging block", what);
  up_block *b = &g->up[g->up_cur];
  if ((const uint8_t *)src < b->p || (const uint8_t *)src + n > b->p + b->cap)
    return bp_errf(e, "internal: %s: the source is not in the staging block", what);
  if (n <= 0) return 0;
  CU(cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyHostToDevice, g->stream), what);
  CU(cudaEventRecord(b->done, g->stream), what);
  b->pending = 1;
  return 0;
}

/* dst (host) receives the n bytes at src at the next sync. */
static int g_fetch(bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e) {
  rt_gpu *g = GPU(rt);
  if (n <= 0) return 0;
  int64_t at = (g->fetch_used + 15) & ~(int64_t)15;
  if (at + n > g->fetch_cap) {
    /* the landing area fills only when a step fetches more than planned: wait and start over */
    if (drain(rt, what, e) < 0) return -1;
    for (int i = 0; i < g->nfetch; i++)
      memcpy(g->fetch[i].dst, g->fetch_host + g->fetch[i].at, (size_t)g->fetch[i].n);
    g->nfetch = 0;
    g->fetch_used = at = 0;
    if (n > g->fetch_cap) {
      if (g->fetch_host && cudaFreeHost(g->fetch_host) != cudaSuccess) (void)cudaGetLastError();
      g->fetch_host = NULL;
      g->fetch_cap = 0;
      CU(cudaHostAlloc((void **)&g->fetch_host, (size_t)n, cudaHostAllocDefault), what);
      g->fetch_cap = n;
    }
  }
  if (g->nfetch == g->capfetch) {
    int cap = g->capfetch ? 2 * g->capfetch : 64;
    fetch_rec *f = realloc(g->fetch, sizeof *f * (size_t)cap);
    if (!f) return bp_errf(e, "out of memory");
    g->fetch = f;
    g->capfetch = cap;
  }
  CU(cudaMemcpyAsync(g->fetch_host + at, src, (size_t)n, cudaMemcpyDeviceToHost, g->stream), what);
  g->fetch[g->nfetch++] = (fetch_rec){dst, at, n};
  g->fetch_used = at + n;
  return 0;
}

/* BP_CUDA_PROFILE: the event before (after = 0) or after (1) a run of `node`. */
static int prof_mark(rt_gpu *g, int node, int after, bp_err *e) {
  if (!after && g->npev == g->cappev) {
    int cap = g->cappev ? 2 * g->cappev : 1024;
    cudaEvent_t *ev = realloc(g->pev, sizeof *ev * (size_t)(2 * cap));
    if (ev) g->pev = ev;
    int *pn = realloc(g->pnode, sizeof *pn * (size_t)cap);
    if (pn) g->pnode = pn;
    if (!ev || !pn) return bp_errf(e, "out of memory");
    for (int i = 2 * g->cappev; i < 2 * cap; i++) {
      cudaError_t rc = cudaEventCreate(&g->pev[i]);
      if (rc != cudaSuccess) {
        g->cappev = i / 2; /* what was made is destroyed by g_close */
        if (i % 2) cudaEventDestroy(g->pev[i - 1]);
        return cu_fail(e, "BP_CUDA_PROFILE", "cudaEventCreate", rc);
      }
    }
    g->cappev = cap;
  }
  CU(cudaEventRecord(g->pev[2 * g->npev + after], g->stream), "BP_CUDA_PROFILE");
  if (after) g->pnode[g->npev++] = node;
  return 0;
}

static int g_eval(bp_rt *rt, rt_chunk *c, bp_ctx *ctx, int k, bp_value **in, bp_value **out, bp_err *e) {
  rt_gpu *g = GPU(rt);
  const bp_rt_stage *st = c->st;
  const bp_node *n = &st->nodes[k];
  int node = g->stage_off[st->index] + k;
  const bp_cuda_op *op = g->ops[node];
  enum { MAXIO = 256 };
  const void *host[MAXIO];
  if (n->nin > MAXIO) return bp_errf(e, "node '%s' (%s): more than %d inputs", n->name, n->op_type, MAXIO);
  for (int i = 0; i < n->nin; i++) {
    int t = n->in[i];
    host[i] = t >= 0 && st->tensors[t].mem == BP_MEM_CONST ? c->cnst_host + st->tensors[t].offset : NULL;
  }
  /* No clearing of the outputs: the CUDA kernels write every element of theirs (test_gpu_ops runs
   * each of them on poisoned outputs), and kernels/cuda/exec.c hands them uninitialised memory. */
  ctx->device = g->dc;
  bp_cuda_set_host_inputs(g->dc, host, n->nin);
  /* the flag's tag: (instruction + 1) x nodes + node, when it fits an int (check_flags decodes it) */
  int64_t code = ((int64_t)rt->cur_instr + 1) * g->total_nodes + node;
  bp_cuda_set_tag(g->dc, code < 2147483000 ? (int)code : node);
  if (g->prof && prof_mark(g, node, 0, e) < 0) return -1;
  const bp_rt_fold *f = st->folds ? &st->folds[k] : NULL;
  int folded = f && (f->trans[0] || f->trans[1] || f->in_log2[0] || f->in_log2[1] || f->out_log2);
  if (folded) bp_cuda_set_matmul_folds(g->dc, ldexpf(1.0f, f->in_log2[0] + f->in_log2[1] + f->out_log2), f->trans[0], f->trans[1]);
  bp_cuda_bf16_cache_range(g->dc, c->param, c->param + st->param_bytes);
  int rc = op->eval(ctx, n, in, n->nin, out, n->nout, e);
  if (folded) bp_cuda_set_matmul_folds(g->dc, 1.0f, 0, 0);
  bp_cuda_set_host_inputs(g->dc, NULL, 0);
  if (rc == 0 && g->prof && prof_mark(g, node, 1, e) < 0) return -1;
  return rc;
}

static int g_step_begin(bp_rt *rt, bp_err *e) {
  rt_gpu *g = GPU(rt);
  g->ntimed = 0;
  /* parameters changed since the last step (optimizer, checkpoint): no bf16 copy of them is valid */
  bp_cuda_bf16_cache_off(g->dc);
  g->prof_count = g->prof && g->steps_seen++ > 0; /* the first step is a warm-up */
  g->prof_steps += g->prof_count;
  g->npev = 0;
  /* the stream is idle here (the last step ended with a sync): the reference is now */
  CU(cudaEventRecord(g->tev[0], g->stream), "the step's timing reference");
  g->t_ref = bp_tp_now();
  return 0;
}

static int g_begin(bp_rt *rt, rt_chunk *c, bp_err *e) {
  rt_gpu *g = GPU(rt);
  (void)c;
  if (g->ntimed == g->captimed) {
    int cap = g->captimed ? 2 * g->captimed : 64;
    cudaEvent_t *t = realloc(g->tev, sizeof *t * (size_t)(2 * cap + 1));
    if (t) g->tev = t;
    timed *ti = realloc(g->tinfo, sizeof *ti * (size_t)cap);
    if (ti) g->tinfo = ti;
    if (!t || !ti) return bp_errf(e, "out of memory");
    for (int i = 2 * g->captimed + 1; i < 2 * cap + 1; i++) {
      cudaError_t rc = cudaEventCreate(&g->tev[i]);
      if (rc != cudaSuccess) {
        g->captimed = (i - 1) / 2; /* what was made is destroyed by g_close */
        return cu_fail(e, "a timing event", "cudaEventCreate", rc);
      }
    }
    g->captimed = cap;
  }
  CU(cudaEventRecord(g->tev[1 + 2 * g->ntimed], g->stream), "a timing event");
  return 0;
}

static int g_finish(bp_rt *rt, rt_chunk *c, int op, int mb, double t0, bp_err *e) {
  rt_gpu *g = GPU(rt);
  (void)t0;
  CU(cudaEventRecord(g->tev[2 + 2 * g->ntimed], g->stream), "a timing event");
  g->tinfo[g->ntimed++] = (timed){op, c->index, mb};
  if (g->sync_each) return rt->dev->sync(rt, "BP_RT_SYNC=1: the instruction's kernels", e);
  return 0;
}

/* After a drain: the compute instructions' spans into the busy time and the trace. */
static int account(bp_rt *rt, bp_err *e) {
  rt_gpu *g = GPU(rt);
  for (int i = 0; i < g->ntimed; i++) {
    float a = 0, b = 0;
    CU(cudaEventElapsedTime(&a, g->tev[0], g->tev[1 + 2 * i]), "the compute timing");
    CU(cudaEventElapsedTime(&b, g->tev[0], g->tev[2 + 2 * i]), "the compute timing");
    rt->busy_s += (b - a) * 1e-3;
    if (g->prof_count) g->span_ms += b - a;
    bp_rt_trace_add(rt, g->tinfo[i].op, g->tinfo[i].chunk, g->tinfo[i].mb, -1, g->t_ref + a * 1e-3,
                    g->t_ref + b * 1e-3);
  }
  /* later spans are measured from the last one (the stream runs on from there) */
  if (g->ntimed > 0) {
    float last = 0;
    CU(cudaEventElapsedTime(&last, g->tev[0], g->tev[2 * g->ntimed]), "the compute timing");
    cudaEvent_t t = g->tev[0];
    g->tev[0] = g->tev[2 * g->ntimed];
    g->tev[2 * g->ntimed] = t;
    g->t_ref += last * 1e-3;
  }
  g->ntimed = 0;
  for (int i = 0; i < g->npev; i++) {
    float ms = 0;
    CU(cudaEventElapsedTime(&ms, g->pev[2 * i], g->pev[2 * i + 1]), "BP_CUDA_PROFILE");
    if (!g->prof_count) continue;
    g->node_ms[g->pnode[i]] += ms;
    g->node_runs[g->pnode[i]]++;
  }
  g->npev = 0;
  return 0;
}

static int g_accumulate(bp_rt *rt, float *acc, const float *x, int64_t n, bp_err *e) {
  return bp_cuda_accumulate(GPU(rt)->dc, acc, x, n, e);
}

static int g_sumsq(bp_rt *rt, const float *const *x, const int64_t *n, int count, double *sq, bp_err *e) {
  rt_gpu *g = GPU(rt);
  if (bp_cuda_memset(g->dc, g->acc, 0, sizeof(double), "the gradient norm", e) < 0) return -1;
  for (int i = 0; i < count; i++)
    if (bp_cuda_sumsq(g->dc, x[i], n[i], g->acc, e) < 0) return -1;
  CU(cudaMemcpyAsync(g->sq_host, g->acc, sizeof(double), cudaMemcpyDeviceToHost, g->stream), "the gradient norm");
  if (drain(rt, "the gradient norm", e) < 0 || check_flags(rt, e) < 0) return -1;
  *sq = *g->sq_host;
  return 0;
}

static int g_sgd(bp_rt *rt, float *p, const float *gr, float *buf, int64_t n, int first, double gscale, bp_err *e) {
  const bp_rt_hparams *hp = &rt->o.hp;
  return bp_cuda_sgd_update(GPU(rt)->dc, p, gr, buf, n, first, hp->lr, hp->momentum, hp->weight_decay, gscale, e);
}

static int g_adamw(bp_rt *rt, float *p, const float *gr, float *m, float *v, int64_t n, int step, double gscale,
                   bp_err *e) {
  const bp_rt_hparams *hp = &rt->o.hp;
  return bp_cuda_adamw_update(GPU(rt)->dc, p, gr, m, v, n, step, hp->lr, hp->beta1, hp->beta2, hp->eps,
                              hp->weight_decay, gscale, e);
}

/* Everything queued is done: the fetched bytes land, device flags are reported, compute spans
 * are accounted. */
static int g_sync(bp_rt *rt, const char *what, bp_err *e) {
  rt_gpu *g = GPU(rt);
  if (drain(rt, what, e) < 0 || check_flags(rt, e) < 0) return -1;
  for (int i = 0; i < g->nfetch; i++) memcpy(g->fetch[i].dst, g->fetch_host + g->fetch[i].at, (size_t)g->fetch[i].n);
  g->nfetch = 0;
  g->fetch_used = 0;
  return account(rt, e);
}

typedef struct prof_row {
  char key[96];
  int nodes;
  long runs;
  double ms;
} prof_row;

static int by_ms_desc(const void *a, const void *b) {
  double x = ((const prof_row *)a)->ms, y = ((const prof_row *)b)->ms;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Adds node i's time to the row named key (rows[0..*n)). */
static void prof_add(prof_row *rows, int *n, const char *key, long runs, double ms) {
  int k = 0;
  while (k < *n && strcmp(rows[k].key, key)) k++;
  if (k == *n) snprintf(rows[(*n)++].key, sizeof rows[0].key, "%s", key);
  rows[k].nodes++, rows[k].runs += runs, rows[k].ms += ms;
}

/* BP_CUDA_PROFILE=1: this rank's table (per step, over the steps after the first). */
static void prof_report(bp_rt *rt, rt_gpu *g) {
  if (!g->prof || g->prof_steps == 0) return;
  const bp_rt_model *m = rt->model;
  int total = g->total_nodes, nop = 0, nsh = 0, nviews = 0;
  prof_row *op = calloc((size_t)total + 1, sizeof *op), *sh = calloc((size_t)total + 1, sizeof *sh);
  prof_row *top = calloc((size_t)total + 1, sizeof *top);
  if (!op || !sh || !top) {
    free(op), free(sh), free(top);
    return;
  }
  double steps = g->prof_steps, nodes_ms = 0;
  int ntop = 0;
  for (int s = 0; s < m->n_stages; s++) {
    const bp_rt_stage *st = &m->stages[s];
    for (int k = 0; k < st->nnodes; k++) {
      int i = g->stage_off[s] + k;
      const bp_node *n = &st->nodes[k];
      if (st->folds && st->folds[k].view) nviews++;
      if (g->node_runs[i] == 0) continue;
      double ms = g->node_ms[i] / steps;
      nodes_ms += ms;
      char shape[80] = "", key[96];
      if (n->nout > 0 && n->out[0] >= 0) {
        const bp_rt_tensor *t = &st->tensors[n->out[0]];
        int at = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->rank && at < (int)sizeof shape - 24; d++)
          at += snprintf(shape + at, sizeof shape - (size_t)at, "%s%lld", d ? "," : "", (long long)t->dims[d]);
        snprintf(shape + at, sizeof shape - (size_t)at, "]");
      }
      prof_add(op, &nop, n->op_type, g->node_runs[i], ms);
      snprintf(key, sizeof key, "%.22s %s", n->op_type, shape);
      prof_add(sh, &nsh, key, g->node_runs[i], ms);
      snprintf(top[ntop].key, sizeof top[0].key, "s%d %.20s %.50s", s, n->op_type, n->name ? n->name : "");
      top[ntop].runs = g->node_runs[i], top[ntop].ms = ms, top[ntop].nodes = 1;
      ntop++;
    }
  }
  qsort(op, (size_t)nop, sizeof *op, by_ms_desc);
  qsort(sh, (size_t)nsh, sizeof *sh, by_ms_desc);
  qsort(top, (size_t)ntop, sizeof *top, by_ms_desc);
  double span = g->span_ms / steps;
  FILE *f = stderr;
  fprintf(f, "profile (BP_CUDA_PROFILE, rank %d): %d step(s) after the warm-up; per step: nodes %.2f ms, compute "
             "instructions' spans %.2f ms (the rest: gradient accumulation, event gaps); %d view nodes do not run\n",
          rt->wrank, g->prof_steps, nodes_ms, span, nviews);
  fprintf(f, "profile: %-28s %6s %8s %10s %6s\n", "op", "nodes", "runs", "ms/step", "%");
  for (int k = 0; k < nop; k++)
    fprintf(f, "profile: %-28s %6d %8.0f %10.3f %6.1f\n", op[k].key, op[k].nodes, op[k].runs / steps, op[k].ms,
            span > 0 ? 100 * op[k].ms / span : 0);
  fprintf(f, "profile: by op and output shape (top 30): %-40s %6s %10s %6s\n", "", "nodes", "ms/step", "%");
  for (int k = 0; k < nsh && k < 30; k++)
    fprintf(f, "profile:   %-60s %6d %10.3f %6.1f\n", sh[k].key, sh[k].nodes, sh[k].ms, span > 0 ? 100 * sh[k].ms / span : 0);
  fprintf(f, "profile: slowest nodes (ms/step, stage, op, name)\n");
  for (int k = 0; k < ntop && k < 15; k++) fprintf(f, "profile: %10.3f  %s\n", top[k].ms, top[k].key);
  free(op), free(sh), free(top);
}

static void g_close(bp_rt *rt) {
  rt_gpu *g = GPU(rt);
  if (!g) return;
  prof_report(rt, g);
  /* teardown: statuses are not checked (nothing is left to report them to) */
  if (g->stream) cudaStreamSynchronize(g->stream);
  for (int i = 0; i < UP_BLOCKS; i++) {
    if (g->up[i].p) cudaFreeHost(g->up[i].p);
    if (g->up[i].done) cudaEventDestroy(g->up[i].done);
  }
  if (g->tev)
    for (int i = 0; i < 2 * g->captimed + 1; i++) cudaEventDestroy(g->tev[i]);
  if (g->idle) cudaEventDestroy(g->idle);
  if (g->pev)
    for (int i = 0; i < 2 * g->cappev; i++) cudaEventDestroy(g->pev[i]);
  free(g->pev), free(g->pnode), free(g->node_ms), free(g->node_runs);
  if (g->fetch_host) cudaFreeHost(g->fetch_host);
  if (g->sq_host) cudaFreeHost(g->sq_host);
  if (g->dc) {
    bp_cuda_release(g->dc, g->acc);
    if (bp_cuda_host_runs(g->dc) > 0 && rt->wrank == 0 && !rt->o.quiet)
      fprintf(stderr, "train: note: %lld node runs were staged through the host (ops without their own CUDA kernel: %s)\n",
              (long long)bp_cuda_host_runs(g->dc), bp_cuda_host_ops(g->dc));
    bp_cuda_free(g->dc);
  }
  free(g->tev);
  free(g->tinfo);
  free(g->fetch);
  free(g->stage_off);
  free(g->ops);
  free(g->nodes);
  free(g);
  rt->gpu = NULL;
}

static const bp_rt_dev dev_cuda = {
    .name = "cuda",
    .host_memory = 0,
    .alloc = g_alloc,
    .release = g_release,
    .put = g_put,
    .get = g_get,
    .copy = g_copy,
    .zero = g_zero,
    .stage = g_stage,
    .upload = g_upload,
    .fetch = g_fetch,
    .eval = g_eval,
    .step_begin = g_step_begin,
    .begin = g_begin,
    .finish = g_finish,
    .accumulate = g_accumulate,
    .sumsq = g_sumsq,
    .sgd = g_sgd,
    .adamw = g_adamw,
    .sync = g_sync,
    .close = g_close,
};

void *bp_rt_cuda_context(bp_rt *rt) { return rt->gpu ? GPU(rt)->dc : NULL; }

static int local_rank(int world_rank) {
  const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MPI_LOCAL_RANK", "SLURM_LOCALID",
                        "PMI_LOCAL_RANK"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) return atoi(v);
  }
  return world_rank;
}

int bp_rt_cuda_open(bp_rt *rt, bp_err *e) {
  int count = bp_cuda_device_count();
  if (count == 0) {
    if (rt->o.device == 2)
      return bp_errf(e, "--device cuda: no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)");
    return 1; /* auto: the CPU */
  }
  rt_gpu *g = calloc(1, sizeof *g);
  if (!g) return bp_errf(e, "out of memory");
  rt->gpu = g;
  rt->dev = &dev_cuda; /* from here on g_close frees what was made */
  g->count = count;
  g->local_rank = local_rank(rt->wrank);
  g->device = g->local_rank % count;
  bp_precision prec = rt->o.precision == 1 ? BP_PREC_TF32 : rt->o.precision == 2 ? BP_PREC_BF16 : BP_PREC_FP32;
  bp_err ce = {0};
  if (!(g->dc = bp_cuda_new(g->device, prec, &ce))) return bp_errf(e, "GPU %d: %s", g->device, ce.msg);
  g->stream = (cudaStream_t)bp_cuda_stream_handle(g->dc);
  const bp_rt_model *m = rt->model;
  g->stage_off = malloc(sizeof(int) * (size_t)(m->n_stages + 1));
  if (!g->stage_off) return bp_errf(e, "out of memory");
  g->stage_off[0] = 0;
  for (int s = 0; s < m->n_stages; s++) g->stage_off[s + 1] = g->stage_off[s] + m->stages[s].nnodes;
  int total = g->total_nodes = g->stage_off[m->n_stages];
  g->ops = calloc((size_t)(total ? total : 1), sizeof *g->ops);
  g->nodes = calloc((size_t)(total ? total : 1), sizeof *g->nodes);
  if (!g->ops || !g->nodes) return bp_errf(e, "out of memory");
  for (int s = 0; s < m->n_stages; s++)
    for (int k = 0; k < m->stages[s].nnodes; k++) {
      bp_node *n = &m->stages[s].nodes[k];
      const bp_cuda_op *op = bp_cuda_op_find(n->domain, n->op_type);
      if (!op || !op->eval)
        return bp_errf(e, "stage %d node '%s': op '%s' has no entry in the CUDA op table", s, n->name, n->op_type);
      g->ops[g->stage_off[s] + k] = op;
      g->nodes[g->stage_off[s] + k] = n;
    }
  if (!(g->acc = bp_cuda_alloc(g->dc, sizeof(double), "the gradient norm", e))) return -1;
  const char *pr = getenv("BP_CUDA_PROFILE");
  g->prof = pr && *pr && strcmp(pr, "0") != 0;
  if (g->prof && (!(g->node_ms = calloc((size_t)total + 1, sizeof(double))) ||
                  !(g->node_runs = calloc((size_t)total + 1, sizeof(long)))))
    return bp_errf(e, "out of memory");
  const char *sy = getenv("BP_RT_SYNC");
  g->sync_each = sy && *sy && strcmp(sy, "0") != 0;
  g->up_cur = -1;
  CU(cudaEventCreateWithFlags(&g->idle, cudaEventDisableTiming), "setting up the GPU");
  for (int i = 0; i < UP_BLOCKS; i++) CU(cudaEventCreateWithFlags(&g->up[i].done, cudaEventDisableTiming), "setting up the GPU");
  CU(cudaHostAlloc((void **)&g->sq_host, sizeof(double), cudaHostAllocDefault), "setting up the GPU");
  /* the losses of a step's micro-batches land here (16 bytes each, aligned) */
  g->fetch_cap = 16 * (int64_t)(rt->N > 0 ? rt->N : 1) * (rt->C > 0 ? rt->C : 1);
  CU(cudaHostAlloc((void **)&g->fetch_host, (size_t)g->fetch_cap, cudaHostAllocDefault), "setting up the GPU");
  if (!(g->tev = calloc(1, sizeof *g->tev))) return bp_errf(e, "out of memory");
  CU(cudaEventCreate(&g->tev[0]), "setting up the GPU");
  if (bp_cuda_sync(g->dc, "setting up the GPU", e) < 0) return -1;
  snprintf(rt->device_desc, sizeof rt->device_desc, "cuda: %s (rank 0 on GPU %d of %d visible), GEMM precision %s",
           bp_cuda_device_name(g->dc), g->device, count, bp_precision_name(prec));
  return 0;
}
