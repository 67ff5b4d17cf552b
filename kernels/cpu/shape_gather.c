/* kernels/cpu/shape_gather.c — Gather, GatherElements and GatherND: copies of the input chosen by
 * an index tensor (int32 or int64; negative indices count from the end; out-of-range indices
 * are an error, never a read outside the tensor). */
#include "kernels/cpu/shape.h"

#include <stdio.h>
#include <string.h>

/* Index i of `idx` normalised into [0, dim), or -1 with an error. */
static int get_index(const bp_node *n, const bp_value *idx, int64_t i, int64_t dim, int64_t *out, bp_err *e) {
  int64_t v = idx->dtype == BP_I64 ? ((const int64_t *)idx->data)[i] : bp_get_i64(idx->data, idx->dtype, i);
  int64_t w = v < 0 ? v + dim : v;
  if (w < 0 || w >= dim)
    return SHAPE_ERR(e, n, "index %lld is out of range for an axis of size %lld", (long long)v, (long long)dim);
  *out = w;
  return 0;
}

static int check_indices(const bp_node *n, const bp_value *idx, bp_err *e) {
  if (idx->dtype != BP_I64 && idx->dtype != BP_I32)
    return SHAPE_ERR(e, n, "indices must be int32 or int64, got %s", bp_dtype_name(idx->dtype));
  return 0;
}

static int axis_of(const bp_node *n, int rank, int64_t *axis, bp_err *e) {
  char who[160];
  snprintf(who, sizeof who, "node '%s' (%s): 'axis'", n->name ? n->name : "", n->op_type);
  return bp_norm_axis(bp_attr_int(n, "axis", 0), rank, axis, who, e);
}

/* Gather: out[outer, j, inner] = data[outer, idx[j], inner], one memcpy per (outer, j) row. */
SHAPE_EVAL(bp_eval_gather) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0], *idx = in[1];
  int64_t axis;
  if (check_indices(n, idx, e) || axis_of(n, x->rank, &axis, e)) return -1;
  int64_t outer = 1, inner = 1, N = x->dims[axis], ni = bp_value_numel(idx);
  for (int i = 0; i < axis; i++) outer *= x->dims[i];
  for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
  for (int64_t j = 0; j < ni; j++) { /* validate first: the copy loop then cannot fail */
    int64_t w;
    if (get_index(n, idx, j, N, &w, e)) return -1;
  }
  size_t es = bp_dtype_size(x->dtype), row = (size_t)inner * es;
  const char *s = x->data;
  char *d = out[0]->data;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) schedule(static) if (outer * ni * inner > (1 << 16))
#endif
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < ni; j++) {
      int64_t w = idx->dtype == BP_I64 ? ((const int64_t *)idx->data)[j] : ((const int32_t *)idx->data)[j];
      if (w < 0) w += N;
      memcpy(d + (size_t)(o * ni + j) * row, s + (size_t)(o * N + w) * row, row);
    }
  return 0;
}

/* GatherElements: out[i_0..i_r] = data[i_0.. idx[i] ..i_r] (the index replaces coordinate `axis`). */
SHAPE_EVAL(bp_eval_gather_elements) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0], *idx = in[1];
  int64_t axis;
  if (check_indices(n, idx, e) || axis_of(n, x->rank, &axis, e)) return -1;
  if (idx->rank != x->rank) return SHAPE_ERR(e, n, "indices must have the rank of data");
  int r = x->rank;
  int64_t num = bp_value_numel(idx);
  if (num == 0) return 0;
  int64_t xs[BP_MAX_RANK], c[BP_MAX_RANK] = {0}, base = 0; /* base: offset without the axis term */
  shape_strides(r, x->dims, xs);
  size_t es = bp_dtype_size(x->dtype);
  const char *s = x->data;
  char *d = out[0]->data;
  for (int64_t i = 0; i < num; i++) {
    int64_t w;
    if (get_index(n, idx, i, x->dims[axis], &w, e)) return -1;
    int64_t src = base + w * xs[axis];
    if (es == 4) ((uint32_t *)(void *)d)[i] = ((const uint32_t *)(const void *)s)[src];
    else memcpy(d + (size_t)i * es, s + (size_t)src * es, es);
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

/* GatherND with batch_dims b: for each batch and each index tuple (last dim k of indices), copy
 * the slice data[batch, t_0..t_{k-1}, ...] of S elements. */
SHAPE_EVAL(bp_eval_gather_nd) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0], *idx = in[1];
  if (check_indices(n, idx, e)) return -1;
  int64_t b = bp_attr_int(n, "batch_dims", 0);
  int r = x->rank, q = idx->rank;
  if (q < 1 || b < 0 || b >= q || b >= r) return SHAPE_ERR(e, n, "bad batch_dims or ranks");
  int64_t k = idx->dims[q - 1];
  if (k < 1 || b + k > r) return SHAPE_ERR(e, n, "index tuples of length %lld do not fit data rank %d", (long long)k, r);
  int64_t B = 1, T = 1, S = 1, xs[BP_MAX_RANK];
  for (int i = 0; i < b; i++) B *= x->dims[i];
  for (int i = (int)b; i < q - 1; i++) T *= idx->dims[i];
  for (int i = (int)(b + k); i < r; i++) S *= x->dims[i];
  shape_strides(r, x->dims, xs);
  int64_t xbatch = b > 0 ? xs[b - 1] : bp_value_numel(x);
  size_t es = bp_dtype_size(x->dtype);
  const char *s = x->data;
  char *d = out[0]->data;
  for (int64_t bi = 0; bi < B; bi++)
    for (int64_t t = 0; t < T; t++) {
      int64_t tuple = (bi * T + t) * k, off = bi * xbatch;
      for (int64_t j = 0; j < k; j++) {
        int64_t w;
        if (get_index(n, idx, tuple + j, x->dims[b + j], &w, e)) return -1;
        off += w * xs[b + j];
      }
      memcpy(d + (size_t)((bi * T + t) * S) * es, s + (size_t)off * es, (size_t)S * es);
    }
  return 0;
}
