/* kernels/cpu/nn_dropout.c — Dropout. Identity (mask all true) unless the context trains
 * (ctx->training). The node's training_mode input is checked but does not decide: exporters freeze
 * it at export time (the training recipe exports it as a constant True), while whether bitpipe
 * trains or infers is chosen by the command (`run` infers, as onnxruntime does; training draws
 * masks). In training
 * each element is kept with probability 1 - ratio and scaled by 1 / (1 - ratio); the keep
 * decision for element i is a counter-based draw, splitmix64 at position ctx->counter + i of the
 * stream keyed by ctx->seed (and the node's `seed` attribute if any), so results are reproducible
 * and independent of threading. ctx->counter then advances by the element count. */
#include "kernels/cpu/nn.h"

#include <string.h>

static uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int bp_nn_eval_dropout(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                       bp_value *const *out, int nout, bp_err *e) {
  const bp_value *x = in[0];
  bp_value *y = out[0], *mask = nout > 1 ? out[1] : NULL;
  if (bp_nn_check_dtype(n, x->dtype, 0, 0, "input data", e)) return -1;
  double ratio = bp_attr_float(n, "ratio", 0.5f);
  int training = ctx && ctx->training;
  if (n->opset >= 12) {
    ratio = 0.5;
    if (nin > 1 && in[1]) {
      if (!bp_dtype_is_float(in[1]->dtype) || bp_value_numel(in[1]) != 1)
        return bp_errf(e, "node '%s' (%s): input 'ratio' must be a float scalar", n->name, n->op_type);
      ratio = bp_get_f64(in[1]->data, in[1]->dtype, 0);
    }
    if (nin > 2 && in[2]) {
      if (bp_value_numel(in[2]) != 1)
        return bp_errf(e, "node '%s' (%s): input 'training_mode' must be a bool scalar", n->name, n->op_type);
    }
  }
  if (!(ratio >= 0 && ratio <= 1))
    return bp_errf(e, "node '%s' (%s): ratio %g is outside [0, 1]", n->name, n->op_type, ratio);
  int64_t total = bp_value_numel(x);
  if (!training || ratio == 0) {
    memcpy(y->data, x->data, bp_value_bytes(x));
    if (mask) memset(mask->data, 1, (size_t)total);
    return 0;
  }
  uint64_t key = splitmix64(ctx ? ctx->seed : 0);
  const bp_attr *sa = bp_node_attr(n, "seed");
  if (sa && sa->type == BP_ATTR_INT) key = splitmix64(key ^ (uint64_t)sa->i);
  else if (sa && sa->type == BP_ATTR_FLOAT) key = splitmix64(key ^ (uint64_t)(int64_t)sa->f);
  uint64_t base = ctx ? ctx->counter : 0;
  double scale = ratio < 1 ? 1.0 / (1.0 - ratio) : 0.0;
  float fscale = (float)scale;
  uint8_t *m = mask ? mask->data : NULL;
  for (int64_t i = 0; i < total; i++) {
    /* position in the splitmix64 stream from state `key`; 24 random bits give u in [0, 1) */
    double u = (double)(splitmix64(key + (base + (uint64_t)i) * 0x9e3779b97f4a7c15ull) >> 40) * 0x1p-24;
    int keep = u >= ratio;
    if (x->dtype == BP_F32) ((float *)y->data)[i] = keep ? ((const float *)x->data)[i] * fscale : 0.0f;
    else ((double *)y->data)[i] = keep ? ((const double *)x->data)[i] * scale : 0.0;
    if (m) m[i] = (uint8_t)keep;
  }
  if (ctx) ctx->counter += (uint64_t)total;
  return 0;
}
