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
 * Synchronisation. Kernels are queued on the stream; `finish` (end of each compute instruction)
 * waits for them and turns a device flag raised by a kernel (an index or target out of range)
 * into an error naming the node. Uploads and downloads wait for their copy. The transports order
 * their own copies / NCCL calls after the stream's work (transport_staged.c, transport_nccl.c). */
#include "runtime/rt.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/cuda_rt.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rt_gpu {
  bp_cuda *dc;
  cudaStream_t stream;
  int device, count, local_rank;
  int *stage_off;            /* [S+1]: where each stage's nodes start in ops / nodes */
  const bp_cuda_op **ops;    /* the CUDA entry of every node of every stage */
  bp_node **nodes;           /* the nodes, for bp_cuda_check_flags's messages */
  double *acc;               /* device: a sum of squares */
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
  if (rc == cudaSuccess) rc = cudaStreamSynchronize(GPU(rt)->stream);
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

static int g_put(bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e) {
  if (n <= 0) return 0;
  cudaStream_t s = GPU(rt)->stream;
  CU(cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyHostToDevice, s), what);
  /* the host buffer may be reused as soon as this returns */
  CU(cudaStreamSynchronize(s), what);
  return 0;
}

static int g_get(bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e) {
  if (n <= 0) return 0;
  cudaStream_t s = GPU(rt)->stream;
  CU(cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyDeviceToHost, s), what);
  CU(cudaStreamSynchronize(s), what);
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

static int g_eval(bp_rt *rt, rt_chunk *c, bp_ctx *ctx, int k, bp_value **in, bp_value **out, bp_err *e) {
  rt_gpu *g = GPU(rt);
  const bp_rt_stage *st = c->st;
  const bp_node *n = &st->nodes[k];
  const bp_cuda_op *op = g->ops[g->stage_off[st->index] + k];
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
  bp_cuda_set_tag(g->dc, k);
  int rc = op->eval(ctx, n, in, n->nin, out, n->nout, e);
  bp_cuda_set_host_inputs(g->dc, NULL, 0);
  return rc;
}

static int g_finish(bp_rt *rt, rt_chunk *c, bp_err *e) {
  rt_gpu *g = GPU(rt);
  int s = c->st->index;
  return bp_cuda_check_flags(g->dc, g->nodes + g->stage_off[s], g->stage_off[s + 1] - g->stage_off[s], e);
}

static int g_accumulate(bp_rt *rt, float *acc, const float *x, int64_t n, bp_err *e) {
  return bp_cuda_accumulate(GPU(rt)->dc, acc, x, n, e);
}

static int g_sumsq(bp_rt *rt, const float *const *x, const int64_t *n, int count, double *sq, bp_err *e) {
  rt_gpu *g = GPU(rt);
  if (bp_cuda_memset(g->dc, g->acc, 0, sizeof(double), "the gradient norm", e) < 0) return -1;
  for (int i = 0; i < count; i++)
    if (bp_cuda_sumsq(g->dc, x[i], n[i], g->acc, e) < 0) return -1;
  return bp_cuda_download(g->dc, sq, g->acc, sizeof(double), "the gradient norm", e);
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

static int g_sync(bp_rt *rt, const char *what, bp_err *e) { return bp_cuda_sync(GPU(rt)->dc, what, e); }

static void g_close(bp_rt *rt) {
  rt_gpu *g = GPU(rt);
  if (!g) return;
  if (g->dc) {
    bp_cuda_release(g->dc, g->acc);
    if (bp_cuda_host_runs(g->dc) > 0 && rt->wrank == 0 && !rt->o.quiet)
      fprintf(stderr, "train: note: %lld node runs were staged through the host (ops without their own CUDA kernel: %s)\n",
              (long long)bp_cuda_host_runs(g->dc), bp_cuda_host_ops(g->dc));
    bp_cuda_free(g->dc);
  }
  free(g->stage_off);
  free(g->ops);
  free(g->nodes);
  free(g);
  rt->gpu = NULL;
}

static const bp_rt_dev dev_cuda = {
    "cuda",  0,        g_alloc,      g_release, g_put, g_get,   g_copy, g_zero,
    g_eval,  g_finish, g_accumulate, g_sumsq,   g_sgd, g_adamw, g_sync, g_close,
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
  int total = g->stage_off[m->n_stages];
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
  if (bp_cuda_sync(g->dc, "setting up the GPU", e) < 0) return -1;
  snprintf(rt->device_desc, sizeof rt->device_desc, "cuda: %s (rank 0 on GPU %d of %d visible), GEMM precision %s",
           bp_cuda_device_name(g->dc), g->device, count, bp_precision_name(prec));
  return 0;
}
