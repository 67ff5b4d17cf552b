/* frontend/ops/ops_shape.c — the shape and data-movement ops: their op-table entries and shape
 * inference. Evaluation lives in kernels/cpu/shape*.c; Slice, Pad and Split share their
 * parameter plans with evaluation (kernels/cpu/shape_plan.c).
 *
 * Inputs that determine an output shape (Reshape shape, Slice starts/ends/axes/steps, Expand
 * shape, Tile repeats, Squeeze/Unsqueeze axes, Split sizes, Pad pads, ConstantOfShape shape,
 * Range inputs, OneHot depth) must be compile-time constants; inference fails, naming the node,
 * when one is not. Inference sets only dtype and shape: Shape and Size outputs are computed by
 * the folding pass, which calls their eval (which reads only the input's shape). */
#include "frontend/ir.h"
#include "kernels/cpu/shape.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR(...) SHAPE_ERR(e, n, __VA_ARGS__)
#define INFER(name)                                                                               \
  static int name(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout, \
                  bp_err *e)

static int set_out(const bp_node *n, bp_value *o, bp_dtype t, int rank, const int64_t *dims, bp_err *e) {
  if (!o) return 0;
  if (rank > BP_MAX_RANK) return ERR("output rank %d exceeds the supported %d", rank, BP_MAX_RANK);
  o->dtype = t;
  o->rank = rank;
  for (int i = 0; i < rank; i++) o->dims[i] = dims[i];
  return 0;
}

static int same_as(const bp_node *n, bp_value *o, const bp_value *x, bp_err *e) {
  return set_out(n, o, x->dtype, x->rank, x->dims, e);
}

/* Input i must be present with a known rank and a dtype that has a byte size. */
static int need(const bp_node *n, bp_value *const *in, int nin, int i, const char *what, bp_err *e) {
  const bp_value *v = shape_in(in, nin, i);
  if (!v) return ERR("input '%s' is required", what);
  if (v->rank < 0) return ERR("input '%s' has an unknown shape", what);
  return shape_check_movable(n, v, what, e);
}

static int need_index_dtype(const bp_node *n, const bp_value *v, const char *what, bp_err *e) {
  if (v->dtype != BP_I64 && v->dtype != BP_I32)
    return ERR("input '%s' must be int32 or int64, got %s", what, bp_dtype_name(v->dtype));
  return 0;
}

static int norm_axis(const bp_node *n, int64_t axis, int rank, int64_t *out, bp_err *e) {
  char who[160];
  snprintf(who, sizeof who, "node '%s' (%s)", n->name ? n->name : "", n->op_type);
  return bp_norm_axis(axis, rank, out, who, e);
}

static int no_f16(const bp_node *n, const bp_value *v, bp_err *e) {
  if (v->dtype == BP_F16 || v->dtype == BP_BF16) return ERR("float16 compute is not supported");
  return 0;
}

/* Pure data movement: no arithmetic. */
static double flops_zero(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout) {
  (void)n, (void)in, (void)nin, (void)out, (void)nout;
  return 0;
}

/* ---- Identity, Constant, ConstantOfShape, Shape, Size -------------------------------------- */
INFER(infer_identity) {
  (void)nout;
  if (need(n, in, nin, 0, "input", e)) return -1;
  return same_as(n, out[0], in[0], e);
}

INFER(infer_constant) {
  (void)in, (void)nin, (void)nout;
  const bp_attr *a;
  int64_t d[1];
  if (bp_node_attr(n, "sparse_value")) return ERR("attribute 'sparse_value' (sparse tensors) is not supported");
  if (bp_node_attr(n, "value_string") || bp_node_attr(n, "value_strings"))
    return ERR("string constants are not supported");
  if ((a = bp_node_attr(n, "value"))) {
    if (a->type != BP_ATTR_TENSOR || !a->t) return ERR("attribute 'value' is not a tensor");
    if (!bp_dtype_size(a->t->dtype)) return ERR("constant of dtype %s is not supported", bp_dtype_name(a->t->dtype));
    if (bp_value_numel(a->t) > 0 && !a->t->data) return ERR("attribute 'value' has no data");
    return same_as(n, out[0], a->t, e);
  }
  if ((a = bp_node_attr(n, "value_float")) && a->type == BP_ATTR_FLOAT) return set_out(n, out[0], BP_F32, 0, d, e);
  if ((a = bp_node_attr(n, "value_int")) && a->type == BP_ATTR_INT) return set_out(n, out[0], BP_I64, 0, d, e);
  if ((a = bp_node_attr(n, "value_floats")) && a->type == BP_ATTR_FLOATS) {
    d[0] = a->n;
    return set_out(n, out[0], BP_F32, 1, d, e);
  }
  if ((a = bp_node_attr(n, "value_ints")) && a->type == BP_ATTR_INTS) {
    d[0] = a->n;
    return set_out(n, out[0], BP_I64, 1, d, e);
  }
  return ERR("no value attribute (value, value_float(s), value_int(s))");
}

INFER(infer_constant_of_shape) {
  (void)nout;
  int64_t dims[BP_MAX_RANK];
  int r;
  if (shape_read_ints(n, shape_in(in, nin, 0), "input", dims, BP_MAX_RANK, &r, e)) return -1;
  for (int i = 0; i < r; i++)
    if (dims[i] < 0) return ERR("negative dimension %lld", (long long)dims[i]);
  bp_dtype t = BP_F32;
  const bp_attr *a = bp_node_attr(n, "value");
  if (a) {
    if (a->type != BP_ATTR_TENSOR || !a->t || bp_value_numel(a->t) != 1 || !a->t->data)
      return ERR("attribute 'value' must be a one-element tensor");
    t = a->t->dtype;
    if (!bp_dtype_size(t)) return ERR("value of dtype %s is not supported", bp_dtype_name(t));
  }
  return set_out(n, out[0], t, r, dims, e);
}

INFER(infer_shape) {
  (void)nout;
  const bp_value *x = shape_in(in, nin, 0);
  if (!x || x->rank < 0) return ERR("input has an unknown shape");
  int64_t r = x->rank, start = 0, end = r;
  if (n->opset >= 15) {
    start = bp_attr_int(n, "start", 0);
    end = bp_attr_int(n, "end", r);
  }
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = start < 0 ? 0 : start > r ? r : start;
  end = end < 0 ? 0 : end > r ? r : end;
  int64_t d[1] = {end > start ? end - start : 0};
  return set_out(n, out[0], BP_I64, 1, d, e);
}

INFER(infer_size) {
  (void)nout;
  const bp_value *x = shape_in(in, nin, 0);
  if (!x || x->rank < 0) return ERR("input has an unknown shape");
  return set_out(n, out[0], BP_I64, 0, NULL, e);
}

/* ---- reshaping: Reshape, Flatten, Squeeze, Unsqueeze ------------------------------------- */
INFER(infer_reshape) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e)) return -1;
  const bp_value *x = in[0];
  int64_t s[BP_MAX_RANK + 1];
  int r;
  if (n->opset < 5) {
    const int64_t *a = bp_attr_ints(n, "shape", &r);
    if (!a) return ERR("attribute 'shape' is missing");
    if (r > BP_MAX_RANK) return ERR("target rank %d exceeds the supported %d", r, BP_MAX_RANK);
    memcpy(s, a, sizeof(int64_t) * (size_t)r);
  } else {
    const bp_value *sv = shape_in(in, nin, 1);
    if (sv && sv->data && sv->dtype != BP_I64) return ERR("input 'shape' must be int64");
    if (shape_read_ints(n, sv, "shape", s, BP_MAX_RANK, &r, e)) return -1;
  }
  int allowzero = n->opset >= 14 && bp_attr_int(n, "allowzero", 0) != 0;
  int infer_at = -1;
  int64_t known = 1, total = bp_value_numel(x);
  for (int i = 0; i < r; i++) {
    if (s[i] == -1) {
      if (infer_at >= 0) return ERR("more than one -1 in the target shape");
      infer_at = i;
      continue;
    }
    if (s[i] == 0 && !allowzero) {
      if (i >= x->rank) return ERR("0 at position %d copies a dimension the input (rank %d) lacks", i, x->rank);
      s[i] = x->dims[i];
    }
    if (s[i] < 0) return ERR("invalid dimension %lld in the target shape", (long long)s[i]);
    known *= s[i];
  }
  if (infer_at >= 0) {
    if (known == 0 || total % known)
      return ERR("cannot infer the -1 dimension: %lld elements into blocks of %lld", (long long)total, (long long)known);
    s[infer_at] = total / known;
  } else if (known != total) {
    char b1[128];
    return ERR("cannot reshape %s (%lld elements) into %lld elements", bp_shape_str(x, b1, sizeof b1),
               (long long)total, (long long)known);
  }
  return set_out(n, out[0], x->dtype, r, s, e);
}

INFER(infer_flatten) {
  (void)nout;
  if (need(n, in, nin, 0, "input", e)) return -1;
  const bp_value *x = in[0];
  int64_t axis = bp_attr_int(n, "axis", 1);
  if (axis < -x->rank || axis > x->rank) return ERR("axis %lld is out of range for rank %d", (long long)axis, x->rank);
  if (axis < 0) axis += x->rank;
  int64_t d[2] = {1, 1};
  for (int i = 0; i < x->rank; i++) d[i < axis ? 0 : 1] *= x->dims[i];
  return set_out(n, out[0], x->dtype, 2, d, e);
}

/* Axes of Squeeze/Unsqueeze: attribute before opset 13, optional/required input from 13.
 * *count = -1 when absent. */
static int read_axes(const bp_node *n, bp_value *const *in, int nin, int64_t *axes, int *count, bp_err *e) {
  *count = -1;
  if (n->opset < 13) {
    const int64_t *a = bp_attr_ints(n, "axes", count);
    if (!a) {
      *count = -1;
      return 0;
    }
    if (*count > BP_MAX_RANK) return ERR("too many axes");
    memcpy(axes, a, sizeof(int64_t) * (size_t)*count);
    return 0;
  }
  if (!shape_in(in, nin, 1)) return 0;
  return shape_read_ints(n, in[1], "axes", axes, BP_MAX_RANK, count, e);
}

INFER(infer_squeeze) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e)) return -1;
  const bp_value *x = in[0];
  int64_t axes[BP_MAX_RANK], d[BP_MAX_RANK];
  int na, drop[BP_MAX_RANK] = {0}, r = 0;
  if (read_axes(n, in, nin, axes, &na, e)) return -1;
  if (na < 0) {
    for (int i = 0; i < x->rank; i++) drop[i] = x->dims[i] == 1;
  } else {
    for (int j = 0; j < na; j++) {
      int64_t a;
      if (norm_axis(n, axes[j], x->rank, &a, e)) return -1;
      if (x->dims[a] != 1) return ERR("cannot squeeze axis %lld of size %lld", (long long)axes[j], (long long)x->dims[a]);
      drop[a] = 1;
    }
  }
  for (int i = 0; i < x->rank; i++)
    if (!drop[i]) d[r++] = x->dims[i];
  return set_out(n, out[0], x->dtype, r, d, e);
}

INFER(infer_unsqueeze) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e)) return -1;
  const bp_value *x = in[0];
  int64_t axes[BP_MAX_RANK], d[BP_MAX_RANK];
  int na, ins[BP_MAX_RANK] = {0};
  if (read_axes(n, in, nin, axes, &na, e)) return -1;
  if (na < 0) return ERR("%s 'axes' is required", n->opset < 13 ? "attribute" : "input");
  int r = x->rank + na;
  if (r > BP_MAX_RANK) return ERR("output rank %d exceeds the supported %d", r, BP_MAX_RANK);
  for (int j = 0; j < na; j++) {
    int64_t a;
    if (norm_axis(n, axes[j], r, &a, e)) return -1;
    if (ins[a]) return ERR("axis %lld is repeated", (long long)axes[j]);
    ins[a] = 1;
  }
  for (int i = 0, k = 0; i < r; i++) d[i] = ins[i] ? 1 : x->dims[k++];
  return set_out(n, out[0], x->dtype, r, d, e);
}

/* ---- Transpose, Concat, Split, Slice ------------------------------------------------------- */
INFER(infer_transpose) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e)) return -1;
  const bp_value *x = in[0];
  int c, seen[BP_MAX_RANK] = {0};
  int64_t d[BP_MAX_RANK];
  const int64_t *p = bp_attr_ints(n, "perm", &c);
  if (p && c != x->rank) return ERR("'perm' has %d entries for an input of rank %d", c, x->rank);
  for (int i = 0; i < x->rank; i++) {
    int64_t a = p ? p[i] : x->rank - 1 - i;
    if (a < 0) a += x->rank;
    if (a < 0 || a >= x->rank || seen[a]) return ERR("'perm' is not a permutation of 0..%d", x->rank - 1);
    seen[a] = 1;
    d[i] = x->dims[a];
  }
  return set_out(n, out[0], x->dtype, x->rank, d, e);
}

INFER(infer_concat) {
  (void)nout;
  const bp_value *first = NULL;
  for (int k = 0; k < nin; k++) {
    if (!in[k]) continue;
    if (need(n, in, nin, k, "inputs", e)) return -1;
    if (!first) first = in[k];
  }
  if (!first) return ERR("no inputs");
  const bp_attr *aa = bp_node_attr(n, "axis");
  if (!aa && n->opset >= 4) return ERR("attribute 'axis' is required");
  int64_t axis, d[BP_MAX_RANK];
  if (norm_axis(n, aa ? aa->i : 1, first->rank, &axis, e)) return -1;
  memcpy(d, first->dims, sizeof(int64_t) * (size_t)first->rank);
  d[axis] = 0;
  for (int k = 0; k < nin; k++) {
    const bp_value *x = in[k];
    if (!x) continue;
    char b1[128], b2[128];
    if (x->dtype != first->dtype)
      return ERR("input %d is %s but input 0 is %s", k, bp_dtype_name(x->dtype), bp_dtype_name(first->dtype));
    if (x->rank != first->rank)
      return ERR("input %d has shape %s, not concatenable with %s", k, bp_shape_str(x, b1, sizeof b1),
                 bp_shape_str(first, b2, sizeof b2));
    for (int i = 0; i < x->rank; i++)
      if (i != axis && x->dims[i] != first->dims[i])
        return ERR("input %d has shape %s, not concatenable with %s on axis %lld", k, bp_shape_str(x, b1, sizeof b1),
                   bp_shape_str(first, b2, sizeof b2), (long long)axis);
    d[axis] += x->dims[axis];
  }
  return set_out(n, out[0], first->dtype, first->rank, d, e);
}

INFER(infer_split) {
  if (need(n, in, nin, 0, "input", e)) return -1;
  const bp_value *x = in[0];
  int64_t axis, sizes[256], d[BP_MAX_RANK];
  if (nout > 256) return ERR("more than 256 outputs");
  if (shape_plan_split(n, in, nin, nout, &axis, sizes, e)) return -1;
  memcpy(d, x->dims, sizeof(int64_t) * (size_t)x->rank);
  for (int k = 0; k < nout; k++) {
    d[axis] = sizes[k];
    if (set_out(n, out[k], x->dtype, x->rank, d, e)) return -1;
  }
  return 0;
}

INFER(infer_slice) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e)) return -1;
  for (int i = 1; i < 5 && i < nin; i++)
    if (in[i] && need_index_dtype(n, in[i], i == 1 ? "starts" : i == 2 ? "ends" : i == 3 ? "axes" : "steps", e))
      return -1;
  shape_slice_plan p;
  if (shape_plan_slice(n, in, nin, &p, e)) return -1;
  return set_out(n, out[0], in[0]->dtype, in[0]->rank, p.count, e);
}

/* ---- Gather family --------------------------------------------------------------------------- */
INFER(infer_gather) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e) || need(n, in, nin, 1, "indices", e)) return -1;
  const bp_value *x = in[0], *idx = in[1];
  if (need_index_dtype(n, idx, "indices", e)) return -1;
  if (x->rank < 1) return ERR("data must have rank >= 1");
  int64_t axis, d[BP_MAX_RANK];
  if (norm_axis(n, bp_attr_int(n, "axis", 0), x->rank, &axis, e)) return -1;
  int r = x->rank - 1 + idx->rank, k = 0;
  if (r > BP_MAX_RANK) return ERR("output rank %d exceeds the supported %d", r, BP_MAX_RANK);
  for (int i = 0; i < axis; i++) d[k++] = x->dims[i];
  for (int i = 0; i < idx->rank; i++) d[k++] = idx->dims[i];
  for (int i = (int)axis + 1; i < x->rank; i++) d[k++] = x->dims[i];
  return set_out(n, out[0], x->dtype, r, d, e);
}

INFER(infer_gather_elements) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e) || need(n, in, nin, 1, "indices", e)) return -1;
  const bp_value *x = in[0], *idx = in[1];
  if (need_index_dtype(n, idx, "indices", e)) return -1;
  int64_t axis;
  if (x->rank < 1 || idx->rank != x->rank) return ERR("indices (rank %d) must have the rank of data (%d)", idx->rank, x->rank);
  if (norm_axis(n, bp_attr_int(n, "axis", 0), x->rank, &axis, e)) return -1;
  for (int i = 0; i < x->rank; i++)
    if (i != axis && idx->dims[i] > x->dims[i])
      return ERR("indices dim %d (%lld) exceeds data dim (%lld)", i, (long long)idx->dims[i], (long long)x->dims[i]);
  return set_out(n, out[0], x->dtype, idx->rank, idx->dims, e);
}

INFER(infer_gather_nd) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e) || need(n, in, nin, 1, "indices", e)) return -1;
  const bp_value *x = in[0], *idx = in[1];
  if (idx->dtype != BP_I64) return ERR("indices must be int64");
  int64_t b = bp_attr_int(n, "batch_dims", 0);
  int r = x->rank, q = idx->rank;
  if (r < 1 || q < 1) return ERR("data and indices must have rank >= 1");
  if (b < 0 || b >= q || b >= r) return ERR("batch_dims %lld must be below both ranks", (long long)b);
  for (int i = 0; i < b; i++)
    if (x->dims[i] != idx->dims[i]) return ERR("batch dimension %d differs between data and indices", i);
  int64_t k = idx->dims[q - 1], d[2 * BP_MAX_RANK];
  if (k < 1 || b + k > r) return ERR("index tuples of length %lld do not fit data of rank %d", (long long)k, r);
  int m = 0;
  for (int i = 0; i < q - 1; i++) d[m++] = idx->dims[i];
  for (int i = (int)(b + k); i < r; i++) d[m++] = x->dims[i];
  return set_out(n, out[0], x->dtype, m, d, e);
}

/* ScatterND / ScatterElements / Scatter: output is data's shape; updates must fit indices. */
static int scatter_common(const bp_node *n, bp_value *const *in, int nin, bp_err *e) {
  if (need(n, in, nin, 0, "data", e) || need(n, in, nin, 1, "indices", e) || need(n, in, nin, 2, "updates", e)) return -1;
  if (need_index_dtype(n, in[1], "indices", e)) return -1;
  if (in[2]->dtype != in[0]->dtype) return ERR("updates (%s) must have the dtype of data (%s)",
                                               bp_dtype_name(in[2]->dtype), bp_dtype_name(in[0]->dtype));
  const char *red = bp_attr_string(n, "reduction", "none");
  if (strcmp(red, "none") && strcmp(red, "add") && strcmp(red, "mul") && strcmp(red, "max") && strcmp(red, "min"))
    return ERR("unknown reduction '%s'", red);
  if (strcmp(red, "none") && no_f16(n, in[0], e)) return -1;
  return 0;
}

INFER(infer_scatter_nd) {
  (void)nout;
  if (scatter_common(n, in, nin, e)) return -1;
  const bp_value *x = in[0], *idx = in[1], *u = in[2];
  int r = x->rank, q = idx->rank;
  if (q < 1 || r < 1) return ERR("data and indices must have rank >= 1");
  int64_t k = idx->dims[q - 1];
  if (k < 1 || k > r) return ERR("index tuples of length %lld do not fit data of rank %d", (long long)k, r);
  int ur = q - 1 + r - (int)k, ok = u->rank == ur;
  for (int i = 0; ok && i < q - 1; i++) ok = u->dims[i] == idx->dims[i];
  for (int i = (int)k; ok && i < r; i++) ok = u->dims[q - 1 + i - k] == x->dims[i];
  if (!ok) {
    char b1[128];
    return ERR("updates shape %s does not match indices.shape[:-1] + data.shape[%lld:]", bp_shape_str(u, b1, sizeof b1),
               (long long)k);
  }
  return same_as(n, out[0], x, e);
}

INFER(infer_scatter_elements) {
  (void)nout;
  if (scatter_common(n, in, nin, e)) return -1;
  const bp_value *x = in[0], *idx = in[1], *u = in[2];
  int64_t axis;
  if (x->rank < 1 || idx->rank != x->rank) return ERR("indices must have the rank of data");
  if (!bp_same_shape(idx, u)) return ERR("updates must have the shape of indices");
  if (norm_axis(n, bp_attr_int(n, "axis", 0), x->rank, &axis, e)) return -1;
  for (int i = 0; i < x->rank; i++)
    if (i != axis && idx->dims[i] > x->dims[i]) return ERR("indices exceed data on axis %d", i);
  return same_as(n, out[0], x, e);
}

/* ---- Expand, Tile, Pad, Trilu, CumSum ------------------------------------------------------ */
INFER(infer_expand) {
  (void)nout;
  if (need(n, in, nin, 0, "input", e)) return -1;
  bp_value s = {.dtype = BP_I64}, o;
  int r;
  if (shape_read_ints(n, shape_in(in, nin, 1), "shape", s.dims, BP_MAX_RANK, &r, e)) return -1;
  s.rank = r;
  for (int i = 0; i < r; i++)
    if (s.dims[i] < 0) return ERR("negative dimension %lld in 'shape'", (long long)s.dims[i]);
  char who[160];
  snprintf(who, sizeof who, "node '%s' (%s)", n->name ? n->name : "", n->op_type);
  if (bp_broadcast_shape(in[0], &s, &o, who, e)) return -1;
  return set_out(n, out[0], in[0]->dtype, o.rank, o.dims, e);
}

INFER(infer_tile) {
  (void)nout;
  if (need(n, in, nin, 0, "input", e)) return -1;
  const bp_value *x = in[0];
  int64_t rep[BP_MAX_RANK], d[BP_MAX_RANK];
  int c;
  if (shape_read_ints(n, shape_in(in, nin, 1), "repeats", rep, BP_MAX_RANK, &c, e)) return -1;
  if (c != x->rank) return ERR("'repeats' has %d entries for an input of rank %d", c, x->rank);
  for (int i = 0; i < c; i++) {
    if (rep[i] < 0) return ERR("negative repeat %lld", (long long)rep[i]);
    d[i] = x->dims[i] * rep[i];
  }
  return set_out(n, out[0], x->dtype, x->rank, d, e);
}

INFER(infer_pad) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e)) return -1;
  const bp_value *x = in[0], *cv = shape_in(in, nin, 2);
  if (cv && n->opset >= 11 && cv->dtype != x->dtype) return ERR("'constant_value' must have the dtype of data");
  shape_pad_plan p;
  if (shape_plan_pad(n, in, nin, &p, e)) return -1;
  int64_t d[BP_MAX_RANK];
  for (int i = 0; i < x->rank; i++) d[i] = x->dims[i] + p.before[i] + p.after[i];
  return set_out(n, out[0], x->dtype, x->rank, d, e);
}

INFER(infer_trilu) {
  (void)nout;
  if (need(n, in, nin, 0, "input", e)) return -1;
  if (in[0]->rank < 2) return ERR("input must have rank >= 2");
  const bp_value *k = shape_in(in, nin, 1);
  if (k && (k->dtype != BP_I64 || bp_value_numel(k) != 1)) return ERR("input 'k' must be an int64 scalar");
  return same_as(n, out[0], in[0], e);
}

INFER(infer_cumsum) {
  (void)nout;
  if (need(n, in, nin, 0, "x", e) || need(n, in, nin, 1, "axis", e)) return -1;
  const bp_value *x = in[0], *a = in[1];
  if (no_f16(n, x, e)) return -1;
  if (!bp_dtype_is_float(x->dtype) && !bp_dtype_is_int(x->dtype)) return ERR("unsupported dtype %s", bp_dtype_name(x->dtype));
  if (x->rank < 1) return ERR("input must have rank >= 1");
  if (need_index_dtype(n, a, "axis", e)) return -1;
  if (bp_value_numel(a) != 1 || a->rank > 1) return ERR("input 'axis' must be a scalar");
  if (a->data) {
    int64_t ax;
    if (norm_axis(n, bp_get_i64(a->data, a->dtype, 0), x->rank, &ax, e)) return -1;
  }
  return same_as(n, out[0], x, e);
}

/* ---- Range, OneHot, EyeLike ----------------------------------------------------------------- */
INFER(infer_range) {
  (void)nout;
  const char *names[3] = {"start", "limit", "delta"};
  for (int i = 0; i < 3; i++) {
    const bp_value *v = shape_in(in, nin, i);
    if (!v) return ERR("input '%s' is required", names[i]);
    if (!v->data) return ERR("input '%s' is not a compile-time constant", names[i]);
    if (bp_value_numel(v) != 1) return ERR("input '%s' must be a scalar", names[i]);
    if (v->dtype != in[0]->dtype) return ERR("inputs must share one dtype");
  }
  bp_dtype t = in[0]->dtype;
  if (no_f16(n, in[0], e)) return -1;
  if (t != BP_F32 && t != BP_F64 && t != BP_I16 && t != BP_I32 && t != BP_I64)
    return ERR("unsupported dtype %s", bp_dtype_name(t));
  int64_t cnt;
  if (bp_dtype_is_float(t)) {
    double s = bp_get_f64(in[0]->data, t, 0), l = bp_get_f64(in[1]->data, t, 0), d = bp_get_f64(in[2]->data, t, 0);
    if (d == 0 || d != d) return ERR("'delta' must be nonzero");
    double c = ceil((l - s) / d);
    if (!(c < 9.0e15)) return ERR("range is too long");
    cnt = c > 0 ? (int64_t)c : 0;
  } else {
    int64_t s = bp_get_i64(in[0]->data, t, 0), l = bp_get_i64(in[1]->data, t, 0), d = bp_get_i64(in[2]->data, t, 0);
    if (d == 0) return ERR("'delta' must be nonzero");
    double span = (double)l - (double)s; /* guards l - s against int64 overflow */
    if (span > 9.0e18 || span < -9.0e18) return ERR("range is too long");
    int64_t diff = l - s;
    /* ceil(diff / d) for diff and d of the same sign, written so nothing overflows */
    if ((diff > 0) != (d > 0) || diff == 0) cnt = 0;
    else cnt = d > 0 ? (diff - 1) / d + 1 : (diff + 1) / d + 1;
  }
  int64_t dims[1] = {cnt};
  return set_out(n, out[0], t, 1, dims, e);
}

INFER(infer_one_hot) {
  (void)nout;
  if (need(n, in, nin, 0, "indices", e) || need(n, in, nin, 2, "values", e)) return -1;
  const bp_value *idx = in[0], *dep = shape_in(in, nin, 1), *vals = in[2];
  if (!bp_dtype_is_int(idx->dtype) && !bp_dtype_is_float(idx->dtype)) return ERR("indices must be numeric");
  if (no_f16(n, idx, e)) return -1;
  if (!dep) return ERR("input 'depth' is required");
  if (!dep->data) return ERR("input 'depth' is not a compile-time constant");
  if (bp_value_numel(dep) != 1) return ERR("input 'depth' must hold one element");
  if (no_f16(n, dep, e)) return -1;
  int64_t depth = bp_get_i64(dep->data, dep->dtype, 0);
  if (depth < 1) return ERR("depth %lld must be positive", (long long)depth);
  if (vals->rank != 1 || vals->dims[0] != 2) return ERR("'values' must be a 1-D tensor [off, on]");
  int r = idx->rank + 1;
  int64_t axis = bp_attr_int(n, "axis", -1), d[BP_MAX_RANK + 1];
  if (axis < -r || axis >= r) return ERR("axis %lld is out of range for output rank %d", (long long)axis, r);
  if (axis < 0) axis += r;
  if (r > BP_MAX_RANK) return ERR("output rank %d exceeds the supported %d", r, BP_MAX_RANK);
  for (int i = 0, k = 0; i < r; i++) d[i] = i == axis ? depth : idx->dims[k++];
  return set_out(n, out[0], vals->dtype, r, d, e);
}

INFER(infer_eye_like) {
  (void)nout;
  if (need(n, in, nin, 0, "input", e)) return -1;
  const bp_value *x = in[0];
  if (x->rank != 2) return ERR("input must be 2-D, got rank %d", x->rank);
  bp_dtype t = (bp_dtype)bp_attr_int(n, "dtype", x->dtype);
  if (!bp_dtype_size(t) || (!bp_dtype_is_float(t) && !bp_dtype_is_int(t) && t != BP_BOOL))
    return ERR("unsupported output dtype %s", bp_dtype_name(t));
  return set_out(n, out[0], t, 2, x->dims, e);
}

/* ---- DepthToSpace, SpaceToDepth, ReverseSequence ------------------------------------------ */
INFER(infer_depth_to_space) {
  (void)nout;
  if (need(n, in, nin, 0, "input", e)) return -1;
  const bp_value *x = in[0];
  int64_t b = bp_attr_int(n, "blocksize", 0);
  if (b <= 0) return ERR("attribute 'blocksize' must be positive");
  if (x->rank != 4) return ERR("input must be 4-D [N,C,H,W]");
  const char *mode = bp_attr_string(n, "mode", "DCR");
  if (strcmp(mode, "DCR") && strcmp(mode, "CRD")) return ERR("unknown mode '%s'", mode);
  if (x->dims[1] % (b * b)) return ERR("channels %lld not divisible by blocksize² %lld", (long long)x->dims[1], (long long)(b * b));
  int64_t d[4] = {x->dims[0], x->dims[1] / (b * b), x->dims[2] * b, x->dims[3] * b};
  return set_out(n, out[0], x->dtype, 4, d, e);
}

INFER(infer_space_to_depth) {
  (void)nout;
  if (need(n, in, nin, 0, "input", e)) return -1;
  const bp_value *x = in[0];
  int64_t b = bp_attr_int(n, "blocksize", 0);
  if (b <= 0) return ERR("attribute 'blocksize' must be positive");
  if (x->rank != 4) return ERR("input must be 4-D [N,C,H,W]");
  const char *mode = bp_attr_string(n, "mode", "DCR");
  if (strcmp(mode, "DCR") && strcmp(mode, "CRD")) return ERR("unknown mode '%s'", mode);
  if (x->dims[2] % b || x->dims[3] % b) return ERR("height/width not divisible by blocksize %lld", (long long)b);
  int64_t d[4] = {x->dims[0], x->dims[1] * b * b, x->dims[2] / b, x->dims[3] / b};
  return set_out(n, out[0], x->dtype, 4, d, e);
}

INFER(infer_reverse_sequence) {
  (void)nout;
  if (need(n, in, nin, 0, "input", e) || need(n, in, nin, 1, "sequence_lens", e)) return -1;
  const bp_value *x = in[0], *l = in[1];
  int64_t ta = bp_attr_int(n, "time_axis", 0), ba = bp_attr_int(n, "batch_axis", 1);
  if (x->rank < 2) return ERR("input must have rank >= 2");
  if (ta < 0 || ba < 0 || ta > 1 || ba > 1 || ta == ba) return ERR("time_axis/batch_axis must be 0 and 1 in some order");
  if (l->dtype != BP_I64 || l->rank != 1 || l->dims[0] != x->dims[ba])
    return ERR("'sequence_lens' must be int64 of shape [batch]");
  return same_as(n, out[0], x, e);
}

/* ---- the table ------------------------------------------------------------------------------ */
const bp_op_def bp_ops_shape[] = {
    {"Identity", NULL, 1, 1, infer_identity, bp_eval_identity, flops_zero, NULL},
    {"Constant", NULL, 0, 0, infer_constant, bp_eval_constant, flops_zero, NULL},
    {"ConstantOfShape", NULL, 1, 1, infer_constant_of_shape, bp_eval_constant_of_shape, flops_zero, NULL},
    {"Shape", NULL, 1, 1, infer_shape, bp_eval_shape, flops_zero, NULL},
    {"Size", NULL, 1, 1, infer_size, bp_eval_size, flops_zero, NULL},
    {"Reshape", NULL, 1, 2, infer_reshape, bp_eval_identity, flops_zero, NULL},
    {"Flatten", NULL, 1, 1, infer_flatten, bp_eval_identity, flops_zero, NULL},
    {"Squeeze", NULL, 1, 2, infer_squeeze, bp_eval_identity, flops_zero, NULL},
    {"Unsqueeze", NULL, 1, 2, infer_unsqueeze, bp_eval_identity, flops_zero, NULL},
    {"Transpose", NULL, 1, 1, infer_transpose, bp_eval_transpose, flops_zero, NULL},
    {"Concat", NULL, 1, -1, infer_concat, bp_eval_concat, flops_zero, NULL},
    {"Split", NULL, 1, 2, infer_split, bp_eval_split, flops_zero, NULL},
    {"Slice", NULL, 1, 5, infer_slice, bp_eval_slice, flops_zero, NULL},
    {"Gather", NULL, 2, 2, infer_gather, bp_eval_gather, flops_zero, NULL},
    {"GatherElements", NULL, 2, 2, infer_gather_elements, bp_eval_gather_elements, flops_zero, NULL},
    {"GatherND", NULL, 2, 2, infer_gather_nd, bp_eval_gather_nd, flops_zero, NULL},
    {"ScatterND", NULL, 3, 3, infer_scatter_nd, bp_eval_scatter_nd, NULL, NULL},
    {"ScatterElements", NULL, 3, 3, infer_scatter_elements, bp_eval_scatter_elements, NULL, NULL},
    {"Scatter", NULL, 3, 3, infer_scatter_elements, bp_eval_scatter_elements, NULL, NULL}, /* deprecated alias (opset 9-10) */
    {"Expand", NULL, 2, 2, infer_expand, bp_eval_expand, flops_zero, NULL},
    {"Tile", NULL, 2, 2, infer_tile, bp_eval_tile, flops_zero, NULL},
    {"Pad", NULL, 1, 4, infer_pad, bp_eval_pad, flops_zero, NULL},
    {"Trilu", NULL, 1, 2, infer_trilu, bp_eval_trilu, flops_zero, NULL},
    {"CumSum", NULL, 2, 2, infer_cumsum, bp_eval_cumsum, NULL, NULL},
    {"Range", NULL, 3, 3, infer_range, bp_eval_range, NULL, NULL},
    {"OneHot", NULL, 3, 3, infer_one_hot, bp_eval_one_hot, flops_zero, NULL},
    {"EyeLike", NULL, 1, 1, infer_eye_like, bp_eval_eye_like, flops_zero, NULL},
    {"DepthToSpace", NULL, 1, 1, infer_depth_to_space, bp_eval_depth_to_space, flops_zero, NULL},
    {"SpaceToDepth", NULL, 1, 1, infer_space_to_depth, bp_eval_space_to_depth, flops_zero, NULL},
    {"ReverseSequence", NULL, 2, 2, infer_reverse_sequence, bp_eval_reverse_sequence, flops_zero, NULL},
    {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};
