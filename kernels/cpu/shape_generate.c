/* kernels/cpu/shape_generate.c — ops whose output is generated from scalars and attributes
 * rather than moved from an input: Range, OneHot and EyeLike. */
#include "kernels/cpu/shape.h"

#include <string.h>

/* Range: out[i] = start + i * delta; the length was fixed by inference from the same inputs.
 * Integers are computed exactly in int64, floats in double and rounded once. */
SHAPE_EVAL(bp_eval_range) {
  (void)ctx, (void)nin, (void)nout;
  bp_value *o = out[0];
  bp_dtype t = o->dtype;
  if (t == BP_F16 || t == BP_BF16) return SHAPE_ERR(e, n, "float16 compute is not supported");
  for (int i = 0; i < 3; i++)
    if (!in[i] || !in[i]->data || bp_value_numel(in[i]) != 1) return SHAPE_ERR(e, n, "inputs must be scalars with values");
  int64_t cnt = bp_value_numel(o);
  if (bp_dtype_is_float(t)) {
    double s = bp_get_f64(in[0]->data, in[0]->dtype, 0), d = bp_get_f64(in[2]->data, in[2]->dtype, 0);
    if (t == BP_F32)
      for (int64_t i = 0; i < cnt; i++) ((float *)o->data)[i] = (float)(s + (double)i * d);
    else
      for (int64_t i = 0; i < cnt; i++) bp_set_f64(o->data, t, i, s + (double)i * d);
  } else {
    int64_t s = bp_get_i64(in[0]->data, in[0]->dtype, 0), d = bp_get_i64(in[2]->data, in[2]->dtype, 0);
    for (int64_t i = 0; i < cnt; i++) bp_set_i64(o->data, t, i, (int64_t)((uint64_t)s + (uint64_t)i * (uint64_t)d));
  }
  return 0;
}

/* OneHot: output = indices' shape with `depth` inserted at `axis`; off everywhere, on where the
 * coordinate along axis equals the (depth-normalised) index. Out-of-range indices give an all-off
 * row, as the spec says. */
SHAPE_EVAL(bp_eval_one_hot) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *idx = in[0], *dep = in[1], *vals = in[2];
  bp_value *o = out[0];
  if (!dep->data || bp_value_numel(dep) != 1) return SHAPE_ERR(e, n, "'depth' must be a scalar with a value");
  if (bp_value_numel(vals) != 2 || vals->dtype != o->dtype) return SHAPE_ERR(e, n, "'values' must be [off, on] of the output dtype");
  int64_t depth = bp_get_i64(dep->data, dep->dtype, 0), axis = bp_attr_int(n, "axis", -1);
  if (axis < 0) axis += o->rank;
  if (axis < 0 || axis >= o->rank || o->dims[axis] != depth) return SHAPE_ERR(e, n, "output shape does not match depth/axis");
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= o->dims[i];
  for (int i = (int)axis + 1; i < o->rank; i++) inner *= o->dims[i];
  size_t es = bp_dtype_size(o->dtype);
  const char *off = vals->data, *on = off + es;
  char *d = o->data;
  int64_t num = bp_value_numel(o);
  for (int64_t i = 0; i < num; i++) memcpy(d + (size_t)i * es, off, es);
  for (int64_t a = 0; a < outer; a++)
    for (int64_t b = 0; b < inner; b++) {
      int64_t v = bp_get_i64(idx->data, idx->dtype, a * inner + b);
      if (v < 0) v += depth;
      if (v >= 0 && v < depth) memcpy(d + (size_t)((a * depth + v) * inner + b) * es, on, es);
    }
  return 0;
}

/* EyeLike: ones on the k-th diagonal of a 2-D output, zeros elsewhere. */
SHAPE_EVAL(bp_eval_eye_like) {
  (void)ctx, (void)in, (void)nin, (void)nout;
  bp_value *o = out[0];
  if (o->rank != 2) return SHAPE_ERR(e, n, "output must be 2-D");
  int64_t k = bp_attr_int(n, "k", 0), R = o->dims[0], C = o->dims[1];
  memset(o->data, 0, bp_value_bytes(o));
  if (k > C || k < -R) return 0; /* the diagonal misses the matrix (also keeps i + k in range) */
  for (int64_t i = 0; i < R; i++) {
    int64_t j = i + k;
    if (j >= 0 && j < C) {
      if (bp_dtype_is_float(o->dtype)) bp_set_f64(o->data, o->dtype, i * C + j, 1.0);
      else bp_set_i64(o->data, o->dtype, i * C + j, 1);
    }
  }
  return 0;
}
