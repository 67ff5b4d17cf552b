/* kernels/cuda/loss.cu — the softmax cross-entropy loss and its gradient (domain "bitpipe", see
 * kernels/cpu/grad.h), with the softmax fused: logits [rows, C] (leading dims flattened) against
 * integer targets [rows]; rows whose target is ignore_index do not count; the loss is the mean
 * over counted rows. Everything in double as on the CPU (max, sum of exp, log), one block per row;
 * the mean is a single-block reduction, so the loss is deterministic. A target outside [0, C) that
 * is not the ignore index raises the device flag (the CPU kernel's error). */
#include "kernels/cuda/common.cuh"

#include <math.h>

/* Block max in double, ignoring NaN (fmax), as the CPU's loop. */
__device__ inline double block_dmax(double v, double *sh) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  v = l < nw ? sh[l] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

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

/* Per row: max and log-sum-exp denominator; returns mx + log(sum). */
__device__ inline double row_lse(const float *xr, int64_t c, double *sh) {
  double mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < c; i += blockDim.x) mx = fmax(mx, (double)xr[i]);
  mx = block_dmax(mx, sh);
  double s = 0;
  for (int64_t i = threadIdx.x; i < c; i += blockDim.x) s += exp((double)xr[i] - mx);
  s = block_sum(s, sh);
  return mx + log(s);
}

__global__ void k_sce_rows(const float *x, const void *t, int tt, int64_t c, int64_t ignore, double *loss,
                           int *counted, int *flag, int tag) {
  __shared__ double sh[32];
  int64_t r = blockIdx.x;
  int64_t tg = row_target(t, tt, r, c, ignore, flag, tag); /* the same value in every thread */
  if (tg < 0) {
    if (threadIdx.x == 0) loss[r] = 0, counted[r] = 0;
    return;
  }
  const float *xr = x + r * c;
  double lse = row_lse(xr, c, sh);
  if (threadIdx.x == 0) {
    loss[r] = lse - (double)xr[tg];
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
    k_sce_rows<<<(unsigned)rows, 256, 0, dc->stream>>>((const float *)x->data, t->data, t->dtype, c, ignore, loss, counted,
                                                      dc->flag, dc->tag);
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

__global__ void k_sce_grad_rows(const void *dl, int dlt, const float *x, const void *t, int tt, int64_t c,
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
  double mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < c; i += blockDim.x) mx = fmax(mx, (double)xr[i]);
  mx = block_dmax(mx, sh);
  double s = 0;
  for (int64_t i = threadIdx.x; i < c; i += blockDim.x) s += exp((double)xr[i] - mx);
  s = block_sum(s, sh);
  for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
    double p = exp((double)xr[i] - mx) / s;
    dr[i] = (float)(scale * (p - (i == tg ? 1.0 : 0.0)));
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
    k_sce_grad_rows<<<(unsigned)rows, 256, 0, dc->stream>>>(dl->data, dl->dtype, (const float *)x->data, t->data, t->dtype,
                                                           c, ignore, count, (float *)dx->data, dc->flag, dc->tag);
    rc = bp_cuda_after_launch(dc, n, "k_sce_grad_rows", e, __FILE__, __LINE__);
  }
  bp_cuda_release(dc, count);
  return rc;
}
