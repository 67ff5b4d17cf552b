/* kernels/cuda/elementwise_generic.cu — the elementwise ops for every dtype other than float32
 * (float64, signed and unsigned integers, bool), element by element through double or 64-bit
 * integers exactly as kernels/cpu/elementwise_binary.c / elementwise_unary.c do: integer Div
 * truncates toward zero (x / 0 gives 0), Mod follows the divisor's sign, shifts past the width give
 * 0 (or -1 for negative right shifts), arithmetic wraps in the narrow type. This makes the bitwise
 * ops and integer arithmetic run on the GPU; float16/bfloat16 compute stays refused (host path). */
#include "kernels/cuda/elementwise.cuh"

#include <math.h>

__device__ inline int d_is_uns(int t) { return t == BP_U8 || t == BP_U16 || t == BP_U32 || t == BP_U64 || t == BP_BOOL; }
__device__ inline int d_is_flt(int t) { return t == BP_F32 || t == BP_F64 || t == BP_F16 || t == BP_BF16; }

__device__ inline double op_d(int op, double x, double y) {
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

__device__ inline int64_t ipow(int64_t x, int64_t y, int uns) {
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

__device__ inline int64_t op_s(int op, int64_t x, int64_t y, int bits) {
  switch (op) {
  case EW_B_ADD: return (int64_t)((uint64_t)x + (uint64_t)y);
  case EW_B_SUB: return (int64_t)((uint64_t)x - (uint64_t)y);
  case EW_B_MUL: return (int64_t)((uint64_t)x * (uint64_t)y);
  case EW_B_DIV:
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

__device__ inline uint64_t op_u(int op, uint64_t x, uint64_t y, int bits) {
  switch (op) {
  case EW_B_ADD: return x + y;
  case EW_B_SUB: return x - y;
  case EW_B_MUL: return x * y;
  case EW_B_DIV: return y ? x / y : 0;
  case EW_B_MOD: case EW_B_FMOD: return y ? x % y : 0;
  case EW_B_POW: return (uint64_t)ipow((int64_t)x, (int64_t)y, 1);
  case EW_B_PRELU: return x;
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

__global__ void k_binary_generic(int op, bp_walk w, const void *a, int ta, const void *b, int tb, void *o, int to,
                                 int bits, int64_t count) {
  const int dbl = d_is_flt(ta) || d_is_flt(tb), uns = !dbl && d_is_uns(ta);
  GRID_STRIDE(i, count) {
    int64_t off[2];
    walk_offsets<2>(w, i, off);
    if (dbl) d_set_f64(o, to, i, op_d(op, d_get_f64(a, ta, off[0]), d_get_f64(b, tb, off[1])));
    else if (uns) d_set_i64(o, to, i, (int64_t)op_u(op, (uint64_t)d_get_i64(a, ta, off[0]), (uint64_t)d_get_i64(b, tb, off[1]), bits));
    else d_set_i64(o, to, i, op_s(op, d_get_i64(a, ta, off[0]), d_get_i64(b, tb, off[1]), bits));
  }
}

static int half_or_bad(bp_dtype t) { return t == BP_F16 || t == BP_BF16 || !bp_dtype_size(t) || t == BP_STRING; }

int bp_cuda_binary_generic(bp_cuda *dc, const bp_node *n, ew_binop op, const bp_value *a, const bp_value *b,
                           bp_value *o, bp_err *e) {
  if (half_or_bad(a->dtype) || half_or_bad(b->dtype) || half_or_bad(o->dtype)) return 1;
  int is_float = bp_dtype_is_float(a->dtype) || bp_dtype_is_float(b->dtype);
  int int_only = op == EW_B_AND || op == EW_B_OR || op == EW_B_XOR || op == EW_B_BAND || op == EW_B_BOR ||
                 op == EW_B_BXOR || op == EW_B_SHL || op == EW_B_SHR;
  if (is_float && int_only) return 1;
  int64_t count = bp_value_numel(o);
  if (!count) return 0;
  const bp_value *ins[2] = {a, b};
  bp_walk w;
  bp_walk_bcast(&w, o, ins, 2);
  k_binary_generic<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>(
      (int)op, w, a->data, a->dtype, b->data, b->dtype, o->data, o->dtype, (int)(8 * bp_dtype_size(a->dtype)), count);
  BP_LAUNCHED(dc, "k_binary_generic");
  return 0;
}

/* ---- unary ---- */
__device__ inline double unary_d(int op, double v, const uparams &q) {
  const double alpha = q.alpha, beta = q.beta, gamma = q.gamma;
  switch (op) {
  case U_Neg: return -v;
  case U_Abs: return fabs(v);
  case U_Sqrt: return sqrt(v);
  case U_Reciprocal: return 1.0 / v;
  case U_Exp: return exp(v);
  case U_Log: return log(v);
  case U_Erf: return erf(v);
  case U_Tanh: return tanh(v);
  case U_Sigmoid: return v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
  case U_Relu: return v < 0 ? 0.0 : v;
  case U_LeakyRelu: return v < 0 ? alpha * v : v;
  case U_Elu: return v < 0 ? alpha * (exp(v) - 1.0) : v;
  case U_Selu: return v <= 0 ? gamma * (alpha * exp(v) - alpha) : gamma * v;
  case U_Celu: return v > 0 ? v : alpha * (exp(v / alpha) - 1.0);
  case U_Softplus: return v > 0 ? v + log1p(exp(-v)) : log1p(exp(v));
  case U_Softsign: return v / (1.0 + fabs(v));
  case U_HardSigmoid: return fmax(0.0, fmin(1.0, alpha * v + beta));
  case U_HardSwish: return v * fmax(0.0, fmin(1.0, alpha * v + beta));
  case U_ThresholdedRelu: return v > alpha ? v : 0.0;
  case U_Shrink: return v < -alpha ? v + beta : v > alpha ? v - beta : 0.0;
  case U_Sin: return sin(v);
  case U_Cos: return cos(v);
  case U_Tan: return tan(v);
  case U_Asin: return asin(v);
  case U_Acos: return acos(v);
  case U_Atan: return atan(v);
  case U_Sinh: return sinh(v);
  case U_Cosh: return cosh(v);
  case U_Asinh: return asinh(v);
  case U_Acosh: return acosh(v);
  case U_Atanh: return atanh(v);
  case U_Floor: return floor(v);
  case U_Ceil: return ceil(v);
  case U_Round: return rint(v);
  case U_Sign: return v > 0 ? 1.0 : v < 0 ? -1.0 : v;
  case U_Gelu: return 0.5 * v * (1.0 + erf(v * 0.7071067811865476));
  case U_GeluTanh: return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
  default: return v;
  }
}

__global__ void k_unary_f64(int op, uparams q, const double *x, void *y, int to, int64_t count) {
  GRID_STRIDE(i, count) {
    double v = x[i];
    if (op == U_IsNaN) ((uint8_t *)y)[i] = v != v;
    else if (op == U_IsInf) ((uint8_t *)y)[i] = isinf(v) && (v > 0 ? q.detect_pos : q.detect_neg);
    else d_set_f64(y, to, i, unary_d(op, v, q));
  }
}

__global__ void k_unary_int(int op, const void *x, int tx, void *y, int64_t count) {
  const int uns = tx == BP_U8 || tx == BP_U16 || tx == BP_U32 || tx == BP_U64;
  GRID_STRIDE(i, count) {
    int64_t v = d_get_i64(x, tx, i), r;
    switch (op) {
    case U_Neg: r = (int64_t)(0 - (uint64_t)v); break;
    case U_Abs: r = uns || v >= 0 ? v : (int64_t)(0 - (uint64_t)v); break;
    case U_Sign: r = uns ? v != 0 : (v > 0) - (v < 0); break;
    case U_Relu: r = uns || v > 0 ? v : 0; break;
    case U_BitwiseNot: r = ~v; break;
    default: r = !v; break; /* U_Not */
    }
    d_set_i64(y, tx, i, r);
  }
}

int bp_cuda_unary_generic(bp_cuda *dc, const bp_node *n, int op, const uparams *p, const bp_value *x, bp_value *y,
                          bp_err *e) {
  int64_t count = bp_value_numel(x);
  if (x->dtype == BP_F64) {
    if (op == U_Not || op == U_BitwiseNot) return 1;
    if (!count) return 0;
    k_unary_f64<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>(op, *p, (const double *)x->data, y->data, y->dtype, count);
    BP_LAUNCHED(dc, "k_unary_f64");
    return 0;
  }
  if (!(bp_dtype_is_int(x->dtype) || x->dtype == BP_BOOL)) return 1;
  if (op != U_Neg && op != U_Abs && op != U_Sign && op != U_Relu && op != U_BitwiseNot && op != U_Not) return 1;
  if (!count) return 0;
  k_unary_int<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>(op, x->data, x->dtype, y->data, count);
  BP_LAUNCHED(dc, "k_unary_int");
  return 0;
}
