/* runtime/device.c — where a rank's arenas live (runtime/rt.h, bp_rt_dev): the choice of device
 * from --device, and the CPU's implementation of the arena operations. The CPU's are exactly the
 * loops the runtime always ran (memcpy, acc += g in float, the norm summed in double in order,
 * frontend/optimizer.c's updates), so a CPU run is bit-identical to the single-process trainer's
 * arithmetic. The GPU's implementation is device_cuda.c (built with the CUDA toolkit).
 *
 * Folds into MatMul (runtime/plan.h, bp_rt_fold) are materialised on the CPU: an input stored
 * transposed is transposed into a scratch copy, a scaled one multiplied into a scratch copy (the
 * float multiply the folded Mul did), and a scaled product multiplied in place after the MatMul;
 * so the CPU computes exactly what the unfolded graph did, bit for bit (the GPU applies them as the
 * GEMM's transpose flags and alpha instead). */
#include "runtime/rt.h"
#include "frontend/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void *cpu_alloc(bp_rt *rt, int64_t n, const char *what, bp_err *e) {
  (void)rt;
  void *p = NULL;
  if (posix_memalign(&p, 64, (size_t)(n > 0 ? n : 64)) != 0) {
    bp_errf(e, "out of memory allocating %lld bytes for %s", (long long)n, what);
    return NULL;
  }
  memset(p, 0, (size_t)(n > 0 ? n : 64));
  return p;
}

static void cpu_release(bp_rt *rt, void *p) {
  (void)rt;
  free(p);
}

static int cpu_copy(bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e) {
  (void)rt, (void)what, (void)e;
  if (n > 0) memmove(dst, src, (size_t)n);
  return 0;
}

static int cpu_zero(bp_rt *rt, void *dst, int64_t n, const char *what, bp_err *e) {
  (void)rt, (void)what, (void)e;
  if (n > 0) memset(dst, 0, (size_t)n);
  return 0;
}

/* A MatMul with folds (checked at start: two float inputs, a transposed one of rank >= 2). */
static int cpu_folded_matmul(bp_ctx *ctx, const bp_node *n, const bp_rt_fold *f, bp_value **in, bp_value **out,
                             bp_err *e) {
  bp_value v[2];
  bp_value *args[2] = {in[0], in[1]};
  float *tmp[2] = {NULL, NULL};
  int rc = 0;
  for (int k = 0; k < 2 && rc == 0; k++) {
    if (!f->trans[k] && !f->in_log2[k]) continue;
    const bp_value *x = in[k];
    int64_t count = bp_value_numel(x);
    if (!(tmp[k] = malloc(sizeof(float) * (size_t)(count > 0 ? count : 1)))) {
      rc = bp_errf(e, "out of memory (a folded MatMul input)");
      break;
    }
    const float *src = x->data;
    if (f->trans[k]) { /* stored [..., C, R] for the logical [..., R, C] */
      int64_t R = x->dims[x->rank - 2], C = x->dims[x->rank - 1], mats = R * C != 0 ? count / (R * C) : 0;
      for (int64_t b = 0; b < mats; b++)
        for (int64_t r = 0; r < R; r++)
          for (int64_t q = 0; q < C; q++) tmp[k][b * R * C + r * C + q] = src[b * R * C + q * R + r];
    } else {
      memcpy(tmp[k], src, sizeof(float) * (size_t)count);
    }
    if (f->in_log2[k]) {
      float sc = ldexpf(1.0f, f->in_log2[k]);
      for (int64_t i = 0; i < count; i++) tmp[k][i] = tmp[k][i] * sc;
    }
    v[k] = *x;
    v[k].data = tmp[k];
    args[k] = &v[k];
  }
  if (rc == 0) rc = n->op->eval(ctx, n, args, n->nin, out, n->nout, e);
  if (rc == 0 && f->out_log2) {
    float sc = ldexpf(1.0f, f->out_log2), *y = out[0]->data;
    int64_t count = bp_value_numel(out[0]);
    for (int64_t i = 0; i < count; i++) y[i] = y[i] * sc;
  }
  free(tmp[0]), free(tmp[1]);
  return rc;
}

static int cpu_eval(bp_rt *rt, rt_chunk *c, bp_ctx *ctx, int k, bp_value **in, bp_value **out, bp_err *e) {
  (void)rt;
  const bp_node *n = &c->st->nodes[k];
  /* kernels may accumulate into their outputs: clear them as the CPU executor's calloc does */
  for (int i = 0; i < n->nout; i++)
    if (out[i]) memset(out[i]->data, 0, (size_t)c->st->tensors[n->out[i]].nbytes);
  const bp_rt_fold *f = c->st->folds ? &c->st->folds[k] : NULL;
  if (f && (f->trans[0] || f->trans[1] || f->in_log2[0] || f->in_log2[1] || f->out_log2))
    return cpu_folded_matmul(ctx, n, f, in, out, e);
  return n->op->eval(ctx, n, in, n->nin, out, n->nout, e);
}

static void *cpu_stage(bp_rt *rt, int64_t n, bp_err *e) {
  if (n > rt->hostbuf_cap) {
    void *p = realloc(rt->hostbuf, (size_t)n);
    if (!p) {
      bp_errf(e, "out of memory (%lld bytes of data inputs)", (long long)n);
      return NULL;
    }
    rt->hostbuf = p;
    rt->hostbuf_cap = n;
  }
  return rt->hostbuf;
}

static int cpu_step_begin(bp_rt *rt, bp_err *e) {
  (void)rt, (void)e;
  return 0;
}

static int cpu_begin(bp_rt *rt, rt_chunk *c, bp_err *e) {
  (void)rt, (void)c, (void)e;
  return 0;
}

static int cpu_finish(bp_rt *rt, rt_chunk *c, int op, int mb, double t0, bp_err *e) {
  (void)e;
  double t1 = bp_tp_now();
  rt->busy_s += t1 - t0;
  bp_rt_trace_add(rt, op, c->index, mb, -1, t0, t1);
  return 0;
}

static int cpu_accumulate(bp_rt *rt, float *acc, const float *x, int64_t n, bp_err *e) {
  (void)rt, (void)e;
  for (int64_t k = 0; k < n; k++) acc[k] += x[k];
  return 0;
}

static int cpu_sumsq(bp_rt *rt, const float *const *x, const int64_t *n, int count, double *sq, bp_err *e) {
  (void)rt, (void)e;
  double s = 0;
  for (int i = 0; i < count; i++)
    for (int64_t k = 0; k < n[i]; k++) s += (double)x[i][k] * x[i][k];
  *sq = s;
  return 0;
}

static int cpu_sgd(bp_rt *rt, float *p, const float *g, float *buf, int64_t n, int first, double gscale, bp_err *e) {
  (void)e;
  const bp_rt_hparams *hp = &rt->o.hp;
  bp_sgd_update(p, g, buf, n, first, hp->lr, hp->momentum, hp->weight_decay, gscale);
  return 0;
}

static int cpu_adamw(bp_rt *rt, float *p, const float *g, float *m, float *v, int64_t n, int step, double gscale,
                     bp_err *e) {
  (void)e;
  const bp_rt_hparams *hp = &rt->o.hp;
  bp_adamw_update(p, g, m, v, n, step, hp->lr, hp->beta1, hp->beta2, hp->eps, hp->weight_decay, gscale);
  return 0;
}

static int cpu_sync(bp_rt *rt, const char *what, bp_err *e) {
  (void)rt, (void)what, (void)e;
  return 0;
}

static void cpu_close(bp_rt *rt) { (void)rt; }

const bp_rt_dev bp_rt_dev_cpu = {
    .name = "cpu",
    .host_memory = 1,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .put = cpu_copy,
    .get = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .stage = cpu_stage,
    .upload = cpu_copy,
    .fetch = cpu_copy,
    .eval = cpu_eval,
    .step_begin = cpu_step_begin,
    .begin = cpu_begin,
    .finish = cpu_finish,
    .accumulate = cpu_accumulate,
    .sumsq = cpu_sumsq,
    .sgd = cpu_sgd,
    .adamw = cpu_adamw,
    .sync = cpu_sync,
    .close = cpu_close,
};

int bp_rt_device_open(bp_rt *rt, bp_err *e) {
  rt->dev = &bp_rt_dev_cpu;
  rt->gpu = NULL;
  const char *prec = rt->o.precision == 1 ? "tf32" : rt->o.precision == 2 ? "bf16" : "fp32";
#ifdef BP_RT_CUDA
  if (rt->o.device != 1) {
    /* auto: the GPU when one is visible (bp_rt_cuda_open reports none with a 1 for auto) */
    int rc = bp_rt_cuda_open(rt, e);
    if (rc < 0) return -1;
    if (rc == 0) return 0;
  }
#else
  if (rt->o.device == 2)
    return bp_errf(e, "--device cuda: this program was built without the CUDA backend (no CUDA toolkit when "
                      "libbitpipe was built); use --device cpu");
#endif
  if (rt->o.precision_given && rt->o.precision != 0)
    return bp_errf(e, "--precision %s needs --device cuda (the CPU computes in fp32)", prec);
  if (rt->o.transport == 2) return bp_errf(e, "--transport nccl needs --device cuda (NCCL moves GPU buffers)");
  snprintf(rt->device_desc, sizeof rt->device_desc, "cpu (fp32), transport mpi");
  return 0;
}

int bp_rt_device_transport(bp_rt *rt, bp_err *e) {
#ifdef BP_RT_CUDA
  if (rt->gpu) return bp_rt_cuda_transport(rt, e);
#endif
  (void)e;
  (void)rt;
  return 0;
}

void bp_rt_device_close(bp_rt *rt) {
  if (rt->dev) rt->dev->close(rt);
}
