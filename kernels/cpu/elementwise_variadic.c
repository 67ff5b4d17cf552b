/* kernels/cpu/elementwise_variadic.c — Min, Max, Sum and Mean over any number of inputs, all
 * broadcast together: the first input is copied broadcast into the output, then every further
 * input is folded in place with the binary kernel; Mean divides by the count at the end. */
#include "kernels/cpu/elementwise.h"

static int fold(const bp_node *n, ew_binop op, bp_value *const *in, int nin, bp_value *y, bp_err *e) {
  if (ew_reject_half(n, y->dtype, e)) return -1;
  ew_broadcast_copy(in[0], y);
  for (int k = 1; k < nin; k++)
    if (in[k] && ew_binary_apply(n, op, y, in[k], y, e)) return -1;
  return 0;
}

int ew_eval_Min(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                int nout, bp_err *e) {
  (void)ctx, (void)nout;
  return fold(n, EW_B_MIN, in, nin, out[0], e);
}

int ew_eval_Max(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                int nout, bp_err *e) {
  (void)ctx, (void)nout;
  return fold(n, EW_B_MAX, in, nin, out[0], e);
}

int ew_eval_Sum(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                int nout, bp_err *e) {
  (void)ctx, (void)nout;
  return fold(n, EW_B_ADD, in, nin, out[0], e);
}

int ew_eval_Mean(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                 int nout, bp_err *e) {
  (void)ctx, (void)nout;
  bp_value *y = out[0];
  if (!bp_dtype_is_float(y->dtype)) return ew_bad_dtype(n, y->dtype, e);
  if (fold(n, EW_B_ADD, in, nin, y, e)) return -1;
  const int64_t cnt = bp_value_numel(y);
  if (y->dtype == BP_F32) {
    float *o = y->data;
    for (int64_t i = 0; i < cnt; i++) o[i] /= (float)nin;
  } else {
    for (int64_t i = 0; i < cnt; i++) bp_set_f64(y->data, y->dtype, i, bp_get_f64(y->data, y->dtype, i) / nin);
  }
  return 0;
}
