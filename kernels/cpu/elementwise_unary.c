/* kernels/cpu/elementwise_unary.c — one-input elementwise ops: arithmetic (Neg, Abs, Sqrt, ...),
 * transcendental functions, activations (Relu ... Gelu), rounding, Sign, logical/bitwise Not
 * and the IsNaN/IsInf tests.
 *
 * Float formulas are written once and instantiated for float and double through <tgmath.h>
 * (exp(x) is expf for a float x), so float32 runs in float with vectorisable loops and float64
 * keeps full precision. Integer Neg/Abs/Sign/Relu are exact in int64/uint64. */
#include "kernels/cpu/elementwise.h"

#include <math.h>
#include <tgmath.h>

enum {
  U_Neg, U_Abs, U_Sqrt, U_Reciprocal, U_Exp, U_Log, U_Erf, U_Tanh, U_Sigmoid, U_Relu, U_LeakyRelu,
  U_Elu, U_Selu, U_Celu, U_Softplus, U_Softsign, U_HardSigmoid, U_HardSwish, U_ThresholdedRelu,
  U_Shrink, U_Sin, U_Cos, U_Tan, U_Asin, U_Acos, U_Atan, U_Sinh, U_Cosh, U_Asinh, U_Acosh,
  U_Atanh, U_Floor, U_Ceil, U_Round, U_Sign, U_Gelu, U_Not, U_BitwiseNot, U_IsNaN, U_IsInf,
};

/* Attribute values an op's formula uses (defaults from the ONNX spec). */
typedef struct {
  double alpha, beta, gamma;
  int gelu_tanh;
  int detect_neg, detect_pos;
} uparams;

static void read_params(const bp_node *n, int op, uparams *p) {
  p->alpha = p->beta = p->gamma = 0;
  switch (op) {
  case U_LeakyRelu: p->alpha = bp_attr_float(n, "alpha", 0.01f); break;
  case U_Elu: case U_Celu: case U_ThresholdedRelu: p->alpha = bp_attr_float(n, "alpha", 1.0f); break;
  case U_Selu:
    p->alpha = bp_attr_float(n, "alpha", 1.67326319217681884765625f);
    p->gamma = bp_attr_float(n, "gamma", 1.05070102214813232421875f);
    break;
  case U_HardSigmoid:
    p->alpha = bp_attr_float(n, "alpha", 0.2f);
    p->beta = bp_attr_float(n, "beta", 0.5f);
    break;
  case U_HardSwish: p->alpha = 1.0f / 6.0f; p->beta = 0.5; break; /* fixed by the spec */
  case U_Shrink:
    p->alpha = bp_attr_float(n, "lambd", 0.5f);
    p->beta = bp_attr_float(n, "bias", 0.0f);
    break;
  default: break;
  }
  p->gelu_tanh = 0;
  p->detect_neg = (int)bp_attr_int(n, "detect_negative", 1);
  p->detect_pos = (int)bp_attr_int(n, "detect_positive", 1);
}

/* `par_n` elements of type T: o[i] = expr(v = a[i]). */
#define LOOP(T, expr)                                                                              \
  {                                                                                                \
    const T *a = x->data;                                                                          \
    T *o = y->data;                                                                                \
    EW_PAR_FOR                                                                                     \
    for (int64_t i = 0; i < par_n; i++) {                                                          \
      T v = a[i];                                                                                  \
      o[i] = (expr);                                                                               \
    }                                                                                              \
    return 0;                                                                                      \
  }

/* The float formulas for element type T (float or double). Returns 1 if op is not a float op. */
#define FLOAT_CASES(T)                                                                             \
  switch (op) {                                                                                    \
  case U_Neg: LOOP(T, -v)                                                                          \
  case U_Abs: LOOP(T, fabs(v))                                                                     \
  case U_Sqrt: LOOP(T, sqrt(v))                                                                    \
  case U_Reciprocal: LOOP(T, (T)1 / v)                                                             \
  case U_Exp: LOOP(T, exp(v))                                                                      \
  case U_Log: LOOP(T, log(v))                                                                      \
  case U_Erf: LOOP(T, erf(v))                                                                      \
  case U_Tanh: LOOP(T, tanh(v))                                                                    \
  /* stable on both sides: exp never overflows */                                                 \
  case U_Sigmoid: LOOP(T, v >= 0 ? (T)1 / ((T)1 + exp(-v)) : exp(v) / ((T)1 + exp(v)))             \
  case U_Relu: LOOP(T, v < 0 ? (T)0 : v) /* NaN passes through, as max(x, 0) in numpy */           \
  case U_LeakyRelu: LOOP(T, v < 0 ? (T)p.alpha * v : v)                                            \
  case U_Elu: LOOP(T, v < 0 ? (T)p.alpha * (exp(v) - (T)1) : v)                                    \
  case U_Selu: LOOP(T, v <= 0 ? (T)p.gamma * ((T)p.alpha * exp(v) - (T)p.alpha) : (T)p.gamma * v)  \
  case U_Celu: LOOP(T, v > 0 ? v : (T)p.alpha * (exp(v / (T)p.alpha) - (T)1))                      \
  case U_Softplus: LOOP(T, v > 0 ? v + log1p(exp(-v)) : log1p(exp(v)))                             \
  case U_Softsign: LOOP(T, v / ((T)1 + fabs(v)))                                                   \
  case U_HardSigmoid: LOOP(T, fmax((T)0, fmin((T)1, (T)p.alpha * v + (T)p.beta)))                 \
  case U_HardSwish: LOOP(T, v * fmax((T)0, fmin((T)1, (T)p.alpha * v + (T)p.beta)))               \
  case U_ThresholdedRelu: LOOP(T, v > (T)p.alpha ? v : (T)0)                                       \
  case U_Shrink: LOOP(T, v < -(T)p.alpha ? v + (T)p.beta : v > (T)p.alpha ? v - (T)p.beta : (T)0)  \
  case U_Sin: LOOP(T, sin(v))                                                                      \
  case U_Cos: LOOP(T, cos(v))                                                                      \
  case U_Tan: LOOP(T, tan(v))                                                                      \
  case U_Asin: LOOP(T, asin(v))                                                                    \
  case U_Acos: LOOP(T, acos(v))                                                                    \
  case U_Atan: LOOP(T, atan(v))                                                                    \
  case U_Sinh: LOOP(T, sinh(v))                                                                    \
  case U_Cosh: LOOP(T, cosh(v))                                                                    \
  case U_Asinh: LOOP(T, asinh(v))                                                                  \
  case U_Acosh: LOOP(T, acosh(v))                                                                  \
  case U_Atanh: LOOP(T, atanh(v))                                                                  \
  case U_Floor: LOOP(T, floor(v))                                                                  \
  case U_Ceil: LOOP(T, ceil(v))                                                                    \
  case U_Round: LOOP(T, rint(v)) /* default rounding mode: half to even, as the spec asks */       \
  case U_Sign: LOOP(T, v > 0 ? (T)1 : v < 0 ? (T)-1 : v) /* keeps 0 and NaN */                     \
  case U_Gelu:                                                                                     \
    if (p.gelu_tanh) /* 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))) */                             \
      LOOP(T, (T)0.5 * v *                                                                         \
                  ((T)1 + tanh((T)0.7978845608028654 * (v + (T)0.044715 * v * v * v))))            \
    else                                                                                           \
      LOOP(T, (T)0.5 * v * ((T)1 + erf(v * (T)0.7071067811865476)))                               \
  default: break;                                                                                  \
  }

static int unary_float(int op, const uparams *pp, const bp_value *x, bp_value *y) {
  const uparams p = *pp;
  const int64_t par_n = bp_value_numel(x), par_work = par_n;
  (void)par_work; /* read only by the OpenMP pragma */
  if (x->dtype == BP_F32) {
    FLOAT_CASES(float)
  } else {
    FLOAT_CASES(double)
  }
  return 1;
}

/* IsNaN / IsInf: float input, bool output. */
static void unary_test(int op, const uparams *p, const bp_value *x, bp_value *y) {
  const int64_t n = bp_value_numel(x);
  uint8_t *o = y->data;
  for (int64_t i = 0; i < n; i++) {
    double v = x->dtype == BP_F32 ? ((const float *)x->data)[i] : ((const double *)x->data)[i];
    if (op == U_IsNaN) o[i] = isnan(v) != 0;
    else o[i] = isinf(v) && (v > 0 ? p->detect_pos : p->detect_neg);
  }
}

/* Exact integer (and bool) ops: signed values through int64, unsigned through uint64 with the
 * same two's-complement wrap the narrow types have. */
static int unary_int(int op, const bp_value *x, bp_value *y) {
  const int64_t n = bp_value_numel(x);
  const int uns = x->dtype == BP_U8 || x->dtype == BP_U16 || x->dtype == BP_U32 || x->dtype == BP_U64;
  for (int64_t i = 0; i < n; i++) {
    int64_t v = bp_get_i64(x->data, x->dtype, i), r;
    switch (op) {
    case U_Neg: r = (int64_t)(0 - (uint64_t)v); break;
    case U_Abs: r = uns || v >= 0 ? v : (int64_t)(0 - (uint64_t)v); break;
    case U_Sign: r = uns ? v != 0 : (v > 0) - (v < 0); break;
    case U_Relu: r = uns || v > 0 ? v : 0; break;
    case U_BitwiseNot: r = ~v; break;
    case U_Not: r = !v; break;
    default: return 1;
    }
    bp_set_i64(y->data, y->dtype, i, r);
  }
  return 0;
}

static int eval_unary(const bp_node *n, int op, bp_value *const *in, bp_value *const *out, bp_err *e) {
  const bp_value *x = in[0];
  bp_value *y = out[0];
  uparams p;
  read_params(n, op, &p);
  if (op == U_Gelu) {
    const char *approx = bp_attr_string(n, "approximate", "none");
    p.gelu_tanh = approx[0] == 't'; /* "tanh"; inference rejected anything else */
  }
  if (x->dtype == BP_F32 || x->dtype == BP_F64) {
    if (op == U_IsNaN || op == U_IsInf) {
      unary_test(op, &p, x, y);
      return 0;
    }
    if (unary_float(op, &p, x, y) == 0) return 0;
  } else if (bp_dtype_is_int(x->dtype) || x->dtype == BP_BOOL) {
    if (unary_int(op, x, y) == 0) return 0;
  }
  return ew_bad_dtype(n, x->dtype, e);
}

#define DEFINE_UNARY(op)                                                                           \
  int ew_eval_##op(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,                    \
                   bp_value *const *out, int nout, bp_err *e) {                                   \
    (void)ctx, (void)nin, (void)nout;                                                              \
    return eval_unary(n, U_##op, in, out, e);                                                      \
  }
EW_UNARY_OPS(DEFINE_UNARY)
