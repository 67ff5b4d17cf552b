/* kernels/cuda/misc.cu — the smaller ops of the table on the GPU, each following its CPU kernel:
 * ArgMax/ArgMin (kernels/cpu/nn_argreduce.c: double compare, the first NaN wins, select_last_index),
 * Hardmax (the first maximum), CumSum (float32 accumulates in float, integers wrap; exclusive and
 * reverse), Trilu, ConstantOfShape, EyeLike and Pad in constant mode (kernels/cpu/shape_*.c). One
 * thread per line for the scans and arg-reductions: these ops are rare and small in transformer
 * graphs. Other Pad modes run host-staged. */
#include "kernels/cuda/common.cuh"

extern "C" {
#include "kernels/cpu/nn.h"
#include "kernels/cpu/shape.h"
}

#include <math.h>
#include <string.h>

/* ---- ArgMax / ArgMin ---- */
__device__ inline int better_f(int is_max, int ties, double v, double best) {
  if (best != best) return 0;
  if (v != v) return 1;
  return is_max ? (v > best || (ties && v == best)) : (v < best || (ties && v == best));
}

__global__ void k_argreduce(const void *x, int t, int64_t *y, int64_t outer, int64_t len, int64_t inner, int is_max,
                            int ties, int flt, int uns) {
  GRID_STRIDE(q, outer * inner) {
    int64_t o = q / inner, k = q - o * inner, base = o * len * inner + k, arg = 0;
    if (flt) {
      double best = d_get_f64(x, t, base);
      for (int64_t i = 1; i < len; i++) {
        double v = d_get_f64(x, t, base + i * inner);
        if (better_f(is_max, ties, v, best)) best = v, arg = i;
      }
    } else {
      int64_t best = d_get_i64(x, t, base);
      for (int64_t i = 1; i < len; i++) {
        int64_t v = d_get_i64(x, t, base + i * inner);
        int gt = uns ? (uint64_t)v > (uint64_t)best : v > best;
        int lt = uns ? (uint64_t)v < (uint64_t)best : v < best;
        if ((is_max ? gt : lt) || (ties && v == best)) best = v, arg = i;
      }
    }
    y[q] = arg;
  }
}

static int argreduce(bp_ctx *ctx, const bp_node *n, int is_max, bp_value *const *in, int nin, bp_value *const *out,
                     int nout, bp_err *e) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0];
  bp_dtype t = x->dtype;
  int64_t axis;
  if (x->rank < 1 || out[0]->dtype != BP_I64 || t == BP_F16 || t == BP_BF16 || t == BP_BOOL || !bp_dtype_size(t) ||
      bp_norm_axis(bp_attr_int(n, "axis", 0), x->rank, &axis, n->name, e))
    return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e); /* the CPU kernel reports it */
  int64_t outer = 1, len = x->dims[axis], inner = 1;
  for (int i = 0; i < x->rank; i++) {
    if (i < axis) outer *= x->dims[i];
    if (i > axis) inner *= x->dims[i];
  }
  if (outer * inner == 0) return 0;
  if (len == 0) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  k_argreduce<<<bp_cuda_blocks(dc, outer * inner), THREADS, 0, dc->stream>>>(
      x->data, t, (int64_t *)out[0]->data, outer, len, inner, is_max, bp_attr_int(n, "select_last_index", 0) != 0,
      bp_dtype_is_float(t), t == BP_U64);
  BP_LAUNCHED(dc, "k_argreduce");
  return 0;
}

BP_CUDA_EVAL(bp_cuda_eval_argmax) { return argreduce(ctx, n, 1, in, nin, out, nout, e); }
BP_CUDA_EVAL(bp_cuda_eval_argmin) { return argreduce(ctx, n, 0, in, nin, out, nout, e); }

/* ---- Hardmax: 1 at the first maximum of each line, 0 elsewhere ---- */
__global__ void k_hardmax(const float *x, float *y, int64_t outer, int64_t len, int64_t inner) {
  GRID_STRIDE(q, outer * inner) {
    int64_t o = q / inner, j = q - o * inner, base = o * len * inner + j, arg = 0;
    float mx = -INFINITY;
    for (int64_t i = 0; i < len; i++)
      if (x[base + i * inner] > mx) mx = x[base + i * inner], arg = i;
    for (int64_t i = 0; i < len; i++) y[base + i * inner] = i == arg ? 1.0f : 0.0f;
  }
}

BP_CUDA_EVAL(bp_cuda_eval_hardmax) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0];
  if (x->dtype != BP_F32) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t outer, len, inner;
  if (bp_nn_softmax_split(n, x, &outer, &len, &inner, e)) return -1;
  if (outer * len * inner == 0) return 0;
  k_hardmax<<<bp_cuda_blocks(dc, outer * inner), THREADS, 0, dc->stream>>>((const float *)x->data, (float *)out[0]->data,
                                                                            outer, len, inner);
  BP_LAUNCHED(dc, "k_hardmax");
  return 0;
}

/* ---- CumSum ---- */
__global__ void k_cumsum(const void *x, void *y, int t, int64_t outer, int64_t len, int64_t inner, int excl, int rev) {
  GRID_STRIDE(q, outer * inner) {
    int64_t a = q / inner, b = q - a * inner, base = a * len * inner + b;
    if (t == BP_F32) {
      const float *s = (const float *)x;
      float *d = (float *)y, acc = 0;
      for (int64_t j = 0; j < len; j++) {
        int64_t p = base + (rev ? len - 1 - j : j) * inner;
        if (excl) { d[p] = acc; acc = __fadd_rn(acc, s[p]); }
        else { acc = __fadd_rn(acc, s[p]); d[p] = acc; }
      }
    } else if (t == BP_F64) {
      double acc = 0;
      for (int64_t j = 0; j < len; j++) {
        int64_t p = base + (rev ? len - 1 - j : j) * inner;
        double v = d_get_f64(x, t, p);
        if (excl) { d_set_f64(y, t, p, acc); acc += v; }
        else { acc += v; d_set_f64(y, t, p, acc); }
      }
    } else {
      uint64_t acc = 0;
      for (int64_t j = 0; j < len; j++) {
        int64_t p = base + (rev ? len - 1 - j : j) * inner;
        uint64_t v = (uint64_t)d_get_i64(x, t, p);
        if (excl) { d_set_i64(y, t, p, (int64_t)acc); acc += v; }
        else { acc += v; d_set_i64(y, t, p, (int64_t)acc); }
      }
    }
  }
}

BP_CUDA_EVAL(bp_cuda_eval_cumsum) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0];
  bp_dtype t = x->dtype;
  if (!(t == BP_F32 || t == BP_F64 || bp_dtype_is_int(t)) || x->rank == 0)
    return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  bp_value hv, *ax;
  int64_t axis;
  if (bp_cuda_host_view(dc, n, in, nin, 1, &hv, &ax, e) || shape_read_scalar_int(n, ax, "axis", &axis, e)) return -1;
  if (axis < -x->rank || axis >= x->rank)
    return bp_errf(e, "node '%s' (%s): axis %lld is out of range for rank %d", n->name, n->op_type, (long long)axis, x->rank);
  if (axis < 0) axis += x->rank;
  int64_t outer = 1, inner = 1, len = x->dims[axis];
  for (int i = 0; i < axis; i++) outer *= x->dims[i];
  for (int i = (int)axis + 1; i < x->rank; i++) inner *= x->dims[i];
  if (outer * inner * len == 0) return 0;
  k_cumsum<<<bp_cuda_blocks(dc, outer * inner), THREADS, 0, dc->stream>>>(x->data, out[0]->data, t, outer, len, inner,
                                                                           bp_attr_int(n, "exclusive", 0) != 0,
                                                                           bp_attr_int(n, "reverse", 0) != 0);
  BP_LAUNCHED(dc, "k_cumsum");
  return 0;
}

/* ---- Trilu: keep (i, j) of each trailing matrix when j - i >= k (upper) or <= k (lower) ---- */
template <typename T>
__global__ void k_trilu(const T *x, T *y, int64_t R, int64_t C, int64_t k, int upper, int64_t count) {
  GRID_STRIDE(q, count) {
    int64_t j = q % C, i = (q / C) % R;
    int keep = upper ? j - i >= k : j - i <= k;
    y[q] = keep ? x[q] : T(0);
  }
}

BP_CUDA_EVAL(bp_cuda_eval_trilu) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0];
  if (x->rank < 2) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t k = 0;
  bp_value hv, *kv;
  if (bp_cuda_host_view(dc, n, in, nin, 1, &hv, &kv, e)) return -1;
  if (kv && shape_read_scalar_int(n, kv, "k", &k, e)) return -1;
  int64_t R = x->dims[x->rank - 2], C = x->dims[x->rank - 1], count = bp_value_numel(x);
  if (!count) return 0;
  if (k > C) k = C;
  if (k < -R) k = -R;
  int upper = bp_attr_int(n, "upper", 1) != 0;
  unsigned blocks = bp_cuda_blocks(dc, count);
  switch (bp_dtype_size(x->dtype)) {
  case 1: k_trilu<uint8_t><<<blocks, THREADS, 0, dc->stream>>>((const uint8_t *)x->data, (uint8_t *)out[0]->data, R, C, k, upper, count); break;
  case 2: k_trilu<uint16_t><<<blocks, THREADS, 0, dc->stream>>>((const uint16_t *)x->data, (uint16_t *)out[0]->data, R, C, k, upper, count); break;
  case 4: k_trilu<uint32_t><<<blocks, THREADS, 0, dc->stream>>>((const uint32_t *)x->data, (uint32_t *)out[0]->data, R, C, k, upper, count); break;
  case 8: k_trilu<uint64_t><<<blocks, THREADS, 0, dc->stream>>>((const uint64_t *)x->data, (uint64_t *)out[0]->data, R, C, k, upper, count); break;
  default: return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  }
  BP_LAUNCHED(dc, "k_trilu");
  return 0;
}

/* ---- fills: ConstantOfShape, EyeLike, Pad (constant mode) ---- */
template <typename T>
__global__ void k_fill(T *y, T v, int64_t count) {
  GRID_STRIDE(i, count) y[i] = v;
}

/* y[0..count) = the es-byte element at `val`. */
static int fill(bp_cuda *dc, const bp_node *n, void *y, const void *val, size_t es, int64_t count, bp_err *e) {
  if (!count) return 0;
  unsigned blocks = bp_cuda_blocks(dc, count);
  uint64_t v = 0;
  memcpy(&v, val, es);
  switch (es) {
  case 1: k_fill<uint8_t><<<blocks, THREADS, 0, dc->stream>>>((uint8_t *)y, (uint8_t)v, count); break;
  case 2: k_fill<uint16_t><<<blocks, THREADS, 0, dc->stream>>>((uint16_t *)y, (uint16_t)v, count); break;
  case 4: k_fill<uint32_t><<<blocks, THREADS, 0, dc->stream>>>((uint32_t *)y, (uint32_t)v, count); break;
  case 8: k_fill<uint64_t><<<blocks, THREADS, 0, dc->stream>>>((uint64_t *)y, (uint64_t)v, count); break;
  default: return bp_errf(e, "node '%s' (%s): elements of %zu bytes cannot be filled", n->name, n->op_type, es);
  }
  BP_LAUNCHED(dc, "k_fill");
  return 0;
}

BP_CUDA_EVAL(bp_cuda_eval_constant_of_shape) {
  BP_CUDA_DC(dc);
  bp_value *o = out[0];
  const bp_attr *a = bp_node_attr(n, "value");
  if (!a || a->type != BP_ATTR_TENSOR || !a->t) {
    BP_CU(cudaMemsetAsync(o->data, 0, bp_value_bytes(o), dc->stream));
    return 0;
  }
  if (a->t->dtype != o->dtype || bp_value_numel(a->t) != 1 || !a->t->data || bp_dtype_size(o->dtype) > 8)
    return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e); /* the CPU kernel reports it */
  return fill(dc, n, o->data, a->t->data, bp_dtype_size(o->dtype), bp_value_numel(o), e);
}

__global__ void k_eye_diag(void *y, int t, int flt, int64_t R, int64_t C, int64_t k) {
  GRID_STRIDE(i, R) {
    int64_t j = i + k;
    if (j >= 0 && j < C) {
      if (flt) d_set_f64(y, t, i * C + j, 1.0);
      else d_set_i64(y, t, i * C + j, 1);
    }
  }
}

BP_CUDA_EVAL(bp_cuda_eval_eye_like) {
  BP_CUDA_DC(dc);
  bp_value *o = out[0];
  if (o->rank != 2) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t k = bp_attr_int(n, "k", 0), R = o->dims[0], C = o->dims[1];
  BP_CU(cudaMemsetAsync(o->data, 0, bp_value_bytes(o), dc->stream));
  if (k > C || k < -R || R == 0) return 0;
  k_eye_diag<<<bp_cuda_blocks(dc, R), THREADS, 0, dc->stream>>>(o->data, o->dtype, bp_dtype_is_float(o->dtype), R, C, k);
  BP_LAUNCHED(dc, "k_eye_diag");
  return 0;
}

BP_CUDA_EVAL(bp_cuda_eval_pad) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0];
  bp_value *o = out[0];
  bp_value hv[4], *hin[4] = {in[0], NULL, NULL, NULL};
  for (int k = 1; k < nin && k < 4; k++)
    if (bp_cuda_host_view(dc, n, in, nin, k, &hv[k], &hin[k], e)) return -1;
  shape_pad_plan p;
  if (shape_plan_pad(n, hin, nin < 4 ? nin : 4, &p, e)) return -1;
  size_t es = bp_dtype_size(x->dtype);
  int r = x->rank;
  if (p.mode != SHAPE_PAD_CONSTANT || r == 0 || es == 0 || es > 8) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  int64_t onum = bp_value_numel(o);
  if (onum == 0) return 0;
  /* the pad value in x's dtype (kernels/cpu/shape_slice.c's pad_value) */
  unsigned char val[16] = {0};
  if (n->opset < 11) {
    bp_set_f64(val, x->dtype, 0, bp_attr_float(n, "value", 0.0f));
  } else if (hin[2]) {
    const bp_value *v = hin[2];
    if (!v->data || bp_value_numel(v) < 1) return bp_errf(e, "node '%s' (%s): input 'constant_value' has no value", n->name, n->op_type);
    if (v->dtype == x->dtype) memcpy(val, v->data, es);
    else if (bp_dtype_is_float(x->dtype)) bp_set_f64(val, x->dtype, 0, bp_get_f64(v->data, v->dtype, 0));
    else bp_set_i64(val, x->dtype, 0, bp_get_i64(v->data, v->dtype, 0));
  }
  if (fill(dc, n, o->data, val, es, onum, e)) return -1;
  int64_t xs[BP_MAX_RANK], os[BP_MAX_RANK], cnt[BP_MAX_RANK], soff = 0, doff = 0;
  shape_strides(r, x->dims, xs);
  shape_strides(r, o->dims, os);
  for (int i = 0; i < r; i++) {
    int64_t cb = p.before[i] < 0 ? -p.before[i] : 0, ca = p.after[i] < 0 ? -p.after[i] : 0;
    cnt[i] = x->dims[i] - cb - ca;
    if (cnt[i] <= 0) return 0;
    soff += cb * xs[i];
    doff += (p.before[i] > 0 ? p.before[i] : 0) * os[i];
  }
  return bp_cuda_copy_strided(dc, n, (char *)o->data + doff * (int64_t)es, os, (const char *)x->data + soff * (int64_t)es,
                              xs, r, cnt, es, e);
}
