/* kernels/cpu/nn_batchnorm.c — channel normalisations over x = [N, C, spatial...]:
 * BatchNormalization (inference with running statistics, or training_mode with batch statistics
 * and updated running statistics), InstanceNormalization (per sample and channel) and
 * GroupNormalization (per sample and group of channels). Statistics in double; S = spatial size. */
#include "kernels/cpu/nn.h"

#include <math.h>
#include <stdlib.h>

static inline double ld(const void *p, bp_dtype t, int64_t i) {
  return t == BP_F32 ? ((const float *)p)[i] : ((const double *)p)[i];
}
static inline void st(void *p, bp_dtype t, int64_t i, double v) {
  if (t == BP_F32) ((float *)p)[i] = (float)v;
  else ((double *)p)[i] = v;
}

static int check(const bp_node *n, const bp_value *x, int nparams, bp_value *const *in, bp_err *e) {
  if (bp_nn_check_dtype(n, x->dtype, 0, 0, "input X", e)) return -1;
  if (x->rank < 2) return bp_errf(e, "node '%s' (%s): X must have rank >= 2 ([N, C, ...])", n->name, n->op_type);
  for (int i = 1; i <= nparams; i++)
    if (in[i] && bp_nn_check_dtype(n, in[i]->dtype, 0, 0, "parameter input", e)) return -1;
  return 0;
}

static int64_t spatial(const bp_value *x) {
  int64_t s = 1;
  for (int i = 2; i < x->rank; i++) s *= x->dims[i];
  return s;
}

int bp_nn_eval_batchnorm(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                         bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nin;
  const bp_value *x = in[0], *sc = in[1], *b = in[2], *mean = in[3], *var = in[4];
  bp_value *y = out[0];
  if (check(n, x, 4, in, e)) return -1;
  double eps = bp_attr_float(n, "epsilon", 1e-5f), mom = bp_attr_float(n, "momentum", 0.9f);
  int training = n->opset >= 14 && bp_attr_int(n, "training_mode", 0) != 0;
  int64_t nb = x->dims[0], c = x->dims[1], s = spatial(x);
  for (int64_t ch = 0; ch < c; ch++) {
    double mu = ld(mean->data, mean->dtype, ch), v = ld(var->data, var->dtype, ch);
    if (training) { /* batch statistics over N and spatial (population variance) */
      double sum = 0, sq = 0, cnt = (double)(nb * s);
      for (int64_t i = 0; i < nb; i++)
        for (int64_t k = 0; k < s; k++) sum += ld(x->data, x->dtype, (i * c + ch) * s + k);
      double bm = cnt > 0 ? sum / cnt : 0;
      for (int64_t i = 0; i < nb; i++)
        for (int64_t k = 0; k < s; k++) {
          double d = ld(x->data, x->dtype, (i * c + ch) * s + k) - bm;
          sq += d * d;
        }
      double bv = cnt > 0 ? sq / cnt : 0;
      if (nout > 1 && out[1]) st(out[1]->data, out[1]->dtype, ch, mu * mom + bm * (1 - mom));
      if (nout > 2 && out[2]) st(out[2]->data, out[2]->dtype, ch, v * mom + bv * (1 - mom));
      mu = bm;
      v = bv;
    }
    double g = ld(sc->data, sc->dtype, ch) / sqrt(v + eps), bb = ld(b->data, b->dtype, ch);
    for (int64_t i = 0; i < nb; i++) {
      int64_t base = (i * c + ch) * s;
      if (x->dtype == BP_F32) {
        const float *xp = (const float *)x->data + base;
        float *yp = (float *)y->data + base, fg = (float)g, fo = (float)(bb - mu * g);
        for (int64_t k = 0; k < s; k++) yp[k] = xp[k] * fg + fo;
      } else {
        for (int64_t k = 0; k < s; k++)
          st(y->data, y->dtype, base + k, (ld(x->data, x->dtype, base + k) - mu) * g + bb);
      }
    }
  }
  return 0;
}

/* Normalises `len` contiguous elements at `base` and applies per-channel affine parameters:
 * channel of element k is ch0 + k / s. Parameters are indexed by channel / pdiv. */
static void norm_span(const bp_value *x, bp_value *y, int64_t base, int64_t len, int64_t s,
                      int64_t ch0, int64_t pdiv, const bp_value *sc, const bp_value *b, double eps) {
  double mu = 0, var = 0;
  for (int64_t k = 0; k < len; k++) mu += ld(x->data, x->dtype, base + k);
  mu = len ? mu / (double)len : 0;
  for (int64_t k = 0; k < len; k++) {
    double d = ld(x->data, x->dtype, base + k) - mu;
    var += d * d;
  }
  var = len ? var / (double)len : 0;
  double is = 1.0 / sqrt(var + eps);
  for (int64_t k = 0; k < len; k++) {
    int64_t p = (ch0 + k / s) / pdiv;
    double v = (ld(x->data, x->dtype, base + k) - mu) * is * ld(sc->data, sc->dtype, p) + ld(b->data, b->dtype, p);
    st(y->data, y->dtype, base + k, v);
  }
}

int bp_nn_eval_instancenorm(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                            bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0];
  if (check(n, x, 2, in, e)) return -1;
  double eps = bp_attr_float(n, "epsilon", 1e-5f);
  int64_t nb = x->dims[0], c = x->dims[1], s = spatial(x);
  if (s == 0) return 0;
  for (int64_t i = 0; i < nb; i++)
    for (int64_t ch = 0; ch < c; ch++) norm_span(x, out[0], (i * c + ch) * s, s, s, ch, 1, in[1], in[2], eps);
  return 0;
}

int bp_nn_eval_groupnorm(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                         bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0];
  if (check(n, x, 2, in, e)) return -1;
  double eps = bp_attr_float(n, "epsilon", 1e-5f);
  int64_t g = bp_attr_int(n, "num_groups", 0), nb = x->dims[0], c = x->dims[1], s = spatial(x);
  if (g <= 0 || c % g)
    return bp_errf(e, "node '%s' (%s): num_groups %lld must divide the %lld channels", n->name,
                   n->op_type, (long long)g, (long long)c);
  if (s == 0) return 0;
  int64_t cg = c / g;
  /* opset 18 scale/bias are per group ([G]); opset 21 per channel ([C]) */
  int64_t pdiv = bp_value_numel(in[1]) == c ? 1 : cg;
  for (int64_t i = 0; i < nb; i++)
    for (int64_t k = 0; k < g; k++)
      norm_span(x, out[0], (i * c + k * cg) * s, cg * s, s, k * cg, pdiv, in[1], in[2], eps);
  return 0;
}
