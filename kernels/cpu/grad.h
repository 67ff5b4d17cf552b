/* kernels/cpu/grad.h — CPU kernels of the backward and loss ops (domain "bitpipe", table in
 * frontend/ops/ops_grad.c). float32 and float64; arithmetic in double. Legend: rows = product of
 * the dimensions before the normalised axis/axes, cols = the rest.
 *
 *   SumTo(x) shape=S                          -> x summed over broadcast dimensions down to S
 *   SoftmaxGrad(dy, y) axis                   -> y * (dy - sum(dy * y))
 *   LayerNormGrad(dy, x, scale) axis epsilon  -> dx, dscale [cols], dbias [cols]
 *   GatherGrad(dy, indices) axis shape        -> zeros(shape) scatter-added with dy
 *   SliceGrad(dy, starts, ends[, axes, steps]) shape -> zeros(shape) with dy written in the slice
 *   DropoutGrad(dy, mask) scale               -> dy * mask * scale
 *   GeluGrad(dy, x) approximate               -> dy * gelu'(x)
 *   SoftmaxCrossEntropy(logits, targets) ignore_index       -> mean over counted rows, scalar
 *   SoftmaxCrossEntropyGrad(dloss, logits, targets) ignore_index -> dlogits
 */
#ifndef BITPIPE_KERNELS_CPU_GRAD_H
#define BITPIPE_KERNELS_CPU_GRAD_H

#include "frontend/ir.h"

#define BP_GRAD_EVAL(name)                                                                         \
  int name(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,     \
           int nout, bp_err *e)

BP_GRAD_EVAL(bp_grad_eval_sum_to);
BP_GRAD_EVAL(bp_grad_eval_softmax);
BP_GRAD_EVAL(bp_grad_eval_layernorm);
BP_GRAD_EVAL(bp_grad_eval_gather);
BP_GRAD_EVAL(bp_grad_eval_slice);
BP_GRAD_EVAL(bp_grad_eval_dropout);
BP_GRAD_EVAL(bp_grad_eval_gelu);
BP_GRAD_EVAL(bp_grad_eval_sce);
BP_GRAD_EVAL(bp_grad_eval_sce_grad);

static inline double bp_grad_ld(const bp_value *v, int64_t i) {
  return v->dtype == BP_F32 ? (double)((const float *)v->data)[i] : ((const double *)v->data)[i];
}
static inline void bp_grad_st(bp_value *v, int64_t i, double x) {
  if (v->dtype == BP_F32) ((float *)v->data)[i] = (float)x;
  else ((double *)v->data)[i] = x;
}

#endif
