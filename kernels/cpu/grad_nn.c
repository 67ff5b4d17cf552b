/* kernels/cpu/grad_nn.c — backward kernels of softmax, layer normalisation, dropout and GELU, and
 * the softmax cross-entropy loss with its gradient (see kernels/cpu/grad.h). */
#include "kernels/cpu/grad.h"
#include "kernels/cpu/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LD bp_grad_ld
#define ST bp_grad_st

BP_GRAD_EVAL(bp_grad_eval_softmax) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *dy = in[0], *y = in[1];
  bp_value *dx = out[0];
  int64_t outer, len, inner;
  if (bp_nn_softmax_split(n, y, &outer, &len, &inner, e)) return -1;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < inner; j++) {
      int64_t base = o * len * inner + j;
      double s = 0;
      for (int64_t i = 0; i < len; i++) s += LD(dy, base + i * inner) * LD(y, base + i * inner);
      for (int64_t i = 0; i < len; i++) {
        int64_t k = base + i * inner;
        ST(dx, k, LD(y, k) * (LD(dy, k) - s));
      }
    }
  return 0;
}

/* y = (x - mu) * is * scale + bias over rows of `cols`; scale is [cols] (checked by inference). */
BP_GRAD_EVAL(bp_grad_eval_layernorm) {
  (void)ctx, (void)nin;
  const bp_value *dy = in[0], *x = in[1], *sc = in[2];
  bp_value *dx = out[0], *ds = nout > 1 ? out[1] : NULL, *db = nout > 2 ? out[2] : NULL;
  int64_t axis;
  if (bp_norm_axis(bp_attr_int(n, "axis", -1), x->rank, &axis, "LayerNormGrad", e)) return -1;
  double eps = bp_attr_float(n, "epsilon", 1e-5f);
  int64_t rows = 1, cols = 1;
  for (int i = 0; i < x->rank; i++) {
    if (i < axis) rows *= x->dims[i];
    else cols *= x->dims[i];
  }
  double *acc_s = calloc((size_t)(2 * cols), sizeof(double)), *acc_b = acc_s ? acc_s + cols : NULL;
  double *xh = malloc(sizeof(double) * (size_t)cols), *g = malloc(sizeof(double) * (size_t)cols);
  if (!acc_s || !xh || !g) {
    free(acc_s), free(xh), free(g);
    return bp_errf(e, "out of memory");
  }
  for (int64_t r = 0; r < rows; r++) {
    int64_t b = r * cols;
    double mu = 0, var = 0;
    for (int64_t i = 0; i < cols; i++) mu += LD(x, b + i);
    mu /= (double)cols;
    for (int64_t i = 0; i < cols; i++) {
      double d = LD(x, b + i) - mu;
      var += d * d;
    }
    var /= (double)cols;
    double is = 1.0 / sqrt(var + eps), mg = 0, mgx = 0;
    for (int64_t i = 0; i < cols; i++) {
      double d = LD(dy, b + i);
      xh[i] = (LD(x, b + i) - mu) * is;
      g[i] = d * LD(sc, i);
      acc_s[i] += d * xh[i];
      acc_b[i] += d;
      mg += g[i];
      mgx += g[i] * xh[i];
    }
    mg /= (double)cols;
    mgx /= (double)cols;
    for (int64_t i = 0; i < cols; i++) ST(dx, b + i, is * (g[i] - mg - xh[i] * mgx));
  }
  for (int64_t i = 0; i < cols; i++) {
    if (ds) ST(ds, i, acc_s[i]);
    if (db) ST(db, i, acc_b[i]);
  }
  free(acc_s), free(xh), free(g);
  return 0;
}

BP_GRAD_EVAL(bp_grad_eval_dropout) {
  (void)ctx, (void)nin, (void)nout, (void)e;
  const bp_value *dy = in[0], *mask = in[1];
  double scale = bp_attr_float(n, "scale", 1.0f);
  const uint8_t *m = mask->data;
  int64_t total = bp_value_numel(dy);
  for (int64_t i = 0; i < total; i++) ST(out[0], i, m[i] ? LD(dy, i) * scale : 0.0);
  return 0;
}

BP_GRAD_EVAL(bp_grad_eval_gelu) {
  (void)ctx, (void)nin, (void)nout, (void)e;
  const bp_value *dy = in[0], *x = in[1];
  int tanh_approx = strcmp(bp_attr_string(n, "approximate", "none"), "tanh") == 0;
  int64_t total = bp_value_numel(dy);
  for (int64_t i = 0; i < total; i++) {
    double v = LD(x, i), d;
    if (tanh_approx) {
      const double k = 0.7978845608028654; /* sqrt(2 / pi) */
      double u = k * (v + 0.044715 * v * v * v), t = tanh(u);
      d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v);
    } else {
      d = 0.5 * (1 + erf(v * 0.7071067811865476)) + v * exp(-0.5 * v * v) * 0.3989422804014327;
    }
    ST(out[0], i, LD(dy, i) * d);
  }
  return 0;
}

/* logits [rows, C] (leading dims flattened), targets [rows] integer. */
static int sce_target(const bp_node *n, const bp_value *t, int64_t r, int64_t c, int64_t ignore, int64_t *out,
                      bp_err *e) {
  int64_t v = bp_get_i64(t->data, t->dtype, r);
  if (v == ignore) {
    *out = -1;
    return 0;
  }
  if (v < 0 || v >= c)
    return bp_errf(e, "node '%s' (%s): target %lld at position %lld is outside [0, %lld) (and is not the ignore "
                   "index %lld)", n->name, n->op_type, (long long)v, (long long)r, (long long)c, (long long)ignore);
  *out = v;
  return 0;
}

BP_GRAD_EVAL(bp_grad_eval_sce) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0], *t = in[1];
  int64_t c = x->dims[x->rank - 1], rows = bp_value_numel(x) / (c ? c : 1);
  int64_t ignore = bp_attr_int(n, "ignore_index", -100), count = 0;
  double total = 0;
  for (int64_t r = 0; r < rows; r++) {
    int64_t tg;
    if (sce_target(n, t, r, c, ignore, &tg, e)) return -1;
    if (tg < 0) continue;
    double mx = -INFINITY, s = 0;
    for (int64_t i = 0; i < c; i++) mx = fmax(mx, LD(x, r * c + i));
    for (int64_t i = 0; i < c; i++) s += exp(LD(x, r * c + i) - mx);
    total += mx + log(s) - LD(x, r * c + tg);
    count++;
  }
  ST(out[0], 0, count ? total / (double)count : NAN);
  return 0;
}

BP_GRAD_EVAL(bp_grad_eval_sce_grad) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *dl = in[0], *x = in[1], *t = in[2];
  bp_value *dx = out[0];
  int64_t c = x->dims[x->rank - 1], rows = bp_value_numel(x) / (c ? c : 1);
  int64_t ignore = bp_attr_int(n, "ignore_index", -100), count = 0;
  for (int64_t r = 0; r < rows; r++) {
    int64_t tg;
    if (sce_target(n, t, r, c, ignore, &tg, e)) return -1;
    count += tg >= 0;
  }
  double scale = count ? LD(dl, 0) / (double)count : 0;
  for (int64_t r = 0; r < rows; r++) {
    int64_t tg;
    sce_target(n, t, r, c, ignore, &tg, e);
    if (tg < 0) {
      for (int64_t i = 0; i < c; i++) ST(dx, r * c + i, 0.0);
      continue;
    }
    double mx = -INFINITY, s = 0;
    for (int64_t i = 0; i < c; i++) mx = fmax(mx, LD(x, r * c + i));
    for (int64_t i = 0; i < c; i++) s += exp(LD(x, r * c + i) - mx);
    for (int64_t i = 0; i < c; i++) {
      double p = exp(LD(x, r * c + i) - mx) / s;
      ST(dx, r * c + i, scale * (p - (i == tg ? 1.0 : 0.0)));
    }
  }
  return 0;
}
