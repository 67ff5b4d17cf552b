/* kernels/cuda/select.cu — Where (three-way broadcast select, any element size), Cast / CastLike
 * (every dtype pair, with kernels/cpu/elementwise_select.c's conversions: float to integer
 * truncates and saturates, integers wrap, float16/bfloat16 round to nearest even) and Clip
 * (float32; bounds from attributes or scalar inputs). */
#include "kernels/cuda/common.cuh"

#include <float.h>
#include <math.h>

/* ---- Where ---- */
template <typename T>
__global__ void k_where(bp_walk w, const uint8_t *c, const T *x, const T *y, T *o, int64_t count) {
  GRID_STRIDE(i, count) {
    int64_t off[3];
    walk_offsets<3>(w, i, off);
    o[i] = c[off[0]] ? x[off[1]] : y[off[2]];
  }
}

BP_CUDA_EVAL(bp_cuda_eval_Where) {
  BP_CUDA_DC(dc);
  (void)nout;
  const bp_value *cond = in[0], *x = in[1], *y = in[2];
  bp_value *o = out[0];
  int64_t count = bp_value_numel(o);
  if (cond->dtype != BP_BOOL) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  if (!count) return 0;
  const bp_value *ins[3] = {cond, x, y};
  bp_walk w;
  bp_walk_bcast(&w, o, ins, 3);
  unsigned blocks = bp_cuda_blocks(dc, count);
  const uint8_t *c = (const uint8_t *)cond->data;
  switch (bp_dtype_size(o->dtype)) {
  case 1: k_where<uint8_t><<<blocks, THREADS, 0, dc->stream>>>(w, c, (const uint8_t *)x->data, (const uint8_t *)y->data, (uint8_t *)o->data, count); break;
  case 2: k_where<uint16_t><<<blocks, THREADS, 0, dc->stream>>>(w, c, (const uint16_t *)x->data, (const uint16_t *)y->data, (uint16_t *)o->data, count); break;
  case 4: k_where<uint32_t><<<blocks, THREADS, 0, dc->stream>>>(w, c, (const uint32_t *)x->data, (const uint32_t *)y->data, (uint32_t *)o->data, count); break;
  case 8: k_where<uint64_t><<<blocks, THREADS, 0, dc->stream>>>(w, c, (const uint64_t *)x->data, (const uint64_t *)y->data, (uint64_t *)o->data, count); break;
  default: return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  }
  BP_LAUNCHED(dc, "k_where");
  return 0;
}

/* ---- Cast ---- */
__device__ inline int d_is_float(int t) { return t == BP_F32 || t == BP_F64 || t == BP_F16 || t == BP_BF16; }
__device__ inline int d_is_signed(int t) { return t == BP_I8 || t == BP_I16 || t == BP_I32 || t == BP_I64; }

/* The branches of kernels/cpu/elementwise_select.c's do_cast, element by element. */
__global__ void k_cast(const void *x, int s, void *y, int d, int64_t count) {
  GRID_STRIDE(i, count) {
    if (s == BP_F32 && d == BP_I64) {
      d_set_f64(y, d, i, ((const float *)x)[i]);
    } else if (s == BP_I64 && d == BP_F32) {
      ((float *)y)[i] = (float)((const int64_t *)x)[i];
    } else if (s == BP_BOOL && d == BP_F32) {
      ((float *)y)[i] = ((const uint8_t *)x)[i] ? 1.0f : 0.0f;
    } else if (s == BP_F32 && d == BP_BOOL) {
      ((uint8_t *)y)[i] = ((const float *)x)[i] != 0.0f;
    } else if (d_is_float(s)) {
      d_set_f64(y, d, i, d_get_f64(x, s, i));
    } else if (d_is_float(d)) {
      int64_t v = d_get_i64(x, s, i);
      if (d == BP_F32) ((float *)y)[i] = d_is_signed(s) ? (float)v : (float)(uint64_t)v;
      else if (d == BP_F64) ((double *)y)[i] = d_is_signed(s) ? (double)v : (double)(uint64_t)v;
      else d_set_f64(y, d, i, d_is_signed(s) ? (double)v : (double)(uint64_t)v);
    } else {
      d_set_i64(y, d, i, d_get_i64(x, s, i));
    }
  }
}

static int do_cast(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out, int nout,
                   bp_err *e) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0];
  bp_value *y = out[0];
  bp_dtype s = x->dtype, d = y->dtype;
  if (!bp_dtype_size(s) || !bp_dtype_size(d) || s == BP_STRING || d == BP_STRING)
    return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e); /* the CPU kernel names the dtype */
  int64_t count = bp_value_numel(x);
  if (!count) return 0;
  if (s == d) {
    BP_CU(cudaMemcpyAsync(y->data, x->data, bp_value_bytes(x), cudaMemcpyDeviceToDevice, dc->stream));
    return 0;
  }
  k_cast<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>(x->data, (int)s, y->data, (int)d, count);
  BP_LAUNCHED(dc, "k_cast");
  return 0;
}

BP_CUDA_EVAL(bp_cuda_eval_Cast) { return do_cast(ctx, n, in, nin, out, nout, e); }
BP_CUDA_EVAL(bp_cuda_eval_CastLike) { return do_cast(ctx, n, in, nin, out, nout, e); }

/* ---- Clip ---- */
__global__ void k_clip(const float *x, float *y, float lo, float hi, int64_t count) {
  GRID_STRIDE(i, count) {
    float v = x[i];
    v = v < lo ? lo : v;
    y[i] = v > hi ? hi : v;
  }
}

BP_CUDA_EVAL(bp_cuda_eval_Clip) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0];
  if (x->dtype != BP_F32) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  double l = -INFINITY, h = INFINITY;
  if (n->opset < 11) {
    l = bp_attr_float(n, "min", -FLT_MAX);
    h = bp_attr_float(n, "max", FLT_MAX);
  } else {
    bp_value hv[2], *lo, *hi;
    if (bp_cuda_host_view(dc, n, in, nin, 1, &hv[0], &lo, e) || bp_cuda_host_view(dc, n, in, nin, 2, &hv[1], &hi, e))
      return -1;
    if (lo) l = bp_get_f64(lo->data, lo->dtype, 0);
    if (hi) h = bp_get_f64(hi->data, hi->dtype, 0);
  }
  int64_t count = bp_value_numel(x);
  if (!count) return 0;
  k_clip<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>((const float *)x->data, (float *)out[0]->data,
                                                                 (float)l, (float)h, count);
  BP_LAUNCHED(dc, "k_clip");
  return 0;
}
