/* kernels/cpu/shape_scatter.c — ScatterND and ScatterElements (also the deprecated Scatter): the
 * output is a copy of data with elements chosen by indices replaced by, or combined with
 * (reduction add/mul/max/min), the updates. Updates apply in order, so with reduction "none" the
 * last duplicate index wins. Integers combine exactly through int64. */
#include "kernels/cpu/shape.h"

#include <stdio.h>
#include <string.h>

typedef enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN } reduction;

static int get_reduction(const bp_node *n, bp_dtype t, reduction *r, bp_err *e) {
  const char *s = bp_attr_string(n, "reduction", "none");
  if (strcmp(s, "none") == 0) *r = RED_NONE;
  else if (strcmp(s, "add") == 0) *r = RED_ADD;
  else if (strcmp(s, "mul") == 0) *r = RED_MUL;
  else if (strcmp(s, "max") == 0) *r = RED_MAX;
  else if (strcmp(s, "min") == 0) *r = RED_MIN;
  else return SHAPE_ERR(e, n, "unknown reduction '%s'", s);
  if (*r != RED_NONE && (t == BP_F16 || t == BP_BF16)) return SHAPE_ERR(e, n, "float16 compute is not supported");
  return 0;
}

/* dst[di] = dst[di] (op) src[si] for one element of dtype t. */
static void combine(void *dst, int64_t di, const void *src, int64_t si, bp_dtype t, size_t es, reduction r) {
  if (r == RED_NONE) {
    memcpy((char *)dst + (size_t)di * es, (const char *)src + (size_t)si * es, es);
  } else if (t == BP_F32) {
    float *a = (float *)dst + di, b = ((const float *)src)[si];
    *a = r == RED_ADD ? *a + b : r == RED_MUL ? *a * b : r == RED_MAX ? (*a > b ? *a : b) : (*a < b ? *a : b);
  } else if (bp_dtype_is_float(t)) {
    double a = bp_get_f64(dst, t, di), b = bp_get_f64(src, t, si);
    bp_set_f64(dst, t, di, r == RED_ADD ? a + b : r == RED_MUL ? a * b : r == RED_MAX ? (a > b ? a : b) : (a < b ? a : b));
  } else if (t == BP_U64) { /* unsigned compare must not go through int64 */
    uint64_t *a = (uint64_t *)dst + di, b = ((const uint64_t *)src)[si];
    *a = r == RED_ADD ? *a + b : r == RED_MUL ? *a * b : r == RED_MAX ? (*a > b ? *a : b) : (*a < b ? *a : b);
  } else {
    int64_t a = bp_get_i64(dst, t, di), b = bp_get_i64(src, t, si);
    /* wrap-around arithmetic through uint64 (signed overflow is undefined in C) */
    int64_t v = r == RED_ADD   ? (int64_t)((uint64_t)a + (uint64_t)b)
                : r == RED_MUL ? (int64_t)((uint64_t)a * (uint64_t)b)
                : r == RED_MAX ? (a > b ? a : b)
                               : (a < b ? a : b);
    if (t == BP_BOOL && r == RED_MUL) v = a && b;
    bp_set_i64(dst, t, di, v);
  }
}

static int get_index(const bp_node *n, const bp_value *idx, int64_t i, int64_t dim, int64_t *out, bp_err *e) {
  int64_t v = bp_get_i64(idx->data, idx->dtype, i), w = v < 0 ? v + dim : v;
  if (w < 0 || w >= dim)
    return SHAPE_ERR(e, n, "index %lld is out of range for an axis of size %lld", (long long)v, (long long)dim);
  *out = w;
  return 0;
}

static int check_common(const bp_node *n, const bp_value *x, const bp_value *idx, const bp_value *upd, bp_err *e) {
  if (idx->dtype != BP_I64 && idx->dtype != BP_I32)
    return SHAPE_ERR(e, n, "indices must be int32 or int64, got %s", bp_dtype_name(idx->dtype));
  if (upd->dtype != x->dtype) return SHAPE_ERR(e, n, "updates must have the dtype of data");
  return 0;
}

/* ScatterND: indices [..., k]; each index tuple addresses a slice data[t_0..t_{k-1}, ...] of S
 * elements that receives the matching slice of updates. */
SHAPE_EVAL(bp_eval_scatter_nd) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0], *idx = in[1], *upd = in[2];
  bp_value *o = out[0];
  reduction red;
  if (check_common(n, x, idx, upd, e) || get_reduction(n, x->dtype, &red, e)) return -1;
  int r = x->rank, q = idx->rank;
  int64_t k = q > 0 ? idx->dims[q - 1] : 0;
  if (q < 1 || k > r) return SHAPE_ERR(e, n, "index tuples of length %lld do not fit data rank %d", (long long)k, r);
  int64_t T = 1, S = 1, xs[BP_MAX_RANK];
  for (int i = 0; i < q - 1; i++) T *= idx->dims[i];
  for (int i = (int)k; i < r; i++) S *= x->dims[i];
  if (bp_value_numel(upd) != T * S) return SHAPE_ERR(e, n, "updates do not match indices and data");
  shape_strides(r, x->dims, xs);
  size_t es = bp_dtype_size(x->dtype);
  memcpy(o->data, x->data, bp_value_bytes(x));
  for (int64_t t = 0; t < T; t++) {
    int64_t off = 0;
    for (int64_t j = 0; j < k; j++) {
      int64_t w;
      if (get_index(n, idx, t * k + j, x->dims[j], &w, e)) return -1;
      off += w * xs[j];
    }
    if (red == RED_NONE) memcpy((char *)o->data + (size_t)off * es, (const char *)upd->data + (size_t)(t * S) * es, (size_t)S * es);
    else
      for (int64_t s = 0; s < S; s++) combine(o->data, off + s, upd->data, t * S + s, x->dtype, es, red);
  }
  return 0;
}

/* ScatterElements: out[i with coordinate `axis` replaced by indices[i]] (op)= updates[i]. */
SHAPE_EVAL(bp_eval_scatter_elements) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0], *idx = in[1], *upd = in[2];
  bp_value *o = out[0];
  reduction red;
  if (check_common(n, x, idx, upd, e) || get_reduction(n, x->dtype, &red, e)) return -1;
  int r = x->rank;
  int64_t axis;
  char who[160];
  snprintf(who, sizeof who, "node '%s' (%s): 'axis'", n->name ? n->name : "", n->op_type);
  if (bp_norm_axis(bp_attr_int(n, "axis", 0), r, &axis, who, e)) return -1;
  if (idx->rank != r || !bp_same_shape(idx, upd)) return SHAPE_ERR(e, n, "indices and updates must match in shape and rank");
  for (int i = 0; i < r; i++)
    if (idx->dims[i] > x->dims[i] && i != axis) return SHAPE_ERR(e, n, "indices exceed data on axis %d", i);
  size_t es = bp_dtype_size(x->dtype);
  memcpy(o->data, x->data, bp_value_bytes(x));
  int64_t num = bp_value_numel(idx);
  if (num == 0) return 0;
  int64_t xs[BP_MAX_RANK], c[BP_MAX_RANK] = {0}, base = 0;
  shape_strides(r, x->dims, xs);
  for (int64_t i = 0; i < num; i++) {
    int64_t w;
    if (get_index(n, idx, i, x->dims[axis], &w, e)) return -1;
    combine(o->data, base + w * xs[axis], upd->data, i, x->dtype, es, red);
    for (int k = r - 1; k >= 0; k--) {
      c[k]++;
      if (k != axis) base += xs[k];
      if (c[k] < idx->dims[k]) break;
      if (k != axis) base -= xs[k] * c[k];
      c[k] = 0;
    }
  }
  return 0;
}
