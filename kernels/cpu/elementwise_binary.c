/* kernels/cpu/elementwise_binary.c — two-input elementwise ops with numpy broadcasting:
 * arithmetic (Add Sub Mul Div Pow Mod), comparisons, logic, bitwise ops, BitShift and PRelu,
 * and ew_binary_apply, which the variadic Min/Max/Sum/Mean reuse.
 *
 * Fast path: float32 operands walk the broadcast iterator's runs with loops specialised for
 * (contiguous, contiguous), (contiguous, scalar) and (scalar, contiguous) strides, split into
 * blocks across OpenMP threads for large outputs. Everything else goes element by element
 * through double (floats), int64 (signed) or uint64 (unsigned, bool), exactly. */
#include "kernels/cpu/elementwise.h"

#include <math.h>
#include <string.h>

/* ---- float32 runs ---- */

/* o[i] = expr(x = a[i*sa], y = b[i*sb]) for i < len, specialised on the stride pattern so the
 * common cases vectorise. */
#define RUN(OT, expr)                                                                              \
  do {                                                                                             \
    OT *o = (OT *)ov;                                                                              \
    if (sa == 1 && sb == 1) {                                                                      \
      for (int64_t i = 0; i < len; i++) { float x = a[i], y = b[i]; o[i] = (expr); }              \
    } else if (sa == 1 && sb == 0) {                                                               \
      const float y = b[0];                                                                        \
      for (int64_t i = 0; i < len; i++) { float x = a[i]; o[i] = (expr); }                        \
    } else if (sa == 0 && sb == 1) {                                                               \
      const float x = a[0];                                                                        \
      for (int64_t i = 0; i < len; i++) { float y = b[i]; o[i] = (expr); }                        \
    } else {                                                                                       \
      for (int64_t i = 0; i < len; i++) { float x = a[i * sa], y = b[i * sb]; o[i] = (expr); }    \
    }                                                                                              \
  } while (0)

/* numpy's minimum/maximum: NaN in either operand gives NaN. */
static inline float min_f(float x, float y) { return x != x || y != y ? x + y : x < y ? x : y; }
static inline float max_f(float x, float y) { return x != x || y != y ? x + y : x > y ? x : y; }

/* numpy's mod (Mod with fmod=0): the result takes the divisor's sign. */
static inline float mod_f(float x, float y) {
  float r = fmodf(x, y);
  return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
}

static void run_f32(ew_binop op, int64_t len, const float *a, int64_t sa, const float *b, int64_t sb,
                    void *ov) {
  switch (op) {
  case EW_B_ADD: RUN(float, x + y); break;
  case EW_B_SUB: RUN(float, x - y); break;
  case EW_B_MUL: RUN(float, x * y); break;
  case EW_B_DIV: RUN(float, x / y); break;
  case EW_B_POW:
    /* x*x is what powf(x, 2) rounds to; the squared-difference of a decomposed LayerNorm */
    if (sb == 0 && b[0] == 2.0f) RUN(float, ((void)y, x * x));
    else RUN(float, powf(x, y));
    break;
  case EW_B_FMOD: RUN(float, fmodf(x, y)); break;
  case EW_B_MOD: RUN(float, mod_f(x, y)); break;
  case EW_B_PRELU: RUN(float, x > 0 ? x : x * y); break;
  case EW_B_MIN: RUN(float, min_f(x, y)); break;
  case EW_B_MAX: RUN(float, max_f(x, y)); break;
  case EW_B_EQ: RUN(uint8_t, x == y); break;
  case EW_B_LT: RUN(uint8_t, x < y); break;
  case EW_B_GT: RUN(uint8_t, x > y); break;
  case EW_B_LE: RUN(uint8_t, x <= y); break;
  case EW_B_GE: RUN(uint8_t, x >= y); break;
  default: break; /* integer-only ops never reach the float path (checked by the caller) */
  }
}

#define BLOCK 8192 /* elements per parallel task */

static void apply_f32(ew_binop op, const ew_bcast *it, const float *A, const float *B, void *O,
                      size_t osize) {
  const int64_t nblk = (it->inner + BLOCK - 1) / BLOCK, ntask = it->outer * nblk;
  const int64_t par_work = it->outer * it->inner;
  (void)par_work;
  EW_PAR_FOR
  for (int64_t t = 0; t < ntask; t++) {
    int64_t r = t / nblk, b0 = (t - r * nblk) * BLOCK, off[EW_MAX_IN];
    int64_t len = it->inner - b0 < BLOCK ? it->inner - b0 : BLOCK;
    ew_bcast_offsets(it, r, off);
    run_f32(op, len, A + off[0] + b0 * it->is[0], it->is[0], B + off[1] + b0 * it->is[1], it->is[1],
            (char *)O + (size_t)(r * it->inner + b0) * osize);
  }
}

/* ---- exact generic path ---- */

static int is_unsigned(bp_dtype t) {
  return t == BP_U8 || t == BP_U16 || t == BP_U32 || t == BP_U64 || t == BP_BOOL;
}

static double op_d(ew_binop op, double x, double y) {
  switch (op) {
  case EW_B_ADD: return x + y;
  case EW_B_SUB: return x - y;
  case EW_B_MUL: return x * y;
  case EW_B_DIV: return x / y;
  case EW_B_POW: return pow(x, y);
  case EW_B_FMOD: return fmod(x, y);
  case EW_B_MOD: {
    double r = fmod(x, y);
    return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
  }
  case EW_B_PRELU: return x > 0 ? x : x * y;
  case EW_B_MIN: return x != x || y != y ? x + y : x < y ? x : y;
  case EW_B_MAX: return x != x || y != y ? x + y : x > y ? x : y;
  case EW_B_EQ: return x == y;
  case EW_B_LT: return x < y;
  case EW_B_GT: return x > y;
  case EW_B_LE: return x <= y;
  case EW_B_GE: return x >= y;
  default: return 0;
  }
}

/* x**y in two's-complement wrap; negative exponents give what truncating 1/x**|y| gives. */
static int64_t ipow(int64_t x, int64_t y, int uns) {
  if (y < 0) {
    if (x == 1) return 1;
    if (x == -1 && !uns) return (y & 1) ? -1 : 1;
    return 0;
  }
  uint64_t r = 1, base = (uint64_t)x, k = (uint64_t)y;
  while (k) {
    if (k & 1) r *= base;
    base *= base;
    k >>= 1;
  }
  return (int64_t)r;
}

static int64_t op_s(ew_binop op, int64_t x, int64_t y, int bits) {
  switch (op) {
  case EW_B_ADD: return (int64_t)((uint64_t)x + (uint64_t)y);
  case EW_B_SUB: return (int64_t)((uint64_t)x - (uint64_t)y);
  case EW_B_MUL: return (int64_t)((uint64_t)x * (uint64_t)y);
  case EW_B_DIV: /* C truncation toward zero; x/0 gives 0 as numpy does, MIN/-1 wraps */
    if (y == 0) return 0;
    if (y == -1) return (int64_t)(0 - (uint64_t)x);
    return x / y;
  case EW_B_FMOD: return y == 0 || y == -1 ? 0 : x % y;
  case EW_B_MOD: {
    if (y == 0 || y == -1) return 0;
    int64_t r = x % y;
    return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
  }
  case EW_B_POW: return ipow(x, y, 0);
  case EW_B_PRELU: return x > 0 ? x : (int64_t)((uint64_t)x * (uint64_t)y);
  case EW_B_MIN: return x < y ? x : y;
  case EW_B_MAX: return x > y ? x : y;
  case EW_B_EQ: return x == y;
  case EW_B_LT: return x < y;
  case EW_B_GT: return x > y;
  case EW_B_LE: return x <= y;
  case EW_B_GE: return x >= y;
  case EW_B_BAND: return x & y;
  case EW_B_BOR: return x | y;
  case EW_B_BXOR: return x ^ y;
  case EW_B_SHL: return y < 0 || y >= bits ? 0 : (int64_t)((uint64_t)x << y);
  case EW_B_SHR: return y < 0 || y >= bits ? (x < 0 ? -1 : 0) : x >> y;
  default: return 0;
  }
}

static uint64_t op_u(ew_binop op, uint64_t x, uint64_t y, int bits) {
  switch (op) {
  case EW_B_ADD: return x + y;
  case EW_B_SUB: return x - y;
  case EW_B_MUL: return x * y;
  case EW_B_DIV: return y ? x / y : 0;
  case EW_B_MOD: case EW_B_FMOD: return y ? x % y : 0;
  case EW_B_POW: return (uint64_t)ipow((int64_t)x, (int64_t)y, 1);
  case EW_B_PRELU: return x; /* never negative */
  case EW_B_MIN: return x < y ? x : y;
  case EW_B_MAX: return x > y ? x : y;
  case EW_B_EQ: return x == y;
  case EW_B_LT: return x < y;
  case EW_B_GT: return x > y;
  case EW_B_LE: return x <= y;
  case EW_B_GE: return x >= y;
  case EW_B_AND: return x && y;
  case EW_B_OR: return x || y;
  case EW_B_XOR: return !x != !y;
  case EW_B_BAND: return x & y;
  case EW_B_BOR: return x | y;
  case EW_B_BXOR: return x ^ y;
  case EW_B_SHL: return y >= (uint64_t)bits ? 0 : x << y;
  case EW_B_SHR: return y >= (uint64_t)bits ? 0 : x >> y;
  default: return 0;
  }
}

static void apply_generic(ew_binop op, const ew_bcast *it, const bp_value *a, const bp_value *b,
                          bp_value *out) {
  const bp_dtype ta = a->dtype, tb = b->dtype, to = out->dtype;
  const int bits = (int)(8 * bp_dtype_size(ta));
  /* compute class: doubles when either side is a float (Pow mixes dtypes), else by a's sign */
  const int dbl = bp_dtype_is_float(ta) || bp_dtype_is_float(tb);
  const int uns = !dbl && is_unsigned(ta);
  int64_t off[EW_MAX_IN];
  for (int64_t r = 0; r < it->outer; r++) {
    ew_bcast_offsets(it, r, off);
    for (int64_t i = 0; i < it->inner; i++) {
      int64_t ia = off[0] + i * it->is[0], ib = off[1] + i * it->is[1], io = r * it->inner + i;
      if (dbl) {
        bp_set_f64(out->data, to, io, op_d(op, bp_get_f64(a->data, ta, ia), bp_get_f64(b->data, tb, ib)));
      } else if (uns) {
        uint64_t x = (uint64_t)bp_get_i64(a->data, ta, ia), y = (uint64_t)bp_get_i64(b->data, tb, ib);
        bp_set_i64(out->data, to, io, (int64_t)op_u(op, x, y, bits));
      } else {
        bp_set_i64(out->data, to, io, op_s(op, bp_get_i64(a->data, ta, ia), bp_get_i64(b->data, tb, ib), bits));
      }
    }
  }
}

int ew_binary_apply(const bp_node *n, ew_binop op, const bp_value *a, const bp_value *b, bp_value *out,
                    bp_err *e) {
  const bp_value *ins[2] = {a, b};
  ew_bcast it;
  if (ew_reject_half(n, a->dtype, e) || ew_reject_half(n, b->dtype, e) || ew_reject_half(n, out->dtype, e))
    return -1;
  if (bp_dtype_size(a->dtype) == 0) return ew_bad_dtype(n, a->dtype, e);
  if (bp_dtype_size(b->dtype) == 0) return ew_bad_dtype(n, b->dtype, e);
  const int is_float = bp_dtype_is_float(a->dtype) || bp_dtype_is_float(b->dtype);
  const int int_only = op == EW_B_AND || op == EW_B_OR || op == EW_B_XOR || op == EW_B_BAND ||
                       op == EW_B_BOR || op == EW_B_BXOR || op == EW_B_SHL || op == EW_B_SHR;
  if (is_float && int_only) return ew_bad_dtype(n, a->dtype, e);
  if (bp_value_numel(out) == 0) return 0;
  ew_bcast_init(&it, out, ins, 2);
  if (a->dtype == BP_F32 && b->dtype == BP_F32 && (out->dtype == BP_F32 || out->dtype == BP_BOOL)) {
    apply_f32(op, &it, a->data, b->data, out->data, bp_dtype_size(out->dtype));
    return 0;
  }
  apply_generic(op, &it, a, b, out);
  return 0;
}

/* ---- the ops ---- */

static ew_binop mod_op(const bp_node *n) { return bp_attr_int(n, "fmod", 0) ? EW_B_FMOD : EW_B_MOD; }
static ew_binop shift_op(const bp_node *n) {
  return strcmp(bp_attr_string(n, "direction", "LEFT"), "RIGHT") == 0 ? EW_B_SHR : EW_B_SHL;
}

#define DEFINE_BINARY(name, OPEXPR)                                                                \
  int ew_eval_##name(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,                  \
                     bp_value *const *out, int nout, bp_err *e) {                                  \
    (void)ctx, (void)nin, (void)nout;                                                              \
    return ew_binary_apply(n, OPEXPR, in[0], in[1], out[0], e);                                    \
  }
DEFINE_BINARY(Add, EW_B_ADD)
DEFINE_BINARY(Sub, EW_B_SUB)
DEFINE_BINARY(Mul, EW_B_MUL)
DEFINE_BINARY(Div, EW_B_DIV)
DEFINE_BINARY(Pow, EW_B_POW)
DEFINE_BINARY(Mod, mod_op(n))
DEFINE_BINARY(Equal, EW_B_EQ)
DEFINE_BINARY(Less, EW_B_LT)
DEFINE_BINARY(Greater, EW_B_GT)
DEFINE_BINARY(LessOrEqual, EW_B_LE)
DEFINE_BINARY(GreaterOrEqual, EW_B_GE)
DEFINE_BINARY(And, EW_B_AND)
DEFINE_BINARY(Or, EW_B_OR)
DEFINE_BINARY(Xor, EW_B_XOR)
DEFINE_BINARY(BitwiseAnd, EW_B_BAND)
DEFINE_BINARY(BitwiseOr, EW_B_BOR)
DEFINE_BINARY(BitwiseXor, EW_B_BXOR)
DEFINE_BINARY(BitShift, shift_op(n))
DEFINE_BINARY(PRelu, EW_B_PRELU)
