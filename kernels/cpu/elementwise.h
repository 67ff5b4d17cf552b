/* kernels/cpu/elementwise.h — CPU forward kernels of the elementwise ONNX ops (arithmetic,
 * activations, comparisons, logic, Where, Cast, variadic Min/Max/Sum/Mean, Clip, PRelu), plus
 * the broadcast iterator they share.
 *
 * Every eval function has the bp_eval_fn signature (frontend/ir.h): inputs carry data, outputs
 * carry the dtype/shape set by inference and zeroed storage. float32 has fast loops; the other
 * dtypes go through exact int64/uint64 arithmetic (integers) or double (floats). float16 and
 * bfloat16 are only moved or converted (Cast, CastLike, Where), never computed on.
 *
 * The op lists below are X-macros: the kernels define one `ew_eval_<Op>` per entry and the op
 * table (frontend/ops/ops_elementwise.c) binds them, so op names are never compared at run time. */
#ifndef BITPIPE_KERNELS_CPU_ELEMENTWISE_H
#define BITPIPE_KERNELS_CPU_ELEMENTWISE_H

#include "frontend/ir.h"

/* One input, same-shape output (elementwise_unary.c). */
#define EW_UNARY_OPS(X)                                                                            \
  X(Neg) X(Abs) X(Sqrt) X(Reciprocal) X(Exp) X(Log) X(Erf) X(Tanh) X(Sigmoid) X(Relu) X(LeakyRelu) \
  X(Elu) X(Selu) X(Celu) X(Softplus) X(Softsign) X(HardSigmoid) X(HardSwish) X(ThresholdedRelu)    \
  X(Shrink) X(Sin) X(Cos) X(Tan) X(Asin) X(Acos) X(Atan) X(Sinh) X(Cosh) X(Asinh) X(Acosh)         \
  X(Atanh) X(Floor) X(Ceil) X(Round) X(Sign) X(Gelu) X(Not) X(BitwiseNot) X(IsNaN) X(IsInf)

/* Two inputs, multidirectional broadcast (PRelu: slope broadcast to X) (elementwise_binary.c). */
#define EW_BINARY_OPS(X)                                                                           \
  X(Add) X(Sub) X(Mul) X(Div) X(Pow) X(Mod) X(Equal) X(Less) X(Greater) X(LessOrEqual)             \
  X(GreaterOrEqual) X(And) X(Or) X(Xor) X(BitwiseAnd) X(BitwiseOr) X(BitwiseXor) X(BitShift)       \
  X(PRelu)

/* Variadic (elementwise_variadic.c), Clip (elementwise_clip.c), Where/Cast/CastLike
 * (elementwise_select.c). */
#define EW_VARIADIC_OPS(X) X(Min) X(Max) X(Sum) X(Mean)
#define EW_OTHER_OPS(X) X(Clip) X(Where) X(Cast) X(CastLike)

#define EW_DECLARE_EVAL(op)                                                                        \
  int ew_eval_##op(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,                    \
                   bp_value *const *out, int nout, bp_err *e);
EW_UNARY_OPS(EW_DECLARE_EVAL)
EW_BINARY_OPS(EW_DECLARE_EVAL)
EW_VARIADIC_OPS(EW_DECLARE_EVAL)
EW_OTHER_OPS(EW_DECLARE_EVAL)

/* ---- broadcast iteration --------------------------------------------------------------------
 * Walks a contiguous output in `outer` runs of `inner` elements. For input k, run r starts at
 * element off[k] (ew_bcast_offsets) and advances by is[k] per element (0 where broadcast).
 * Adjacent dimensions that every input walks alike are merged and size-1 dimensions dropped, so
 * same-shape, scalar and trailing-dimension broadcasts become one or a few long runs. */
#define EW_MAX_IN 3
typedef struct ew_bcast {
  int nin, rank;                      /* rank after coalescing (>= 1) */
  int64_t dims[BP_MAX_RANK];
  int64_t st[EW_MAX_IN][BP_MAX_RANK]; /* per-input strides in elements, 0 where broadcast */
  int64_t outer, inner;               /* number of runs, elements per run */
  int64_t is[EW_MAX_IN];              /* per-input stride inside a run */
} ew_bcast;

/* Prepares iteration of `out` over `nin` (<= EW_MAX_IN) inputs that broadcast to it. */
void ew_bcast_init(ew_bcast *it, const bp_value *out, const bp_value *const *ins, int nin);
/* Start offsets (elements) of run r for every input; the output's is r * inner. */
void ew_bcast_offsets(const ew_bcast *it, int64_t r, int64_t *off);

/* Binary element operations, shared by the two-input ops and the variadic ones. */
typedef enum {
  EW_B_ADD, EW_B_SUB, EW_B_MUL, EW_B_DIV, EW_B_POW, EW_B_MOD, EW_B_FMOD,
  EW_B_EQ, EW_B_LT, EW_B_GT, EW_B_LE, EW_B_GE, /* bool output */
  EW_B_AND, EW_B_OR, EW_B_XOR,                 /* bool inputs and output */
  EW_B_BAND, EW_B_BOR, EW_B_BXOR, EW_B_SHL, EW_B_SHR,
  EW_B_PRELU, EW_B_MIN, EW_B_MAX,
} ew_binop;

/* out = a op b with broadcasting; out's dtype/shape already set. `out` may alias `a` when a has
 * out's shape (the variadic ops accumulate in place). Integers are exact (int64/uint64 with the
 * narrow type's wrap), integer Div truncates toward zero, Mod follows the divisor's sign. */
int ew_binary_apply(const bp_node *n, ew_binop op, const bp_value *a, const bp_value *b, bp_value *out,
                    bp_err *e);

/* Copies `src` broadcast to `out`'s shape (same dtype; any fixed-size dtype). */
void ew_broadcast_copy(const bp_value *src, bp_value *out);

/* Shared dtype guards: -1 with an error naming the node. */
int ew_reject_half(const bp_node *n, bp_dtype t, bp_err *e); /* float16/bfloat16 */
int ew_bad_dtype(const bp_node *n, bp_dtype t, bp_err *e);   /* "dtype X is not supported" */

/* Parallel-for over the loop that follows when `par_work` (a variable the caller names so: the
 * number of elements the loop touches) is large enough to amortise waking threads; a no-op
 * without OpenMP. */
#ifdef _OPENMP
#define EW_PAR_FOR _Pragma("omp parallel for schedule(static) if(par_work > 65536)")
#else
#define EW_PAR_FOR
#endif

#endif
