/* kernels/cuda/elementwise.cuh — what the elementwise kernel files share: the unary op codes and
 * their attribute values, and the exact integer / float64 paths (kernels/cuda/elementwise_generic.cu)
 * that the float32 kernels (kernels/cuda/elementwise.cu) hand other dtypes to. Binary op codes are
 * the CPU's ew_binop (kernels/cpu/elementwise.h). */
#ifndef BITPIPE_KERNELS_CUDA_ELEMENTWISE_CUH
#define BITPIPE_KERNELS_CUDA_ELEMENTWISE_CUH

#include "kernels/cuda/common.cuh"

extern "C" {
#include "kernels/cpu/elementwise.h"
}

enum {
  U_Neg, U_Abs, U_Sqrt, U_Reciprocal, U_Exp, U_Log, U_Erf, U_Tanh, U_Sigmoid, U_Relu, U_LeakyRelu,
  U_Elu, U_Selu, U_Celu, U_Softplus, U_Softsign, U_HardSigmoid, U_HardSwish, U_ThresholdedRelu,
  U_Shrink, U_Sin, U_Cos, U_Tan, U_Asin, U_Acos, U_Atan, U_Sinh, U_Cosh, U_Asinh, U_Acosh,
  U_Atanh, U_Floor, U_Ceil, U_Round, U_Sign, U_Gelu, U_GeluTanh, U_IsNaN, U_IsInf, U_Not, U_BitwiseNot,
};

struct uparams {
  float alpha, beta, gamma;
  int detect_neg, detect_pos;
};

/* out = a op b with broadcasting for dtypes other than float32 (kernels/cpu/elementwise_binary.c's
 * exact path: double when either side is a float, else int64/uint64 with the narrow type's wrap).
 * 1: not handled (half precision, strings, an integer-only op on floats: the CPU kernel reports
 * it), 0 done, -1 error. */
int bp_cuda_binary_generic(bp_cuda *dc, const bp_node *n, ew_binop op, const bp_value *a, const bp_value *b,
                           bp_value *o, bp_err *e);
/* y = op(x) for float64 (the float formulas in double) and integer/bool inputs (the exact integer
 * ops). 1: not handled, 0 done, -1 error. */
int bp_cuda_unary_generic(bp_cuda *dc, const bp_node *n, int op, const uparams *p, const bp_value *x, bp_value *y,
                          bp_err *e);

#endif
