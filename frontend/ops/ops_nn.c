/* frontend/ops/ops_nn.c — the `nn` op group: matrix products (MatMul, Gemm, Einsum), softmax
 * family, normalisations (Layer/RMS/Batch/Instance/Group), reductions, arg-reductions and
 * Dropout. This file holds the op table entries, shape inference and FLOP counts; the CPU
 * kernels are in kernels/cpu/matmul*.c and kernels/cpu/nn*.c (declared in kernels/cpu/nn.h),
 * which also hold the attribute helpers inference shares with evaluation. */
#include "frontend/ir.h"
#include "kernels/cpu/nn.h"

#include <stdio.h>
#include <string.h>

#define INFER(name)                                                                                \
  static int name(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,  \
                  bp_err *e)
#define FLOPS(name)                                                                                \
  static double name(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout)

/* Input i, or NULL when omitted. */
static const bp_value *opt(bp_value *const *in, int nin, int i) { return i < nin ? in[i] : NULL; }

static int need(const bp_node *n, bp_value *const *in, int nin, int i, const char *what, bp_err *e) {
  if (i >= nin || !in[i])
    return bp_errf(e, "node '%s' (%s): required input '%s' is missing", n->name, n->op_type, what);
  return 0;
}

static void set_like(bp_value *o, const bp_value *x, bp_dtype t) {
  if (!o) return;
  o->dtype = t;
  o->rank = x->rank;
  memcpy(o->dims, x->dims, sizeof(int64_t) * (size_t)(x->rank > 0 ? x->rank : 0));
}

static int same_dtype(const bp_node *n, const bp_value *a, const bp_value *b, const char *what, bp_err *e) {
  if (a->dtype != b->dtype)
    return bp_errf(e, "node '%s' (%s): %s has dtype %s but must match the input's %s", n->name,
                   n->op_type, what, bp_dtype_name(b->dtype), bp_dtype_name(a->dtype));
  return 0;
}

/* p broadcasts onto x without changing x's shape (unidirectional broadcasting). */
static int unidir(const bp_node *n, const bp_value *p, const bp_value *x, const char *what, bp_err *e) {
  int ok = p->rank <= x->rank;
  for (int i = 0; ok && i < p->rank; i++) {
    int64_t pd = p->dims[p->rank - 1 - i], xd = x->dims[x->rank - 1 - i];
    ok = pd == xd || pd == 1;
  }
  if (!ok) {
    char s1[128], s2[128];
    return bp_errf(e, "node '%s' (%s): %s of shape %s does not broadcast to %s", n->name, n->op_type,
                   what, bp_shape_str(p, s1, sizeof s1), bp_shape_str(x, s2, sizeof s2));
  }
  return 0;
}

static double numel_of(const bp_value *v) { return v ? (double)bp_value_numel(v) : 0; }

/* ---- MatMul, Gemm, Einsum ---------------------------------------------------------------------- */

INFER(infer_matmul) {
  (void)nout;
  if (need(n, in, nin, 0, "A", e) || need(n, in, nin, 1, "B", e)) return -1;
  if (bp_nn_check_dtype(n, in[0]->dtype, 1, 0, "input A", e) || same_dtype(n, in[0], in[1], "input B", e))
    return -1;
  bp_matmul_dims d;
  bp_value y = {.dtype = in[0]->dtype};
  if (bp_matmul_shape(n, in[0], in[1], &d, &y, e)) return -1;
  if (out[0]) *out[0] = y;
  return 0;
}

FLOPS(flops_matmul) {
  (void)nin, (void)out, (void)nout;
  bp_matmul_dims d;
  if (bp_matmul_shape(n, in[0], in[1], &d, NULL, NULL)) return 0;
  return 2.0 * (double)d.m * (double)d.n * (double)d.k * (double)d.batch;
}

INFER(infer_gemm) {
  (void)nout;
  if (need(n, in, nin, 0, "A", e) || need(n, in, nin, 1, "B", e)) return -1;
  const bp_value *a = in[0], *b = in[1], *c = opt(in, nin, 2);
  if (bp_nn_check_dtype(n, a->dtype, 1, 0, "input A", e) || same_dtype(n, a, b, "input B", e)) return -1;
  if (a->rank != 2 || b->rank != 2)
    return bp_errf(e, "node '%s' (%s): A and B must be 2-D (got ranks %d and %d)", n->name, n->op_type,
                   a->rank, b->rank);
  int ta = bp_attr_int(n, "transA", 0) != 0, tb = bp_attr_int(n, "transB", 0) != 0;
  int64_t m = ta ? a->dims[1] : a->dims[0], ka = ta ? a->dims[0] : a->dims[1];
  int64_t kb = tb ? b->dims[1] : b->dims[0], nn = tb ? b->dims[0] : b->dims[1];
  if (ka != kb)
    return bp_errf(e, "node '%s' (%s): inner dimensions differ (%lld vs %lld; transA=%d transB=%d)",
                   n->name, n->op_type, (long long)ka, (long long)kb, ta, tb);
  bp_value y = {.dtype = a->dtype, .rank = 2, .dims = {m, nn}};
  if (c && (same_dtype(n, a, c, "input C", e) || unidir(n, c, &y, "input C", e))) return -1;
  if (out[0]) *out[0] = y;
  return 0;
}

FLOPS(flops_gemm) {
  (void)nout;
  const bp_value *a = in[0], *y = out[0];
  int64_t k = bp_attr_int(n, "transA", 0) ? a->dims[0] : a->dims[1];
  double mn = (double)y->dims[0] * (double)y->dims[1];
  return 2.0 * mn * (double)k + (opt(in, nin, 2) ? 2.0 * mn : 0.0);
}

INFER(infer_einsum) {
  (void)nout;
  bp_einsum es;
  if (nin < 1) return bp_errf(e, "node '%s' (%s): needs at least one input", n->name, n->op_type);
  for (int k = 0; k < nin; k++) {
    if (need(n, in, nin, k, "Inputs", e)) return -1;
    if (bp_nn_check_dtype(n, in[k]->dtype, 1, 0, "input", e) || same_dtype(n, in[0], in[k], "an input", e))
      return -1;
  }
  if (bp_einsum_parse(n, in, nin, &es, e)) return -1;
  if (out[0]) {
    out[0]->dtype = in[0]->dtype;
    out[0]->rank = es.out_rank;
    for (int i = 0; i < es.out_rank; i++) out[0]->dims[i] = es.size[es.out_lab[i]];
  }
  return 0;
}

FLOPS(flops_einsum) {
  (void)out, (void)nout;
  bp_einsum es;
  if (bp_einsum_parse(n, in, nin, &es, NULL)) return 0;
  double total = 1;
  for (int l = 0; l < es.nlabels; l++)
    if (es.used[l]) total *= (double)es.size[l];
  return total * (double)nin; /* (nin - 1) multiplies and one add per point of the label space */
}

/* ---- softmax family ----------------------------------------------------------------------------- */

INFER(infer_softmax) {
  (void)nout;
  if (need(n, in, nin, 0, "input", e)) return -1;
  int64_t o, l, i;
  if (bp_nn_check_dtype(n, in[0]->dtype, 0, 0, "input", e) || bp_nn_softmax_split(n, in[0], &o, &l, &i, e))
    return -1;
  set_like(out[0], in[0], in[0]->dtype);
  return 0;
}

FLOPS(flops_softmax) {
  (void)n, (void)nin, (void)nout, (void)out;
  return 5.0 * numel_of(in[0]); /* max, subtract, exp, sum, scale */
}

/* ---- normalisations ----------------------------------------------------------------------------- */

static int infer_norm_common(const bp_node *n, bp_value *const *in, int nin, int with_bias,
                             int64_t *axis, bp_err *e) {
  if (need(n, in, nin, 0, "X", e) || need(n, in, nin, 1, "Scale", e)) return -1;
  const bp_value *x = in[0], *s = in[1], *b = with_bias ? opt(in, nin, 2) : NULL;
  char who[300];
  snprintf(who, sizeof who, "node '%s' (%s)", n->name, n->op_type);
  if (bp_nn_check_dtype(n, x->dtype, 0, 0, "input X", e)) return -1;
  if (x->rank < 1) return bp_errf(e, "%s: X must have rank >= 1", who);
  if (bp_norm_axis(bp_attr_int(n, "axis", -1), x->rank, axis, who, e)) return -1;
  if (same_dtype(n, x, s, "input Scale", e) || unidir(n, s, x, "input Scale", e)) return -1;
  if (b && (same_dtype(n, x, b, "input B", e) || unidir(n, b, x, "input B", e))) return -1;
  return 0;
}

INFER(infer_layernorm) {
  int64_t axis;
  if (infer_norm_common(n, in, nin, 1, &axis, e)) return -1;
  const bp_value *x = in[0];
  int64_t stash = bp_attr_int(n, "stash_type", 1);
  bp_dtype u = stash == BP_F32 || stash == BP_F64 ? (bp_dtype)stash : x->dtype;
  set_like(out[0], x, x->dtype);
  for (int k = 1; k < nout && k < 3; k++) { /* Mean, InvStdDev: X's shape with dims[axis:] = 1 */
    if (!out[k]) continue;
    set_like(out[k], x, u);
    for (int i = (int)axis; i < x->rank; i++) out[k]->dims[i] = 1;
  }
  return 0;
}

INFER(infer_rmsnorm) {
  (void)nout;
  int64_t axis;
  if (infer_norm_common(n, in, nin, 0, &axis, e)) return -1;
  set_like(out[0], in[0], in[0]->dtype);
  return 0;
}

FLOPS(flops_norm) {
  (void)n, (void)nin, (void)nout, (void)out;
  return 8.0 * numel_of(in[0]); /* statistics (3) + normalise and affine (5) per element */
}

/* X = [N, C, ...] and per-channel parameters of `count` elements each (C, or G for groups). */
static int check_channels(const bp_node *n, bp_value *const *in, int nin, int first, int last,
                          int64_t c, int64_t g, bp_err *e) {
  static const char *names[] = {"X", "scale", "B", "input_mean", "input_var"};
  for (int i = first; i <= last; i++) {
    if (need(n, in, nin, i, names[i], e)) return -1;
    if (bp_nn_check_dtype(n, in[i]->dtype, 0, 0, names[i], e)) return -1;
    int64_t cnt = bp_value_numel(in[i]);
    if (in[i]->rank != 1 || (cnt != c && cnt != g))
      return bp_errf(e, "node '%s' (%s): input '%s' must be 1-D with %lld elements", n->name,
                     n->op_type, names[i], (long long)c);
  }
  return 0;
}

static int check_nc(const bp_node *n, bp_value *const *in, int nin, bp_err *e) {
  if (need(n, in, nin, 0, "X", e) || bp_nn_check_dtype(n, in[0]->dtype, 0, 0, "input X", e)) return -1;
  if (in[0]->rank < 2)
    return bp_errf(e, "node '%s' (%s): X must have rank >= 2 ([N, C, ...])", n->name, n->op_type);
  return 0;
}

INFER(infer_batchnorm) {
  if (check_nc(n, in, nin, e)) return -1;
  int64_t c = in[0]->dims[1];
  if (check_channels(n, in, nin, 1, 4, c, c, e)) return -1;
  int training = n->opset >= 14 && bp_attr_int(n, "training_mode", 0) != 0;
  for (int k = 1; k < nout; k++)
    if (out[k] && !training)
      return bp_errf(e, "node '%s' (%s): output %d (running statistics) needs training_mode=1 (opset >= 14)",
                     n->name, n->op_type, k);
  set_like(out[0], in[0], in[0]->dtype);
  for (int k = 1; k < nout && k < 3; k++) set_like(out[k], in[3], in[3]->dtype);
  for (int k = 3; k < nout; k++)
    if (out[k])
      return bp_errf(e, "node '%s' (%s): saved_mean/saved_var outputs are not supported", n->name, n->op_type);
  return 0;
}

INFER(infer_instancenorm) {
  (void)nout;
  if (check_nc(n, in, nin, e) || check_channels(n, in, nin, 1, 2, in[0]->dims[1], in[0]->dims[1], e))
    return -1;
  set_like(out[0], in[0], in[0]->dtype);
  return 0;
}

INFER(infer_groupnorm) {
  (void)nout;
  if (check_nc(n, in, nin, e)) return -1;
  int64_t c = in[0]->dims[1], g = bp_attr_int(n, "num_groups", 0);
  if (g <= 0 || c % g)
    return bp_errf(e, "node '%s' (%s): num_groups %lld must be positive and divide the %lld channels",
                   n->name, n->op_type, (long long)g, (long long)c);
  if (check_channels(n, in, nin, 1, 2, c, g, e)) return -1;
  if (bp_value_numel(in[1]) != bp_value_numel(in[2]))
    return bp_errf(e, "node '%s' (%s): scale and bias must have the same size", n->name, n->op_type);
  set_like(out[0], in[0], in[0]->dtype);
  return 0;
}

/* ---- reductions ------------------------------------------------------------------------------------ */

INFER(infer_reduce) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e)) return -1;
  const bp_value *x = in[0];
  int allow_bool = !strcmp(n->op_type, "ReduceMax") || !strcmp(n->op_type, "ReduceMin");
  if (bp_nn_check_dtype(n, x->dtype, 1, allow_bool, "input data", e)) return -1;
  unsigned char mask[BP_MAX_RANK];
  int noop;
  if (bp_nn_reduce_axes(n, in, nin, x, mask, &noop, e)) return -1;
  if (!out[0]) return 0;
  set_like(out[0], x, x->dtype);
  if (noop) return 0;
  int keep = bp_attr_int(n, "keepdims", 1) != 0, r = 0;
  for (int i = 0; i < x->rank; i++) {
    if (!mask[i]) out[0]->dims[r++] = x->dims[i];
    else if (keep) out[0]->dims[r++] = 1;
  }
  out[0]->rank = r;
  return 0;
}

FLOPS(flops_reduce) {
  (void)n, (void)nin, (void)nout, (void)out;
  return numel_of(in[0]);
}

INFER(infer_argreduce) {
  (void)nout;
  if (need(n, in, nin, 0, "data", e)) return -1;
  const bp_value *x = in[0];
  char who[300];
  snprintf(who, sizeof who, "node '%s' (%s)", n->name, n->op_type);
  if (bp_nn_check_dtype(n, x->dtype, 1, 0, "input data", e)) return -1;
  if (x->rank < 1) return bp_errf(e, "%s: input must have rank >= 1", who);
  int64_t axis;
  if (bp_norm_axis(bp_attr_int(n, "axis", 0), x->rank, &axis, who, e)) return -1;
  if (!out[0]) return 0;
  set_like(out[0], x, BP_I64);
  if (bp_attr_int(n, "keepdims", 1)) {
    out[0]->dims[axis] = 1;
  } else {
    for (int i = (int)axis; i + 1 < x->rank; i++) out[0]->dims[i] = x->dims[i + 1];
    out[0]->rank = x->rank - 1;
  }
  return 0;
}

/* TopK: values (X's dtype) and int64 indices, X's shape with K along the axis (K must be constant). */
INFER(infer_topk) {
  if (need(n, in, nin, 0, "X", e)) return -1;
  const bp_value *x = in[0];
  char who[300];
  snprintf(who, sizeof who, "node '%s' (%s)", n->name, n->op_type);
  if (bp_nn_check_dtype(n, x->dtype, 1, 0, "input X", e)) return -1;
  if (x->rank < 1) return bp_errf(e, "%s: input must have rank >= 1", who);
  int64_t axis, k;
  if (bp_norm_axis(bp_attr_int(n, "axis", -1), x->rank, &axis, who, e) || bp_nn_topk_k(n, in, nin, &k, e)) return -1;
  if (k > x->dims[axis])
    return bp_errf(e, "%s: K = %lld exceeds the axis length %lld", who, (long long)k, (long long)x->dims[axis]);
  for (int o = 0; o < nout && o < 2; o++) {
    if (!out[o]) continue;
    set_like(out[o], x, o ? BP_I64 : x->dtype);
    out[o]->dims[axis] = k;
  }
  return 0;
}

FLOPS(flops_argreduce) {
  (void)n, (void)nin, (void)nout, (void)out;
  return numel_of(in[0]);
}

/* ---- Dropout ------------------------------------------------------------------------------------------ */

INFER(infer_dropout) {
  if (need(n, in, nin, 0, "data", e)) return -1;
  const bp_value *x = in[0], *r = opt(in, nin, 1), *t = opt(in, nin, 2);
  if (bp_nn_check_dtype(n, x->dtype, 0, 0, "input data", e)) return -1;
  if (r && (bp_nn_check_dtype(n, r->dtype, 0, 0, "input ratio", e))) return -1;
  if (r && bp_value_numel(r) != 1)
    return bp_errf(e, "node '%s' (%s): input 'ratio' must be a scalar", n->name, n->op_type);
  if (t && (t->dtype != BP_BOOL || bp_value_numel(t) != 1))
    return bp_errf(e, "node '%s' (%s): input 'training_mode' must be a bool scalar", n->name, n->op_type);
  set_like(out[0], x, x->dtype);
  if (nout > 1) set_like(out[1], x, BP_BOOL);
  return 0;
}

/* ---- the table ------------------------------------------------------------------------------------------ */

#define REDUCE(name, fn) {name, NULL, 1, 2, infer_reduce, fn, flops_reduce, NULL}

const bp_op_def bp_ops_nn[] = {
    {"MatMul", NULL, 2, 2, infer_matmul, bp_nn_eval_matmul, flops_matmul, NULL},
    {"Gemm", NULL, 2, 3, infer_gemm, bp_nn_eval_gemm, flops_gemm, NULL},
    {"Einsum", NULL, 1, -1, infer_einsum, bp_nn_eval_einsum, flops_einsum, NULL},
    {"Softmax", NULL, 1, 1, infer_softmax, bp_nn_eval_softmax, flops_softmax, NULL},
    {"LogSoftmax", NULL, 1, 1, infer_softmax, bp_nn_eval_logsoftmax, flops_softmax, NULL},
    {"Hardmax", NULL, 1, 1, infer_softmax, bp_nn_eval_hardmax, flops_softmax, NULL},
    {"LayerNormalization", NULL, 2, 3, infer_layernorm, bp_nn_eval_layernorm, flops_norm, NULL},
    {"RMSNormalization", NULL, 2, 2, infer_rmsnorm, bp_nn_eval_rmsnorm, flops_norm, NULL},
    {"BatchNormalization", NULL, 5, 5, infer_batchnorm, bp_nn_eval_batchnorm, flops_norm, NULL},
    {"InstanceNormalization", NULL, 3, 3, infer_instancenorm, bp_nn_eval_instancenorm, flops_norm, NULL},
    {"GroupNormalization", NULL, 3, 3, infer_groupnorm, bp_nn_eval_groupnorm, flops_norm, NULL},
    REDUCE("ReduceSum", bp_nn_eval_reduce_sum),
    REDUCE("ReduceMean", bp_nn_eval_reduce_mean),
    REDUCE("ReduceMax", bp_nn_eval_reduce_max),
    REDUCE("ReduceMin", bp_nn_eval_reduce_min),
    REDUCE("ReduceProd", bp_nn_eval_reduce_prod),
    REDUCE("ReduceSumSquare", bp_nn_eval_reduce_sum_square),
    REDUCE("ReduceL1", bp_nn_eval_reduce_l1),
    REDUCE("ReduceL2", bp_nn_eval_reduce_l2),
    REDUCE("ReduceLogSum", bp_nn_eval_reduce_log_sum),
    REDUCE("ReduceLogSumExp", bp_nn_eval_reduce_log_sum_exp),
    {"ArgMax", NULL, 1, 1, infer_argreduce, bp_nn_eval_argmax, flops_argreduce, NULL},
    {"ArgMin", NULL, 1, 1, infer_argreduce, bp_nn_eval_argmin, flops_argreduce, NULL},
    {"Dropout", NULL, 1, 3, infer_dropout, bp_nn_eval_dropout, NULL, NULL},
    {"TopK", NULL, 1, 2, infer_topk, bp_nn_eval_topk, flops_argreduce, NULL},
    {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};
