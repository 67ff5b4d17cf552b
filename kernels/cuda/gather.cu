/* kernels/cuda/gather.cu — Gather and GatherElements (any element size; int32/int64 indices,
 * negative ones counting from the end) and GatherGrad, the scatter-add of embeddings. An index
 * out of range raises the device flag (the CPU kernel's error) and reads nothing.
 *
 * GatherGrad accumulates in double with atomics, then rounds once to the output's float32: the
 * CPU kernel sums in double too, and double atomics leave the float32 result independent of the
 * order in which repeated indices land (up to a tie in the final rounding). */
#include "kernels/cuda/common.cuh"

extern "C" {
#include "kernels/cpu/shape.h"
}

__device__ inline int64_t load_index(const void *idx, int t, int64_t j) {
  return t == BP_I64 ? ((const int64_t *)idx)[j] : (int64_t)((const int32_t *)idx)[j];
}

/* out[o, j, k] = x[o, idx[j], k] for o < outer, j < ni, k < inner. */
template <typename T>
__global__ void k_gather(const T *x, const void *idx, int it, T *y, int64_t ni, int64_t N, int64_t inner,
                         int64_t count, int *flag, int tag) {
  GRID_STRIDE(i, count) {
    int64_t k = i % inner, r = i / inner, j = r % ni, o = r / ni;
    int64_t w = load_index(idx, it, j);
    if (w < 0) w += N;
    if (w < 0 || w >= N) {
      bp_flag(flag, tag);
      y[i] = T(0);
      continue;
    }
    y[i] = x[(o * N + w) * inner + k];
  }
}

static int norm_axis_of(const bp_node *n, int rank, int64_t *axis, bp_err *e) {
  char who[160];
  snprintf(who, sizeof who, "node '%s' (%s): 'axis'", n->name ? n->name : "", n->op_type);
  return bp_norm_axis(bp_attr_int(n, "axis", 0), rank, axis, who, e);
}

BP_CUDA_EVAL(bp_cuda_eval_gather) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0], *idx = in[1];
  bp_value *y = out[0];
  int64_t axis;
  if (idx->dtype != BP_I64 && idx->dtype != BP_I32) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  if (norm_axis_of(n, x->rank, &axis, e)) return -1;
  int64_t inner = 1, N = x->dims[axis], ni = bp_value_numel(idx), count = bp_value_numel(y);
  for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
  if (!count) return 0;
  unsigned blocks = bp_cuda_blocks(dc, count);
  switch (bp_dtype_size(x->dtype)) {
  case 1: k_gather<uint8_t><<<blocks, THREADS, 0, dc->stream>>>((const uint8_t *)x->data, idx->data, idx->dtype, (uint8_t *)y->data, ni, N, inner, count, dc->flag, dc->tag); break;
  case 2: k_gather<uint16_t><<<blocks, THREADS, 0, dc->stream>>>((const uint16_t *)x->data, idx->data, idx->dtype, (uint16_t *)y->data, ni, N, inner, count, dc->flag, dc->tag); break;
  case 4: k_gather<uint32_t><<<blocks, THREADS, 0, dc->stream>>>((const uint32_t *)x->data, idx->data, idx->dtype, (uint32_t *)y->data, ni, N, inner, count, dc->flag, dc->tag); break;
  case 8: k_gather<uint64_t><<<blocks, THREADS, 0, dc->stream>>>((const uint64_t *)x->data, idx->data, idx->dtype, (uint64_t *)y->data, ni, N, inner, count, dc->flag, dc->tag); break;
  default: return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  }
  BP_LAUNCHED(dc, "k_gather");
  return 0;
}

/* GatherElements: out[c] = x[c with coordinate `axis` replaced by idx[c]]; c walks idx's shape. */
template <typename T>
__global__ void k_gather_elements(bp_walk w, int axis, int64_t axis_dim, int64_t axis_stride, const T *x,
                                  const void *idx, int it, T *y, int64_t count, int *flag, int tag) {
  GRID_STRIDE(i, count) {
    /* st[0]: x's strides with the axis term zeroed; the axis coordinate comes from the index */
    int64_t off[1];
    walk_offsets<1>(w, i, off);
    int64_t v = load_index(idx, it, i);
    if (v < 0) v += axis_dim;
    if (v < 0 || v >= axis_dim) {
      bp_flag(flag, tag);
      y[i] = T(0);
      continue;
    }
    y[i] = x[off[0] + v * axis_stride];
  }
}

BP_CUDA_EVAL(bp_cuda_eval_gather_elements) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0], *idx = in[1];
  bp_value *y = out[0];
  int64_t axis;
  if (idx->dtype != BP_I64 && idx->dtype != BP_I32) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  if (idx->rank != x->rank) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  if (norm_axis_of(n, x->rank, &axis, e)) return -1;
  int64_t count = bp_value_numel(idx);
  if (!count) return 0;
  bp_walk w;
  int64_t xs[BP_MAX_RANK];
  shape_strides(x->rank, x->dims, xs);
  w.rank = idx->rank;
  for (int i = 0; i < idx->rank; i++) {
    w.dims[i] = idx->dims[i];
    w.st[0][i] = i == axis ? 0 : xs[i];
  }
  bp_walk_prepare(&w);
  unsigned blocks = bp_cuda_blocks(dc, count);
  int64_t ad = x->dims[axis], as = xs[axis];
  switch (bp_dtype_size(x->dtype)) {
  case 1: k_gather_elements<uint8_t><<<blocks, THREADS, 0, dc->stream>>>(w, (int)axis, ad, as, (const uint8_t *)x->data, idx->data, idx->dtype, (uint8_t *)y->data, count, dc->flag, dc->tag); break;
  case 2: k_gather_elements<uint16_t><<<blocks, THREADS, 0, dc->stream>>>(w, (int)axis, ad, as, (const uint16_t *)x->data, idx->data, idx->dtype, (uint16_t *)y->data, count, dc->flag, dc->tag); break;
  case 4: k_gather_elements<uint32_t><<<blocks, THREADS, 0, dc->stream>>>(w, (int)axis, ad, as, (const uint32_t *)x->data, idx->data, idx->dtype, (uint32_t *)y->data, count, dc->flag, dc->tag); break;
  case 8: k_gather_elements<uint64_t><<<blocks, THREADS, 0, dc->stream>>>(w, (int)axis, ad, as, (const uint64_t *)x->data, idx->data, idx->dtype, (uint64_t *)y->data, count, dc->flag, dc->tag); break;
  default: return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  }
  BP_LAUNCHED(dc, "k_gather_elements");
  return 0;
}

/* GatherGrad(dy, indices) axis shape: acc[o, idx[j], k] += dy[o, j, k] in double. */
__global__ void k_scatter_add(const float *dy, const void *idx, int it, double *acc, int64_t ni, int64_t N,
                              int64_t inner, int64_t count, int *flag, int tag) {
  GRID_STRIDE(i, count) {
    int64_t k = i % inner, r = i / inner, j = r % ni, o = r / ni;
    int64_t v = load_index(idx, it, j);
    if (v < 0) v += N;
    if (v < 0 || v >= N) {
      bp_flag(flag, tag);
      continue;
    }
    atomicAdd(&acc[(o * N + v) * inner + k], (double)dy[i]);
  }
}

__global__ void k_d2f(const double *a, float *y, int64_t count) {
  GRID_STRIDE(i, count) y[i] = (float)a[i];
}

BP_CUDA_EVAL(bp_cuda_eval_gather_grad) {
  BP_CUDA_DC(dc);
  const bp_value *dy = in[0], *idx = in[1];
  bp_value *dx = out[0];
  if (dy->dtype != BP_F32 || dx->dtype != BP_F32 || (idx->dtype != BP_I64 && idx->dtype != BP_I32))
    return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t axis;
  if (norm_axis_of(n, dx->rank, &axis, e)) return -1;
  int64_t inner = 1, N = dx->dims[axis], ni = bp_value_numel(idx), nx = bp_value_numel(dx), count = bp_value_numel(dy);
  for (int i = (int)axis + 1; i < dx->rank; i++) inner *= dx->dims[i];
  if (!nx) return 0;
  double *acc = (double *)bp_cuda_alloc(dc, sizeof(double) * (size_t)nx, "GatherGrad accumulator", e);
  if (!acc) return bp_err_prefix_node(e, n);
  int rc = 0;
  cudaError_t mrc = cudaMemsetAsync(acc, 0, sizeof(double) * (size_t)nx, dc->stream);
  if (mrc != cudaSuccess) {
    rc = bp_cuda_fail(e, n, NULL, "cudaMemsetAsync(acc, 0, bytes, dc->stream)", cudaGetErrorString(mrc), __FILE__, __LINE__);
  } else {
    if (count && ni)
      k_scatter_add<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>((const float *)dy->data, idx->data, idx->dtype,
                                                                             acc, ni, N, inner, count, dc->flag, dc->tag);
    rc = bp_cuda_after_launch(dc, n, "k_scatter_add", e, __FILE__, __LINE__);
    if (!rc) {
      k_d2f<<<bp_cuda_blocks(dc, nx), THREADS, 0, dc->stream>>>(acc, (float *)dx->data, nx);
      rc = bp_cuda_after_launch(dc, n, "k_d2f", e, __FILE__, __LINE__);
    }
  }
  bp_cuda_release(dc, acc);
  return rc;
}
