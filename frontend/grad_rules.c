/* frontend/grad_rules.c — the gradient rule of every differentiable op, one function per op (or
 * family), collected in bp_grad_rules (attached to the op table by frontend/op_table.c).
 *
 * A rule sees the forward node, the gradients of its outputs (dout, -1 where none) and which
 * inputs want one (need); it appends backward nodes with the frontend/autodiff.h helpers and
 * returns the input gradients in din, each of its input's shape (broadcasting summed back with
 * SumTo). Rules read forward tensors (inputs and outputs) directly: that is the activation stash.
 * Helpers fail stickily, so rules chain them and report once at the end. */
#include "frontend/autodiff.h"
#include "kernels/cpu/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULE(name) static int name(bp_ad *ad, bp_node *n, const int *dout, const unsigned char *need, int *din)
#define DONE return bp_ad_failed(ad) ? -1 : 0
#define X(k) (n->in[k])
#define Y(k) (n->out[k])

static bp_dtype dt(bp_ad *ad, int t) { return bp_ad_val(ad, t)->dtype; }
static int cst(bp_ad *ad, double v, int like) { return bp_ad_const_scalar(ad, v, dt(ad, like)); }
static int mul(bp_ad *ad, int a, int b) { return bp_ad_op2(ad, "Mul", a, b); }

/* Zero-filled constant of tensor `like`'s shape and dtype. */
static int zeros_like(bp_ad *ad, int like) {
  if (like < 0) return -1;
  bp_value v = *bp_ad_val(ad, like);
  int z = bp_ad_const_scalar(ad, 0.0, v.dtype);
  if (z < 0) return -1;
  return bp_ad_op2(ad, "Expand", z, bp_ad_const_i64(ad, v.rank, v.dims));
}

static int cast_to(bp_ad *ad, int x, bp_dtype t) {
  if (x < 0) return -1;
  if (dt(ad, x) == t) return x;
  int node = bp_ad_node(ad, NULL, "Cast", 1, &x, 1);
  bp_ad_attr_int(ad, node, "to", t);
  return bp_ad_infer(ad, node);
}

/* ---- elementwise ------------------------------------------------------------------------------ */

RULE(grad_add) {
  (void)n;
  for (int k = 0; k < 2; k++)
    if (need[k]) din[k] = bp_ad_sum_to(ad, dout[0], X(k));
  DONE;
}

RULE(grad_sub) {
  if (need[0]) din[0] = bp_ad_sum_to(ad, dout[0], X(0));
  if (need[1]) din[1] = bp_ad_sum_to(ad, bp_ad_op1(ad, "Neg", dout[0]), X(1));
  DONE;
}

RULE(grad_sum) {
  for (int k = 0; k < n->nin; k++)
    if (need[k]) din[k] = bp_ad_sum_to(ad, dout[0], X(k));
  DONE;
}

RULE(grad_mul) {
  if (need[0]) din[0] = bp_ad_sum_to(ad, mul(ad, dout[0], X(1)), X(0));
  if (need[1]) din[1] = bp_ad_sum_to(ad, mul(ad, dout[0], X(0)), X(1));
  DONE;
}

RULE(grad_div) { /* y = a / b: da = dy / b, db = -dy * y / b */
  if (need[0]) din[0] = bp_ad_sum_to(ad, bp_ad_op2(ad, "Div", dout[0], X(1)), X(0));
  if (need[1])
    din[1] = bp_ad_sum_to(ad, bp_ad_op1(ad, "Neg", bp_ad_op2(ad, "Div", mul(ad, dout[0], Y(0)), X(1))), X(1));
  DONE;
}

RULE(grad_pow) { /* y = a^b: da = dy * b * a^(b-1), db = dy * y * ln(a) */
  const bp_value *b = bp_ad_val(ad, X(1));
  if (need[0]) {
    int g;
    if (b->data && bp_value_numel(b) == 1) {
      double c = bp_get_f64(b->data, b->dtype, 0);
      if (c == 1) g = dout[0];
      else if (c == 2) g = mul(ad, dout[0], bp_ad_scale(ad, X(0), 2.0));
      else g = mul(ad, dout[0], bp_ad_scale(ad, bp_ad_op2(ad, "Pow", X(0), cst(ad, c - 1, X(0))), c));
    } else {
      int bf = cast_to(ad, X(1), dt(ad, X(0)));
      g = mul(ad, dout[0], mul(ad, bf, bp_ad_op2(ad, "Pow", X(0), bp_ad_op2(ad, "Sub", bf, cst(ad, 1, X(0))))));
    }
    din[0] = bp_ad_sum_to(ad, g, X(0));
  }
  if (need[1]) din[1] = bp_ad_sum_to(ad, mul(ad, mul(ad, dout[0], Y(0)), bp_ad_op1(ad, "Log", X(0))), X(1));
  DONE;
}

RULE(grad_neg) { (void)n; if (need[0]) din[0] = bp_ad_op1(ad, "Neg", dout[0]); DONE; }
RULE(grad_identity) { (void)n, (void)ad; if (need[0]) din[0] = dout[0]; DONE; }
RULE(grad_sqrt) { if (need[0]) din[0] = bp_ad_op2(ad, "Div", bp_ad_scale(ad, dout[0], 0.5), Y(0)); DONE; }
RULE(grad_reciprocal) { if (need[0]) din[0] = bp_ad_op1(ad, "Neg", mul(ad, dout[0], mul(ad, Y(0), Y(0)))); DONE; }
RULE(grad_exp) { if (need[0]) din[0] = mul(ad, dout[0], Y(0)); DONE; }
RULE(grad_log) { if (need[0]) din[0] = bp_ad_op2(ad, "Div", dout[0], X(0)); DONE; }
RULE(grad_sin) { if (need[0]) din[0] = mul(ad, dout[0], bp_ad_op1(ad, "Cos", X(0))); DONE; }
RULE(grad_cos) { if (need[0]) din[0] = bp_ad_op1(ad, "Neg", mul(ad, dout[0], bp_ad_op1(ad, "Sin", X(0)))); DONE; }
RULE(grad_abs) { if (need[0]) din[0] = mul(ad, dout[0], bp_ad_op1(ad, "Sign", X(0))); DONE; }

RULE(grad_tanh) { /* dy * (1 - y^2) */
  if (need[0]) din[0] = mul(ad, dout[0], bp_ad_op2(ad, "Sub", cst(ad, 1, Y(0)), mul(ad, Y(0), Y(0))));
  DONE;
}

RULE(grad_sigmoid) { /* dy * y * (1 - y) */
  if (need[0]) din[0] = mul(ad, dout[0], mul(ad, Y(0), bp_ad_op2(ad, "Sub", cst(ad, 1, Y(0)), Y(0))));
  DONE;
}

RULE(grad_relu) {
  if (need[0])
    din[0] = mul(ad, dout[0], cast_to(ad, bp_ad_op2(ad, "Greater", X(0), cst(ad, 0, X(0))), dt(ad, X(0))));
  DONE;
}

RULE(grad_erf) { /* dy * 2/sqrt(pi) * exp(-x^2) */
  if (need[0]) {
    int ex = bp_ad_op1(ad, "Exp", bp_ad_op1(ad, "Neg", mul(ad, X(0), X(0))));
    din[0] = mul(ad, dout[0], bp_ad_scale(ad, ex, 1.1283791670955126));
  }
  DONE;
}

RULE(grad_gelu) {
  if (!need[0]) DONE;
  int in[2] = {dout[0], X(0)};
  int node = bp_ad_node(ad, BP_DOMAIN, "GeluGrad", 2, in, 1);
  bp_ad_attr_string(ad, node, "approximate", bp_attr_string(n, "approximate", "none"));
  din[0] = bp_ad_infer(ad, node);
  DONE;
}

/* Cast, and CastLike (dynamo's type_as): the gradient goes back to the input's dtype; CastLike's
 * second input gives only a dtype, no gradient. */
RULE(grad_cast) {
  if (need[0] && bp_dtype_is_float(dt(ad, Y(0)))) din[0] = cast_to(ad, dout[0], dt(ad, X(0)));
  DONE;
}

RULE(grad_where) {
  for (int k = 1; k < 3; k++) {
    if (!need[k]) continue;
    int z = cst(ad, 0, dout[0]);
    int in[3] = {X(0), k == 1 ? dout[0] : z, k == 1 ? z : dout[0]};
    if (z < 0) break;
    din[k] = bp_ad_sum_to(ad, bp_ad_infer(ad, bp_ad_node(ad, NULL, "Where", 3, in, 1)), X(k));
  }
  DONE;
}

/* ---- shape ----------------------------------------------------------------------------------- */

RULE(grad_reshape) { if (need[0]) din[0] = bp_ad_reshape_like(ad, dout[0], X(0)); DONE; }
RULE(grad_expand) { if (need[0]) din[0] = bp_ad_sum_to(ad, dout[0], X(0)); DONE; }

RULE(grad_transpose) {
  int rank = bp_ad_val(ad, X(0))->rank, c = 0;
  const int64_t *perm = bp_attr_ints(n, "perm", &c);
  int64_t inv[BP_MAX_RANK];
  for (int i = 0; i < rank; i++) {
    int64_t p = perm && c == rank ? perm[i] : rank - 1 - i;
    inv[p] = i;
  }
  if (need[0]) din[0] = bp_ad_transpose(ad, dout[0], rank, inv);
  DONE;
}

RULE(grad_concat) {
  const bp_value *y = bp_ad_val(ad, Y(0));
  int64_t axis = bp_attr_int(n, "axis", 0);
  if (axis < 0) axis += y->rank;
  int64_t off = 0;
  for (int k = 0; k < n->nin; k++) {
    int64_t len = bp_ad_val(ad, X(k))->dims[axis];
    if (need[k]) {
      int64_t s = off, en = off + len;
      int in[4] = {dout[0], bp_ad_const_i64(ad, 1, &s), bp_ad_const_i64(ad, 1, &en), bp_ad_const_i64(ad, 1, &axis)};
      if (in[1] < 0 || in[2] < 0 || in[3] < 0) break;
      din[k] = bp_ad_infer(ad, bp_ad_node(ad, NULL, "Slice", 4, in, 1));
    }
    off += len;
  }
  DONE;
}

RULE(grad_split) {
  if (!need[0]) DONE;
  int parts[64];
  for (int k = 0; k < n->nout; k++) parts[k] = dout[k] >= 0 ? dout[k] : zeros_like(ad, Y(k));
  int64_t axis = bp_attr_int(n, "axis", 0);
  int node = bp_ad_node(ad, NULL, "Concat", n->nout, parts, 1);
  bp_ad_attr_int(ad, node, "axis", axis);
  din[0] = bp_ad_infer(ad, node);
  DONE;
}

RULE(grad_slice) {
  if (!need[0]) DONE;
  int in[5] = {dout[0], -1, -1, -1, -1};
  for (int k = 1; k < n->nin && k < 5; k++) in[k] = X(k);
  int nin = n->nin < 5 ? n->nin : 5;
  int node = bp_ad_node(ad, BP_DOMAIN, "SliceGrad", nin < 3 ? 3 : nin, in, 1);
  const bp_value *x = bp_ad_val(ad, X(0));
  bp_ad_attr_ints(ad, node, "shape", x->rank, x->dims);
  if (node >= 0) {
    bp_node *sg = ad->g->nodes[node];
    sg->opset = n->opset; /* Slice's inputs-vs-attributes form */
    for (int a = 0; a < n->nattr; a++) {
      const bp_attr *at = &n->attrs[a];
      if (at->type == BP_ATTR_INTS) bp_ad_attr_ints(ad, node, at->name, at->n, at->ints);
    }
  }
  din[0] = bp_ad_infer(ad, node);
  DONE;
}

RULE(grad_gather) {
  if (!need[0]) DONE;
  int in[2] = {dout[0], X(1)};
  int node = bp_ad_node(ad, BP_DOMAIN, "GatherGrad", 2, in, 1);
  const bp_value *x = bp_ad_val(ad, X(0));
  bp_ad_attr_int(ad, node, "axis", bp_attr_int(n, "axis", 0));
  bp_ad_attr_ints(ad, node, "shape", x->rank, x->dims);
  din[0] = bp_ad_infer(ad, node);
  DONE;
}

/* ---- nn ---------------------------------------------------------------------------------------- */

static int gemm(bp_ad *ad, int a, int b, int ta, int tb, double alpha);

static int swap_last2(bp_ad *ad, int x) {
  int rank = bp_ad_val(ad, x)->rank;
  int64_t perm[BP_MAX_RANK];
  for (int i = 0; i < rank; i++) perm[i] = i;
  perm[rank - 1] = rank - 2;
  perm[rank - 2] = rank - 1;
  return bp_ad_transpose(ad, x, rank, perm);
}

RULE(grad_matmul) {
  int a = X(0), b = X(1), dy = dout[0];
  const bp_value *va = bp_ad_val(ad, a), *vb = bp_ad_val(ad, b);
  int a1 = va->rank == 1, b1 = vb->rank == 1;
  if (a1 || b1) { /* numpy semantics: a 1-D A is a row [1, K], a 1-D B a column [K, 1]; dy gets the 1s back */
    bp_value d = *bp_ad_val(ad, dy);
    if (b1) d.dims[d.rank++] = 1;
    if (a1) {
      for (int i = d.rank; i > d.rank - 1; i--) d.dims[i] = d.dims[i - 1];
      d.dims[d.rank - 1] = 1;
      d.rank++;
    }
    if (a1) a = bp_ad_reshape(ad, a, 2, (int64_t[]){1, va->dims[0]});
    if (b1) b = bp_ad_reshape(ad, b, 2, (int64_t[]){vb->dims[0], 1});
    dy = bp_ad_reshape(ad, dy, d.rank, d.dims);
  }
  if (!a1 && !b1 && vb->rank == 2) {
    /* [..., K] x [K, N] (an activation times a weight): fold the batch dimensions into rows and
     * use Gemm's transpose flags, one BLAS call each and no transposed copies or SumTo */
    int64_t m = 1, k = va->dims[va->rank - 1], nn = vb->dims[1];
    for (int i = 0; i < va->rank - 1; i++) m *= va->dims[i];
    int a2 = bp_ad_reshape(ad, a, 2, (int64_t[]){m, k}), dy2 = bp_ad_reshape(ad, dy, 2, (int64_t[]){m, nn});
    if (need[0]) din[0] = bp_ad_reshape_like(ad, gemm(ad, dy2, b, 0, 1, 1.0), X(0));
    if (need[1]) din[1] = gemm(ad, a2, dy2, 1, 0, 1.0);
    DONE;
  }
  if (need[0])
    din[0] = bp_ad_reshape_like(ad, bp_ad_sum_to(ad, bp_ad_op2(ad, "MatMul", dy, swap_last2(ad, b)), a), X(0));
  if (need[1])
    din[1] = bp_ad_reshape_like(ad, bp_ad_sum_to(ad, bp_ad_op2(ad, "MatMul", swap_last2(ad, a), dy), b), X(1));
  DONE;
}

static int gemm(bp_ad *ad, int a, int b, int ta, int tb, double alpha) {
  if (a < 0 || b < 0) return -1;
  int in[2] = {a, b};
  int node = bp_ad_node(ad, NULL, "Gemm", 2, in, 1);
  if (ta) bp_ad_attr_int(ad, node, "transA", 1);
  if (tb) bp_ad_attr_int(ad, node, "transB", 1);
  if (alpha != 1.0) bp_ad_attr_float(ad, node, "alpha", (float)alpha);
  return bp_ad_infer(ad, node);
}

RULE(grad_gemm) { /* Y = alpha * op(A) op(B) + beta * C */
  int ta = bp_attr_int(n, "transA", 0) != 0, tb = bp_attr_int(n, "transB", 0) != 0;
  double alpha = bp_attr_float(n, "alpha", 1.0f), beta = bp_attr_float(n, "beta", 1.0f);
  int dy = dout[0];
  if (need[0]) din[0] = ta ? gemm(ad, X(1), dy, tb, 1, alpha) : gemm(ad, dy, X(1), 0, !tb, alpha);
  if (need[1]) din[1] = tb ? gemm(ad, dy, X(0), 1, ta, alpha) : gemm(ad, X(0), dy, !ta, 0, alpha);
  if (n->nin > 2 && need[2]) din[2] = bp_ad_sum_to(ad, bp_ad_scale(ad, dy, beta), X(2));
  DONE;
}

RULE(grad_softmax) {
  if (!need[0]) DONE;
  int in[2] = {dout[0], Y(0)};
  int node = bp_ad_node(ad, BP_DOMAIN, "SoftmaxGrad", 2, in, 1);
  const bp_attr *ax = bp_node_attr(n, "axis");
  if (ax) bp_ad_attr_int(ad, node, "axis", ax->i);
  if (node >= 0) ad->g->nodes[node]->opset = n->opset; /* axis semantics differ before opset 13 */
  din[0] = bp_ad_infer(ad, node);
  DONE;
}

/* Axes [from, rank) as a 1-D int64 constant. */
static int axes_from(bp_ad *ad, int64_t from, int rank) {
  int64_t ax[BP_MAX_RANK];
  int na = 0;
  for (int64_t i = from; i < rank; i++) ax[na++] = i;
  return bp_ad_const_i64(ad, na, ax);
}

/* Reduce{Sum,Mean}(x, axes) with keepdims=1 (opset 18: axes as an input). */
static int reduce_keep(bp_ad *ad, const char *op, int x, int axes) {
  if (x < 0 || axes < 0) return -1;
  int in[2] = {x, axes};
  int node = bp_ad_node(ad, NULL, op, 2, in, 1);
  bp_ad_attr_int(ad, node, "keepdims", 1);
  return bp_ad_infer(ad, node);
}

RULE(grad_logsoftmax) { /* dx = dy - softmax(x) * sum(dy over the axis) */
  if (!need[0]) DONE;
  int rank = bp_ad_val(ad, X(0))->rank;
  int old = n->opset > 0 && n->opset < 13; /* before 13: over the input coerced to 2-D at `axis` */
  int64_t axis = bp_attr_int(n, "axis", old ? 1 : -1);
  if (axis < 0) axis += rank;
  int axes = old ? axes_from(ad, axis, rank) : bp_ad_const_i64(ad, 1, &axis);
  int sm = bp_ad_op1(ad, "Exp", Y(0));
  din[0] = bp_ad_op2(ad, "Sub", dout[0], mul(ad, sm, reduce_keep(ad, "ReduceSum", dout[0], axes)));
  DONE;
}

RULE(grad_rmsnorm) { /* y = x r s, r = 1/sqrt(mean(x^2) + eps): dx = r g - x r^3 mean(g x), g = dy s */
  const bp_value *x = bp_ad_val(ad, X(0));
  int64_t axis;
  if (bp_norm_axis(bp_attr_int(n, "axis", -1), x->rank, &axis, n->name, ad->e)) return -1;
  int axes = axes_from(ad, axis, x->rank);
  double eps = bp_attr_float(n, "epsilon", 1e-5f);
  int ms = reduce_keep(ad, "ReduceMean", mul(ad, X(0), X(0)), axes);
  int r = bp_ad_op1(ad, "Reciprocal", bp_ad_op1(ad, "Sqrt", bp_ad_op2(ad, "Add", ms, cst(ad, eps, X(0)))));
  if (need[0]) {
    int g = mul(ad, dout[0], X(1));
    int m = reduce_keep(ad, "ReduceMean", mul(ad, g, X(0)), axes);
    int r3 = mul(ad, r, mul(ad, r, r));
    din[0] = bp_ad_op2(ad, "Sub", mul(ad, r, g), mul(ad, X(0), mul(ad, r3, m)));
  }
  if (need[1]) din[1] = bp_ad_sum_to(ad, mul(ad, dout[0], mul(ad, X(0), r)), X(1));
  DONE;
}

RULE(grad_layernorm) {
  for (int k = 1; k < n->nout; k++)
    if (dout[k] >= 0) return bp_errf(ad->e, "gradients through the Mean/InvStdDev outputs are not supported");
  int in[3] = {dout[0], X(0), X(1)};
  int node = bp_ad_node(ad, BP_DOMAIN, "LayerNormGrad", 3, in, 3);
  bp_ad_attr_int(ad, node, "axis", bp_attr_int(n, "axis", -1));
  bp_ad_attr_float(ad, node, "epsilon", bp_attr_float(n, "epsilon", 1e-5f));
  if (bp_ad_infer(ad, node) < 0) return -1;
  if (need[0]) din[0] = bp_ad_out(ad, node, 0);
  if (need[1]) din[1] = bp_ad_reshape_like(ad, bp_ad_out(ad, node, 1), X(1));
  if (n->nin > 2 && need[2]) {
    const bp_value *b = bp_ad_val(ad, X(2));
    int db = bp_ad_out(ad, node, 2);
    din[2] = bp_value_numel(b) == bp_value_numel(bp_ad_val(ad, db)) ? bp_ad_reshape_like(ad, db, X(2))
                                                                     : bp_ad_sum_to(ad, db, X(2));
  }
  DONE;
}

/* The reduced axes of a Reduce* node (opset-dependent attribute or input) as a mask, and the
 * input's shape with those axes kept as 1 (what the output looks like with keepdims). *noop: the
 * node reduces nothing (noop_with_empty_axes), so its gradient passes through unchanged. */
static int reduce_shape(bp_ad *ad, bp_node *n, unsigned char *mask, int64_t *keep, int *noop) {
  const bp_value *x = bp_ad_val(ad, X(0));
  bp_value *in[2] = {&ad->g->tensors[X(0)]->v, n->nin > 1 && X(1) >= 0 ? &ad->g->tensors[X(1)]->v : NULL};
  if (bp_nn_reduce_axes(n, in, n->nin, x, mask, noop, ad->e)) return -1;
  for (int i = 0; i < x->rank; i++) keep[i] = mask[i] ? 1 : x->dims[i];
  return 0;
}

static int grad_reduce(bp_ad *ad, bp_node *n, const int *dout, const unsigned char *need, int *din, int mean) {
  if (!need[0]) DONE;
  const bp_value *x = bp_ad_val(ad, X(0));
  unsigned char mask[BP_MAX_RANK];
  int64_t keep[BP_MAX_RANK], count = 1;
  int noop;
  if (reduce_shape(ad, n, mask, keep, &noop)) return -1;
  if (noop) {
    din[0] = dout[0];
    DONE;
  }
  for (int i = 0; i < x->rank; i++)
    if (mask[i]) count *= x->dims[i];
  int g = bp_ad_reshape(ad, dout[0], x->rank, keep);
  g = bp_ad_op2(ad, "Expand", g, bp_ad_const_i64(ad, x->rank, x->dims));
  din[0] = mean ? bp_ad_scale(ad, g, 1.0 / (double)count) : g;
  DONE;
}
RULE(grad_reduce_sum) { return grad_reduce(ad, n, dout, need, din, 0); }

/* ReduceMax/ReduceMin: the gradient goes to the positions equal to the result, shared evenly
 * among ties (torch.amax/amin). */
RULE(grad_reduce_extremum) {
  if (!need[0]) DONE;
  const bp_value *x = bp_ad_val(ad, X(0));
  unsigned char mask[BP_MAX_RANK];
  int64_t keep[BP_MAX_RANK], ax[BP_MAX_RANK];
  int noop, na = 0;
  if (reduce_shape(ad, n, mask, keep, &noop)) return -1;
  if (noop) {
    din[0] = dout[0];
    DONE;
  }
  for (int i = 0; i < x->rank; i++)
    if (mask[i]) ax[na++] = i;
  int y = bp_ad_reshape(ad, Y(0), x->rank, keep), dy = bp_ad_reshape(ad, dout[0], x->rank, keep);
  int eq = cast_to(ad, bp_ad_op2(ad, "Equal", X(0), y), dt(ad, X(0)));
  int cnt = reduce_keep(ad, "ReduceSum", eq, bp_ad_const_i64(ad, na, ax));
  din[0] = mul(ad, eq, bp_ad_op2(ad, "Div", dy, cnt));
  DONE;
}

/* Min/Max (variadic, broadcasting): each input equal to the result gets the gradient, shared
 * evenly among ties (torch.maximum/minimum). */
RULE(grad_minmax) {
  int eq[64], cnt = -1;
  for (int k = 0; k < n->nin && k < 64; k++) {
    eq[k] = cast_to(ad, bp_ad_op2(ad, "Equal", X(k), Y(0)), dt(ad, Y(0)));
    cnt = cnt < 0 ? eq[k] : bp_ad_op2(ad, "Add", cnt, eq[k]);
  }
  int share = n->nin > 1 ? bp_ad_op2(ad, "Div", dout[0], cnt) : dout[0];
  for (int k = 0; k < n->nin && k < 64; k++)
    if (need[k]) din[k] = bp_ad_sum_to(ad, mul(ad, share, eq[k]), X(k));
  DONE;
}

/* Clip: dy passes where min <= x <= max (torch.clamp); min/max get dy where x is clipped to them. */
RULE(grad_clip) {
  int lo = -1, hi = -1;
  if (n->opset > 0 && n->opset < 11) {
    const bp_attr *a = bp_node_attr(n, "min"), *b = bp_node_attr(n, "max");
    if (a) lo = cst(ad, a->f, X(0));
    if (b) hi = cst(ad, b->f, X(0));
  } else {
    if (n->nin > 1) lo = X(1);
    if (n->nin > 2) hi = X(2);
  }
  int pass = -1;
  if (lo >= 0) pass = bp_ad_op2(ad, "GreaterOrEqual", X(0), lo);
  if (hi >= 0) {
    int p2 = bp_ad_op2(ad, "LessOrEqual", X(0), hi);
    pass = pass < 0 ? p2 : bp_ad_op2(ad, "And", pass, p2);
  }
  if (need[0]) din[0] = pass < 0 ? dout[0] : mul(ad, dout[0], cast_to(ad, pass, dt(ad, X(0))));
  if (n->nin > 1 && need[1] && lo >= 0)
    din[1] = bp_ad_sum_to(ad, mul(ad, dout[0], cast_to(ad, bp_ad_op2(ad, "Less", X(0), lo), dt(ad, X(0)))), X(1));
  if (n->nin > 2 && need[2] && hi >= 0) {
    int above = bp_ad_op2(ad, "Greater", X(0), hi);
    if (lo >= 0) above = bp_ad_op2(ad, "And", above, bp_ad_op2(ad, "GreaterOrEqual", X(0), lo));
    din[2] = bp_ad_sum_to(ad, mul(ad, dout[0], cast_to(ad, above, dt(ad, X(0)))), X(2));
  }
  DONE;
}

/* GatherElements: dy scatter-added into zeros of the data's shape (ScatterElements, reduction add). */
RULE(grad_gather_elements) {
  if (!need[0]) DONE;
  int in[3] = {zeros_like(ad, X(0)), X(1), dout[0]};
  if (in[0] < 0) return -1;
  int node = bp_ad_node(ad, NULL, "ScatterElements", 3, in, 1);
  bp_ad_attr_int(ad, node, "axis", bp_attr_int(n, "axis", 0));
  bp_ad_attr_string(ad, node, "reduction", "add");
  din[0] = bp_ad_infer(ad, node);
  DONE;
}
/* GatherND (batch_dims 0): dy scatter-added into zeros of the data's shape (ScatterND, reduction
 * add), so index tuples that repeat (x[..., [0, 0], :]) sum their gradients. PyTorch's dynamo export
 * writes tensor indexing with a constant index (Falcon's fused multi-query qkv, qkv[..., -2, :]) as
 * GatherND. With batch_dims > 0 every batch has its own index tuples, which ScatterND cannot express. */
RULE(grad_gather_nd) {
  if (!need[0]) DONE;
  int64_t bd = bp_attr_int(n, "batch_dims", 0);
  if (bd != 0)
    return bp_errf(ad->e, "no gradient rule for batch_dims=%lld (only 0)", (long long)bd);
  int in[3] = {zeros_like(ad, X(0)), X(1), dout[0]};
  if (in[0] < 0) return -1;
  int node = bp_ad_node(ad, NULL, "ScatterND", 3, in, 1);
  bp_ad_attr_string(ad, node, "reduction", "add");
  din[0] = bp_ad_infer(ad, node);
  DONE;
}
/* A forward output the backward reads (Dropout's mask, TopK's indices) that the export dropped:
 * gives n its second output "<node>/<suffix>", shaped like tensor `like`, of dtype dt, produced by
 * the node itself (so the executor fills it). Nothing to do when the output is there. */
static int stash_output(bp_ad *ad, bp_node *n, const char *suffix, int like, bp_dtype dt) {
  if (n->nout >= 2 && Y(1) >= 0) return 0;
  char name[512];
  snprintf(name, sizeof name, "%s/%s", n->name, suffix);
  int m = bp_graph_tensor(ad->g, name);
  if (m < 0) return bp_errf(ad->e, "out of memory");
  if (n->nout < 2) {
    int *no = realloc(n->out, sizeof(int) * 2);
    if (!no) return bp_errf(ad->e, "out of memory");
    n->out = no;
    n->nout = 2;
  }
  n->out[1] = m;
  bp_tensor *mt = ad->g->tensors[m];
  mt->v = *bp_ad_val(ad, like);
  mt->v.dtype = dt;
  mt->v.data = NULL;
  mt->producer = ad->cur;
  return 0;
}

/* TopK: the values' gradient goes back to the positions the indices name (ScatterElements add into
 * zeros along the axis); the indices are the stash, so an export that dropped them gets them back. */
RULE(grad_topk) {
  if (!need[0] || dout[0] < 0) DONE;
  if (stash_output(ad, n, "indices", Y(0), BP_I64) < 0) return -1;
  int in[3] = {zeros_like(ad, X(0)), Y(1), dout[0]};
  if (in[0] < 0) return -1;
  int node = bp_ad_node(ad, NULL, "ScatterElements", 3, in, 1);
  bp_ad_attr_int(ad, node, "axis", bp_attr_int(n, "axis", -1));
  bp_ad_attr_string(ad, node, "reduction", "add");
  din[0] = bp_ad_infer(ad, node);
  DONE;
}
/* Tile: output axis i is r_i copies of input axis i (index k * d_i + j), so dy viewed as
 * [.., r_i, d_i, ..] summed over the copies (SumTo [.., 1, d_i, ..]) is dx. The repeats must be
 * constant (they set the output shape). Axes with r_i = 1 or d_i = 1 need no split. */
RULE(grad_tile) {
  if (!need[0]) DONE;
  const bp_value *x = bp_ad_val(ad, X(0)), *r = bp_ad_val(ad, X(1));
  if (!r->data) return bp_errf(ad->e, "the repeats must be a compile-time constant to train");
  int64_t split[2 * BP_MAX_RANK], sum[2 * BP_MAX_RANK];
  int rank = 0;
  for (int i = 0; i < x->rank; i++) {
    int64_t rep = bp_get_i64(r->data, r->dtype, i), d = x->dims[i];
    if (rep > 1 && d > 1) {
      split[rank] = rep, sum[rank++] = 1;
      split[rank] = d, sum[rank++] = d;
    } else {
      split[rank] = rep * d, sum[rank++] = d;
    }
  }
  if (rank > BP_MAX_RANK)
    return bp_errf(ad->e, "tiling %d axes of a rank-%d input needs rank %d, above the supported %d", rank - x->rank,
                   x->rank, rank, BP_MAX_RANK);
  int v = bp_ad_reshape(ad, dout[0], rank, split);
  int node = v < 0 ? -1 : bp_ad_node(ad, BP_DOMAIN, "SumTo", 1, &v, 1);
  bp_ad_attr_ints(ad, node, "shape", rank, sum);
  din[0] = bp_ad_reshape(ad, bp_ad_infer(ad, node), x->rank, x->dims);
  DONE;
}
RULE(grad_reduce_mean) { return grad_reduce(ad, n, dout, need, din, 1); }

RULE(grad_dropout) {
  if (!need[0]) DONE;
  double ratio = n->opset >= 12 ? 0.5 : bp_attr_float(n, "ratio", 0.5f);
  if (n->opset >= 12 && n->nin > 1 && X(1) >= 0) {
    const bp_value *r = bp_ad_val(ad, X(1));
    if (!r->data) return bp_errf(ad->e, "the dropout ratio must be a compile-time constant to train");
    ratio = bp_get_f64(r->data, r->dtype, 0);
  }
  if (!ad->training || ratio == 0) {
    din[0] = dout[0];
    DONE;
  }
  /* The mask is the stash of Dropout: give the node its mask output if the export dropped it. */
  if (stash_output(ad, n, "mask", X(0), BP_BOOL) < 0) return -1;
  int in[2] = {dout[0], Y(1)};
  int node = bp_ad_node(ad, BP_DOMAIN, "DropoutGrad", 2, in, 1);
  bp_ad_attr_float(ad, node, "scale", ratio < 1 ? (float)(1.0 / (1.0 - ratio)) : 0.0f);
  din[0] = bp_ad_infer(ad, node);
  DONE;
}

RULE(grad_sce) {
  if (!need[0]) DONE;
  int in[3] = {dout[0], X(0), X(1)};
  int node = bp_ad_node(ad, BP_DOMAIN, "SoftmaxCrossEntropyGrad", 3, in, 1);
  bp_ad_attr_int(ad, node, "ignore_index", bp_attr_int(n, "ignore_index", -100));
  din[0] = bp_ad_infer(ad, node);
  DONE;
}

const bp_grad_rule bp_grad_rules[] = {
    {"Add", grad_add}, {"Sub", grad_sub}, {"Mul", grad_mul}, {"Div", grad_div}, {"Pow", grad_pow},
    {"Sum", grad_sum}, {"Neg", grad_neg}, {"Sqrt", grad_sqrt}, {"Reciprocal", grad_reciprocal},
    {"Exp", grad_exp}, {"Log", grad_log}, {"Sin", grad_sin}, {"Cos", grad_cos}, {"Abs", grad_abs},
    {"Tanh", grad_tanh}, {"Sigmoid", grad_sigmoid}, {"Relu", grad_relu}, {"Erf", grad_erf},
    {"Gelu", grad_gelu}, {"Cast", grad_cast}, {"CastLike", grad_cast}, {"Where", grad_where}, {"Identity", grad_identity},
    {"Reshape", grad_reshape}, {"Flatten", grad_reshape}, {"Squeeze", grad_reshape},
    {"Unsqueeze", grad_reshape}, {"Expand", grad_expand}, {"Transpose", grad_transpose},
    {"Concat", grad_concat}, {"Split", grad_split}, {"Slice", grad_slice}, {"Gather", grad_gather},
    {"MatMul", grad_matmul}, {"Gemm", grad_gemm}, {"Softmax", grad_softmax},
    {"LayerNormalization", grad_layernorm}, {"ReduceSum", grad_reduce_sum},
    {"ReduceMean", grad_reduce_mean}, {"Dropout", grad_dropout}, {"SoftmaxCrossEntropy", grad_sce},
    {"LogSoftmax", grad_logsoftmax}, {"RMSNormalization", grad_rmsnorm}, {"ReduceMax", grad_reduce_extremum},
    {"ReduceMin", grad_reduce_extremum}, {"Min", grad_minmax}, {"Max", grad_minmax}, {"Clip", grad_clip},
    {"GatherElements", grad_gather_elements}, {"GatherND", grad_gather_nd},
    {"TopK", grad_topk}, {"Tile", grad_tile},
    {NULL, NULL},
};
