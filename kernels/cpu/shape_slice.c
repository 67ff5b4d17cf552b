/* kernels/cpu/shape_slice.c — Slice, Pad and ReverseSequence: copies of boxes of the input, with
 * steps (Slice), a border filled by a constant or mirrored/edge/wrapped input (Pad), or a
 * reversed prefix per batch entry (ReverseSequence). */
#include "kernels/cpu/shape.h"

#include <stdlib.h>
#include <string.h>

SHAPE_EVAL(bp_eval_slice) {
  (void)ctx, (void)nout;
  const bp_value *x = in[0];
  shape_slice_plan p;
  if (shape_plan_slice(n, in, nin, &p, e)) return -1;
  int64_t xs[BP_MAX_RANK], sstr[BP_MAX_RANK], dstr[BP_MAX_RANK], off = 0;
  shape_strides(x->rank, x->dims, xs);
  for (int i = 0; i < x->rank; i++) {
    if (p.count[i] != out[0]->dims[i]) return SHAPE_ERR(e, n, "output shape does not match the slice");
    off += p.start[i] * xs[i];
    sstr[i] = p.step[i] * xs[i];
  }
  shape_strides(x->rank, p.count, dstr);
  size_t es = bp_dtype_size(x->dtype);
  shape_copy_strided(out[0]->data, dstr, (const char *)x->data + off * (int64_t)es, sstr, x->rank, p.count, es);
  return 0;
}

/* The pad value as one element of dtype t: opset < 11 from attribute 'value' (float), else from
 * the optional input 'constant_value' (0 when omitted). */
static int pad_value(const bp_node *n, bp_value *const *in, int nin, bp_dtype t, void *buf, bp_err *e) {
  memset(buf, 0, 16);
  if (n->opset < 11) {
    bp_set_f64(buf, t, 0, bp_attr_float(n, "value", 0.0f));
    return 0;
  }
  const bp_value *v = shape_in(in, nin, 2);
  if (!v) return 0;
  if (!v->data || bp_value_numel(v) < 1) return SHAPE_ERR(e, n, "input 'constant_value' has no value");
  if (v->dtype == t) memcpy(buf, v->data, bp_dtype_size(t));
  else if (bp_dtype_is_float(t)) bp_set_f64(buf, t, 0, bp_get_f64(v->data, v->dtype, 0));
  else bp_set_i64(buf, t, 0, bp_get_i64(v->data, v->dtype, 0));
  return 0;
}

/* Source coordinate of output coordinate o on an axis of size d padded by `before`. */
static int64_t pad_map(int64_t o, int64_t before, int64_t d, shape_pad_mode m) {
  int64_t x = o - before;
  if (x >= 0 && x < d) return x;
  switch (m) {
  case SHAPE_PAD_EDGE: return x < 0 ? 0 : d - 1;
  case SHAPE_PAD_WRAP: return ((x % d) + d) % d;
  case SHAPE_PAD_REFLECT: {
    if (d == 1) return 0;
    int64_t period = 2 * (d - 1); /* reflection without repeating the edge: 0..d-1..1 */
    x %= period;
    if (x < 0) x += period;
    return x < d ? x : period - x;
  }
  default: return -1;
  }
}

SHAPE_EVAL(bp_eval_pad) {
  (void)ctx, (void)nout;
  const bp_value *x = in[0];
  bp_value *o = out[0];
  shape_pad_plan p;
  if (shape_plan_pad(n, in, nin, &p, e)) return -1;
  int r = x->rank;
  size_t es = bp_dtype_size(x->dtype);
  int64_t onum = bp_value_numel(o);
  if (onum == 0) return 0;
  if (r == 0) {
    memcpy(o->data, x->data, es);
    return 0;
  }
  int64_t xs[BP_MAX_RANK], os[BP_MAX_RANK];
  shape_strides(r, x->dims, xs);
  shape_strides(r, o->dims, os);
  if (p.mode == SHAPE_PAD_CONSTANT) {
    unsigned char val[16];
    if (pad_value(n, in, nin, x->dtype, val, e)) return -1;
    char *d = o->data;
    for (int64_t i = 0; i < onum; i++) memcpy(d + (size_t)i * es, val, es);
    /* the interior: input box that survives cropping, placed after the leading pads */
    int64_t cnt[BP_MAX_RANK], soff = 0, doff = 0;
    for (int i = 0; i < r; i++) {
      int64_t cb = p.before[i] < 0 ? -p.before[i] : 0, ca = p.after[i] < 0 ? -p.after[i] : 0;
      cnt[i] = x->dims[i] - cb - ca;
      if (cnt[i] <= 0) return 0;
      soff += cb * xs[i];
      doff += (p.before[i] > 0 ? p.before[i] : 0) * os[i];
    }
    shape_copy_strided(d + doff * (int64_t)es, os, (const char *)x->data + soff * (int64_t)es, xs, r, cnt, es);
    return 0;
  }
  /* reflect / edge / wrap: per-axis tables of source offsets, then one gather over the output */
  int64_t total = 0;
  for (int i = 0; i < r; i++) total += o->dims[i];
  int64_t *tab = malloc(sizeof(int64_t) * (size_t)total), *t[BP_MAX_RANK];
  if (!tab) return SHAPE_ERR(e, n, "out of memory");
  int64_t k = 0;
  for (int i = 0; i < r; i++) {
    t[i] = tab + k;
    for (int64_t j = 0; j < o->dims[i]; j++) t[i][j] = pad_map(j, p.before[i], x->dims[i], p.mode) * xs[i];
    k += o->dims[i];
  }
  int64_t idx[BP_MAX_RANK] = {0}, last = o->dims[r - 1], rows = onum / last;
  const char *s = x->data;
  char *d = o->data;
  for (int64_t row = 0; row < rows; row++) {
    int64_t base = 0;
    for (int i = 0; i < r - 1; i++) base += t[i][idx[i]];
    for (int64_t j = 0; j < last; j++)
      memcpy(d + (size_t)(row * last + j) * es, s + (size_t)(base + t[r - 1][j]) * es, es);
    for (int i = r - 2; i >= 0; i--) {
      if (++idx[i] < o->dims[i]) break;
      idx[i] = 0;
    }
  }
  free(tab);
  return 0;
}

/* ReverseSequence: for batch entry b, the first sequence_lens[b] steps along time_axis are
 * reversed; the rest are copied unchanged. */
SHAPE_EVAL(bp_eval_reverse_sequence) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0], *lens = in[1];
  int64_t ta = bp_attr_int(n, "time_axis", 0), ba = bp_attr_int(n, "batch_axis", 1);
  if (x->rank < 2 || ta < 0 || ba < 0 || ta >= x->rank || ba >= x->rank || ta == ba)
    return SHAPE_ERR(e, n, "bad time_axis/batch_axis for rank %d", x->rank);
  int64_t xs[BP_MAX_RANK], T = x->dims[ta], B = x->dims[ba], num = bp_value_numel(x);
  if (bp_value_numel(lens) != B) return SHAPE_ERR(e, n, "'sequence_lens' must have one entry per batch");
  for (int64_t b = 0; b < B; b++) {
    int64_t l = bp_get_i64(lens->data, lens->dtype, b);
    if (l < 0 || l > T) return SHAPE_ERR(e, n, "sequence length %lld outside [0, %lld]", (long long)l, (long long)T);
  }
  shape_strides(x->rank, x->dims, xs);
  size_t es = bp_dtype_size(x->dtype);
  const char *s = x->data;
  char *d = out[0]->data;
  for (int64_t i = 0; i < num; i++) {
    int64_t t = (i / xs[ta]) % T, b = (i / xs[ba]) % B, src = i;
    int64_t l = bp_get_i64(lens->data, lens->dtype, b);
    if (t < l) src = i + (l - 1 - 2 * t) * xs[ta];
    memcpy(d + (size_t)i * es, s + (size_t)src * es, es);
  }
  return 0;
}
