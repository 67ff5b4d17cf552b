/* kernels/cuda/softmax.cu — Softmax and LogSoftmax forward and SoftmaxGrad on float32, over one
 * axis with x viewed as [outer, len, inner] (bp_nn_softmax_split, the CPU's split, so opset < 13's
 * coerce-to-2D matches too).
 *
 * Contiguous rows (inner == 1) follow kernels/cpu/nn_softmax.c's float32 path: max in float,
 * expf(x - max) in float, the sum in double, y = e * (float)(1 / sum); LogSoftmax
 * (x - max) - (float)log(sum). Strided layouts follow its double path. SoftmaxGrad is
 * y * (dy - sum(dy * y)) in double (kernels/cpu/grad_nn.c). One block per row, or one thread per
 * (outer, inner) column for strided layouts. Hardmax runs host-staged. */
#include "kernels/cuda/common.cuh"

extern "C" {
#include "kernels/cpu/nn.h"
}

#include <math.h>

/* Block max ignoring NaN, as the CPU's `v > mx ? v : mx` loop does. */
__device__ inline float block_fmax(float v, float *sh) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  v = l < nw ? sh[l] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__global__ void k_softmax_rows(const float *x, float *y, int64_t len, int logsm) {
  __shared__ double sh[32];
  __shared__ float shf[32];
  int64_t r = blockIdx.x;
  const float *xr = x + r * len;
  float *yr = y + r * len;
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) mx = xr[i] > mx ? xr[i] : mx;
  mx = block_fmax(mx, shf);
  if (mx == -INFINITY || mx != mx) mx = 0; /* all -inf rows: avoid inf - inf (the CPU's rule) */
  double sum = 0;
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) sum += (double)expf(xr[i] - mx);
  sum = block_sum(sum, sh);
  if (logsm) {
    float ls = (float)log(sum);
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) yr[i] = (xr[i] - mx) - ls;
  } else {
    float inv = (float)(1.0 / sum);
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) yr[i] = expf(xr[i] - mx) * inv;
  }
}

/* One thread per (o, j): x[o, :, j] with stride `inner`, in double (the CPU's strided path). */
__global__ void k_softmax_strided(const float *x, float *y, int64_t outer, int64_t len, int64_t inner, int logsm) {
  GRID_STRIDE(t, outer * inner) {
    int64_t o = t / inner, j = t - o * inner, base = o * len * inner + j;
    double mx = -INFINITY;
    for (int64_t i = 0; i < len; i++) {
      double v = x[base + i * inner];
      if (v > mx) mx = v;
    }
    if (mx == -INFINITY) mx = 0;
    double sum = 0;
    for (int64_t i = 0; i < len; i++) sum += exp((double)x[base + i * inner] - mx);
    double sh = mx + log(sum);
    for (int64_t i = 0; i < len; i++) {
      double v = (double)x[base + i * inner] - sh;
      y[base + i * inner] = (float)(logsm ? v : exp(v));
    }
  }
}

static int threads_for(int64_t len) {
  int t = 32;
  while (t < 256 && t < len) t <<= 1;
  return t;
}

static int run(bp_ctx *ctx, const bp_node *n, int logsm, bp_value *const *in, int nin, bp_value *const *out, int nout,
               bp_err *e) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0];
  bp_value *y = out[0];
  if (x->dtype != BP_F32 || y->dtype != BP_F32) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t outer, len, inner;
  if (bp_nn_softmax_split(n, x, &outer, &len, &inner, e)) return -1;
  if (outer * len * inner == 0) return 0;
  if (inner == 1) {
    if (outer > INT32_MAX) return bp_errf(e, "node '%s' (%s): too many rows", n->name, n->op_type);
    k_softmax_rows<<<(unsigned)outer, threads_for(len), 0, dc->stream>>>((const float *)x->data, (float *)y->data, len, logsm);
    BP_LAUNCHED(dc, "k_softmax_rows");
  } else {
    k_softmax_strided<<<bp_cuda_blocks(dc, outer * inner), THREADS, 0, dc->stream>>>((const float *)x->data,
                                                                                       (float *)y->data, outer, len, inner, logsm);
    BP_LAUNCHED(dc, "k_softmax_strided");
  }
  return 0;
}

BP_CUDA_EVAL(bp_cuda_eval_softmax) { return run(ctx, n, 0, in, nin, out, nout, e); }
BP_CUDA_EVAL(bp_cuda_eval_logsoftmax) { return run(ctx, n, 1, in, nin, out, nout, e); }

/* ---- SoftmaxGrad(dy, y): dx = y * (dy - sum(dy * y)) ---- */
__global__ void k_softmax_grad_rows(const float *dy, const float *y, float *dx, int64_t len) {
  __shared__ double sh[32];
  int64_t b = (int64_t)blockIdx.x * len;
  double s = 0;
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) s += (double)dy[b + i] * (double)y[b + i];
  s = block_sum(s, sh);
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) dx[b + i] = (float)((double)y[b + i] * ((double)dy[b + i] - s));
}

__global__ void k_softmax_grad_strided(const float *dy, const float *y, float *dx, int64_t outer, int64_t len,
                                       int64_t inner) {
  GRID_STRIDE(t, outer * inner) {
    int64_t o = t / inner, j = t - o * inner, base = o * len * inner + j;
    double s = 0;
    for (int64_t i = 0; i < len; i++) s += (double)dy[base + i * inner] * (double)y[base + i * inner];
    for (int64_t i = 0; i < len; i++) {
      int64_t k = base + i * inner;
      dx[k] = (float)((double)y[k] * ((double)dy[k] - s));
    }
  }
}

BP_CUDA_EVAL(bp_cuda_eval_softmax_grad) {
  BP_CUDA_DC(dc);
  const bp_value *dy = in[0], *y = in[1];
  bp_value *dx = out[0];
  if (dy->dtype != BP_F32 || y->dtype != BP_F32 || dx->dtype != BP_F32) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t outer, len, inner;
  if (bp_nn_softmax_split(n, y, &outer, &len, &inner, e)) return -1;
  if (outer * len * inner == 0) return 0;
  if (inner == 1) {
    if (outer > INT32_MAX) return bp_errf(e, "node '%s' (%s): too many rows", n->name, n->op_type);
    k_softmax_grad_rows<<<(unsigned)outer, threads_for(len), 0, dc->stream>>>((const float *)dy->data, (const float *)y->data,
                                                                              (float *)dx->data, len);
    BP_LAUNCHED(dc, "k_softmax_grad_rows");
  } else {
    k_softmax_grad_strided<<<bp_cuda_blocks(dc, outer * inner), THREADS, 0, dc->stream>>>(
        (const float *)dy->data, (const float *)y->data, (float *)dx->data, outer, len, inner);
    BP_LAUNCHED(dc, "k_softmax_grad_strided");
  }
  return 0;
}
