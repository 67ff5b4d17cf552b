/* kernels/cpu/nn_common.c — dtype checks and parameter broadcasting shared by the nn group's
 * inference and kernels. */
#include "kernels/cpu/nn.h"

#include <stdlib.h>
#include <string.h>

int bp_nn_check_dtype(const bp_node *n, bp_dtype t, int allow_int, int allow_bool, const char *what,
                      bp_err *e) {
  if (t == BP_F16 || t == BP_BF16)
    return bp_errf(e, "node '%s' (%s): %s is %s: float16 compute is not supported", n->name,
                   n->op_type, what, bp_dtype_name(t));
  if (t == BP_F32 || t == BP_F64) return 0;
  if (allow_int && bp_dtype_is_int(t)) return 0;
  if (allow_bool && t == BP_BOOL) return 0;
  return bp_errf(e, "node '%s' (%s): %s has unsupported dtype %s (expected %s)", n->name, n->op_type,
                 what, bp_dtype_name(t),
                 allow_int ? (allow_bool ? "a float, integer or bool type" : "a float or integer type")
                           : "float32 or float64");
}

/* Copies v broadcast (numpy rules, v no larger than `shape`) to a new array of numel(shape)
 * elements of v's dtype. Returns NULL on OOM. Caller frees. */
void *bp_nn_expand(const bp_value *v, const bp_value *shape) {
  int64_t total = bp_value_numel(shape), st[BP_MAX_RANK], idx[BP_MAX_RANK] = {0}, off = 0;
  size_t es = bp_dtype_size(v->dtype);
  char *dst = malloc((size_t)(total > 0 ? total : 1) * es);
  if (!dst) return NULL;
  bp_broadcast_strides(v, shape, st);
  for (int64_t i = 0; i < total; i++) {
    memcpy(dst + (size_t)i * es, (const char *)v->data + (size_t)off * es, es);
    for (int d = shape->rank - 1; d >= 0; d--) {
      off += st[d];
      if (++idx[d] < shape->dims[d]) break;
      off -= st[d] * shape->dims[d];
      idx[d] = 0;
    }
  }
  return dst;
}

/* 1 when v broadcasts onto the trailing dims shape->dims[from..] (any extra leading dims of v
 * being 1), i.e. it is the same for every "row" of the leading dims. */
int bp_nn_row_invariant(const bp_value *v, const bp_value *shape, int from) {
  int tail = shape->rank - from;
  for (int i = 0; i < v->rank - tail; i++)
    if (v->dims[i] != 1) return 0;
  return 1;
}

/* Prepares a per-row parameter (LayerNorm Scale/B): returns a pointer to `cols` elements laid out
 * like x's trailing dims from `from` (*row_stride 0), or, when v differs between rows, to the
 * whole broadcast tensor (*row_stride = cols). *owned is set when the caller must free it. */
const void *bp_nn_row_param(const bp_value *v, const bp_value *x, int from, int64_t cols,
                            int64_t *row_stride, void **owned) {
  *owned = NULL;
  *row_stride = 0;
  if (bp_nn_row_invariant(v, x, from)) {
    if (bp_value_numel(v) == cols) return v->data; /* exact trailing shape: no copy */
    bp_value t = {.dtype = x->dtype, .rank = x->rank - from};
    memcpy(t.dims, x->dims + from, sizeof(int64_t) * (size_t)t.rank);
    *owned = bp_nn_expand(v, &t);
    return *owned;
  }
  *row_stride = cols;
  *owned = bp_nn_expand(v, x);
  return *owned;
}
