/* kernels/cuda/loss.cu — the softmax cross-entropy loss and its gradient (domain "bitpipe", see
 * kernels/cpu/grad.h), with the softmax fused: logits [rows, C] (leading dims flattened) against
 * integer targets [rows]; rows whose target is ignore_index do not count; the loss is the mean
 * over counted rows. One block per row; the mean is a single-block reduction, so the loss is
 * deterministic. A target outside [0, C) that is not the ignore index raises the device flag (the
 * CPU kernel's error).
 *
 * Each row's max and sum of exp come from one read of the row (an online softmax: a running max
 * per thread, its sum rescaled when the max grows), the exponentials in float (the difference of
 * two floats rounded to float, then expf: ~1e-6 relative on terms e^-16 and below, exact to a few
 * ulp near the max, where the mass is) and the sums in double, as the CPU's. The gradient reads the
 * row a second time to write softmax - onehot (p - 1 in double: no cancellation for a confident
 * target). Rows of a multiple of 4 elements go through float4 loads and stores. Against the CPU's
 * all-double kernel: normwise relative error ~1e-7 (tests/gpu/test_gpu_ops.c, fp32 tol 1e-5). */
#include "kernels/cuda/common.cuh"

#include <math.h>
#include <stdint.h>

#define SCE_THREADS 512 /* per row: [16384, 50304] logits give ~25 float4 per thread */

/* Target of row r, or -1 (ignored, or out of range with the flag raised). */
__device__ inline int64_t row_target(const void *t, int tt, int64_t r, int64_t c, int64_t ignore, int *flag, int tag) {
  int64_t v = d_get_i64(t, tt, r);
  if (v == ignore) return -1;
  if (v < 0 || v >= c) {
    bp_flag(flag, tag);
    return -1;
  }
  return v;
}

/* Running (max m, sum s of exp(v - m)) of one thread. A larger value rescales the sum (a double
 * exp, rare after the first elements); -inf adds nothing (a row of -inf gives s = 0, lse -inf and a
 * NaN loss, as on the CPU); NaN and +inf make s NaN, as the CPU's exp(NaN) / exp(inf - inf). */
__device__ inline void ms_add(float v, float &m, double &s) {
  if (v > m) {
    s = s == 0 ? 0 : s * exp((double)m - (double)v);
    m = v;
  }
  if (v != -INFINITY) s += (double)expf(v - m);
}

/* Merges (m, s) over the block; every thread gets the row's max and sum of exp(x - max). */
__device__ inline void block_ms(float &m, double &s, double *sh) {
  float mx = m;
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o)); /* NaN never in m */
  __shared__ float shm[32];
  int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (l == 0) shm[w] = mx;
  __syncthreads();
  mx = l < nw ? shm[l] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  /* rescale each thread's sum to the row max, then one double sum (fixed order: deterministic) */
  double t = s == 0 ? 0 : (m == mx ? s : s * exp((double)m - (double)mx));
  s = block_sum(t, sh);
  m = mx;
}

/* One read of row xr: its max and sum of exp(x - max). vec: c % 4 == 0 and the buffers 16-byte
 * aligned, so every row is. */
__device__ inline void row_stats(const float *xr, int64_t c, int vec, double *sh, float *mx, double *sum) {
  float m = -INFINITY;
  double s = 0;
  if (vec) {
    const float4 *x4 = (const float4 *)xr;
    for (int64_t i = threadIdx.x; i < (c >> 2); i += blockDim.x) {
      float4 v = x4[i];
      ms_add(v.x, m, s), ms_add(v.y, m, s), ms_add(v.z, m, s), ms_add(v.w, m, s);
    }
  } else {
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) ms_add(xr[i], m, s);
  }
  block_ms(m, s, sh);
  *mx = m, *sum = s;
}

__global__ void k_sce_rows(const float *x, const void *t, int tt, int64_t c, int vec, int64_t ignore, double *loss,
                           int *counted, int *flag, int tag) {
  __shared__ double sh[32];
  int64_t r = blockIdx.x;
  int64_t tg = row_target(t, tt, r, c, ignore, flag, tag); /* the same value in every thread */
  if (tg < 0) {
    if (threadIdx.x == 0) loss[r] = 0, counted[r] = 0;
    return;
  }
  const float *xr = x + r * c;
  float mx;
  double sum;
  row_stats(xr, c, vec, sh, &mx, &sum);
  if (threadIdx.x == 0) {
    loss[r] = (double)mx + log(sum) - (double)xr[tg];
    counted[r] = 1;
  }
}

__global__ void k_sce_mean(const double *loss, const int *counted, int64_t rows, void *out, int dt) {
  __shared__ double sh[32];
  double total = 0, cnt = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    total += loss[r];
    cnt += counted[r];
  }
  total = block_sum(total, sh);
  cnt = block_sum(cnt, sh);
  if (threadIdx.x == 0) d_set_f64(out, dt, 0, cnt > 0 ? total / cnt : NAN);
}

static int split(const bp_value *x, int64_t *c, int64_t *rows) {
  *c = x->dims[x->rank - 1];
  *rows = *c ? bp_value_numel(x) / *c : 0;
  return 0;
}

BP_CUDA_EVAL(bp_cuda_eval_sce) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0], *t = in[1];
  bp_value *y = out[0];
  if (x->dtype != BP_F32 || !bp_dtype_is_int(t->dtype) || (y->dtype != BP_F32 && y->dtype != BP_F64))
    return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t c, rows, ignore = bp_attr_int(n, "ignore_index", -100);
  split(x, &c, &rows);
  if (rows > INT32_MAX) return bp_errf(e, "node '%s' (%s): too many rows", n->name, n->op_type);
  size_t bytes = (sizeof(double) + sizeof(int)) * (size_t)(rows ? rows : 1);
  double *loss = (double *)bp_cuda_alloc(dc, bytes, "cross-entropy rows", e);
  if (!loss) return bp_err_prefix_node(e, n);
  int *counted = (int *)(loss + (rows ? rows : 1));
  int rc = 0;
  if (rows) {
    int vec = (c & 3) == 0 && ((uintptr_t)x->data & 15) == 0;
    k_sce_rows<<<(unsigned)rows, SCE_THREADS, 0, dc->stream>>>((const float *)x->data, t->data, t->dtype, c, vec, ignore,
                                                              loss, counted, dc->flag, dc->tag);
    rc = bp_cuda_after_launch(dc, n, "k_sce_rows", e, __FILE__, __LINE__);
  }
  if (!rc) {
    k_sce_mean<<<1, 1024, 0, dc->stream>>>(loss, counted, rows, y->data, y->dtype);
    rc = bp_cuda_after_launch(dc, n, "k_sce_mean", e, __FILE__, __LINE__);
  }
  bp_cuda_release(dc, loss);
  return rc;
}

/* ---- SoftmaxCrossEntropyGrad(dloss, logits, targets) -> dlogits ---- */
__global__ void k_sce_count(const void *t, int tt, int64_t rows, int64_t c, int64_t ignore, double *count) {
  __shared__ double sh[32];
  double cnt = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    int64_t v = d_get_i64(t, tt, r);
    cnt += v != ignore && v >= 0 && v < c; /* out-of-range targets are flagged by the row kernel */
  }
  cnt = block_sum(cnt, sh);
  if (threadIdx.x == 0) *count = cnt;
}

__global__ void k_sce_grad_rows(const void *dl, int dlt, const float *x, const void *t, int tt, int64_t c, int vec,
                                int64_t ignore, const double *count, float *dx, int *flag, int tag) {
  __shared__ double sh[32];
  int64_t r = blockIdx.x;
  const float *xr = x + r * c;
  float *dr = dx + r * c;
  int64_t tg = row_target(t, tt, r, c, ignore, flag, tag);
  if (tg < 0) {
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) dr[i] = 0.0f;
    return;
  }
  double scale = *count > 0 ? d_get_f64(dl, dlt, 0) / *count : 0;
  float mx;
  double sum;
  row_stats(xr, c, vec, sh, &mx, &sum);
  double inv = 1.0 / sum;
  if (vec) {
    const float4 *x4 = (const float4 *)xr;
    float4 *d4 = (float4 *)dr;
    for (int64_t i = threadIdx.x; i < (c >> 2); i += blockDim.x) {
      float4 v = x4[i], o;
      int64_t k = i << 2;
      o.x = (float)(scale * ((double)expf(v.x - mx) * inv - (k == tg)));
      o.y = (float)(scale * ((double)expf(v.y - mx) * inv - (k + 1 == tg)));
      o.z = (float)(scale * ((double)expf(v.z - mx) * inv - (k + 2 == tg)));
      o.w = (float)(scale * ((double)expf(v.w - mx) * inv - (k + 3 == tg)));
      d4[i] = o;
    }
  } else {
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x)
      dr[i] = (float)(scale * ((double)expf(xr[i] - mx) * inv - (i == tg)));
  }
}

BP_CUDA_EVAL(bp_cuda_eval_sce_grad) {
  BP_CUDA_DC(dc);
  const bp_value *dl = in[0], *x = in[1], *t = in[2];
  bp_value *dx = out[0];
  if (x->dtype != BP_F32 || dx->dtype != BP_F32 || !bp_dtype_is_int(t->dtype) || (dl->dtype != BP_F32 && dl->dtype != BP_F64))
    return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t c, rows, ignore = bp_attr_int(n, "ignore_index", -100);
  split(x, &c, &rows);
  if (!rows || !c) return 0;
  if (rows > INT32_MAX) return bp_errf(e, "node '%s' (%s): too many rows", n->name, n->op_type);
  double *count = (double *)bp_cuda_alloc(dc, sizeof(double), "cross-entropy count", e);
  if (!count) return bp_err_prefix_node(e, n);
  k_sce_count<<<1, 1024, 0, dc->stream>>>(t->data, t->dtype, rows, c, ignore, count);
  int rc = bp_cuda_after_launch(dc, n, "k_sce_count", e, __FILE__, __LINE__);
  if (!rc) {
    int vec = (c & 3) == 0 && ((uintptr_t)x->data & 15) == 0 && ((uintptr_t)dx->data & 15) == 0;
    k_sce_grad_rows<<<(unsigned)rows, SCE_THREADS, 0, dc->stream>>>(dl->data, dl->dtype, (const float *)x->data, t->data,
                                                                   t->dtype, c, vec, ignore, count, (float *)dx->data,
                                                                   dc->flag, dc->tag);
    rc = bp_cuda_after_launch(dc, n, "k_sce_grad_rows", e, __FILE__, __LINE__);
  }
  bp_cuda_release(dc, count);
  return rc;
}
