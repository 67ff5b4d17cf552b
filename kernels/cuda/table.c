/* kernels/cuda/table.c — the CUDA op table: for every op of the CPU op table (frontend/op_table.c),
 * its own CUDA kernel (with the dtypes the kernel covers; other dtypes fall back to the host) or the
 * host-staged path (kernels/cuda/host.c). Looked up by (domain, op_type) like bp_op_find. */
#include "kernels/cuda/internal.h"

#include <string.h>

#define DECL(fn) int fn(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout, bp_err *e);
#define UNARY_OPS(X)                                                                               \
  X(Neg) X(Abs) X(Sqrt) X(Reciprocal) X(Exp) X(Log) X(Erf) X(Tanh) X(Sigmoid) X(Relu) X(LeakyRelu) X(Elu) X(Selu)    \
  X(Celu) X(Softplus) X(Softsign) X(HardSigmoid) X(HardSwish) X(ThresholdedRelu) X(Shrink) X(Sin) X(Cos) X(Tan)     \
  X(Asin) X(Acos) X(Atan) X(Sinh) X(Cosh) X(Asinh) X(Acosh) X(Atanh) X(Floor) X(Ceil) X(Round) X(Sign) X(Gelu)      \
  X(IsNaN) X(IsInf)
#define BINARY_OPS(X)                                                                              \
  X(Add) X(Sub) X(Mul) X(Div) X(Pow) X(Mod) X(Equal) X(Less) X(Greater) X(LessOrEqual) X(GreaterOrEqual) X(PRelu)
#define BOOL_OPS(X) X(And) X(Or) X(Xor) X(Not)
#define INT_OPS(X) X(BitwiseAnd) X(BitwiseOr) X(BitwiseXor) X(BitwiseNot) X(BitShift)
#define VARIADIC_OPS(X) X(Min) X(Max) X(Sum) X(Mean)
#define DECL_EW(op) DECL(bp_cuda_eval_##op)
UNARY_OPS(DECL_EW)
BINARY_OPS(DECL_EW)
BOOL_OPS(DECL_EW)
INT_OPS(DECL_EW)
VARIADIC_OPS(DECL_EW)
DECL(bp_cuda_eval_Where) DECL(bp_cuda_eval_Cast) DECL(bp_cuda_eval_CastLike) DECL(bp_cuda_eval_Clip)
DECL(bp_cuda_eval_identity) DECL(bp_cuda_eval_transpose) DECL(bp_cuda_eval_expand) DECL(bp_cuda_eval_tile)
DECL(bp_cuda_eval_concat) DECL(bp_cuda_eval_split) DECL(bp_cuda_eval_slice) DECL(bp_cuda_eval_slice_grad)
DECL(bp_cuda_eval_depth_to_space) DECL(bp_cuda_eval_space_to_depth)
DECL(bp_cuda_eval_gather) DECL(bp_cuda_eval_gather_elements) DECL(bp_cuda_eval_gather_grad)
DECL(bp_cuda_eval_matmul) DECL(bp_cuda_eval_gemm)
DECL(bp_cuda_eval_softmax) DECL(bp_cuda_eval_logsoftmax) DECL(bp_cuda_eval_softmax_grad)
DECL(bp_cuda_eval_layernorm) DECL(bp_cuda_eval_rmsnorm) DECL(bp_cuda_eval_layernorm_grad)
DECL(bp_cuda_eval_reduce_sum) DECL(bp_cuda_eval_reduce_mean) DECL(bp_cuda_eval_reduce_max) DECL(bp_cuda_eval_reduce_min)
DECL(bp_cuda_eval_reduce_prod) DECL(bp_cuda_eval_reduce_sum_square) DECL(bp_cuda_eval_reduce_l1)
DECL(bp_cuda_eval_reduce_l2) DECL(bp_cuda_eval_reduce_log_sum) DECL(bp_cuda_eval_reduce_log_sum_exp)
DECL(bp_cuda_eval_sum_to)
DECL(bp_cuda_eval_sce) DECL(bp_cuda_eval_sce_grad)
DECL(bp_cuda_eval_dropout) DECL(bp_cuda_eval_dropout_grad) DECL(bp_cuda_eval_gelu_grad)
DECL(bp_cuda_eval_argmax) DECL(bp_cuda_eval_argmin) DECL(bp_cuda_eval_hardmax) DECL(bp_cuda_eval_cumsum)
DECL(bp_cuda_eval_trilu) DECL(bp_cuda_eval_constant_of_shape) DECL(bp_cuda_eval_eye_like) DECL(bp_cuda_eval_pad)

#define F32 "float32"
#define NUM "float32 (float64, integers: exact path)"
#define INT "integers"
#define ANY "any dtype"
#define OWN(name, fn, dt) {NULL, name, fn, BP_CUDA_OWN, dt}
#define OWN_G(name, fn, dt) {"bitpipe", name, fn, BP_CUDA_OWN, dt}
#define OWN_EW(op) OWN(#op, bp_cuda_eval_##op, NUM),
#define OWN_INT(op) OWN(#op, bp_cuda_eval_##op, INT),

static const bp_cuda_op own_ops[] = {
    UNARY_OPS(OWN_EW)
    BINARY_OPS(OWN_EW)
    VARIADIC_OPS(OWN_EW)
    INT_OPS(OWN_INT)
    OWN("And", bp_cuda_eval_And, "bool"),
    OWN("Or", bp_cuda_eval_Or, "bool"),
    OWN("Xor", bp_cuda_eval_Xor, "bool"),
    OWN("Not", bp_cuda_eval_Not, "bool"),
    OWN("Where", bp_cuda_eval_Where, ANY),
    OWN("Cast", bp_cuda_eval_Cast, ANY),
    OWN("CastLike", bp_cuda_eval_CastLike, ANY),
    OWN("Clip", bp_cuda_eval_Clip, F32),
    OWN("Identity", bp_cuda_eval_identity, ANY),
    OWN("Reshape", bp_cuda_eval_identity, ANY),
    OWN("Flatten", bp_cuda_eval_identity, ANY),
    OWN("Squeeze", bp_cuda_eval_identity, ANY),
    OWN("Unsqueeze", bp_cuda_eval_identity, ANY),
    OWN("Transpose", bp_cuda_eval_transpose, ANY),
    OWN("Expand", bp_cuda_eval_expand, ANY),
    OWN("Tile", bp_cuda_eval_tile, ANY),
    OWN("Concat", bp_cuda_eval_concat, ANY),
    OWN("Split", bp_cuda_eval_split, ANY),
    OWN("Slice", bp_cuda_eval_slice, ANY),
    OWN("DepthToSpace", bp_cuda_eval_depth_to_space, ANY),
    OWN("SpaceToDepth", bp_cuda_eval_space_to_depth, ANY),
    OWN("Gather", bp_cuda_eval_gather, ANY),
    OWN("GatherElements", bp_cuda_eval_gather_elements, ANY),
    OWN("MatMul", bp_cuda_eval_matmul, F32),
    OWN("Gemm", bp_cuda_eval_gemm, F32),
    OWN("Softmax", bp_cuda_eval_softmax, F32),
    OWN("LogSoftmax", bp_cuda_eval_logsoftmax, F32),
    OWN("LayerNormalization", bp_cuda_eval_layernorm, F32),
    OWN("RMSNormalization", bp_cuda_eval_rmsnorm, F32),
    OWN("ReduceSum", bp_cuda_eval_reduce_sum, F32),
    OWN("ReduceMean", bp_cuda_eval_reduce_mean, F32),
    OWN("ReduceMax", bp_cuda_eval_reduce_max, F32),
    OWN("ReduceMin", bp_cuda_eval_reduce_min, F32),
    OWN("ReduceProd", bp_cuda_eval_reduce_prod, F32),
    OWN("ReduceSumSquare", bp_cuda_eval_reduce_sum_square, F32),
    OWN("ReduceL1", bp_cuda_eval_reduce_l1, F32),
    OWN("ReduceL2", bp_cuda_eval_reduce_l2, F32),
    OWN("ReduceLogSum", bp_cuda_eval_reduce_log_sum, F32),
    OWN("ReduceLogSumExp", bp_cuda_eval_reduce_log_sum_exp, F32),
    OWN("Dropout", bp_cuda_eval_dropout, F32),
    OWN("ArgMax", bp_cuda_eval_argmax, "float32, float64, integers"),
    OWN("ArgMin", bp_cuda_eval_argmin, "float32, float64, integers"),
    OWN("Hardmax", bp_cuda_eval_hardmax, F32),
    OWN("CumSum", bp_cuda_eval_cumsum, "float32, float64, integers"),
    OWN("Trilu", bp_cuda_eval_trilu, ANY),
    OWN("ConstantOfShape", bp_cuda_eval_constant_of_shape, ANY),
    OWN("EyeLike", bp_cuda_eval_eye_like, ANY),
    OWN("Pad", bp_cuda_eval_pad, "any dtype, constant mode (other modes: host)"),
    OWN_G("SumTo", bp_cuda_eval_sum_to, F32),
    OWN_G("SoftmaxGrad", bp_cuda_eval_softmax_grad, F32),
    OWN_G("LayerNormGrad", bp_cuda_eval_layernorm_grad, F32),
    OWN_G("GatherGrad", bp_cuda_eval_gather_grad, F32),
    OWN_G("SliceGrad", bp_cuda_eval_slice_grad, ANY),
    OWN_G("DropoutGrad", bp_cuda_eval_dropout_grad, F32),
    OWN_G("GeluGrad", bp_cuda_eval_gelu_grad, F32),
    OWN_G("SoftmaxCrossEntropy", bp_cuda_eval_sce, F32),
    OWN_G("SoftmaxCrossEntropyGrad", bp_cuda_eval_sce_grad, F32),
};
#define NOWN ((int)(sizeof own_ops / sizeof own_ops[0]))

/* One entry per CPU op, built on first use. */
#define MAX_OPS 256
static bp_cuda_op table[MAX_OPS];
static int table_count = -1;

static int same_domain(const char *a, const char *b) {
  int da = !a || !*a || !strcmp(a, "ai.onnx"), db = !b || !*b || !strcmp(b, "ai.onnx");
  return da || db ? da && db : strcmp(a, b) == 0;
}

static void build(void) {
  if (table_count >= 0) return;
  int count;
  const bp_op_def *cpu = bp_op_table(&count);
  table_count = 0;
  for (int i = 0; i < count && table_count < MAX_OPS; i++) {
    bp_cuda_op t = {cpu[i].domain, cpu[i].name, bp_cuda_eval_host, BP_CUDA_HOST, NULL};
    for (int k = 0; k < NOWN; k++)
      if (same_domain(own_ops[k].domain, cpu[i].domain) && !strcmp(own_ops[k].name, cpu[i].name)) t = own_ops[k];
    table[table_count++] = t;
  }
}

const bp_cuda_op *bp_cuda_op_find(const char *domain, const char *op_type) {
  build();
  for (int i = 0; i < table_count; i++)
    if (same_domain(domain, table[i].domain) && !strcmp(table[i].name, op_type)) return &table[i];
  return NULL;
}

const bp_cuda_op *bp_cuda_op_at(int i, int *count) {
  build();
  *count = table_count;
  return i >= 0 && i < table_count ? &table[i] : NULL;
}
