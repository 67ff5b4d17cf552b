/* kernels/cpu/grad_shape.c — backward kernels of data movement: SumTo (the gradient of
 * broadcasting), GatherGrad (scatter-add: embeddings) and SliceGrad (see kernels/cpu/grad.h). */
#include "kernels/cpu/grad.h"
#include "kernels/cpu/shape.h"

#include <stdlib.h>
#include <string.h>

#define LD bp_grad_ld
#define ST bp_grad_st

/* out (shape S) = sum of x over the dimensions S broadcasts along. */
BP_GRAD_EVAL(bp_grad_eval_sum_to) {
  (void)ctx, (void)n, (void)nin, (void)nout, (void)e;
  const bp_value *x = in[0];
  bp_value *y = out[0];
  int64_t st[BP_MAX_RANK], idx[BP_MAX_RANK] = {0};
  bp_broadcast_strides(y, x, st);
  int64_t total = bp_value_numel(x), ny = bp_value_numel(y);
  double *acc = calloc((size_t)(ny ? ny : 1), sizeof(double));
  if (!acc) return bp_errf(e, "out of memory");
  int64_t off = 0;
  for (int64_t i = 0; i < total; i++) {
    acc[off] += LD(x, i);
    for (int d = x->rank - 1; d >= 0; d--) {
      off += st[d];
      if (++idx[d] < x->dims[d]) break;
      off -= st[d] * x->dims[d];
      idx[d] = 0;
    }
  }
  for (int64_t i = 0; i < ny; i++) ST(y, i, acc[i]);
  free(acc);
  return 0;
}

/* dx[outer, idx[j], inner] += dy[outer, j, inner] */
BP_GRAD_EVAL(bp_grad_eval_gather) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *dy = in[0], *ix = in[1];
  bp_value *dx = out[0];
  int64_t axis;
  if (bp_norm_axis(bp_attr_int(n, "axis", 0), dx->rank, &axis, "GatherGrad", e)) return -1;
  int64_t outer = 1, inner = 1, N = dx->dims[axis], ni = bp_value_numel(ix);
  for (int i = 0; i < axis; i++) outer *= dx->dims[i];
  for (int i = (int)axis + 1; i < dx->rank; i++) inner *= dx->dims[i];
  int64_t nx = bp_value_numel(dx);
  double *acc = calloc((size_t)(nx ? nx : 1), sizeof(double));
  if (!acc) return bp_errf(e, "out of memory");
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < ni; j++) {
      int64_t v = bp_get_i64(ix->data, ix->dtype, j);
      if (v < 0) v += N;
      if (v < 0 || v >= N) {
        free(acc);
        return bp_errf(e, "node '%s' (%s): index %lld out of range", n->name, n->op_type, (long long)v);
      }
      for (int64_t k = 0; k < inner; k++) acc[(o * N + v) * inner + k] += LD(dy, (o * ni + j) * inner + k);
    }
  for (int64_t i = 0; i < nx; i++) ST(dx, i, acc[i]);
  free(acc);
  return 0;
}

BP_GRAD_EVAL(bp_grad_eval_slice) {
  (void)ctx, (void)nout;
  const bp_value *dy = in[0];
  bp_value *dx = out[0];
  bp_value xs = *dx;
  bp_value *pin[5] = {&xs, NULL, NULL, NULL, NULL};
  for (int k = 1; k < nin && k < 5; k++) pin[k] = in[k];
  shape_slice_plan p;
  if (shape_plan_slice(n, pin, nin, &p, e)) return -1;
  memset(dx->data, 0, bp_value_bytes(dx));
  int64_t xst[BP_MAX_RANK], idx[BP_MAX_RANK] = {0}, base = 0;
  shape_strides(dx->rank, dx->dims, xst);
  for (int d = 0; d < dx->rank; d++) base += p.start[d] * xst[d];
  int64_t total = bp_value_numel(dy), off = base;
  for (int64_t i = 0; i < total; i++) {
    ST(dx, off, LD(dy, i));
    for (int d = dy->rank - 1; d >= 0; d--) {
      off += p.step[d] * xst[d];
      if (++idx[d] < dy->dims[d]) break;
      off -= p.step[d] * xst[d] * dy->dims[d];
      idx[d] = 0;
    }
  }
  return 0;
}
