/* kernels/cpu/elementwise_select.c — ops that move or convert elements without arithmetic:
 * Where (three-way broadcast select) and Cast / CastLike (dtype conversion). These accept
 * float16/bfloat16 too, since they only copy or convert bits.
 *
 * Cast follows numpy's astype, which the ONNX reference uses: float to integer truncates toward
 * zero (out-of-range values saturate here rather than being undefined), integer to integer wraps,
 * anything to bool is x != 0, and float to float16/bfloat16 rounds to nearest even. */
#include "kernels/cpu/elementwise.h"

#include <string.h>

/* ---- Where ---- */

#define SELECT_RUNS(T)                                                                             \
  do {                                                                                             \
    const uint8_t *c = cond->data;                                                                 \
    const T *xa = x->data, *ya = yv->data;                                                         \
    T *o = out[0]->data;                                                                           \
    const int64_t par_work = it.outer * it.inner;                                                  \
    (void)par_work;                                                                                \
    EW_PAR_FOR                                                                                     \
    for (int64_t r = 0; r < it.outer; r++) {                                                       \
      int64_t off[EW_MAX_IN];                                                                      \
      ew_bcast_offsets(&it, r, off);                                                               \
      const uint8_t *cr = c + off[0];                                                              \
      const T *xr = xa + off[1], *yr = ya + off[2];                                                \
      T *orow = o + r * it.inner;                                                                  \
      const int64_t sc = it.is[0], sx = it.is[1], sy = it.is[2];                                   \
      for (int64_t i = 0; i < it.inner; i++) orow[i] = cr[i * sc] ? xr[i * sx] : yr[i * sy];       \
    }                                                                                              \
  } while (0)

int ew_eval_Where(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                  int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *cond = in[0], *x = in[1], *yv = in[2];
  ew_bcast it;
  if (bp_value_numel(out[0]) == 0) return 0;
  ew_bcast_init(&it, out[0], (const bp_value *const[]){cond, x, yv}, 3);
  switch (bp_dtype_size(out[0]->dtype)) {
  case 1: SELECT_RUNS(uint8_t); break;
  case 2: SELECT_RUNS(uint16_t); break;
  case 4: SELECT_RUNS(uint32_t); break;
  case 8: SELECT_RUNS(uint64_t); break;
  default: return ew_bad_dtype(n, out[0]->dtype, e);
  }
  return 0;
}

/* ---- Cast / CastLike ---- */

static int is_signed_int(bp_dtype t) { return t == BP_I8 || t == BP_I16 || t == BP_I32 || t == BP_I64; }

static int cast_supported(bp_dtype t) { return bp_dtype_size(t) != 0 && t != BP_STRING; }

static int do_cast(const bp_node *n, const bp_value *x, bp_value *y, bp_err *e) {
  const bp_dtype s = x->dtype, d = y->dtype;
  const int64_t cnt = bp_value_numel(x);
  if (!cast_supported(s) || !cast_supported(d))
    return bp_errf(e, "node '%s' (%s): cast from %s to %s is not supported", n->name, n->op_type,
                   bp_dtype_name(s), bp_dtype_name(cast_supported(s) ? d : s));
  if (s == d) {
    memcpy(y->data, x->data, bp_value_bytes(x));
    return 0;
  }
  /* common conversions in transformer exports, written out */
  if (s == BP_F32 && d == BP_I64) {
    for (int64_t i = 0; i < cnt; i++) bp_set_f64(y->data, d, i, ((const float *)x->data)[i]);
  } else if (s == BP_I64 && d == BP_F32) {
    for (int64_t i = 0; i < cnt; i++) ((float *)y->data)[i] = (float)((const int64_t *)x->data)[i];
  } else if (s == BP_BOOL && d == BP_F32) {
    for (int64_t i = 0; i < cnt; i++) ((float *)y->data)[i] = ((const uint8_t *)x->data)[i] ? 1.0f : 0.0f;
  } else if (s == BP_F32 && d == BP_BOOL) {
    for (int64_t i = 0; i < cnt; i++) ((uint8_t *)y->data)[i] = ((const float *)x->data)[i] != 0.0f;
  } else if (bp_dtype_is_float(s)) {
    /* float -> anything: through double (exact for every float source) */
    for (int64_t i = 0; i < cnt; i++) bp_set_f64(y->data, d, i, bp_get_f64(x->data, s, i));
  } else if (bp_dtype_is_float(d)) {
    /* integer/bool -> float: convert the integer directly so float32 rounds once */
    for (int64_t i = 0; i < cnt; i++) {
      int64_t v = bp_get_i64(x->data, s, i);
      if (d == BP_F32) ((float *)y->data)[i] = is_signed_int(s) ? (float)v : (float)(uint64_t)v;
      else if (d == BP_F64) ((double *)y->data)[i] = is_signed_int(s) ? (double)v : (double)(uint64_t)v;
      else bp_set_f64(y->data, d, i, is_signed_int(s) ? (double)v : (double)(uint64_t)v);
    }
  } else {
    /* integer/bool -> integer/bool: two's-complement wrap, bool is x != 0 */
    for (int64_t i = 0; i < cnt; i++) bp_set_i64(y->data, d, i, bp_get_i64(x->data, s, i));
  }
  return 0;
}

int ew_eval_Cast(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                 int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  return do_cast(n, in[0], out[0], e);
}

int ew_eval_CastLike(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                     bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  return do_cast(n, in[0], out[0], e);
}
