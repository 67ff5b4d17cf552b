/* kernels/cpu/shape_layout.c — ops that reorder or replicate elements: Transpose, Expand, Tile,
 * DepthToSpace and SpaceToDepth. Each is one strided copy (shape_util.c) over a view of its
 * input: a permutation, stride-0 broadcast dims, or a reshape followed by a permutation. */
#include "kernels/cpu/shape.h"

#include <string.h>

SHAPE_EVAL(bp_eval_transpose) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0];
  int64_t perm[BP_MAX_RANK];
  int c;
  const int64_t *p = bp_attr_ints(n, "perm", &c);
  if (p && c != x->rank) return SHAPE_ERR(e, n, "'perm' has %d entries for rank %d", c, x->rank);
  for (int i = 0; i < x->rank; i++) {
    perm[i] = p ? p[i] : x->rank - 1 - i;
    if (perm[i] < 0) perm[i] += x->rank;
    if (perm[i] < 0 || perm[i] >= x->rank) return SHAPE_ERR(e, n, "'perm' entry out of range");
  }
  shape_transpose(out[0]->data, x->data, x->rank, x->dims, perm, bp_dtype_size(x->dtype));
  return 0;
}

/* Expand: the output walks the input with stride 0 on broadcast dims. */
SHAPE_EVAL(bp_eval_expand) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0];
  bp_value *o = out[0];
  if (x->rank > o->rank) return SHAPE_ERR(e, n, "output rank is below the input rank");
  int64_t sstr[BP_MAX_RANK], dstr[BP_MAX_RANK];
  bp_broadcast_strides(x, o, sstr);
  shape_strides(o->rank, o->dims, dstr);
  shape_copy_strided(o->data, dstr, x->data, sstr, o->rank, o->dims, bp_dtype_size(x->dtype));
  return 0;
}

/* Tile: output dim i = repeats_i * d_i is, in row-major order, the 2-D block [repeats_i, d_i];
 * the repeat dims read the input with stride 0. */
SHAPE_EVAL(bp_eval_tile) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0];
  bp_value *o = out[0];
  if (bp_value_numel(o) == 0) return 0;
  int r = x->rank;
  int64_t xs[BP_MAX_RANK], dims[SHAPE_COPY_MAX_RANK], sstr[SHAPE_COPY_MAX_RANK], dstr[SHAPE_COPY_MAX_RANK];
  shape_strides(r, x->dims, xs);
  for (int i = 0; i < r; i++) {
    if (x->dims[i] == 0 || o->dims[i] % x->dims[i]) return SHAPE_ERR(e, n, "output shape is not a tiling of the input");
    dims[2 * i] = o->dims[i] / x->dims[i];
    dims[2 * i + 1] = x->dims[i];
    sstr[2 * i] = 0;
    sstr[2 * i + 1] = xs[i];
  }
  shape_strides(2 * r, dims, dstr);
  shape_copy_strided(o->data, dstr, x->data, sstr, 2 * r, dims, bp_dtype_size(x->dtype));
  return 0;
}

/* Permutes a 6-D view `vd` of the input (row-major, same bytes) by `perm` into the output. */
static void view_permute(bp_value *o, const bp_value *x, const int64_t *vd, const int64_t *perm) {
  shape_transpose(o->data, x->data, 6, vd, perm, bp_dtype_size(x->dtype));
}

/* DepthToSpace [N,C,H,W] -> [N,C/b²,H*b,W*b]. DCR (default): view [N,b,b,C/b²,H,W], permute
 * (0,3,4,1,5,2). CRD: view [N,C/b²,b,b,H,W], permute (0,1,4,2,5,3). */
SHAPE_EVAL(bp_eval_depth_to_space) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0];
  int64_t b = bp_attr_int(n, "blocksize", 0);
  if (x->rank != 4 || b <= 0 || x->dims[1] % (b * b)) return SHAPE_ERR(e, n, "bad input shape or blocksize");
  int64_t N = x->dims[0], C = x->dims[1] / (b * b), H = x->dims[2], W = x->dims[3];
  if (strcmp(bp_attr_string(n, "mode", "DCR"), "CRD") == 0) {
    int64_t vd[6] = {N, C, b, b, H, W}, perm[6] = {0, 1, 4, 2, 5, 3};
    view_permute(out[0], x, vd, perm);
  } else {
    int64_t vd[6] = {N, b, b, C, H, W}, perm[6] = {0, 3, 4, 1, 5, 2};
    view_permute(out[0], x, vd, perm);
  }
  return 0;
}

/* SpaceToDepth [N,C,H,W] -> [N,C*b²,H/b,W/b]: view [N,C,H/b,b,W/b,b], permute (0,3,5,1,2,4)
 * (DCR, the default) or (0,1,3,5,2,4) (CRD, newer opsets). */
SHAPE_EVAL(bp_eval_space_to_depth) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *x = in[0];
  int64_t b = bp_attr_int(n, "blocksize", 0);
  if (x->rank != 4 || b <= 0 || x->dims[2] % b || x->dims[3] % b)
    return SHAPE_ERR(e, n, "bad input shape or blocksize");
  int64_t vd[6] = {x->dims[0], x->dims[1], x->dims[2] / b, b, x->dims[3] / b, b}, dcr[6] = {0, 3, 5, 1, 2, 4},
          crd[6] = {0, 1, 3, 5, 2, 4};
  view_permute(out[0], x, vd, strcmp(bp_attr_string(n, "mode", "DCR"), "CRD") == 0 ? crd : dcr);
  return 0;
}
