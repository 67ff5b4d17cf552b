/* kernels/cuda/copy.cu — data movement on the GPU, any dtype: the strided box copy that the layout
 * ops are built on (as kernels/cpu/shape_util.c's shape_copy_strided), and the ops themselves:
 * Identity/Reshape/Flatten/Squeeze/Unsqueeze (a device copy), Transpose, Expand, Tile, Concat,
 * Split, Slice, SliceGrad, DepthToSpace and SpaceToDepth. Slice parameters come from host views of
 * the constant inputs through the CPU's plan (kernels/cpu/shape_plan.c), so both agree. */
#include "kernels/cuda/common.cuh"

extern "C" {
#include "kernels/cpu/shape.h"
}

#include <string.h>

template <typename T>
__global__ void k_copy_strided(bp_walk w, T *dst, const T *src, int64_t count) {
  GRID_STRIDE(i, count) {
    int64_t off[2];
    walk_offsets<2>(w, i, off);
    dst[off[0]] = src[off[1]];
  }
}

/* Transposing copies (the destination's contiguous dim is strided in the source, and the source's
 * contiguous dim is another one, A and B below): 32 x 32 tiles through shared memory, so that both
 * the reads (along B) and the writes (along A) are coalesced; the element-wise walk would read one
 * 4-byte word per 32-byte sector (attention's P^T at [16, 12, 1024, 1024]: 8x the bytes). The other
 * dims are a batch walked per block. Block 32 x 8. */
#define TILE 32
template <typename T>
__global__ void k_copy_tiles(bp_walk wb, int64_t nb, T *dst, const T *src, int64_t da, int64_t db, int64_t src_sa,
                             int64_t dst_sb, int64_t nta) {
  __shared__ T tile[TILE][TILE + 1];
  int64_t ta = blockIdx.x % nta, tb = blockIdx.x / nta, a0 = ta * TILE, b0 = tb * TILE;
  for (int64_t bi = blockIdx.y; bi < nb; bi += gridDim.y) {
    int64_t off[2];
    walk_offsets<2>(wb, bi, off);
    for (int y = threadIdx.y; y < TILE; y += blockDim.y) {
      int64_t a = a0 + y, b = b0 + threadIdx.x;
      if (a < da && b < db) tile[y][threadIdx.x] = src[off[1] + a * src_sa + b];
    }
    __syncthreads();
    for (int y = threadIdx.y; y < TILE; y += blockDim.y) {
      int64_t b = b0 + y, a = a0 + threadIdx.x;
      if (a < da && b < db) dst[off[0] + b * dst_sb + a] = tile[threadIdx.x][y];
    }
    __syncthreads();
  }
}

/* w (merged, rank >= 2): dims A = rank-1 (destination stride 1) and B (source stride 1), the rest a
 * batch. 0 launched, 1 not this layout, -1 error. */
static int copy_tiles(bp_cuda *dc, const bp_node *n, void *dst, const void *src, const bp_walk *w, size_t es, bp_err *e) {
  int r = w->rank, A = r - 1, B = -1;
  if (r < 2 || w->st[0][A] != 1 || w->st[1][A] == 1) return 1;
  for (int d = 0; d < A; d++)
    if (w->st[1][d] == 1) B = d;
  if (B < 0 || w->dims[A] < 8 || w->dims[B] < 8) return 1;
  bp_walk wb;
  int rb = 0;
  int64_t nb = 1;
  for (int d = 0; d < A; d++) {
    if (d == B) continue;
    wb.dims[rb] = w->dims[d];
    wb.st[0][rb] = w->st[0][d];
    wb.st[1][rb] = w->st[1][d];
    nb *= w->dims[d];
    rb++;
  }
  if (rb == 0) {
    wb.dims[0] = 1;
    wb.st[0][0] = wb.st[1][0] = 0;
    rb = 1;
  }
  wb.rank = rb;
  bp_walk_prepare(&wb);
  int64_t nta = (w->dims[A] + TILE - 1) / TILE, ntb = (w->dims[B] + TILE - 1) / TILE;
  if (nta * ntb > INT32_MAX) return 1;
  dim3 grid((unsigned)(nta * ntb), (unsigned)(nb < 65535 ? nb : 65535)), block(TILE, 8);
  int64_t da = w->dims[A], db = w->dims[B], sa = w->st[1][A], sb = w->st[0][B];
  switch (es) {
  case 1: k_copy_tiles<uint8_t><<<grid, block, 0, dc->stream>>>(wb, nb, (uint8_t *)dst, (const uint8_t *)src, da, db, sa, sb, nta); break;
  case 2: k_copy_tiles<uint16_t><<<grid, block, 0, dc->stream>>>(wb, nb, (uint16_t *)dst, (const uint16_t *)src, da, db, sa, sb, nta); break;
  case 4: k_copy_tiles<uint32_t><<<grid, block, 0, dc->stream>>>(wb, nb, (uint32_t *)dst, (const uint32_t *)src, da, db, sa, sb, nta); break;
  case 8: k_copy_tiles<uint64_t><<<grid, block, 0, dc->stream>>>(wb, nb, (uint64_t *)dst, (const uint64_t *)src, da, db, sa, sb, nta); break;
  default: return 1;
  }
  BP_LAUNCHED(dc, "k_copy_tiles");
  return 0;
}

int bp_cuda_copy_strided(bp_cuda *dc, const bp_node *n, void *dst, const int64_t *dst_st, const void *src,
                                    const int64_t *src_st, int rank, const int64_t *dims, size_t es, bp_err *e) {
  bp_walk w;
  int r = 0;
  if (rank > BP_CU_MAX_RANK) return bp_errf(e, "node '%s' (%s): copy of rank %d", n->name, n->op_type, rank);
  for (int i = 0; i < rank; i++) {
    if (dims[i] == 0) return 0;
    if (dims[i] == 1) continue;
    if (r > 0 && w.st[0][r - 1] == dst_st[i] * dims[i] && w.st[1][r - 1] == src_st[i] * dims[i]) {
      w.dims[r - 1] *= dims[i];
      w.st[0][r - 1] = dst_st[i];
      w.st[1][r - 1] = src_st[i];
    } else {
      w.dims[r] = dims[i];
      w.st[0][r] = dst_st[i];
      w.st[1][r] = src_st[i];
      r++;
    }
  }
  if (r == 0) { /* one element */
    w.dims[0] = 1;
    w.st[0][0] = w.st[1][0] = 1;
    r = 1;
  }
  w.rank = r;
  int64_t count = 1;
  for (int i = 0; i < r; i++) count *= w.dims[i];
  if (r == 1 && w.st[0][0] == 1 && w.st[1][0] == 1) {
    BP_CU(cudaMemcpyAsync(dst, src, (size_t)count * es, cudaMemcpyDeviceToDevice, dc->stream));
    return 0;
  }
  int trc = copy_tiles(dc, n, dst, src, &w, es, e);
  if (trc <= 0) return trc;
  bp_walk_prepare(&w);
  unsigned blocks = bp_cuda_blocks(dc, count);
  switch (es) {
  case 1: k_copy_strided<uint8_t><<<blocks, THREADS, 0, dc->stream>>>(w, (uint8_t *)dst, (const uint8_t *)src, count); break;
  case 2: k_copy_strided<uint16_t><<<blocks, THREADS, 0, dc->stream>>>(w, (uint16_t *)dst, (const uint16_t *)src, count); break;
  case 4: k_copy_strided<uint32_t><<<blocks, THREADS, 0, dc->stream>>>(w, (uint32_t *)dst, (const uint32_t *)src, count); break;
  case 8: k_copy_strided<uint64_t><<<blocks, THREADS, 0, dc->stream>>>(w, (uint64_t *)dst, (const uint64_t *)src, count); break;
  default: return bp_errf(e, "node '%s' (%s): elements of %zu bytes cannot be copied", n->name, n->op_type, es);
  }
  BP_LAUNCHED(dc, "k_copy_strided");
  return 0;
}

int bp_cuda_broadcast_copy(bp_cuda *dc, const bp_node *n, const bp_value *src, bp_value *dst, bp_err *e) {
  int64_t sst[BP_MAX_RANK], dst_st[BP_MAX_RANK];
  bp_broadcast_strides(src, dst, sst);
  shape_strides(dst->rank, dst->dims, dst_st);
  return bp_cuda_copy_strided(dc, n, dst->data, dst_st, src->data, sst, dst->rank, dst->dims, bp_dtype_size(dst->dtype), e);
}

/* Identity, Reshape, Flatten, Squeeze, Unsqueeze: the bytes of input 0. */
BP_CUDA_EVAL(bp_cuda_eval_identity) {
  BP_CUDA_DC(dc);
  (void)nout;
  size_t bytes = bp_value_bytes(in[0]);
  if (!bp_dtype_size(in[0]->dtype) || bytes != bp_value_bytes(out[0]))
    return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e); /* the CPU kernel explains */
  if (bytes && out[0]->data != in[0]->data)
    BP_CU(cudaMemcpyAsync(out[0]->data, in[0]->data, bytes, cudaMemcpyDeviceToDevice, dc->stream));
  return 0;
}

static int permute(bp_cuda *dc, const bp_node *n, bp_value *o, const bp_value *x, int rank, const int64_t *in_dims,
                   const int64_t *perm, bp_err *e) {
  int64_t xs[BP_CU_MAX_RANK], dims[BP_CU_MAX_RANK], sstr[BP_CU_MAX_RANK], dstr[BP_CU_MAX_RANK];
  shape_strides(rank, in_dims, xs);
  for (int i = 0; i < rank; i++) {
    dims[i] = in_dims[perm[i]];
    sstr[i] = xs[perm[i]];
  }
  shape_strides(rank, dims, dstr);
  return bp_cuda_copy_strided(dc, n, o->data, dstr, x->data, sstr, rank, dims, bp_dtype_size(x->dtype), e);
}

BP_CUDA_EVAL(bp_cuda_eval_transpose) {
  BP_CUDA_DC(dc);
  (void)nin, (void)nout;
  const bp_value *x = in[0];
  int64_t perm[BP_MAX_RANK];
  int c;
  const int64_t *p = bp_attr_ints(n, "perm", &c);
  if (p && c != x->rank) return bp_errf(e, "node '%s' (%s): 'perm' has %d entries for rank %d", n->name, n->op_type, c, x->rank);
  for (int i = 0; i < x->rank; i++) {
    perm[i] = p ? p[i] : x->rank - 1 - i;
    if (perm[i] < 0) perm[i] += x->rank;
    if (perm[i] < 0 || perm[i] >= x->rank) return bp_errf(e, "node '%s' (%s): 'perm' entry out of range", n->name, n->op_type);
  }
  return permute(dc, n, out[0], x, x->rank, x->dims, perm, e);
}

BP_CUDA_EVAL(bp_cuda_eval_expand) {
  BP_CUDA_DC(dc);
  (void)nin, (void)nout;
  if (in[0]->rank > out[0]->rank) return bp_errf(e, "node '%s' (%s): output rank is below the input rank", n->name, n->op_type);
  return bp_cuda_broadcast_copy(dc, n, in[0], out[0], e);
}

BP_CUDA_EVAL(bp_cuda_eval_tile) {
  BP_CUDA_DC(dc);
  (void)nin, (void)nout;
  const bp_value *x = in[0];
  bp_value *o = out[0];
  if (bp_value_numel(o) == 0) return 0;
  int r = x->rank;
  int64_t xs[BP_MAX_RANK], dims[BP_CU_MAX_RANK], sstr[BP_CU_MAX_RANK], dstr[BP_CU_MAX_RANK];
  shape_strides(r, x->dims, xs);
  for (int i = 0; i < r; i++) {
    if (x->dims[i] == 0 || o->dims[i] % x->dims[i])
      return bp_errf(e, "node '%s' (%s): output shape is not a tiling of the input", n->name, n->op_type);
    dims[2 * i] = o->dims[i] / x->dims[i];
    dims[2 * i + 1] = x->dims[i];
    sstr[2 * i] = 0;
    sstr[2 * i + 1] = xs[i];
  }
  shape_strides(2 * r, dims, dstr);
  return bp_cuda_copy_strided(dc, n, o->data, dstr, x->data, sstr, 2 * r, dims, bp_dtype_size(x->dtype), e);
}

static int64_t prod(const int64_t *d, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= d[i];
  return p;
}

BP_CUDA_EVAL(bp_cuda_eval_concat) {
  BP_CUDA_DC(dc);
  (void)nout;
  bp_value *o = out[0];
  int64_t axis;
  char who[160];
  snprintf(who, sizeof who, "node '%s' (%s): 'axis'", n->name ? n->name : "", n->op_type);
  if (bp_norm_axis(bp_attr_int(n, "axis", 1), o->rank, &axis, who, e)) return -1;
  size_t es = bp_dtype_size(o->dtype);
  int64_t outer = prod(o->dims, 0, (int)axis), oinner = prod(o->dims, (int)axis, o->rank), off = 0;
  for (int k = 0; k < nin; k++) {
    const bp_value *x = in[k];
    if (!x) continue;
    int64_t inner = x->rank == o->rank ? prod(x->dims, (int)axis, x->rank) : 0;
    if (inner == 0) continue;
    if (off + inner > oinner) return bp_errf(e, "node '%s' (%s): inputs do not fit the output", n->name, n->op_type);
    int64_t dims[2] = {outer, inner}, dst[2] = {oinner, 1}, src[2] = {inner, 1};
    if (bp_cuda_copy_strided(dc, n, (char *)o->data + (size_t)off * es, dst, x->data, src, 2, dims, es, e)) return -1;
    off += inner;
  }
  return 0;
}

/* Split: the parts' lengths are the outputs' (inference checked them against the plan). */
BP_CUDA_EVAL(bp_cuda_eval_split) {
  BP_CUDA_DC(dc);
  (void)nin;
  const bp_value *x = in[0];
  int64_t axis;
  char who[160];
  snprintf(who, sizeof who, "node '%s' (%s): 'axis'", n->name ? n->name : "", n->op_type);
  if (bp_norm_axis(bp_attr_int(n, "axis", 0), x->rank, &axis, who, e)) return -1;
  size_t es = bp_dtype_size(x->dtype);
  int64_t outer = prod(x->dims, 0, (int)axis), after = prod(x->dims, (int)axis + 1, x->rank);
  int64_t xinner = x->dims[axis] * after, off = 0;
  for (int k = 0; k < nout; k++) {
    if (!out[k]) return bp_errf(e, "node '%s' (%s): omitted outputs of Split are not supported on the GPU", n->name, n->op_type);
    int64_t inner = out[k]->dims[axis] * after;
    if (off + inner > xinner) return bp_errf(e, "node '%s' (%s): outputs do not fit the input", n->name, n->op_type);
    int64_t dims[2] = {outer, inner}, dst[2] = {inner, 1}, src[2] = {xinner, 1};
    if (inner && bp_cuda_copy_strided(dc, n, out[k]->data, dst, (const char *)x->data + (size_t)off * es, src, 2, dims, es, e))
      return -1;
    off += inner;
  }
  return 0;
}

/* Host views of inputs 1..4 (starts, ends, axes, steps) next to input 0's shape, for the plan. */
static int slice_plan(bp_cuda *dc, const bp_node *n, const bp_value *shape_of, bp_value *const *in, int nin,
                      shape_slice_plan *p, bp_err *e) {
  bp_value x = *shape_of, hv[5], *pin[5] = {&x, NULL, NULL, NULL, NULL};
  for (int k = 1; k < nin && k < 5; k++)
    if (bp_cuda_host_view(dc, n, in, nin, k, &hv[k], &pin[k], e)) return -1;
  return shape_plan_slice(n, pin, nin < 5 ? nin : 5, p, e);
}

BP_CUDA_EVAL(bp_cuda_eval_slice) {
  BP_CUDA_DC(dc);
  (void)nout;
  const bp_value *x = in[0];
  shape_slice_plan p;
  if (slice_plan(dc, n, x, in, nin, &p, e)) return -1;
  int64_t xs[BP_MAX_RANK], sstr[BP_MAX_RANK], dstr[BP_MAX_RANK], off = 0;
  shape_strides(x->rank, x->dims, xs);
  for (int i = 0; i < x->rank; i++) {
    if (p.count[i] != out[0]->dims[i]) return bp_errf(e, "node '%s' (%s): output shape does not match the slice", n->name, n->op_type);
    off += p.start[i] * xs[i];
    sstr[i] = p.step[i] * xs[i];
  }
  shape_strides(x->rank, p.count, dstr);
  size_t es = bp_dtype_size(x->dtype);
  return bp_cuda_copy_strided(dc, n, out[0]->data, dstr, (const char *)x->data + off * (int64_t)es, sstr, x->rank,
                              p.count, es, e);
}

/* SliceGrad(dy, starts, ends[, axes, steps]) shape: zeros with dy written into the slice. */
BP_CUDA_EVAL(bp_cuda_eval_slice_grad) {
  BP_CUDA_DC(dc);
  (void)nout;
  const bp_value *dy = in[0];
  bp_value *dx = out[0];
  if (dy->dtype != dx->dtype) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  shape_slice_plan p;
  if (slice_plan(dc, n, dx, in, nin, &p, e)) return -1;
  BP_CU(cudaMemsetAsync(dx->data, 0, bp_value_bytes(dx), dc->stream));
  int64_t xst[BP_MAX_RANK], dst[BP_MAX_RANK], base = 0;
  shape_strides(dx->rank, dx->dims, xst);
  for (int d = 0; d < dx->rank; d++) {
    if (p.count[d] != dy->dims[d]) return bp_errf(e, "node '%s' (%s): the gradient's shape does not match the slice", n->name, n->op_type);
    base += p.start[d] * xst[d];
    dst[d] = p.step[d] * xst[d];
  }
  int64_t sst[BP_MAX_RANK];
  shape_strides(dy->rank, dy->dims, sst);
  size_t es = bp_dtype_size(dx->dtype);
  return bp_cuda_copy_strided(dc, n, (char *)dx->data + base * (int64_t)es, dst, dy->data, sst, dy->rank, dy->dims, es, e);
}

/* DepthToSpace / SpaceToDepth: a 6-D view of the input permuted (kernels/cpu/shape_layout.c). */
BP_CUDA_EVAL(bp_cuda_eval_depth_to_space) {
  BP_CUDA_DC(dc);
  (void)nin, (void)nout;
  const bp_value *x = in[0];
  int64_t b = bp_attr_int(n, "blocksize", 0);
  if (x->rank != 4 || b <= 0 || x->dims[1] % (b * b)) return bp_errf(e, "node '%s' (%s): bad input shape or blocksize", n->name, n->op_type);
  int64_t N = x->dims[0], C = x->dims[1] / (b * b), H = x->dims[2], W = x->dims[3];
  if (strcmp(bp_attr_string(n, "mode", "DCR"), "CRD") == 0) {
    int64_t vd[6] = {N, C, b, b, H, W}, perm[6] = {0, 1, 4, 2, 5, 3};
    return permute(dc, n, out[0], x, 6, vd, perm, e);
  }
  int64_t vd[6] = {N, b, b, C, H, W}, perm[6] = {0, 3, 4, 1, 5, 2};
  return permute(dc, n, out[0], x, 6, vd, perm, e);
}

BP_CUDA_EVAL(bp_cuda_eval_space_to_depth) {
  BP_CUDA_DC(dc);
  (void)nin, (void)nout;
  const bp_value *x = in[0];
  int64_t b = bp_attr_int(n, "blocksize", 0);
  if (x->rank != 4 || b <= 0 || x->dims[2] % b || x->dims[3] % b)
    return bp_errf(e, "node '%s' (%s): bad input shape or blocksize", n->name, n->op_type);
  int64_t vd[6] = {x->dims[0], x->dims[1], x->dims[2] / b, b, x->dims[3] / b, b}, dcr[6] = {0, 3, 5, 1, 2, 4},
          crd[6] = {0, 1, 3, 5, 2, 4};
  return permute(dc, n, out[0], x, 6, vd, strcmp(bp_attr_string(n, "mode", "DCR"), "CRD") == 0 ? crd : dcr, e);
}
