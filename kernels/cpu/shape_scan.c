/* kernels/cpu/shape_scan.c — CumSum (inclusive/exclusive, forward/reverse) and Trilu (keep the
 * upper or lower triangle of the last two dims, zero the rest). */
#include "kernels/cpu/shape.h"

#include <string.h>

/* CumSum along `axis` (a scalar input): with the input viewed as [outer, len, inner], each
 * (outer, inner) line is scanned. float32 accumulates in float32 (what the reference does),
 * integers exactly in int64 with wrap-around. */
SHAPE_EVAL(bp_eval_cumsum) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0];
  bp_value *o = out[0];
  bp_dtype t = x->dtype;
  if (t == BP_F16 || t == BP_BF16) return SHAPE_ERR(e, n, "float16 compute is not supported");
  if (t == BP_BOOL || !bp_dtype_size(t)) return SHAPE_ERR(e, n, "unsupported dtype %s", bp_dtype_name(t));
  int64_t axis;
  if (shape_read_scalar_int(n, in[1], "axis", &axis, e)) return -1;
  if (axis < -x->rank || axis >= x->rank || x->rank == 0)
    return SHAPE_ERR(e, n, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
  if (axis < 0) axis += x->rank;
  int excl = bp_attr_int(n, "exclusive", 0) != 0, rev = bp_attr_int(n, "reverse", 0) != 0;
  int64_t outer = 1, inner = 1, len = x->dims[axis];
  for (int i = 0; i < axis; i++) outer *= x->dims[i];
  for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
  for (int64_t a = 0; a < outer; a++)
    for (int64_t b = 0; b < inner; b++) {
      int64_t base = a * len * inner + b;
      if (t == BP_F32) {
        const float *s = x->data;
        float *d = o->data, acc = 0;
        for (int64_t j = 0; j < len; j++) {
          int64_t p = base + (rev ? len - 1 - j : j) * inner;
          if (excl) { d[p] = acc; acc += s[p]; }
          else { acc += s[p]; d[p] = acc; }
        }
      } else if (bp_dtype_is_float(t)) {
        double acc = 0;
        for (int64_t j = 0; j < len; j++) {
          int64_t p = base + (rev ? len - 1 - j : j) * inner;
          double v = bp_get_f64(x->data, t, p);
          if (excl) { bp_set_f64(o->data, t, p, acc); acc += v; }
          else { acc += v; bp_set_f64(o->data, t, p, acc); }
        }
      } else {
        uint64_t acc = 0;
        for (int64_t j = 0; j < len; j++) {
          int64_t p = base + (rev ? len - 1 - j : j) * inner;
          uint64_t v = (uint64_t)bp_get_i64(x->data, t, p);
          if (excl) { bp_set_i64(o->data, t, p, (int64_t)acc); acc += v; }
          else { acc += v; bp_set_i64(o->data, t, p, (int64_t)acc); }
        }
      }
    }
  return 0;
}

/* Trilu: element (i, j) of each trailing matrix is kept when j - i >= k (upper=1) or
 * j - i <= k (upper=0); k is the optional second input (default 0). */
SHAPE_EVAL(bp_eval_trilu) {
  (void)ctx, (void)nout;
  const bp_value *x = in[0];
  bp_value *o = out[0];
  if (x->rank < 2) return SHAPE_ERR(e, n, "input must have rank >= 2");
  int64_t k = 0;
  if (shape_in(in, nin, 1) && shape_read_scalar_int(n, in[1], "k", &k, e)) return -1;
  int upper = bp_attr_int(n, "upper", 1) != 0;
  int64_t R = x->dims[x->rank - 2], C = x->dims[x->rank - 1], mats = bp_value_numel(x) / (R * C > 0 ? R * C : 1);
  if (R * C == 0) return 0;
  if (k > C) k = C; /* beyond these bounds nothing changes; clamping keeps i + k from overflowing */
  if (k < -R) k = -R;
  size_t es = bp_dtype_size(x->dtype);
  memcpy(o->data, x->data, bp_value_bytes(x));
  for (int64_t m = 0; m < mats; m++)
    for (int64_t i = 0; i < R; i++) {
      char *row = (char *)o->data + (size_t)((m * R + i) * C) * es;
      /* zero the columns outside the kept band: upper zeroes j < i + k, lower zeroes j > i + k */
      int64_t lo = upper ? 0 : i + k + 1, hi = upper ? i + k : C;
      if (lo < 0) lo = 0;
      if (hi > C) hi = C;
      if (hi > lo) memset(row + (size_t)lo * es, 0, (size_t)(hi - lo) * es);
    }
  return 0;
}
