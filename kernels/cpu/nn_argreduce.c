/* kernels/cpu/nn_argreduce.c — ArgMax / ArgMin along one axis (keepdims, select_last_index).
 * The output is int64 indices. Floats compare in double with numpy's NaN rule (the first NaN
 * wins); integers compare exactly (unsigned for uint64). */
#include "kernels/cpu/nn.h"

#include <stdio.h>

/* better(v, best): v replaces best; `ties` also accepts equal values (select_last_index). */
static int better_f(int is_max, int ties, double v, double best) {
  if (best != best) return 0; /* a NaN already won */
  if (v != v) return 1;
  return is_max ? (v > best || (ties && v == best)) : (v < best || (ties && v == best));
}

static int run(int is_max, const bp_node *n, bp_value *const *in, bp_value *const *out, bp_err *e) {
  const bp_value *x = in[0];
  bp_value *y = out[0];
  char who[300];
  snprintf(who, sizeof who, "node '%s' (%s)", n->name, n->op_type);
  if (bp_nn_check_dtype(n, x->dtype, 1, 0, "input data", e)) return -1;
  if (x->rank < 1) return bp_errf(e, "%s: input must have rank >= 1", who);
  int64_t axis;
  if (bp_norm_axis(bp_attr_int(n, "axis", 0), x->rank, &axis, who, e)) return -1;
  int ties = bp_attr_int(n, "select_last_index", 0) != 0;
  int64_t outer = 1, len = x->dims[axis], inner = 1;
  for (int i = 0; i < x->rank; i++) {
    if (i < axis) outer *= x->dims[i];
    if (i > axis) inner *= x->dims[i];
  }
  if (len == 0 && outer * inner > 0)
    return bp_errf(e, "%s: cannot take the arg-extremum over an empty axis", who);
  int flt = bp_dtype_is_float(x->dtype), uns = x->dtype == BP_U64;
  int64_t *dst = y->data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t k = 0; k < inner; k++) {
      int64_t base = o * len * inner + k, arg = 0;
      if (flt) {
        double best = bp_get_f64(x->data, x->dtype, base);
        for (int64_t i = 1; i < len; i++) {
          double v = bp_get_f64(x->data, x->dtype, base + i * inner);
          if (better_f(is_max, ties, v, best)) best = v, arg = i;
        }
      } else {
        int64_t best = bp_get_i64(x->data, x->dtype, base);
        for (int64_t i = 1; i < len; i++) {
          int64_t v = bp_get_i64(x->data, x->dtype, base + i * inner);
          int gt = uns ? (uint64_t)v > (uint64_t)best : v > best;
          int lt = uns ? (uint64_t)v < (uint64_t)best : v < best;
          if ((is_max ? gt : lt) || (ties && v == best)) best = v, arg = i;
        }
      }
      dst[o * inner + k] = arg;
    }
  return 0;
}

int bp_nn_eval_argmax(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                      bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  return run(1, n, in, out, e);
}

int bp_nn_eval_argmin(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                      bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  return run(0, n, in, out, e);
}
