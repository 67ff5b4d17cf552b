/* kernels/cpu/nn_reduce.c — ReduceSum/Mean/Max/Min/Prod/SumSquare/L1/L2/LogSum/LogSumExp.
 * Axes come from the attribute (opset < 18; ReduceSum < 13) or from constant input 1. Floats
 * accumulate in double; integers exactly in 64 bits (wrapping, unsigned compare for uint64).
 * Every input element is visited once in row-major order while its output offset is tracked with
 * per-dimension counters (reduced dims have output stride 0); float32 reductions over the last
 * axes take a contiguous-row fast path. */
#include "kernels/cpu/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_SUMSQ, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP };

int bp_nn_reduce_axes(const bp_node *n, bp_value *const *in, int nin, const bp_value *x,
                      unsigned char *mask, int *noop, bp_err *e) {
  int from_input = strcmp(n->op_type, "ReduceSum") == 0 ? n->opset >= 13 : n->opset >= 18;
  int64_t axes[BP_MAX_RANK];
  int na = 0;
  *noop = 0;
  memset(mask, 0, BP_MAX_RANK);
  if (from_input) {
    const bp_value *av = nin > 1 ? in[1] : NULL;
    if (av && bp_value_numel(av) > 0) { /* an empty list needs no data */
      if (!av->data)
        return bp_errf(e, "node '%s' (%s): input 'axes' is not a compile-time constant", n->name, n->op_type);
      if (av->dtype != BP_I64 && av->dtype != BP_I32)
        return bp_errf(e, "node '%s' (%s): input 'axes' must be int64 (got %s)", n->name, n->op_type,
                       bp_dtype_name(av->dtype));
      int64_t cnt = bp_value_numel(av);
      if (av->rank > 1 || cnt > x->rank)
        return bp_errf(e, "node '%s' (%s): input 'axes' must be a 1-D list of at most %d axes", n->name,
                       n->op_type, x->rank);
      for (int64_t i = 0; i < cnt; i++) axes[na++] = bp_get_i64(av->data, av->dtype, i);
    }
    if (na == 0 && bp_attr_int(n, "noop_with_empty_axes", 0)) {
      *noop = 1;
      return 0;
    }
  } else {
    int cnt;
    const int64_t *a = bp_attr_ints(n, "axes", &cnt);
    if (cnt > x->rank)
      return bp_errf(e, "node '%s' (%s): %d axes given for rank %d", n->name, n->op_type, cnt, x->rank);
    for (int i = 0; i < cnt; i++) axes[na++] = a[i];
  }
  if (na == 0) {
    memset(mask, 1, (size_t)x->rank);
    return 0;
  }
  for (int i = 0; i < na; i++) {
    int64_t a = axes[i] < 0 ? axes[i] + x->rank : axes[i];
    if (a < 0 || a >= x->rank)
      return bp_errf(e, "node '%s' (%s): axis %lld is out of range for rank %d", n->name, n->op_type,
                     (long long)axes[i], x->rank);
    if (mask[a])
      return bp_errf(e, "node '%s' (%s): axis %lld is repeated", n->name, n->op_type, (long long)axes[i]);
    mask[a] = 1;
  }
  return 0;
}

/* Output stride (in output elements) of each input dimension: 0 for reduced dims. */
static void out_strides(const bp_value *x, const unsigned char *mask, int64_t *ost) {
  int64_t s = 1;
  for (int i = x->rank - 1; i >= 0; i--) {
    ost[i] = mask[i] ? 0 : s;
    if (!mask[i]) s *= x->dims[i];
  }
}

/* Runs the body (the variadic arguments) with `i` (input index) and `o` (output index) for every input element. */
#define FOR_EACH(x, ost, ...)                                                                      \
  do {                                                                                             \
    int64_t idx_[BP_MAX_RANK] = {0}, o = 0, total_ = bp_value_numel(x);                            \
    for (int64_t i = 0; i < total_; i++) {                                                         \
      __VA_ARGS__;                                                                                 \
      for (int d_ = (x)->rank - 1; d_ >= 0; d_--) {                                                \
        o += (ost)[d_];                                                                            \
        if (++idx_[d_] < (x)->dims[d_]) break;                                                     \
        o -= (ost)[d_] * (x)->dims[d_];                                                            \
        idx_[d_] = 0;                                                                              \
      }                                                                                            \
    }                                                                                              \
  } while (0)

static double fold(int op, double a, double v) {
  switch (op) {
  case R_MAX: return (v > a || v != v) ? v : a;
  case R_MIN: return (v < a || v != v) ? v : a;
  case R_PROD: return a * v;
  case R_SUMSQ: case R_L2: return a + v * v;
  case R_L1: return a + fabs(v);
  default: return a + v; /* SUM, MEAN, LOGSUM; LOGSUMEXP passes exp(v - max) */
  }
}

static double init_f(int op) {
  return op == R_MAX ? -INFINITY : op == R_MIN ? INFINITY : op == R_PROD ? 1.0 : 0.0;
}

static double finish_f(int op, double a, double cnt, double mx) {
  switch (op) {
  case R_MEAN: return a / cnt;
  case R_L2: return sqrt(a);
  case R_LOGSUM: return log(a);
  case R_LOGSUMEXP: return isinf(mx) ? mx : mx + log(a);
  default: return a;
  }
}

static int reduce_float(int op, const bp_value *x, bp_value *y, const int64_t *ost, int64_t nout,
                        double cnt, int trailing, bp_err *e, const bp_node *n) {
  double *acc = malloc(sizeof(double) * (size_t)(nout ? nout : 1));
  double *mx = op == R_LOGSUMEXP ? malloc(sizeof(double) * (size_t)(nout ? nout : 1)) : NULL;
  if (!acc || (op == R_LOGSUMEXP && !mx)) {
    free(acc);
    free(mx);
    return bp_errf(e, "node '%s' (%s): out of memory", n->name, n->op_type);
  }
  int f32 = x->dtype == BP_F32;
  const float *xf = x->data;
  if (mx) { /* pass 1: maxima, so exp never overflows */
    for (int64_t k = 0; k < nout; k++) mx[k] = -INFINITY;
    FOR_EACH(x, ost, mx[o] = fold(R_MAX, mx[o], bp_get_f64(x->data, x->dtype, i)));
  }
  for (int64_t k = 0; k < nout; k++) acc[k] = init_f(op);
  if (f32 && trailing && (op == R_SUM || op == R_MEAN || op == R_SUMSQ || op == R_L2)) {
    int64_t len = (int64_t)cnt; /* contiguous rows of `len` elements, one per output */
    int sq = op == R_SUMSQ || op == R_L2;
    for (int64_t r = 0; r < nout; r++) {
      const float *row = xf + r * len;
      double s = 0;
      if (sq)
        for (int64_t k = 0; k < len; k++) s += (double)row[k] * row[k];
      else
        for (int64_t k = 0; k < len; k++) s += row[k];
      acc[r] = s;
    }
  } else if (mx) {
    FOR_EACH(x, ost, acc[o] += isinf(mx[o]) ? 0 : exp(bp_get_f64(x->data, x->dtype, i) - mx[o]));
  } else if (f32) {
    FOR_EACH(x, ost, acc[o] = fold(op, acc[o], xf[i]));
  } else {
    FOR_EACH(x, ost, acc[o] = fold(op, acc[o], bp_get_f64(x->data, x->dtype, i)));
  }
  for (int64_t k = 0; k < nout; k++)
    bp_set_f64(y->data, y->dtype, k, finish_f(op, acc[k], cnt, mx ? mx[k] : 0));
  free(acc);
  free(mx);
  return 0;
}

/* Exact integer reductions (SUM, MEAN, MAX, MIN, PROD, SUMSQ, L1) in 64-bit arithmetic. */
static int reduce_int(int op, const bp_value *x, bp_value *y, const int64_t *ost, int64_t nout,
                      int64_t cnt, bp_err *e, const bp_node *n) {
  uint64_t *acc = malloc(sizeof(uint64_t) * (size_t)(nout ? nout : 1));
  if (!acc) return bp_errf(e, "node '%s' (%s): out of memory", n->name, n->op_type);
  int uns = x->dtype == BP_U64;
  uint64_t init = op == R_PROD ? 1
                  : op == R_MAX ? (uns ? 0 : (uint64_t)INT64_MIN)
                  : op == R_MIN ? (uns ? UINT64_MAX : (uint64_t)INT64_MAX)
                                : 0;
  for (int64_t k = 0; k < nout; k++) acc[k] = init;
  FOR_EACH(x, ost, {
    uint64_t v = (uint64_t)bp_get_i64(x->data, x->dtype, i), a = acc[o];
    switch (op) {
    case R_MAX: acc[o] = (uns ? v > a : (int64_t)v > (int64_t)a) ? v : a; break;
    case R_MIN: acc[o] = (uns ? v < a : (int64_t)v < (int64_t)a) ? v : a; break;
    case R_PROD: acc[o] = a * v; break;
    case R_SUMSQ: acc[o] = a + v * v; break;
    case R_L1: acc[o] = a + ((int64_t)v < 0 && !uns ? (uint64_t)0 - v : v); break;
    default: acc[o] = a + v; break;
    }
  });
  for (int64_t k = 0; k < nout; k++) {
    uint64_t v = acc[k];
    if (op == R_MEAN && cnt > 0) v = uns ? v / (uint64_t)cnt : (uint64_t)((int64_t)v / cnt);
    bp_set_i64(y->data, y->dtype, k, (int64_t)v);
  }
  free(acc);
  return 0;
}

static int run(int op, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, bp_err *e) {
  const bp_value *x = in[0];
  bp_value *y = out[0];
  unsigned char mask[BP_MAX_RANK];
  int noop;
  int allow_bool = op == R_MAX || op == R_MIN;
  if (bp_nn_check_dtype(n, x->dtype, 1, allow_bool, "input data", e)) return -1;
  if (bp_nn_reduce_axes(n, in, nin, x, mask, &noop, e)) return -1;
  if (noop) {
    /* the output is the input (ONNX still applies the elementwise part for some ops) */
    int64_t total = bp_value_numel(x);
    if (op == R_SUM || op == R_MEAN || op == R_MAX || op == R_MIN || op == R_PROD) {
      memcpy(y->data, x->data, bp_value_bytes(x));
      return 0;
    }
    for (int64_t i = 0; i < total; i++) {
      double v = bp_get_f64(x->data, x->dtype, i);
      bp_set_f64(y->data, y->dtype, i, finish_f(op, fold(op, init_f(op), op == R_LOGSUMEXP ? 1 : v), 1, v));
    }
    return 0;
  }
  int64_t ost[BP_MAX_RANK], nout = 1, nin_el = bp_value_numel(x);
  out_strides(x, mask, ost);
  int trailing = 1, seen = 0; /* reduced axes form a trailing block */
  for (int i = 0; i < x->rank; i++) {
    if (mask[i]) seen = 1;
    else if (seen) trailing = 0;
    if (!mask[i]) nout *= x->dims[i];
  }
  int64_t cnt = nout ? nin_el / nout : 0;
  if (nout == 0) return 0;
  if (bp_dtype_is_float(x->dtype) || op == R_L2 || op == R_LOGSUM || op == R_LOGSUMEXP)
    return reduce_float(op, x, y, ost, nout, (double)cnt, trailing, e, n);
  return reduce_int(op, x, y, ost, nout, cnt, e, n);
}

#define REDUCE_EVAL(fn, OP)                                                                        \
  int fn(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,       \
         int nout, bp_err *e) {                                                                    \
    (void)ctx, (void)nout;                                                                         \
    return run(OP, n, in, nin, out, e);                                                            \
  }
REDUCE_EVAL(bp_nn_eval_reduce_sum, R_SUM)
REDUCE_EVAL(bp_nn_eval_reduce_mean, R_MEAN)
REDUCE_EVAL(bp_nn_eval_reduce_max, R_MAX)
REDUCE_EVAL(bp_nn_eval_reduce_min, R_MIN)
REDUCE_EVAL(bp_nn_eval_reduce_prod, R_PROD)
REDUCE_EVAL(bp_nn_eval_reduce_sum_square, R_SUMSQ)
REDUCE_EVAL(bp_nn_eval_reduce_l1, R_L1)
REDUCE_EVAL(bp_nn_eval_reduce_l2, R_L2)
REDUCE_EVAL(bp_nn_eval_reduce_log_sum, R_LOGSUM)
REDUCE_EVAL(bp_nn_eval_reduce_log_sum_exp, R_LOGSUMEXP)
