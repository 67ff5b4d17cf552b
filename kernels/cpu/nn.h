/* kernels/cpu/nn.h — CPU forward kernels of the `nn` op group (frontend/ops/ops_nn.c): matrix
 * products, softmax family, normalisations, reductions, arg-reductions, dropout and einsum.
 *
 * Every bp_nn_eval_* has the bp_eval_fn signature of frontend/ir.h. The helpers below the eval
 * functions are shared with shape inference, so the two can never disagree about an attribute's
 * meaning (opset-dependent axes, 1-D MatMul promotion, einsum subscripts). */
#ifndef BITPIPE_KERNELS_CPU_NN_H
#define BITPIPE_KERNELS_CPU_NN_H

#include "frontend/ir.h"

/* OpenMP when the build has it (-fopenmp): row loops go parallel above a work threshold.
 * Without OpenMP the macro expands to nothing. */
#define BP_NN_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define BP_NN_OMP_FOR(cond) BP_NN_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define BP_NN_OMP_FOR(cond)
#endif
/* Rows of at least this many elements in total are worth threads. */
#define BP_NN_PAR_MIN 65536

#define BP_NN_EVAL(name)                                                                           \
  int name(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,     \
           int nout, bp_err *e)

/* matmul.c / matmul_gemm.c */
BP_NN_EVAL(bp_nn_eval_matmul);
BP_NN_EVAL(bp_nn_eval_gemm);
/* nn_softmax.c */
BP_NN_EVAL(bp_nn_eval_softmax);
BP_NN_EVAL(bp_nn_eval_logsoftmax);
BP_NN_EVAL(bp_nn_eval_hardmax);
/* nn_layernorm.c */
BP_NN_EVAL(bp_nn_eval_layernorm);
BP_NN_EVAL(bp_nn_eval_rmsnorm);
/* nn_batchnorm.c */
BP_NN_EVAL(bp_nn_eval_batchnorm);
BP_NN_EVAL(bp_nn_eval_instancenorm);
BP_NN_EVAL(bp_nn_eval_groupnorm);
/* nn_reduce.c */
BP_NN_EVAL(bp_nn_eval_reduce_sum);
BP_NN_EVAL(bp_nn_eval_reduce_mean);
BP_NN_EVAL(bp_nn_eval_reduce_max);
BP_NN_EVAL(bp_nn_eval_reduce_min);
BP_NN_EVAL(bp_nn_eval_reduce_prod);
BP_NN_EVAL(bp_nn_eval_reduce_sum_square);
BP_NN_EVAL(bp_nn_eval_reduce_l1);
BP_NN_EVAL(bp_nn_eval_reduce_l2);
BP_NN_EVAL(bp_nn_eval_reduce_log_sum);
BP_NN_EVAL(bp_nn_eval_reduce_log_sum_exp);
/* nn_argreduce.c */
BP_NN_EVAL(bp_nn_eval_argmax);
BP_NN_EVAL(bp_nn_eval_argmin);
/* nn_dropout.c */
BP_NN_EVAL(bp_nn_eval_dropout);
/* nn_topk.c; bp_nn_topk_k reads K (input 1, or attribute 'k' before opset 10; must be constant) */
BP_NN_EVAL(bp_nn_eval_topk);
int bp_nn_topk_k(const bp_node *n, bp_value *const *in, int nin, int64_t *k, bp_err *e);
/* nn_einsum.c */
BP_NN_EVAL(bp_nn_eval_einsum);

/* ---- helpers shared with inference ---------------------------------------------------------- */

/* Fails with "node 'NAME' (OP): float16 compute is not supported" for F16/BF16, and with a
 * message naming `what` when t is not a float (allow_int 0) or not a float/integer type. */
int bp_nn_check_dtype(const bp_node *n, bp_dtype t, int allow_int, int allow_bool, const char *what,
                      bp_err *e);

/* Broadcasting of per-channel/per-row parameters (nn_common.c): see the comments there. */
void *bp_nn_expand(const bp_value *v, const bp_value *shape);
int bp_nn_row_invariant(const bp_value *v, const bp_value *shape, int from);
const void *bp_nn_row_param(const bp_value *v, const bp_value *x, int from, int64_t cols,
                            int64_t *row_stride, void **owned);

/* MatMul shapes with numpy semantics: 1-D operands are promoted (A: [K] -> [1,K], B: [K] ->
 * [K,1]) and the added dimension removed from the result; batch dimensions broadcast. */
typedef struct bp_matmul_dims {
  int64_t m, n, k;
  int64_t batch;               /* product of the broadcast batch dimensions */
  int brank;                   /* rank of the broadcast batch shape */
  int64_t bdims[BP_MAX_RANK];  /* broadcast batch dims */
  int64_t astride[BP_MAX_RANK], bstride[BP_MAX_RANK]; /* per batch dim, in matrices (0: broadcast) */
} bp_matmul_dims;
int bp_matmul_shape(const bp_node *n, const bp_value *a, const bp_value *b, bp_matmul_dims *d,
                    bp_value *out, bp_err *e);

/* Softmax/LogSoftmax/Hardmax: splits x into [outer, len, inner] around the normalised axis.
 * Opset >= 13: the axis alone (default -1); before 13: x coerced to 2-D at `axis` (default 1),
 * i.e. len is the product of dims[axis:] and inner is 1. */
int bp_nn_softmax_split(const bp_node *n, const bp_value *x, int64_t *outer, int64_t *len,
                        int64_t *inner, bp_err *e);

/* Reduce*: which axes are reduced. mask[i] = 1 for reduced axes of `x`. Axes come from the
 * attribute (opset < 18; ReduceSum < 13) or from input 1 (must be constant). *noop is set when
 * the axes are empty and noop_with_empty_axes = 1 (the output is the input). */
int bp_nn_reduce_axes(const bp_node *n, bp_value *const *in, int nin, const bp_value *x,
                      unsigned char *mask, int *noop, bp_err *e);

/* Einsum: the parsed equation. Labels are letters; each ellipsis dimension becomes its own
 * label (ids 52..). */
#define BP_EINSUM_MAX_OPS 8
#define BP_EINSUM_MAX_LABELS 64
typedef struct bp_einsum {
  int nops;
  int rank[BP_EINSUM_MAX_OPS];                  /* operand ranks */
  int lab[BP_EINSUM_MAX_OPS][BP_MAX_RANK];      /* label id per operand dimension */
  int out_rank;
  int out_lab[BP_MAX_RANK];
  int nlabels;                                  /* label ids in use are < nlabels */
  int64_t size[BP_EINSUM_MAX_LABELS];           /* size of each label (1 if unused) */
  unsigned char used[BP_EINSUM_MAX_LABELS];
} bp_einsum;
int bp_einsum_parse(const bp_node *n, bp_value *const *in, int nin, bp_einsum *es, bp_err *e);
/* nn_einsum_gemm.c: evaluates a 2-operand float einsum as a batched GEMM when its labels allow.
 * Returns 1 when done, 0 when not applicable (use the general loop), -1 on error. */
int bp_einsum_gemm(const bp_node *n, const bp_einsum *es, bp_value *const *in, bp_value *y, bp_err *e);

#endif
