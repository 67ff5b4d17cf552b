/* kernels/cpu/elementwise_clip.c — Clip: y = min(max(x, lo), hi). Bounds come from the `min`/
 * `max` attributes before opset 11 and from optional scalar inputs from opset 11 on; a missing
 * bound does not clip. As numpy's clip, lo > hi gives hi, and NaN passes through. */
#include "kernels/cpu/elementwise.h"

#include <float.h>
#include <math.h>

int ew_eval_Clip(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                 int nout, bp_err *e) {
  (void)ctx, (void)nout;
  const bp_value *x = in[0], *lo = nin > 1 ? in[1] : NULL, *hi = nin > 2 ? in[2] : NULL;
  bp_value *y = out[0];
  const int64_t cnt = bp_value_numel(x);
  const bp_dtype t = x->dtype;
  if (ew_reject_half(n, t, e)) return -1;
  if (t == BP_F32 || t == BP_F64) {
    double l = -INFINITY, h = INFINITY;
    if (n->opset < 11) {
      l = bp_attr_float(n, "min", -FLT_MAX);
      h = bp_attr_float(n, "max", FLT_MAX);
    } else {
      if (lo) l = bp_get_f64(lo->data, lo->dtype, 0);
      if (hi) h = bp_get_f64(hi->data, hi->dtype, 0);
    }
    if (t == BP_F32) {
      const float *a = x->data, lf = (float)l, hf = (float)h;
      float *o = y->data;
      const int64_t par_work = cnt;
      (void)par_work;
      EW_PAR_FOR
      for (int64_t i = 0; i < cnt; i++) {
        float v = a[i];
        v = v < lf ? lf : v;
        o[i] = v > hf ? hf : v;
      }
    } else {
      const double *a = x->data;
      double *o = y->data;
      for (int64_t i = 0; i < cnt; i++) {
        double v = a[i] < l ? l : a[i];
        o[i] = v > h ? h : v;
      }
    }
    return 0;
  }
  if (!bp_dtype_is_int(t)) return ew_bad_dtype(n, t, e);
  /* integers: exact, compared as uint64 for unsigned types */
  const int uns = t == BP_U8 || t == BP_U16 || t == BP_U32 || t == BP_U64;
  const int has_lo = n->opset >= 11 && lo, has_hi = n->opset >= 11 && hi;
  const int64_t l = has_lo ? bp_get_i64(lo->data, lo->dtype, 0) : 0;
  const int64_t h = has_hi ? bp_get_i64(hi->data, hi->dtype, 0) : 0;
  for (int64_t i = 0; i < cnt; i++) {
    int64_t v = bp_get_i64(x->data, t, i);
    if (uns) {
      if (has_lo && (uint64_t)v < (uint64_t)l) v = l;
      if (has_hi && (uint64_t)v > (uint64_t)h) v = h;
    } else {
      if (has_lo && v < l) v = l;
      if (has_hi && v > h) v = h;
    }
    bp_set_i64(y->data, t, i, v);
  }
  return 0;
}
