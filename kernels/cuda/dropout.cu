/* kernels/cuda/dropout.cu — Dropout (float32) with the CPU's counter-based random stream, so the
 * GPU draws the same mask as kernels/cpu/nn_dropout.c for the same seed and counter: element i keeps
 * when splitmix64(key + (counter + i) * golden) >> 40, scaled by 2^-24, is >= ratio; ctx->counter
 * then advances by the element count. Also DropoutGrad (dy * mask * scale) and GeluGrad (exact and
 * tanh forms), in double as kernels/cpu/grad_nn.c. */
#include "kernels/cuda/common.cuh"

#include <math.h>
#include <string.h>

static __host__ __device__ inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void k_dropout(const float *x, float *y, uint8_t *m, int64_t count, uint64_t key, uint64_t base,
                          double ratio, float scale) {
  GRID_STRIDE(i, count) {
    double u = (double)(splitmix64(key + (base + (uint64_t)i) * 0x9e3779b97f4a7c15ull) >> 40) * 0x1p-24;
    int keep = u >= ratio;
    y[i] = keep ? x[i] * scale : 0.0f;
    if (m) m[i] = (uint8_t)keep;
  }
}

BP_CUDA_EVAL(bp_cuda_eval_dropout) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0];
  bp_value *y = out[0], *mask = nout > 1 ? out[1] : NULL;
  if (x->dtype != BP_F32) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  double ratio = bp_attr_float(n, "ratio", 0.5f);
  int training = ctx && ctx->training;
  if (n->opset >= 12) {
    ratio = 0.5;
    bp_value hv, *r;
    if (bp_cuda_host_view(dc, n, in, nin, 1, &hv, &r, e)) return -1;
    if (r) {
      if (!bp_dtype_is_float(r->dtype) || bp_value_numel(r) != 1)
        return bp_errf(e, "node '%s' (%s): input 'ratio' must be a float scalar", n->name, n->op_type);
      ratio = bp_get_f64(r->data, r->dtype, 0);
    }
    if (nin > 2 && in[2] && bp_value_numel(in[2]) != 1)
      return bp_errf(e, "node '%s' (%s): input 'training_mode' must be a bool scalar", n->name, n->op_type);
  }
  if (!(ratio >= 0 && ratio <= 1))
    return bp_errf(e, "node '%s' (%s): ratio %g is outside [0, 1]", n->name, n->op_type, ratio);
  int64_t total = bp_value_numel(x);
  if (!training || ratio == 0) {
    if (bp_value_bytes(x)) BP_CU(cudaMemcpyAsync(y->data, x->data, bp_value_bytes(x), cudaMemcpyDeviceToDevice, dc->stream));
    if (mask && total) BP_CU(cudaMemsetAsync(mask->data, 1, (size_t)total, dc->stream));
    return 0;
  }
  uint64_t key = splitmix64(ctx->seed);
  const bp_attr *sa = bp_node_attr(n, "seed");
  if (sa && sa->type == BP_ATTR_INT) key = splitmix64(key ^ (uint64_t)sa->i);
  else if (sa && sa->type == BP_ATTR_FLOAT) key = splitmix64(key ^ (uint64_t)(int64_t)sa->f);
  double scale = ratio < 1 ? 1.0 / (1.0 - ratio) : 0.0;
  if (total) {
    k_dropout<<<bp_cuda_blocks(dc, total), THREADS, 0, dc->stream>>>((const float *)x->data, (float *)y->data,
                                                                      mask ? (uint8_t *)mask->data : NULL, total, key,
                                                                      ctx->counter, ratio, (float)scale);
    BP_LAUNCHED(dc, "k_dropout");
  }
  ctx->counter += (uint64_t)total;
  return 0;
}

__global__ void k_dropout_grad(const float *dy, const uint8_t *m, float *dx, double scale, int64_t count) {
  GRID_STRIDE(i, count) dx[i] = (float)(m[i] ? (double)dy[i] * scale : 0.0);
}

BP_CUDA_EVAL(bp_cuda_eval_dropout_grad) {
  BP_CUDA_DC(dc);
  const bp_value *dy = in[0], *mask = in[1];
  if (dy->dtype != BP_F32 || out[0]->dtype != BP_F32) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t total = bp_value_numel(dy);
  if (!total) return 0;
  k_dropout_grad<<<bp_cuda_blocks(dc, total), THREADS, 0, dc->stream>>>((const float *)dy->data, (const uint8_t *)mask->data,
                                                                         (float *)out[0]->data,
                                                                         (double)bp_attr_float(n, "scale", 1.0f), total);
  BP_LAUNCHED(dc, "k_dropout_grad");
  return 0;
}

/* dy * gelu'(x) in double, as the CPU (kernels/cpu/grad_nn.c). */
__device__ inline float gelu_grad(float dyv, float xv, int tanh_approx) {
  double v = xv, d;
  if (tanh_approx) {
    const double k = 0.7978845608028654; /* sqrt(2 / pi) */
    double u = k * (v + 0.044715 * v * v * v), t = tanh(u);
    d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v);
  } else {
    d = 0.5 * (1 + erf(v * 0.7071067811865476)) + v * exp(-0.5 * v * v) * 0.3989422804014327;
  }
  return (float)((double)dyv * d);
}

__global__ void k_gelu_grad(const float *dy, const float *x, float *dx, int tanh_approx, int64_t count) {
  GRID_STRIDE(i, count) dx[i] = gelu_grad(dy[i], x[i], tanh_approx);
}

/* Four elements per thread (16-byte loads and stores) when the count and the buffers allow. */
__global__ void k_gelu_grad4(const float4 *dy, const float4 *x, float4 *dx, int tanh_approx, int64_t count4) {
  GRID_STRIDE(i, count4) {
    float4 g = dy[i], v = x[i];
    dx[i] = make_float4(gelu_grad(g.x, v.x, tanh_approx), gelu_grad(g.y, v.y, tanh_approx),
                        gelu_grad(g.z, v.z, tanh_approx), gelu_grad(g.w, v.w, tanh_approx));
  }
}

BP_CUDA_EVAL(bp_cuda_eval_gelu_grad) {
  BP_CUDA_DC(dc);
  const bp_value *dy = in[0], *x = in[1];
  if (dy->dtype != BP_F32 || x->dtype != BP_F32 || out[0]->dtype != BP_F32)
    return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t total = bp_value_numel(dy);
  if (!total) return 0;
  int tanh_approx = strcmp(bp_attr_string(n, "approximate", "none"), "tanh") == 0;
  if (total % 4 == 0 && (((uintptr_t)dy->data | (uintptr_t)x->data | (uintptr_t)out[0]->data) & 15) == 0) {
    k_gelu_grad4<<<bp_cuda_blocks(dc, total / 4), THREADS, 0, dc->stream>>>(
        (const float4 *)dy->data, (const float4 *)x->data, (float4 *)out[0]->data, tanh_approx, total / 4);
    BP_LAUNCHED(dc, "k_gelu_grad4");
    return 0;
  }
  k_gelu_grad<<<bp_cuda_blocks(dc, total), THREADS, 0, dc->stream>>>((const float *)dy->data, (const float *)x->data,
                                                                      (float *)out[0]->data, tanh_approx, total);
  BP_LAUNCHED(dc, "k_gelu_grad");
  return 0;
}
