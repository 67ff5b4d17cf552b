/* kernels/cpu/nn_topk.c — TopK: the k largest (or smallest) elements along one axis, values and
 * int64 indices, in order (the mixture-of-experts router of Mixtral/Qwen-MoE exports picks its
 * experts with it). Equal values keep the lower index first (ONNX's rule); NaN counts as larger
 * than every number (numpy's and PyTorch's order). K is input 1 (opset >= 10) or attribute 'k'. */
#include "kernels/cpu/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_nn_topk_k(const bp_node *n, bp_value *const *in, int nin, int64_t *k, bp_err *e) {
  if (nin < 2 || !in[1]) {
    const bp_attr *a = bp_node_attr(n, "k");
    if (!a) return bp_errf(e, "node '%s' (TopK): K is missing (input 1, or attribute 'k' before opset 10)", n->name);
    *k = a->i;
  } else {
    const bp_value *kv = in[1];
    if (kv->dtype != BP_I64 || bp_value_numel(kv) != 1)
      return bp_errf(e, "node '%s' (TopK): K must be one int64, got %s of %lld elements", n->name,
                     bp_dtype_name(kv->dtype), (long long)bp_value_numel(kv));
    if (!kv->data)
      return bp_errf(e, "node '%s' (TopK): input 'K' is not a compile-time constant (it sets the output shape)", n->name);
    *k = ((const int64_t *)kv->data)[0];
  }
  if (*k < 0) return bp_errf(e, "node '%s' (TopK): K is %lld, negative", n->name, (long long)*k);
  return 0;
}

/* The order of one slice: keys as double (floats) or int64 (integers, uint64 compared unsigned). */
typedef struct {
  const double *f;
  const int64_t *i;
  int uns, largest;
} order;

/* a goes before b (a < b as slice positions, so ties keep a first: the merge below is stable). */
static int before(const order *o, int64_t a, int64_t b) {
  if (o->f) {
    double x = o->f[a], y = o->f[b];
    int xn = x != x, yn = y != y;
    if (xn || yn) return o->largest ? xn && !yn : yn && !xn; /* NaN is the largest */
    return o->largest ? x > y : x < y;
  }
  int64_t x = o->i[a], y = o->i[b];
  if (o->uns) return o->largest ? (uint64_t)x > (uint64_t)y : (uint64_t)x < (uint64_t)y;
  return o->largest ? x > y : x < y;
}

/* Stable merge sort of idx[0..n) by `before`. */
static void msort(const order *o, int64_t *idx, int64_t *tmp, int64_t n) {
  if (n < 2) return;
  int64_t h = n / 2;
  msort(o, idx, tmp, h);
  msort(o, idx + h, tmp, n - h);
  int64_t a = 0, b = h, t = 0;
  while (a < h && b < n) tmp[t++] = before(o, idx[b], idx[a]) ? idx[b++] : idx[a++];
  while (a < h) tmp[t++] = idx[a++];
  while (b < n) tmp[t++] = idx[b++];
  memcpy(idx, tmp, sizeof(int64_t) * (size_t)n);
}

int bp_nn_eval_topk(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                    bp_err *e) {
  (void)ctx;
  const bp_value *x = in[0];
  char who[300];
  snprintf(who, sizeof who, "node '%s' (%s)", n->name, n->op_type);
  if (bp_nn_check_dtype(n, x->dtype, 1, 0, "input X", e)) return -1;
  if (x->rank < 1) return bp_errf(e, "%s: input must have rank >= 1", who);
  int64_t axis, k;
  if (bp_norm_axis(bp_attr_int(n, "axis", -1), x->rank, &axis, who, e) || bp_nn_topk_k(n, in, nin, &k, e)) return -1;
  int64_t outer = 1, len = x->dims[axis], inner = 1;
  if (k > len) return bp_errf(e, "%s: K = %lld exceeds the axis length %lld", who, (long long)k, (long long)len);
  for (int i = 0; i < x->rank; i++) {
    if (i < axis) outer *= x->dims[i];
    if (i > axis) inner *= x->dims[i];
  }
  int flt = bp_dtype_is_float(x->dtype);
  order o = {NULL, NULL, x->dtype == BP_U64, bp_attr_int(n, "largest", 1) != 0};
  size_t es = bp_dtype_size(x->dtype);
  double *fk = flt ? malloc(sizeof(double) * (size_t)(len ? len : 1)) : NULL;
  int64_t *ik = flt ? NULL : malloc(sizeof(int64_t) * (size_t)(len ? len : 1));
  int64_t *idx = malloc(sizeof(int64_t) * (size_t)(len ? len : 1)), *tmp = malloc(sizeof(int64_t) * (size_t)(len ? len : 1));
  if ((flt ? !fk : !ik) || !idx || !tmp) {
    free(fk), free(ik), free(idx), free(tmp);
    return bp_errf(e, "%s: out of memory", who);
  }
  o.f = fk;
  o.i = ik;
  bp_value *vals = out[0], *inds = nout > 1 ? out[1] : NULL;
  for (int64_t a = 0; a < outer; a++)
    for (int64_t c = 0; c < inner; c++) {
      int64_t base = a * len * inner + c, obase = a * k * inner + c;
      for (int64_t j = 0; j < len; j++) {
        idx[j] = j;
        if (flt) fk[j] = bp_get_f64(x->data, x->dtype, base + j * inner);
        else ik[j] = bp_get_i64(x->data, x->dtype, base + j * inner);
      }
      msort(&o, idx, tmp, len);
      for (int64_t j = 0; j < k; j++) {
        if (vals && vals->data)
          memcpy((char *)vals->data + (size_t)(obase + j * inner) * es, (const char *)x->data + (size_t)(base + idx[j] * inner) * es, es);
        if (inds && inds->data) ((int64_t *)inds->data)[obase + j * inner] = idx[j];
      }
    }
  free(fk), free(ik), free(idx), free(tmp);
  return 0;
}
