/* kernels/cpu/nn_layernorm.c — LayerNormalization (opset 17) and RMSNormalization (opset 23).
 * x is viewed as [rows, cols] with cols = prod(dims[axis:]); statistics are accumulated in double.
 * float32 takes a fast path: one pass for sum and sum of squares, one pass to normalise, rows
 * split across threads. */
#include "kernels/cpu/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static inline double ld(const void *p, bp_dtype t, int64_t i) {
  return t == BP_F32 ? ((const float *)p)[i] : ((const double *)p)[i];
}
static inline void st(void *p, bp_dtype t, int64_t i, double v) {
  if (t == BP_F32) ((float *)p)[i] = (float)v;
  else ((double *)p)[i] = v;
}

typedef struct {
  int64_t rows, cols, axis;
  double eps;
  const void *scale, *bias; /* bias NULL when absent */
  int64_t sstride, bstride; /* 0: one row of parameters shared by all rows; cols: per row */
} norm_job;

/* rms: RMSNormalization (no centring, no bias). mean/inv may be NULL. */
static void norm_f32(const norm_job *j, int rms, const float *x, float *y, bp_value *mean,
                     bp_value *inv) {
  int64_t cols = j->cols;
  BP_NN_OMP_FOR(j->rows * cols >= BP_NN_PAR_MIN)
  for (int64_t r = 0; r < j->rows; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    const float *s = (const float *)j->scale + r * j->sstride;
    const float *b = j->bias ? (const float *)j->bias + r * j->bstride : NULL;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < cols; i++) {
      double v = xr[i];
      sum += v;
      sq += v * v;
    }
    double mu = rms ? 0 : sum / (double)cols, var = sq / (double)cols - mu * mu;
    double is = 1.0 / sqrt((var > 0 ? var : 0) + j->eps);
    float fm = (float)mu, fi = (float)is;
    if (b)
      for (int64_t i = 0; i < cols; i++) yr[i] = (xr[i] - fm) * fi * s[i] + b[i];
    else
      for (int64_t i = 0; i < cols; i++) yr[i] = (xr[i] - fm) * fi * s[i];
    if (mean) st(mean->data, mean->dtype, r, mu);
    if (inv) st(inv->data, inv->dtype, r, is);
  }
}

/* float64 (any float dtype of x/y the ld/st helpers know): two-pass variance. */
static void norm_generic(const norm_job *j, int rms, const bp_value *x, bp_value *y, bp_dtype pt,
                         bp_value *mean, bp_value *inv) {
  int64_t cols = j->cols;
  for (int64_t r = 0; r < j->rows; r++) {
    int64_t base = r * cols;
    double mu = 0, var = 0;
    if (!rms) {
      for (int64_t i = 0; i < cols; i++) mu += ld(x->data, x->dtype, base + i);
      mu /= (double)cols;
    }
    for (int64_t i = 0; i < cols; i++) {
      double d = ld(x->data, x->dtype, base + i) - mu;
      var += d * d;
    }
    var /= (double)cols;
    double is = 1.0 / sqrt(var + j->eps);
    for (int64_t i = 0; i < cols; i++) {
      double v = (ld(x->data, x->dtype, base + i) - mu) * is * ld(j->scale, pt, r * j->sstride + i);
      if (j->bias) v += ld(j->bias, pt, r * j->bstride + i);
      st(y->data, y->dtype, base + i, v);
    }
    if (mean) st(mean->data, mean->dtype, r, mu);
    if (inv) st(inv->data, inv->dtype, r, is);
  }
}

static int run(int rms, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
               int nout, bp_err *e) {
  const bp_value *x = in[0], *scale = in[1], *bias = (!rms && nin > 2) ? in[2] : NULL;
  bp_value *y = out[0], *mean = (!rms && nout > 1) ? out[1] : NULL, *inv = (!rms && nout > 2) ? out[2] : NULL;
  if (bp_nn_check_dtype(n, x->dtype, 0, 0, "input X", e)) return -1;
  if (scale->dtype != x->dtype || (bias && bias->dtype != x->dtype))
    return bp_errf(e, "node '%s' (%s): Scale/B must have X's dtype %s", n->name, n->op_type,
                   bp_dtype_name(x->dtype));
  norm_job j = {.eps = bp_attr_float(n, "epsilon", 1e-5f)};
  char who[300];
  snprintf(who, sizeof who, "node '%s' (%s)", n->name, n->op_type);
  if (x->rank == 0) return bp_errf(e, "%s: X must have rank >= 1", who);
  if (bp_norm_axis(bp_attr_int(n, "axis", -1), x->rank, &j.axis, who, e)) return -1;
  j.rows = j.cols = 1;
  for (int i = 0; i < x->rank; i++) {
    if (i < j.axis) j.rows *= x->dims[i];
    else j.cols *= x->dims[i];
  }
  if (j.rows * j.cols == 0) return 0;
  void *own_s = NULL, *own_b = NULL;
  j.scale = bp_nn_row_param(scale, x, (int)j.axis, j.cols, &j.sstride, &own_s);
  if (bias) j.bias = bp_nn_row_param(bias, x, (int)j.axis, j.cols, &j.bstride, &own_b);
  if (!j.scale || (bias && !j.bias)) {
    free(own_s);
    free(own_b);
    return bp_errf(e, "%s: out of memory", who);
  }
  if (x->dtype == BP_F32)
    norm_f32(&j, rms, x->data, y->data, mean, inv);
  else
    norm_generic(&j, rms, x, y, x->dtype, mean, inv);
  free(own_s);
  free(own_b);
  return 0;
}

int bp_nn_eval_layernorm(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                         bp_value *const *out, int nout, bp_err *e) {
  (void)ctx;
  return run(0, n, in, nin, out, nout, e);
}

int bp_nn_eval_rmsnorm(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                       bp_value *const *out, int nout, bp_err *e) {
  (void)ctx;
  return run(1, n, in, nin, out, nout, e);
}
