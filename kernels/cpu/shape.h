/* kernels/cpu/shape.h — CPU evaluation of the shape/data-movement ops (frontend/ops/ops_shape.c)
 * and the helpers that inference and evaluation share: reading integer tensors, the plans of
 * Slice/Pad/Split (computed once from attributes and constant inputs, used by both), and a
 * strided copy that Transpose, Expand, Tile, Slice, Pad and DepthToSpace are built on.
 *
 * All eval functions follow bp_eval_fn (frontend/ir.h). Pure data movement works on any dtype
 * with a byte size (float16 included: bytes are moved, nothing is computed); ops that compute
 * (CumSum, Range, Scatter reductions) reject float16/bfloat16. */
#ifndef BITPIPE_KERNELS_CPU_SHAPE_H
#define BITPIPE_KERNELS_CPU_SHAPE_H

#include "frontend/ir.h"

/* Error naming the node and op: return SHAPE_ERR(e, n, "input 'x' ...", ...). */
#define SHAPE_ERR(e, n, fmt, ...) \
  bp_errf((e), "node '%s' (%s): " fmt, (n)->name ? (n)->name : "", (n)->op_type, ##__VA_ARGS__)

/* Optional input i: NULL when omitted or beyond nin. */
static inline bp_value *shape_in(bp_value *const *in, int nin, int i) { return i < nin ? in[i] : NULL; }

/* Rank limit of the strided copy: Tile views its output with twice the input's rank. */
#define SHAPE_COPY_MAX_RANK (2 * BP_MAX_RANK)

/* ---- helpers (kernels/cpu/shape_util.c) ---------------------------------------------------- */
/* Reads a scalar or 1-D integer tensor `v` (input `what` of node n) into out[0..*count-1].
 * Fails naming the node when v is absent/not constant, not an integer type, of rank > 1, or
 * has more than `max` elements. */
int shape_read_ints(const bp_node *n, const bp_value *v, const char *what, int64_t *out, int max,
                    int *count, bp_err *e);
/* Reads a scalar integer (e.g. CumSum axis, Trilu k) at run time (data must be present). */
int shape_read_scalar_int(const bp_node *n, const bp_value *v, const char *what, int64_t *out, bp_err *e);
/* Fails with the standard message when a dtype cannot be moved (string, undefined). */
int shape_check_movable(const bp_node *n, const bp_value *v, const char *what, bp_err *e);
/* Row-major element strides of dims[0..rank-1]. */
void shape_strides(int rank, const int64_t *dims, int64_t *strides);
/* Copies the elements of a `rank`-D box of extent dims from src to dst; strides are in elements
 * (any sign, 0 for broadcast) and offsets are applied by the caller. Rank <= SHAPE_COPY_MAX_RANK. */
void shape_copy_strided(void *dst, const int64_t *dst_strides, const void *src, const int64_t *src_strides,
                        int rank, const int64_t *dims, size_t esize);
/* Copies src (row-major) to dst in the order given by permutation perm (out dim i = in dim perm[i]). */
void shape_transpose(void *dst, const void *src, int rank, const int64_t *in_dims, const int64_t *perm,
                     size_t esize);

/* ---- plans shared by inference and evaluation (kernels/cpu/shape_plan.c) ----------------- */
/* Slice: per input axis, first index, step and output length (axes not sliced: 0, 1, dim). */
typedef struct {
  int64_t start[BP_MAX_RANK], step[BP_MAX_RANK], count[BP_MAX_RANK];
} shape_slice_plan;
int shape_plan_slice(const bp_node *n, bp_value *const *in, int nin, shape_slice_plan *p, bp_err *e);

/* Pad: pads before/after for each axis, mode, and the constant value (in the data's dtype). */
typedef enum { SHAPE_PAD_CONSTANT, SHAPE_PAD_REFLECT, SHAPE_PAD_EDGE, SHAPE_PAD_WRAP } shape_pad_mode;
typedef struct {
  int64_t before[BP_MAX_RANK], after[BP_MAX_RANK];
  shape_pad_mode mode;
} shape_pad_plan;
int shape_plan_pad(const bp_node *n, bp_value *const *in, int nin, shape_pad_plan *p, bp_err *e);

/* Split: the axis and each output's length along it. */
int shape_plan_split(const bp_node *n, bp_value *const *in, int nin, int nout, int64_t *axis,
                     int64_t *sizes, bp_err *e);

/* ---- evaluation -------------------------------------------------------------------------- */
#define SHAPE_EVAL(name)                                                                       \
  int name(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, \
           int nout, bp_err *e)

/* shape_copy.c: ops whose output is the input's bytes (or a constant) */
SHAPE_EVAL(bp_eval_identity);   /* also Reshape, Flatten, Squeeze, Unsqueeze */
SHAPE_EVAL(bp_eval_constant);
SHAPE_EVAL(bp_eval_constant_of_shape);
SHAPE_EVAL(bp_eval_shape);      /* Shape and Size never read in[0]->data (it may be NULL) */
SHAPE_EVAL(bp_eval_size);
/* shape_layout.c: reordering */
SHAPE_EVAL(bp_eval_transpose);
SHAPE_EVAL(bp_eval_expand);
SHAPE_EVAL(bp_eval_tile);
SHAPE_EVAL(bp_eval_depth_to_space);
SHAPE_EVAL(bp_eval_space_to_depth);
/* shape_concat.c */
SHAPE_EVAL(bp_eval_concat);
SHAPE_EVAL(bp_eval_split);
/* shape_slice.c */
SHAPE_EVAL(bp_eval_slice);
SHAPE_EVAL(bp_eval_pad);
SHAPE_EVAL(bp_eval_reverse_sequence);
/* shape_gather.c */
SHAPE_EVAL(bp_eval_gather);
SHAPE_EVAL(bp_eval_gather_elements);
SHAPE_EVAL(bp_eval_gather_nd);
/* shape_scatter.c */
SHAPE_EVAL(bp_eval_scatter_nd);
SHAPE_EVAL(bp_eval_scatter_elements);
/* shape_generate.c: values computed from scalars/attributes */
SHAPE_EVAL(bp_eval_range);
SHAPE_EVAL(bp_eval_one_hot);
SHAPE_EVAL(bp_eval_eye_like);
/* shape_scan.c */
SHAPE_EVAL(bp_eval_cumsum);
SHAPE_EVAL(bp_eval_trilu);

#endif
