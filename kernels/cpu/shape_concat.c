/* kernels/cpu/shape_concat.c — Concat and Split: with outer = product of the dims before the
 * axis, each input (output) is `outer` contiguous blocks that interleave in the output (input). */
#include "kernels/cpu/shape.h"

#include <stdio.h>
#include <string.h>

static int64_t prod(const int64_t *d, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= d[i];
  return p;
}

SHAPE_EVAL(bp_eval_concat) {
  (void)ctx, (void)nout;
  bp_value *o = out[0];
  int64_t axis;
  char who[160];
  snprintf(who, sizeof who, "node '%s' (%s): 'axis'", n->name ? n->name : "", n->op_type);
  if (bp_norm_axis(bp_attr_int(n, "axis", 1), o->rank, &axis, who, e)) return -1;
  size_t es = bp_dtype_size(o->dtype);
  int64_t outer = prod(o->dims, 0, (int)axis), oinner = prod(o->dims, (int)axis, o->rank), off = 0;
  for (int k = 0; k < nin; k++) {
    const bp_value *x = in[k];
    if (!x) continue;
    int64_t inner = x->rank == o->rank ? prod(x->dims, (int)axis, x->rank) : 0;
    if (inner == 0) continue; /* empty inputs contribute nothing */
    if (off + inner > oinner) return SHAPE_ERR(e, n, "inputs do not fit the output");
    const char *s = x->data;
    char *d = (char *)o->data + (size_t)off * es;
    for (int64_t i = 0; i < outer; i++)
      memcpy(d + (size_t)(i * oinner) * es, s + (size_t)(i * inner) * es, (size_t)inner * es);
    off += inner;
  }
  return 0;
}

SHAPE_EVAL(bp_eval_split) {
  (void)ctx;
  const bp_value *x = in[0];
  int64_t axis, sizes[256];
  if (nout > 256) return SHAPE_ERR(e, n, "more than 256 outputs");
  if (shape_plan_split(n, in, nin, nout, &axis, sizes, e)) return -1;
  size_t es = bp_dtype_size(x->dtype);
  int64_t outer = prod(x->dims, 0, (int)axis), after = prod(x->dims, (int)axis + 1, x->rank);
  int64_t xinner = x->dims[axis] * after, off = 0;
  for (int k = 0; k < nout; k++) {
    int64_t inner = sizes[k] * after;
    if (out[k] && inner) {
      char *d = out[k]->data;
      const char *s = (const char *)x->data + (size_t)off * es;
      for (int64_t i = 0; i < outer; i++)
        memcpy(d + (size_t)(i * inner) * es, s + (size_t)(i * xinner) * es, (size_t)inner * es);
    }
    off += inner;
  }
  return 0;
}
