/* kernels/cuda/elementwise.cu — one- and two-input elementwise ops on the GPU with numpy
 * broadcasting: float32 arithmetic, activations, transcendental functions, comparisons (bool
 * output), bool logic, and the variadic Min/Max/Sum/Mean. The formulas are those of
 * kernels/cpu/elementwise_unary.c / elementwise_binary.c in float (the CPU's float32 path);
 * other dtypes run host-staged (bp_cuda_eval_host). */
#include "kernels/cuda/elementwise.cuh"

#include <string.h>

/* ---- unary ---------------------------------------------------------------------------------- */
__device__ inline float unary_f(int op, float v, const uparams &p) {
  switch (op) {
  case U_Neg: return -v;
  case U_Abs: return fabsf(v);
  case U_Sqrt: return sqrtf(v);
  case U_Reciprocal: return 1.0f / v;
  case U_Exp: return expf(v);
  case U_Log: return logf(v);
  case U_Erf: return erff(v);
  case U_Tanh: return tanhf(v);
  case U_Sigmoid: return v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));
  case U_Relu: return v < 0 ? 0.0f : v;
  case U_LeakyRelu: return v < 0 ? p.alpha * v : v;
  case U_Elu: return v < 0 ? p.alpha * (expf(v) - 1.0f) : v;
  case U_Selu: return v <= 0 ? p.gamma * (p.alpha * expf(v) - p.alpha) : p.gamma * v;
  case U_Celu: return v > 0 ? v : p.alpha * (expf(v / p.alpha) - 1.0f);
  case U_Softplus: return v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v));
  case U_Softsign: return v / (1.0f + fabsf(v));
  case U_HardSigmoid: return fmaxf(0.0f, fminf(1.0f, p.alpha * v + p.beta));
  case U_HardSwish: return v * fmaxf(0.0f, fminf(1.0f, p.alpha * v + p.beta));
  case U_ThresholdedRelu: return v > p.alpha ? v : 0.0f;
  case U_Shrink: return v < -p.alpha ? v + p.beta : v > p.alpha ? v - p.beta : 0.0f;
  case U_Sin: return sinf(v);
  case U_Cos: return cosf(v);
  case U_Tan: return tanf(v);
  case U_Asin: return asinf(v);
  case U_Acos: return acosf(v);
  case U_Atan: return atanf(v);
  case U_Sinh: return sinhf(v);
  case U_Cosh: return coshf(v);
  case U_Asinh: return asinhf(v);
  case U_Acosh: return acoshf(v);
  case U_Atanh: return atanhf(v);
  case U_Floor: return floorf(v);
  case U_Ceil: return ceilf(v);
  case U_Round: return rintf(v); /* half to even */
  case U_Sign: return v > 0 ? 1.0f : v < 0 ? -1.0f : v;
  case U_Gelu: return 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
  case U_GeluTanh: return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  default: return v;
  }
}

__global__ void k_unary_f32(int op, uparams p, const float *x, float *y, int64_t count) {
  GRID_STRIDE(i, count) y[i] = unary_f(op, x[i], p);
}

/* Gelu (both forms) four elements per thread: the same formula as unary_f, 16-byte loads and
 * stores; one pass at memory bandwidth (the fused GELU chains of frontend/fuse_gelu.c land here). */
__global__ void k_gelu4_f32(int op, uparams p, const float4 *x, float4 *y, int64_t count4) {
  GRID_STRIDE(i, count4) {
    float4 v = x[i];
    y[i] = make_float4(unary_f(op, v.x, p), unary_f(op, v.y, p), unary_f(op, v.z, p), unary_f(op, v.w, p));
  }
}

__global__ void k_unary_test(int op, uparams p, const float *x, uint8_t *y, int64_t count) {
  GRID_STRIDE(i, count) {
    float v = x[i];
    y[i] = op == U_IsNaN ? v != v : (isinf(v) && (v > 0 ? p.detect_pos : p.detect_neg));
  }
}

__global__ void k_not(const uint8_t *x, uint8_t *y, int64_t count) {
  GRID_STRIDE(i, count) y[i] = !x[i];
}

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
  case U_HardSwish: p->alpha = (float)(1.0f / 6.0f); p->beta = 0.5f; break;
  case U_Shrink:
    p->alpha = bp_attr_float(n, "lambd", 0.5f);
    p->beta = bp_attr_float(n, "bias", 0.0f);
    break;
  default: break;
  }
  p->detect_neg = (int)bp_attr_int(n, "detect_negative", 1);
  p->detect_pos = (int)bp_attr_int(n, "detect_positive", 1);
}

static int eval_unary(bp_ctx *ctx, const bp_node *n, int op, bp_value *const *in, int nin, bp_value *const *out,
                      int nout, bp_err *e) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0];
  bp_value *y = out[0];
  int64_t count = bp_value_numel(x);
  uparams p;
  read_params(n, op, &p);
  if (op == U_Gelu && bp_attr_string(n, "approximate", "none")[0] == 't') op = U_GeluTanh;
  if (op == U_Not && x->dtype == BP_BOOL) {
    if (count) {
      k_not<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>((const uint8_t *)x->data, (uint8_t *)y->data, count);
      BP_LAUNCHED(dc, "k_not");
    }
    return 0;
  }
  if (x->dtype != BP_F32 || op == U_Not || op == U_BitwiseNot) {
    int rc = bp_cuda_unary_generic(dc, n, op, &p, x, y, e);
    return rc == 1 ? bp_cuda_eval_host(ctx, n, in, nin, out, nout, e) : rc;
  }
  if (!count) return 0;
  if (op == U_IsNaN || op == U_IsInf) {
    k_unary_test<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>(op, p, (const float *)x->data,
                                                                         (uint8_t *)y->data, count);
    BP_LAUNCHED(dc, "k_unary_test");
    return 0;
  }
  if ((op == U_Gelu || op == U_GeluTanh) && count % 4 == 0 && ((uintptr_t)x->data & 15) == 0 &&
      ((uintptr_t)y->data & 15) == 0) {
    k_gelu4_f32<<<bp_cuda_blocks(dc, count / 4), THREADS, 0, dc->stream>>>(op, p, (const float4 *)x->data,
                                                                           (float4 *)y->data, count / 4);
    BP_LAUNCHED(dc, "k_gelu4_f32");
    return 0;
  }
  k_unary_f32<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>(op, p, (const float *)x->data,
                                                                      (float *)y->data, count);
  BP_LAUNCHED(dc, "k_unary_f32");
  return 0;
}

#define CUDA_UNARY(OP)                                                                             \
  BP_CUDA_EVAL(bp_cuda_eval_##OP) { return eval_unary(ctx, n, U_##OP, in, nin, out, nout, e); }
CUDA_UNARY(Neg) CUDA_UNARY(Abs) CUDA_UNARY(Sqrt) CUDA_UNARY(Reciprocal) CUDA_UNARY(Exp) CUDA_UNARY(Log)
CUDA_UNARY(Erf) CUDA_UNARY(Tanh) CUDA_UNARY(Sigmoid) CUDA_UNARY(Relu) CUDA_UNARY(LeakyRelu) CUDA_UNARY(Elu)
CUDA_UNARY(Selu) CUDA_UNARY(Celu) CUDA_UNARY(Softplus) CUDA_UNARY(Softsign) CUDA_UNARY(HardSigmoid)
CUDA_UNARY(HardSwish) CUDA_UNARY(ThresholdedRelu) CUDA_UNARY(Shrink) CUDA_UNARY(Sin) CUDA_UNARY(Cos)
CUDA_UNARY(Tan) CUDA_UNARY(Asin) CUDA_UNARY(Acos) CUDA_UNARY(Atan) CUDA_UNARY(Sinh) CUDA_UNARY(Cosh)
CUDA_UNARY(Asinh) CUDA_UNARY(Acosh) CUDA_UNARY(Atanh) CUDA_UNARY(Floor) CUDA_UNARY(Ceil) CUDA_UNARY(Round)
CUDA_UNARY(Sign) CUDA_UNARY(Gelu) CUDA_UNARY(IsNaN) CUDA_UNARY(IsInf) CUDA_UNARY(Not) CUDA_UNARY(BitwiseNot)

/* ---- binary --------------------------------------------------------------------------------- */
/* numpy's minimum/maximum propagate NaN; Mod takes the divisor's sign (kernels/cpu). */
__device__ inline float min_f(float x, float y) { return x != x || y != y ? x + y : x < y ? x : y; }
__device__ inline float max_f(float x, float y) { return x != x || y != y ? x + y : x > y ? x : y; }
__device__ inline float mod_f(float x, float y) {
  float r = fmodf(x, y);
  return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
}

__device__ inline float binary_f(int op, float x, float y) {
  switch (op) {
  case EW_B_ADD: return x + y;
  case EW_B_SUB: return x - y;
  case EW_B_MUL: return x * y;
  case EW_B_DIV: return x / y;
  case EW_B_POW: return y == 2.0f ? x * x : powf(x, y); /* x*x is what powf(x, 2) rounds to */
  case EW_B_FMOD: return fmodf(x, y);
  case EW_B_MOD: return mod_f(x, y);
  case EW_B_PRELU: return x > 0 ? x : x * y;
  case EW_B_MIN: return min_f(x, y);
  case EW_B_MAX: return max_f(x, y);
  case EW_B_EQ: return x == y;
  case EW_B_LT: return x < y;
  case EW_B_GT: return x > y;
  case EW_B_LE: return x <= y;
  case EW_B_GE: return x >= y;
  default: return 0;
  }
}

__device__ inline uint8_t binary_b(int op, uint8_t x, uint8_t y) {
  switch (op) {
  case EW_B_AND: return x && y;
  case EW_B_OR: return x || y;
  case EW_B_XOR: return !x != !y;
  case EW_B_EQ: return (x != 0) == (y != 0);
  default: return 0;
  }
}

static int is_cmp(ew_binop op) {
  return op == EW_B_EQ || op == EW_B_LT || op == EW_B_GT || op == EW_B_LE || op == EW_B_GE;
}

/* float32 inputs; output float32 (arithmetic) or bool (comparisons). */
template <typename OT>
__global__ void k_binary_same(int op, const float *a, const float *b, OT *o, int64_t count) {
  GRID_STRIDE(i, count) o[i] = (OT)binary_f(op, a[i], b[i]);
}
/* One side a single element (scales, constants): no index arithmetic; `scalar_b` says which. */
template <typename OT>
__global__ void k_binary_scalar(int op, const float *v, const float *sp, int scalar_b, OT *o, int64_t count) {
  const float s = *sp;
  if (scalar_b) {
    GRID_STRIDE(i, count) o[i] = (OT)binary_f(op, v[i], s);
  } else {
    GRID_STRIDE(i, count) o[i] = (OT)binary_f(op, s, v[i]);
  }
}
template <typename OT>
__global__ void k_binary_bcast(int op, bp_walk w, const float *a, const float *b, OT *o, int64_t count) {
  GRID_STRIDE(i, count) {
    int64_t off[2];
    walk_offsets<2>(w, i, off);
    o[i] = (OT)binary_f(op, a[off[0]], b[off[1]]);
  }
}
/* Broadcasting, four elements per thread: the innermost dim (a multiple of 4) is contiguous or
 * broadcast (stride 0) in each input, and every other stride a multiple of 4, so that the walk
 * runs once per four elements and the loads/stores are 16 bytes (4 for a broadcast input). */
__device__ inline float4 load4(const float *p, int64_t off, int contiguous) {
  if (contiguous) return *(const float4 *)(p + off);
  float v = p[off];
  return make_float4(v, v, v, v);
}
__global__ void k_binary_bcast4(int op, bp_walk w, const float *a, const float *b, float *o, int ca, int cb,
                                int64_t count4) {
  GRID_STRIDE(i, count4) {
    int64_t off[2];
    walk_offsets<2>(w, 4 * i, off);
    float4 x = load4(a, off[0], ca), y = load4(b, off[1], cb), r;
    r.x = binary_f(op, x.x, y.x);
    r.y = binary_f(op, x.y, y.y);
    r.z = binary_f(op, x.z, y.z);
    r.w = binary_f(op, x.w, y.w);
    ((float4 *)o)[i] = r;
  }
}

/* Whether k_binary_bcast4 can take walk w (inputs a, b; float output o). */
static int bcast4_ok(const bp_walk *w, const void *a, const void *b, const void *o) {
  int r = w->rank;
  if (w->dims[r - 1] % 4 || ((uintptr_t)o & 15)) return 0;
  const void *p[2] = {a, b};
  for (int k = 0; k < 2; k++) {
    int64_t in = w->st[k][r - 1];
    if (in != 0 && in != 1) return 0;
    if (in == 1 && ((uintptr_t)p[k] & 15)) return 0;
    for (int d = 0; in == 1 && d < r - 1; d++)
      if (w->st[k][d] % 4) return 0;
  }
  return 1;
}

__global__ void k_binary_bool(int op, bp_walk w, const uint8_t *a, const uint8_t *b, uint8_t *o, int64_t count) {
  GRID_STRIDE(i, count) {
    int64_t off[2];
    walk_offsets<2>(w, i, off);
    o[i] = binary_b(op, a[off[0]], b[off[1]]);
  }
}

/* out = a op b with broadcasting (out may alias a when a has out's shape): float32 here, other
 * dtypes through bp_cuda_binary_generic. 1: not handled (the CPU kernel reports the dtype), 0 done,
 * -1 error. */
static int binary_apply(bp_cuda *dc, const bp_node *n, ew_binop op, const bp_value *a, const bp_value *b,
                        bp_value *o, bp_err *e) {
  int64_t count = bp_value_numel(o);
  const bp_value *ins[2] = {a, b};
  if (a->dtype == BP_BOOL && b->dtype == BP_BOOL && o->dtype == BP_BOOL &&
      (op == EW_B_AND || op == EW_B_OR || op == EW_B_XOR || op == EW_B_EQ)) {
    if (!count) return 0;
    bp_walk w;
    bp_walk_bcast(&w, o, ins, 2);
    k_binary_bool<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>(op, w, (const uint8_t *)a->data,
                                                                          (const uint8_t *)b->data, (uint8_t *)o->data, count);
    BP_LAUNCHED(dc, "k_binary_bool");
    return 0;
  }
  int cmp = is_cmp(op);
  if (a->dtype != BP_F32 || b->dtype != BP_F32 || (cmp && o->dtype != BP_BOOL) || (!cmp && o->dtype != BP_F32))
    return bp_cuda_binary_generic(dc, n, op, a, b, o, e);
  if (op == EW_B_AND || op == EW_B_OR || op == EW_B_XOR || op == EW_B_BAND || op == EW_B_BOR ||
      op == EW_B_BXOR || op == EW_B_SHL || op == EW_B_SHR)
    return 1; /* integer-only ops on float: the CPU kernel reports the dtype */
  if (!count) return 0;
  unsigned blocks = bp_cuda_blocks(dc, count);
  const float *pa = (const float *)a->data, *pb = (const float *)b->data;
  if (bp_same_shape(a, o) && bp_same_shape(b, o)) {
    if (cmp) k_binary_same<uint8_t><<<blocks, THREADS, 0, dc->stream>>>(op, pa, pb, (uint8_t *)o->data, count);
    else k_binary_same<float><<<blocks, THREADS, 0, dc->stream>>>(op, pa, pb, (float *)o->data, count);
    BP_LAUNCHED(dc, "k_binary_same");
    return 0;
  }
  int64_t na = bp_value_numel(a), nb = bp_value_numel(b);
  if ((nb == 1 && bp_same_shape(a, o)) || (na == 1 && bp_same_shape(b, o))) {
    int sb = nb == 1 && bp_same_shape(a, o);
    const float *v = sb ? pa : pb, *sp = sb ? pb : pa;
    if (cmp) k_binary_scalar<uint8_t><<<blocks, THREADS, 0, dc->stream>>>(op, v, sp, sb, (uint8_t *)o->data, count);
    else k_binary_scalar<float><<<blocks, THREADS, 0, dc->stream>>>(op, v, sp, sb, (float *)o->data, count);
    BP_LAUNCHED(dc, "k_binary_scalar");
    return 0;
  }
  bp_walk w;
  bp_walk_bcast(&w, o, ins, 2);
  if (!cmp && bcast4_ok(&w, pa, pb, o->data)) {
    int64_t c4 = count / 4;
    k_binary_bcast4<<<bp_cuda_blocks(dc, c4), THREADS, 0, dc->stream>>>(op, w, pa, pb, (float *)o->data,
                                                                         w.st[0][w.rank - 1] == 1, w.st[1][w.rank - 1] == 1, c4);
    BP_LAUNCHED(dc, "k_binary_bcast4");
    return 0;
  }
  if (cmp) k_binary_bcast<uint8_t><<<blocks, THREADS, 0, dc->stream>>>(op, w, pa, pb, (uint8_t *)o->data, count);
  else k_binary_bcast<float><<<blocks, THREADS, 0, dc->stream>>>(op, w, pa, pb, (float *)o->data, count);
  BP_LAUNCHED(dc, "k_binary_bcast");
  return 0;
}

static int eval_binary(bp_ctx *ctx, const bp_node *n, ew_binop op, bp_value *const *in, int nin,
                       bp_value *const *out, int nout, bp_err *e) {
  BP_CUDA_DC(dc);
  int rc = binary_apply(dc, n, op, in[0], in[1], out[0], e);
  return rc == 1 ? bp_cuda_eval_host(ctx, n, in, nin, out, nout, e) : rc;
}

#define CUDA_BINARY(OP, OPEXPR)                                                                    \
  BP_CUDA_EVAL(bp_cuda_eval_##OP) { return eval_binary(ctx, n, OPEXPR, in, nin, out, nout, e); }
CUDA_BINARY(Add, EW_B_ADD)
CUDA_BINARY(Sub, EW_B_SUB)
CUDA_BINARY(Mul, EW_B_MUL)
CUDA_BINARY(Div, EW_B_DIV)
CUDA_BINARY(Pow, EW_B_POW)
CUDA_BINARY(Mod, bp_attr_int(n, "fmod", 0) ? EW_B_FMOD : EW_B_MOD)
CUDA_BINARY(Equal, EW_B_EQ)
CUDA_BINARY(Less, EW_B_LT)
CUDA_BINARY(Greater, EW_B_GT)
CUDA_BINARY(LessOrEqual, EW_B_LE)
CUDA_BINARY(GreaterOrEqual, EW_B_GE)
CUDA_BINARY(And, EW_B_AND)
CUDA_BINARY(Or, EW_B_OR)
CUDA_BINARY(Xor, EW_B_XOR)
CUDA_BINARY(PRelu, EW_B_PRELU)
CUDA_BINARY(BitwiseAnd, EW_B_BAND)
CUDA_BINARY(BitwiseOr, EW_B_BOR)
CUDA_BINARY(BitwiseXor, EW_B_BXOR)
CUDA_BINARY(BitShift, strcmp(bp_attr_string(n, "direction", "LEFT"), "RIGHT") == 0 ? EW_B_SHR : EW_B_SHL)

/* ---- variadic Min/Max/Sum/Mean: broadcast-copy the first input, fold the others in place ---- */
__global__ void k_scale_f32(float *y, float s, int64_t count) {
  GRID_STRIDE(i, count) y[i] /= s;
}

static int eval_variadic(bp_ctx *ctx, const bp_node *n, ew_binop op, int mean, bp_value *const *in, int nin,
                         bp_value *const *out, int nout, bp_err *e) {
  BP_CUDA_DC(dc);
  bp_value *y = out[0];
  /* float32, and (but Mean) the other dtypes the exact path covers */
  int ok = y->dtype == BP_F32 || (!mean && y->dtype != BP_F16 && y->dtype != BP_BF16 && y->dtype != BP_BOOL &&
                                  bp_dtype_size(y->dtype) && y->dtype != BP_STRING);
  for (int k = 0; k < nin; k++) ok &= in[k] && in[k]->dtype == y->dtype;
  if (!ok) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  if (bp_cuda_broadcast_copy(dc, n, in[0], y, e)) return -1;
  for (int k = 1; k < nin; k++) {
    int rc = binary_apply(dc, n, op, y, in[k], y, e); /* MIN/MAX/ADD on these dtypes: 0 or -1 */
    if (rc) return rc < 0 ? -1 : bp_errf(e, "node '%s' (%s): internal: dtype %s not handled", n->name, n->op_type,
                                         bp_dtype_name(y->dtype));
  }
  int64_t count = bp_value_numel(y);
  if (mean && count) {
    k_scale_f32<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>((float *)y->data, (float)nin, count);
    BP_LAUNCHED(dc, "k_scale_f32");
  }
  return 0;
}

BP_CUDA_EVAL(bp_cuda_eval_Min) { return eval_variadic(ctx, n, EW_B_MIN, 0, in, nin, out, nout, e); }
BP_CUDA_EVAL(bp_cuda_eval_Max) { return eval_variadic(ctx, n, EW_B_MAX, 0, in, nin, out, nout, e); }
BP_CUDA_EVAL(bp_cuda_eval_Sum) { return eval_variadic(ctx, n, EW_B_ADD, 0, in, nin, out, nout, e); }
BP_CUDA_EVAL(bp_cuda_eval_Mean) { return eval_variadic(ctx, n, EW_B_ADD, 1, in, nin, out, nout, e); }
