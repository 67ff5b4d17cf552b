/* frontend/loss.c — the loss appended to a chosen graph output: softmax cross-entropy against
 * integer targets (mean over counted tokens, ignore index; one fused op pair in domain "bitpipe")
 * or mean squared error (built from ONNX ops, differentiated by their own rules). */
#include "frontend/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_loss_append(bp_graph *g, int out, bp_loss_kind kind, int64_t ignore_index, const char *targets_name,
                   int *targets_id, bp_err *e) {
  bp_tensor *ot = g->tensors[out];
  if (!bp_dtype_is_float(ot->v.dtype))
    return bp_errf(e, "the loss needs a float output, but '%s' is %s (choose another with --output)", ot->name,
                   bp_dtype_name(ot->v.dtype));
  if (kind == BP_LOSS_CROSS_ENTROPY && ot->v.rank < 1)
    return bp_errf(e, "cross-entropy needs logits with a class dimension, but '%s' is a scalar", ot->name);
  if (bp_graph_find(g, targets_name) >= 0)
    return bp_errf(e, "the model already has a tensor named '%s' (the loss's targets input)", targets_name);
  int t = bp_graph_tensor(g, targets_name);
  int *ni = realloc(g->inputs, sizeof(int) * (size_t)(g->ninputs + 1));
  if (t < 0 || !ni) return bp_errf(e, "out of memory");
  g->inputs = ni;
  g->inputs[g->ninputs++] = t;
  bp_tensor *tt = g->tensors[t];
  tt->kind = BP_T_INPUT;
  tt->v = ot->v;
  tt->v.data = NULL;
  if (kind == BP_LOSS_CROSS_ENTROPY) {
    tt->v.dtype = BP_I64;
    tt->v.rank = ot->v.rank - 1;
  }
  *targets_id = t;
  bp_ad ad = {.g = g, .e = e, .cur = -1};
  int loss;
  if (kind == BP_LOSS_CROSS_ENTROPY) {
    int in[2] = {out, t};
    int node = bp_ad_node(&ad, BP_DOMAIN, "SoftmaxCrossEntropy", 2, in, 1);
    bp_ad_attr_int(&ad, node, "ignore_index", ignore_index);
    loss = bp_ad_infer(&ad, node);
  } else {
    int d = bp_ad_op2(&ad, "Sub", out, t);
    int sq = bp_ad_op2(&ad, "Mul", d, d);
    int node = sq < 0 ? -1 : bp_ad_node(&ad, NULL, "ReduceMean", 1, &sq, 1);
    bp_ad_attr_int(&ad, node, "keepdims", 0);
    loss = bp_ad_infer(&ad, node);
  }
  return loss < 0 ? -1 : loss;
}
