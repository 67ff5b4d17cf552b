/* frontend/ops/ops_grad.c — the `grad` op group (domain "bitpipe"): backward-only ops that the
 * gradient rules (frontend/grad_rules.c) emit and the loss ops (frontend/loss.c). Shape inference
 * and table entries; the CPU kernels are in kernels/cpu/grad_*.c (kernels/cpu/grad.h says what
 * each op computes). */
#include "frontend/autodiff.h"
#include "kernels/cpu/grad.h"

#include <string.h>

#define INFER(name)                                                                                \
  static int name(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,  \
                  bp_err *e)

static int need_float(const bp_node *n, bp_value *const *in, int nin, int i, bp_err *e) {
  if (i >= nin || !in[i]) return bp_errf(e, "node '%s' (%s): input %d is required", n->name, n->op_type, i);
  if (in[i]->dtype != BP_F32 && in[i]->dtype != BP_F64)
    return bp_errf(e, "node '%s' (%s): input %d has dtype %s, expected float32 or float64", n->name, n->op_type, i,
                   bp_dtype_name(in[i]->dtype));
  return 0;
}

static void like(bp_value *o, const bp_value *x) {
  if (!o) return;
  o->dtype = x->dtype;
  o->rank = x->rank;
  memcpy(o->dims, x->dims, sizeof o->dims);
}

/* The `shape` attribute as out's dims (dtype of in[0]). */
static int shape_attr(const bp_node *n, const bp_value *x, bp_value *o, bp_err *e) {
  int c;
  const int64_t *s = bp_attr_ints(n, "shape", &c);
  if (!s || c > BP_MAX_RANK) return bp_errf(e, "node '%s' (%s): attribute 'shape' is missing", n->name, n->op_type);
  o->dtype = x->dtype;
  o->rank = c;
  for (int i = 0; i < c; i++) o->dims[i] = s[i];
  return 0;
}

INFER(infer_sum_to) {
  (void)nout;
  if (need_float(n, in, nin, 0, e) || shape_attr(n, in[0], out[0], e)) return -1;
  bp_value b;
  if (bp_broadcast_shape(out[0], in[0], &b, n->name, e)) return -1;
  if (!bp_same_shape(&b, in[0]))
    return bp_errf(e, "node '%s' (%s): shape does not broadcast to the input's", n->name, n->op_type);
  return 0;
}

INFER(infer_same_as_0) { /* SoftmaxGrad, DropoutGrad, GeluGrad */
  (void)nout;
  if (need_float(n, in, nin, 0, e) || need_float(n, in, nin, 1, e)) return -1;
  if (nin < 2 || !in[1] || !bp_same_shape(in[0], in[1]))
    return bp_errf(e, "node '%s' (%s): inputs 0 and 1 must have the same shape", n->name, n->op_type);
  like(out[0], in[0]);
  return 0;
}

INFER(infer_layernorm_grad) {
  if (need_float(n, in, nin, 0, e) || need_float(n, in, nin, 1, e) || need_float(n, in, nin, 2, e)) return -1;
  int64_t axis;
  if (bp_norm_axis(bp_attr_int(n, "axis", -1), in[1]->rank, &axis, n->name, e)) return -1;
  int64_t cols = 1;
  for (int i = (int)axis; i < in[1]->rank; i++) cols *= in[1]->dims[i];
  if (bp_value_numel(in[2]) != cols)
    return bp_errf(e, "node '%s' (%s): scale must have one element per normalised position (%lld)", n->name,
                   n->op_type, (long long)cols);
  like(out[0], in[1]);
  for (int k = 1; k < nout && k < 3; k++)
    if (out[k]) {
      out[k]->dtype = in[1]->dtype;
      out[k]->rank = 1;
      out[k]->dims[0] = cols;
    }
  return 0;
}

INFER(infer_gather_grad) {
  (void)nout;
  if (need_float(n, in, nin, 0, e) || shape_attr(n, in[0], out[0], e)) return -1;
  if (nin < 2 || !in[1] || !bp_dtype_is_int(in[1]->dtype))
    return bp_errf(e, "node '%s' (%s): indices must be integers", n->name, n->op_type);
  return 0;
}

INFER(infer_slice_grad) {
  (void)nout;
  return need_float(n, in, nin, 0, e) || shape_attr(n, in[0], out[0], e) ? -1 : 0;
}

INFER(infer_sce) {
  (void)nout;
  if (need_float(n, in, nin, 0, e)) return -1;
  const bp_value *x = in[0], *t = nin > 1 ? in[1] : NULL;
  if (x->rank < 1) return bp_errf(e, "node '%s' (%s): logits need rank >= 1", n->name, n->op_type);
  int ok = t && bp_dtype_is_int(t->dtype) && t->rank == x->rank - 1;
  for (int i = 0; ok && i < t->rank; i++) ok = t->dims[i] == x->dims[i];
  if (!ok) {
    char s1[160], s2[160], s3[160] = "";
    bp_value want = *x;
    want.rank = x->rank - 1;
    if (t) bp_shape_str(t, s3, sizeof s3);
    return bp_errf(e, "targets must be integers of shape %s (the logits' %s without the class dimension), got %s %s",
                   bp_shape_str(&want, s1, sizeof s1), bp_shape_str(x, s2, sizeof s2),
                   t ? bp_dtype_name(t->dtype) : "nothing", s3);
  }
  out[0]->dtype = x->dtype;
  out[0]->rank = 0;
  return 0;
}

INFER(infer_dropout_grad) {
  (void)nout;
  if (need_float(n, in, nin, 0, e)) return -1;
  if (nin < 2 || !in[1] || in[1]->dtype != BP_BOOL || !bp_same_shape(in[0], in[1]))
    return bp_errf(e, "node '%s' (%s): the mask must be bool of the gradient's shape", n->name, n->op_type);
  like(out[0], in[0]);
  return 0;
}

INFER(infer_sce_grad) {
  (void)nout;
  if (need_float(n, in, nin, 0, e) || need_float(n, in, nin, 1, e)) return -1;
  like(out[0], in[1]);
  return 0;
}

#define G(name, lo, hi, inf, ev) {name, BP_DOMAIN, lo, hi, inf, ev, NULL, NULL}
const bp_op_def bp_ops_grad[] = {
    G("SumTo", 1, 1, infer_sum_to, bp_grad_eval_sum_to),
    G("SoftmaxGrad", 2, 2, infer_same_as_0, bp_grad_eval_softmax),
    G("LayerNormGrad", 3, 3, infer_layernorm_grad, bp_grad_eval_layernorm),
    G("GatherGrad", 2, 2, infer_gather_grad, bp_grad_eval_gather),
    G("SliceGrad", 3, 5, infer_slice_grad, bp_grad_eval_slice),
    G("DropoutGrad", 2, 2, infer_dropout_grad, bp_grad_eval_dropout),
    G("GeluGrad", 2, 2, infer_same_as_0, bp_grad_eval_gelu),
    G("SoftmaxCrossEntropy", 2, 2, infer_sce, bp_grad_eval_sce),
    G("SoftmaxCrossEntropyGrad", 3, 3, infer_sce_grad, bp_grad_eval_sce_grad),
    {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};
