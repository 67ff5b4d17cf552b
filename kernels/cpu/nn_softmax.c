/* kernels/cpu/nn_softmax.c — Softmax, LogSoftmax and Hardmax over one axis (opset >= 13) or over
 * the input coerced to 2-D (opset < 13). float32 rows along the last axis take a fast path that
 * reads each row twice and writes it once; other layouts and float64 use a strided path. */
#include "kernels/cpu/nn.h"

#include <math.h>

enum { SOFTMAX, LOGSOFTMAX, HARDMAX };

int bp_nn_softmax_split(const bp_node *n, const bp_value *x, int64_t *outer, int64_t *len,
                        int64_t *inner, bp_err *e) {
  int old = n->opset > 0 && n->opset < 13;
  int64_t axis = bp_attr_int(n, "axis", old ? 1 : -1), a = axis < 0 ? axis + x->rank : axis;
  /* coerce-to-2D allows axis == rank (the whole tensor is one row of length 1 per element) */
  if (x->rank == 0) {
    a = 0;
  } else if (a < 0 || a > x->rank || (!old && a == x->rank)) {
    return bp_errf(e, "node '%s' (%s): axis %lld is out of range for rank %d", n->name, n->op_type,
                   (long long)axis, x->rank);
  }
  *outer = *len = *inner = 1;
  for (int i = 0; i < x->rank; i++) {
    if (i < a) *outer *= x->dims[i];
    else if (i == a || old) *len *= x->dims[i];
    else *inner *= x->dims[i];
  }
  return 0;
}

/* float32, contiguous rows; rows split across threads. */
static void rows_f32(int mode, const float *x, float *y, int64_t rows, int64_t len) {
  BP_NN_OMP_FOR(rows * len >= BP_NN_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * len;
    float *yr = y + r * len;
    float mx = -INFINITY;
    if (mode == HARDMAX) {
      int64_t arg = 0;
      for (int64_t i = 0; i < len; i++)
        if (xr[i] > mx) mx = xr[i], arg = i;
      for (int64_t i = 0; i < len; i++) yr[i] = i == arg ? 1.0f : 0.0f;
      continue;
    }
    for (int64_t i = 0; i < len; i++) mx = xr[i] > mx ? xr[i] : mx;
    if (mx == -INFINITY || mx != mx) mx = 0; /* all -inf rows: avoid inf - inf */
    double sum = 0;
    if (mode == SOFTMAX) {
      for (int64_t i = 0; i < len; i++) {
        float v = expf(xr[i] - mx);
        yr[i] = v;
        sum += v;
      }
      float inv = (float)(1.0 / sum);
      for (int64_t i = 0; i < len; i++) yr[i] *= inv;
    } else {
      for (int64_t i = 0; i < len; i++) sum += expf(xr[i] - mx);
      float ls = (float)log(sum); /* (x - max) - log(sum): exact even for large x */
      for (int64_t i = 0; i < len; i++) yr[i] = (xr[i] - mx) - ls;
    }
  }
}

static inline double ld(const void *p, bp_dtype t, int64_t i) {
  return t == BP_F32 ? ((const float *)p)[i] : ((const double *)p)[i];
}
static inline void st(void *p, bp_dtype t, int64_t i, double v) {
  if (t == BP_F32) ((float *)p)[i] = (float)v;
  else ((double *)p)[i] = v;
}

/* Any layout, float32 or float64, computed in double. */
static void strided(int mode, const bp_value *xv, bp_value *yv, int64_t outer, int64_t len,
                    int64_t inner) {
  bp_dtype t = xv->dtype;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t in = 0; in < inner; in++) {
      int64_t base = o * len * inner + in;
      double mx = -INFINITY;
      int64_t arg = 0;
      for (int64_t i = 0; i < len; i++) {
        double v = ld(xv->data, t, base + i * inner);
        if (v > mx) mx = v, arg = i;
      }
      if (mode == HARDMAX) {
        for (int64_t i = 0; i < len; i++) st(yv->data, t, base + i * inner, i == arg);
        continue;
      }
      if (mx == -INFINITY) mx = 0;
      double sum = 0;
      for (int64_t i = 0; i < len; i++) sum += exp(ld(xv->data, t, base + i * inner) - mx);
      double sh = mx + log(sum);
      for (int64_t i = 0; i < len; i++) {
        double v = ld(xv->data, t, base + i * inner) - sh;
        st(yv->data, t, base + i * inner, mode == SOFTMAX ? exp(v) : v);
      }
    }
}

static int run(int mode, const bp_node *n, bp_value *const *in, bp_value *const *out, bp_err *e) {
  const bp_value *x = in[0];
  bp_value *y = out[0];
  int64_t outer, len, inner;
  if (bp_nn_check_dtype(n, x->dtype, 0, 0, "input", e)) return -1;
  if (bp_nn_softmax_split(n, x, &outer, &len, &inner, e)) return -1;
  if (outer * len * inner == 0) return 0;
  if (x->dtype == BP_F32 && inner == 1)
    rows_f32(mode, x->data, y->data, outer, len);
  else
    strided(mode, x, y, outer, len, inner);
  return 0;
}

int bp_nn_eval_softmax(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                       bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  return run(SOFTMAX, n, in, out, e);
}

int bp_nn_eval_logsoftmax(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                          bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  return run(LOGSOFTMAX, n, in, out, e);
}

int bp_nn_eval_hardmax(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                       bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  return run(HARDMAX, n, in, out, e);
}
