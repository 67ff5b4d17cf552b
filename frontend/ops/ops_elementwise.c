/* frontend/ops/ops_elementwise.c — the elementwise op group: shape/dtype inference of every
 * elementwise ONNX op (opsets 13-20, with the older forms the node tests use) and its table
 * entries binding the CPU kernels in kernels/cpu/elementwise*.c.
 *
 * Inference validates dtypes against the spec's type constraints (float16/bfloat16 are refused
 * for compute with "float16 compute is not supported": initializers are widened to float32 on
 * load, so only Cast/CastLike/Where ever see them) and computes numpy broadcast shapes. */
#include "frontend/ir.h"
#include "kernels/cpu/elementwise.h"

#include <stdio.h>
#include <string.h>

/* ---- dtype classes ---- */
enum { M_FLOAT = 1, M_SINT = 2, M_UINT = 4, M_BOOL = 8, M_HALF = 16 };
#define M_INT (M_SINT | M_UINT)
#define M_NUM (M_FLOAT | M_INT)

static unsigned dtype_class(bp_dtype t) {
  switch (t) {
  case BP_F32: case BP_F64: return M_FLOAT;
  case BP_F16: case BP_BF16: return M_HALF;
  case BP_I8: case BP_I16: case BP_I32: case BP_I64: return M_SINT;
  case BP_U8: case BP_U16: case BP_U32: case BP_U64: return M_UINT;
  case BP_BOOL: return M_BOOL;
  default: return 0;
  }
}

static const char *class_names(unsigned mask) {
  switch (mask) {
  case M_FLOAT: return "float32 or float64";
  case M_BOOL: return "bool";
  case M_INT: return "an integer type";
  case M_UINT: return "an unsigned integer type";
  case M_FLOAT | M_SINT: return "a float or signed integer type";
  case M_NUM: return "a numeric type";
  case M_NUM | M_BOOL: return "a numeric type or bool";
  default: return "a supported type";
  }
}

/* Input i present (not an omitted optional input). */
static int need_input(const bp_node *n, bp_value *const *in, int nin, int i, bp_err *e) {
  if (i >= nin || !in[i])
    return bp_errf(e, "node '%s' (%s): input %d is required", n->name, n->op_type, i);
  return 0;
}

/* dtype of input i belongs to `mask`; float16/bfloat16 get the dedicated message. */
static int check_dtype(const bp_node *n, const bp_value *v, int i, unsigned mask, bp_err *e) {
  unsigned c = dtype_class(v->dtype);
  if (c & mask) return 0;
  if (c == M_HALF && !(mask & M_HALF))
    return bp_errf(e, "node '%s' (%s): %s compute is not supported", n->name, n->op_type,
                   v->dtype == BP_F16 ? "float16" : "bfloat16");
  return bp_errf(e, "node '%s' (%s): input %d has dtype %s, expected %s", n->name, n->op_type, i,
                 bp_dtype_name(v->dtype), class_names(mask & ~(unsigned)M_HALF));
}

static int same_dtype(const bp_node *n, const bp_value *a, const bp_value *b, int ib, bp_err *e) {
  if (a->dtype == b->dtype) return 0;
  return bp_errf(e, "node '%s' (%s): input %d has dtype %s but input 0 has %s", n->name, n->op_type, ib,
                 bp_dtype_name(b->dtype), bp_dtype_name(a->dtype));
}

static void copy_shape(bp_value *dst, const bp_value *src) {
  dst->rank = src->rank;
  memcpy(dst->dims, src->dims, sizeof dst->dims);
}

static const char *who(const bp_node *n, char *buf, size_t len) {
  snprintf(buf, len, "node '%s' (%s)", n->name, n->op_type);
  return buf;
}

/* ---- unary ---- */

/* Input 0 of a class in mask; out[0] has its shape and `odt` (BP_UNDEF: the input's dtype). */
static int infer_unary_of(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, unsigned mask,
                          bp_dtype odt, bp_err *e) {
  if (need_input(n, in, nin, 0, e) || check_dtype(n, in[0], 0, mask, e)) return -1;
  if (out[0]) {
    copy_shape(out[0], in[0]);
    out[0]->dtype = odt == BP_UNDEF ? in[0]->dtype : odt;
  }
  return 0;
}

#define UNARY_INFER(name, mask, odt)                                                               \
  static int infer_##name(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,    \
                          int nout, bp_err *e) {                                                   \
    (void)nout;                                                                                    \
    return infer_unary_of(n, in, nin, out, mask, odt, e);                                          \
  }
UNARY_INFER(float_unary, M_FLOAT, BP_UNDEF)        /* Sqrt, Exp, activations, trig, rounding */
UNARY_INFER(signed_unary, M_FLOAT | M_SINT, BP_UNDEF) /* Neg, Relu */
UNARY_INFER(num_unary, M_NUM, BP_UNDEF)            /* Abs, Sign */
UNARY_INFER(bool_unary, M_BOOL, BP_UNDEF)          /* Not */
UNARY_INFER(int_unary, M_INT, BP_UNDEF)            /* BitwiseNot */
UNARY_INFER(float_test, M_FLOAT, BP_BOOL)          /* IsNaN, IsInf */

static int infer_gelu(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                      bp_err *e) {
  const char *approx = bp_attr_string(n, "approximate", "none");
  if (strcmp(approx, "none") != 0 && strcmp(approx, "tanh") != 0)
    return bp_errf(e, "node '%s' (%s): approximate='%s' is not one of none, tanh", n->name, n->op_type, approx);
  return infer_float_unary(n, in, nin, out, nout, e);
}

/* ---- binary ---- */

/* Broadcast of inputs 0 and 1 into out[0] with dtype odt (BP_UNDEF: input 0's). Both inputs in
 * `mask`; same dtype unless `mixed` (Pow's exponent). */
static int infer_binary_of(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                           unsigned mask, int mixed, bp_dtype odt, bp_err *e) {
  char buf[300];
  bp_value shape;
  if (need_input(n, in, nin, 0, e) || need_input(n, in, nin, 1, e)) return -1;
  if (check_dtype(n, in[0], 0, mask, e) || check_dtype(n, in[1], 1, mask, e)) return -1;
  if (!mixed && same_dtype(n, in[0], in[1], 1, e)) return -1;
  if (bp_broadcast_shape(in[0], in[1], &shape, who(n, buf, sizeof buf), e)) return -1;
  if (out[0]) {
    copy_shape(out[0], &shape);
    out[0]->dtype = odt == BP_UNDEF ? in[0]->dtype : odt;
  }
  return 0;
}

#define BINARY_INFER(name, mask, mixed, odt)                                                       \
  static int infer_##name(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,    \
                          int nout, bp_err *e) {                                                   \
    (void)nout;                                                                                    \
    return infer_binary_of(n, in, nin, out, mask, mixed, odt, e);                                  \
  }
BINARY_INFER(arith, M_NUM, 0, BP_UNDEF)       /* Add Sub Mul Div */
BINARY_INFER(pow, M_NUM, 1, BP_UNDEF)         /* Pow: base and exponent types may differ */
BINARY_INFER(compare, M_NUM, 0, BP_BOOL)      /* Less Greater LessOrEqual GreaterOrEqual */
BINARY_INFER(equal, M_NUM | M_BOOL, 0, BP_BOOL)
BINARY_INFER(logic, M_BOOL, 0, BP_BOOL)       /* And Or Xor */
BINARY_INFER(bitwise, M_INT, 0, BP_UNDEF)     /* BitwiseAnd/Or/Xor */

static int infer_bitshift(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                          bp_err *e) {
  (void)nout;
  const char *dir = bp_attr_string(n, "direction", NULL);
  if (!dir || (strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0))
    return bp_errf(e, "node '%s' (%s): attribute 'direction' must be LEFT or RIGHT", n->name, n->op_type);
  return infer_binary_of(n, in, nin, out, M_INT, 0, BP_UNDEF, e); /* signed since opset 26 */
}

/* PRelu: slope broadcasts to X (unidirectionally); the output is X's shape. */
static int infer_prelu(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                       bp_err *e) {
  bp_value shape, *sp = &shape;
  char buf[300], s1[128], s2[128];
  (void)nout;
  if (infer_binary_of(n, in, nin, &sp, M_NUM, 0, BP_UNDEF, e)) return -1;
  if (!bp_same_shape(&shape, in[0]))
    return bp_errf(e, "%s: slope shape %s does not broadcast to X shape %s", who(n, buf, sizeof buf),
                   bp_shape_str(in[1], s1, sizeof s1), bp_shape_str(in[0], s2, sizeof s2));
  if (out[0]) {
    copy_shape(out[0], in[0]);
    out[0]->dtype = in[0]->dtype;
  }
  return 0;
}

/* ---- variadic Min/Max/Sum/Mean ---- */

static int infer_variadic_of(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                             unsigned mask, bp_err *e) {
  char buf[300];
  bp_value shape;
  if (need_input(n, in, nin, 0, e) || check_dtype(n, in[0], 0, mask, e)) return -1;
  copy_shape(&shape, in[0]);
  for (int i = 1; i < nin; i++) {
    if (need_input(n, in, nin, i, e) || same_dtype(n, in[0], in[i], i, e)) return -1;
    if (bp_broadcast_shape(&shape, in[i], &shape, who(n, buf, sizeof buf), e)) return -1;
  }
  if (out[0]) {
    copy_shape(out[0], &shape);
    out[0]->dtype = in[0]->dtype;
  }
  return 0;
}

static int infer_minmax(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                        bp_err *e) {
  (void)nout;
  return infer_variadic_of(n, in, nin, out, M_NUM, e);
}

static int infer_mean(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                      bp_err *e) {
  (void)nout;
  return infer_variadic_of(n, in, nin, out, M_FLOAT, e);
}

/* ---- Clip ---- */

static int infer_clip(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                      bp_err *e) {
  if (infer_unary_of(n, in, nin, out, M_NUM, BP_UNDEF, e)) return -1;
  (void)nout;
  if (n->opset < 11) {
    if (nin > 1) return bp_errf(e, "node '%s' (%s): before opset 11 min/max are attributes, not inputs", n->name, n->op_type);
    if (!bp_dtype_is_float(in[0]->dtype))
      return bp_errf(e, "node '%s' (%s): before opset 11 Clip takes float input", n->name, n->op_type);
    return 0;
  }
  for (int i = 1; i < nin && i < 3; i++) {
    if (!in[i]) continue;
    if (same_dtype(n, in[0], in[i], i, e)) return -1;
    if (bp_value_numel(in[i]) != 1)
      return bp_errf(e, "node '%s' (%s): input %d (%s) must be a scalar", n->name, n->op_type, i,
                     i == 1 ? "min" : "max");
  }
  return 0;
}

/* ---- Where ---- */

static int infer_where(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                       bp_err *e) {
  char buf[300];
  bp_value shape;
  (void)nout;
  for (int i = 0; i < 3; i++)
    if (need_input(n, in, nin, i, e)) return -1;
  if (check_dtype(n, in[0], 0, M_BOOL, e)) return -1;
  if (!dtype_class(in[1]->dtype)) return check_dtype(n, in[1], 1, M_NUM | M_BOOL | M_HALF, e);
  if (same_dtype(n, in[1], in[2], 2, e)) return -1;
  if (bp_broadcast_shape(in[0], in[1], &shape, who(n, buf, sizeof buf), e) ||
      bp_broadcast_shape(&shape, in[2], &shape, buf, e))
    return -1;
  if (out[0]) {
    copy_shape(out[0], &shape);
    out[0]->dtype = in[1]->dtype;
  }
  return 0;
}

/* ---- Cast / CastLike ---- */

static int cast_target_ok(const bp_node *n, int64_t to, bp_err *e) {
  if (dtype_class((bp_dtype)to)) return 0;
  if (to >= 17 && to <= 20)
    return bp_errf(e, "node '%s' (%s): cast to float8 (dtype %lld) is not supported", n->name, n->op_type,
                   (long long)to);
  return bp_errf(e, "node '%s' (%s): cast to %s (dtype %lld) is not supported", n->name, n->op_type,
                 to == BP_STRING ? "string" : "this type", (long long)to);
}

static int infer_cast_to(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int64_t to,
                         bp_err *e) {
  if (need_input(n, in, nin, 0, e)) return -1;
  if (!dtype_class(in[0]->dtype))
    return bp_errf(e, "node '%s' (%s): cast from %s is not supported", n->name, n->op_type,
                   bp_dtype_name(in[0]->dtype));
  if (cast_target_ok(n, to, e)) return -1;
  if (out[0]) {
    copy_shape(out[0], in[0]);
    out[0]->dtype = (bp_dtype)to;
  }
  return 0;
}

static int infer_cast(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                      bp_err *e) {
  (void)nout;
  const bp_attr *to = bp_node_attr(n, "to");
  if (!to || to->type != BP_ATTR_INT)
    return bp_errf(e, "node '%s' (%s): integer attribute 'to' is required", n->name, n->op_type);
  return infer_cast_to(n, in, nin, out, to->i, e);
}

static int infer_castlike(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                          bp_err *e) {
  (void)nout;
  if (need_input(n, in, nin, 1, e)) return -1;
  return infer_cast_to(n, in, nin, out, in[1]->dtype, e);
}

/* ---- the table ---- */
#define OP(name, lo, hi, inf) {#name, NULL, lo, hi, infer_##inf, ew_eval_##name, NULL, NULL}

const bp_op_def bp_ops_elementwise[] = {
    /* arithmetic */
    OP(Add, 2, 2, arith), OP(Sub, 2, 2, arith), OP(Mul, 2, 2, arith), OP(Div, 2, 2, arith),
    OP(Pow, 2, 2, pow), OP(Mod, 2, 2, arith),
    OP(Neg, 1, 1, signed_unary), OP(Abs, 1, 1, num_unary), OP(Sign, 1, 1, num_unary),
    OP(Sqrt, 1, 1, float_unary), OP(Reciprocal, 1, 1, float_unary), OP(Exp, 1, 1, float_unary),
    OP(Log, 1, 1, float_unary), OP(Erf, 1, 1, float_unary),
    OP(Floor, 1, 1, float_unary), OP(Ceil, 1, 1, float_unary), OP(Round, 1, 1, float_unary),
    /* activations */
    OP(Tanh, 1, 1, float_unary), OP(Sigmoid, 1, 1, float_unary), OP(Relu, 1, 1, signed_unary),
    OP(LeakyRelu, 1, 1, float_unary), OP(Elu, 1, 1, float_unary), OP(Selu, 1, 1, float_unary),
    OP(Celu, 1, 1, float_unary), OP(Softplus, 1, 1, float_unary), OP(Softsign, 1, 1, float_unary),
    OP(HardSigmoid, 1, 1, float_unary), OP(HardSwish, 1, 1, float_unary),
    OP(ThresholdedRelu, 1, 1, float_unary), OP(Shrink, 1, 1, float_unary), OP(Gelu, 1, 1, gelu),
    OP(PRelu, 2, 2, prelu),
    /* trigonometric and hyperbolic */
    OP(Sin, 1, 1, float_unary), OP(Cos, 1, 1, float_unary), OP(Tan, 1, 1, float_unary),
    OP(Asin, 1, 1, float_unary), OP(Acos, 1, 1, float_unary), OP(Atan, 1, 1, float_unary),
    OP(Sinh, 1, 1, float_unary), OP(Cosh, 1, 1, float_unary), OP(Asinh, 1, 1, float_unary),
    OP(Acosh, 1, 1, float_unary), OP(Atanh, 1, 1, float_unary),
    /* comparisons, logic, bitwise, tests */
    OP(Equal, 2, 2, equal), OP(Less, 2, 2, compare), OP(Greater, 2, 2, compare),
    OP(LessOrEqual, 2, 2, compare), OP(GreaterOrEqual, 2, 2, compare),
    OP(And, 2, 2, logic), OP(Or, 2, 2, logic), OP(Xor, 2, 2, logic), OP(Not, 1, 1, bool_unary),
    OP(BitwiseAnd, 2, 2, bitwise), OP(BitwiseOr, 2, 2, bitwise), OP(BitwiseXor, 2, 2, bitwise),
    OP(BitwiseNot, 1, 1, int_unary), OP(BitShift, 2, 2, bitshift),
    OP(IsNaN, 1, 1, float_test), OP(IsInf, 1, 1, float_test),
    /* selection, conversion, variadic, clipping */
    OP(Where, 3, 3, where), OP(Cast, 1, 1, cast), OP(CastLike, 2, 2, castlike),
    OP(Min, 1, -1, minmax), OP(Max, 1, -1, minmax), OP(Sum, 1, -1, minmax), OP(Mean, 1, -1, mean),
    OP(Clip, 1, 3, clip),
    {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};
