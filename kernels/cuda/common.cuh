/* kernels/cuda/common.cuh — what the CUDA kernel files share: the eval signature, grid-stride
 * loops, block reductions in double, element access by dtype on the device (the same conversions
 * as kernels/value.c), and the broadcast/stride descriptors passed to kernels by value. */
#ifndef BITPIPE_KERNELS_CUDA_COMMON_CUH
#define BITPIPE_KERNELS_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "frontend/ir.h"
}
#include "kernels/cuda/internal.h"

#define BP_CUDA_EVAL(name)                                                                         \
  extern "C" int name(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,                 \
                      bp_value *const *out, int nout, bp_err *e)

/* Start of an eval: the device context into `dc`, or return -1. */
#define BP_CUDA_DC(dc)                                                                             \
  bp_cuda *dc;                                                                                     \
  if (bp_cuda_ctx(ctx, n, &dc, e) < 0) return -1

#define THREADS 256
#define GRID_STRIDE(i, count)                                                                      \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (count);                    \
       i += (int64_t)gridDim.x * blockDim.x)

/* Raises the context's flag with `tag` (keeps the first). */
__device__ inline void bp_flag(int *flag, int tag) { atomicCAS(flag, 0, tag + 1); }

/* Sum of v over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
 * `sh` holds 32 doubles of shared memory. */
__device__ inline double block_sum(double v, double *sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = (blockDim.x + 31) >> 5;
  __syncthreads(); /* sh may still be read by a previous reduction */
  if (l == 0) sh[w] = v;
  __syncthreads();
  v = l < nw ? sh[l] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/* Max over the block with NaN propagating (as fmax would not). */
__device__ inline float nanmax(float a, float b) { return (a != a || b != b) ? a + b : (a > b ? a : b); }
__device__ inline float block_max(float v, float *sh) {
  for (int o = 16; o > 0; o >>= 1) v = nanmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (l == 0) sh[w] = v;
  __syncthreads();
  v = l < nw ? sh[l] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) v = nanmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* ---- element access by dtype (kernels/value.c's conversions, on the device) ---- */
__device__ inline float d_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, ex = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (ex == 0) {
    if (man == 0) {
      bits = sign;
    } else {
      ex = 127 - 15 + 1;
      while (!(man & 0x400)) { man <<= 1; ex--; }
      man &= 0x3ff;
      bits = sign | (ex << 23) | (man << 13);
    }
  } else if (ex == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((ex - 15 + 127) << 23) | (man << 13);
  }
  return __uint_as_float(bits);
}

__device__ inline uint16_t d_f32_to_f16(float f) {
  uint32_t x = __float_as_uint(f);
  uint32_t sign = (x >> 16) & 0x8000;
  int32_t ex = (int32_t)((x >> 23) & 0xff) - 127 + 15;
  uint32_t man = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
  if (ex >= 31) return (uint16_t)(sign | 0x7c00);
  if (ex <= 0) {
    if (ex < -10) return (uint16_t)sign;
    man |= 0x800000;
    uint32_t shift = (uint32_t)(14 - ex);
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = sign | ((uint32_t)ex << 10) | (man >> 13), rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
  return (uint16_t)half;
}

__device__ inline float d_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }
__device__ inline uint16_t d_f32_to_bf16(float f) {
  uint32_t x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

__device__ inline double d_get_f64(const void *d, int t, int64_t i) {
  switch (t) {
  case BP_F32: return ((const float *)d)[i];
  case BP_F64: return ((const double *)d)[i];
  case BP_F16: return d_f16_to_f32(((const uint16_t *)d)[i]);
  case BP_BF16: return d_bf16_to_f32(((const uint16_t *)d)[i]);
  case BP_I64: return (double)((const int64_t *)d)[i];
  case BP_I32: return ((const int32_t *)d)[i];
  case BP_I16: return ((const int16_t *)d)[i];
  case BP_I8: return ((const int8_t *)d)[i];
  case BP_U64: return (double)((const uint64_t *)d)[i];
  case BP_U32: return ((const uint32_t *)d)[i];
  case BP_U16: return ((const uint16_t *)d)[i];
  case BP_U8: return ((const uint8_t *)d)[i];
  case BP_BOOL: return ((const uint8_t *)d)[i] ? 1.0 : 0.0;
  default: return 0;
  }
}

__device__ inline void d_set_f64(void *d, int t, int64_t i, double x) {
  switch (t) {
  case BP_F32: ((float *)d)[i] = (float)x; break;
  case BP_F64: ((double *)d)[i] = x; break;
  case BP_F16: ((uint16_t *)d)[i] = d_f32_to_f16((float)x); break;
  case BP_BF16: ((uint16_t *)d)[i] = d_f32_to_bf16((float)x); break;
  case BP_I64: ((int64_t *)d)[i] = x != x ? 0 : x >= 9.2233720368547758e18 ? INT64_MAX : x <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)x; break;
  case BP_I32: ((int32_t *)d)[i] = x != x ? 0 : x >= 2147483647.0 ? INT32_MAX : x <= -2147483648.0 ? INT32_MIN : (int32_t)x; break;
  case BP_I16: ((int16_t *)d)[i] = (int16_t)(x != x ? 0 : x >= 32767 ? 32767 : x <= -32768 ? -32768 : (int)x); break;
  case BP_I8: ((int8_t *)d)[i] = (int8_t)(x != x ? 0 : x >= 127 ? 127 : x <= -128 ? -128 : (int)x); break;
  case BP_U64: ((uint64_t *)d)[i] = !(x > 0) ? 0 : x >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)x; break;
  case BP_U32: ((uint32_t *)d)[i] = !(x > 0) ? 0 : x >= 4294967295.0 ? UINT32_MAX : (uint32_t)x; break;
  case BP_U16: ((uint16_t *)d)[i] = (uint16_t)(!(x > 0) ? 0 : x >= 65535 ? 65535 : (unsigned)x); break;
  case BP_U8: ((uint8_t *)d)[i] = (uint8_t)(!(x > 0) ? 0 : x >= 255 ? 255 : (unsigned)x); break;
  case BP_BOOL: ((uint8_t *)d)[i] = x != 0; break;
  default: break;
  }
}

__device__ inline int64_t d_get_i64(const void *d, int t, int64_t i) {
  switch (t) {
  case BP_I64: return ((const int64_t *)d)[i];
  case BP_I32: return ((const int32_t *)d)[i];
  case BP_I16: return ((const int16_t *)d)[i];
  case BP_I8: return ((const int8_t *)d)[i];
  case BP_U64: return (int64_t)((const uint64_t *)d)[i];
  case BP_U32: return ((const uint32_t *)d)[i];
  case BP_U16: return ((const uint16_t *)d)[i];
  case BP_U8: case BP_BOOL: return ((const uint8_t *)d)[i];
  default: {
    double x = d_get_f64(d, t, i);
    return x != x ? 0 : x >= 9.2233720368547758e18 ? INT64_MAX : x <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)x;
  }
  }
}

__device__ inline void d_set_i64(void *d, int t, int64_t i, int64_t x) {
  switch (t) {
  case BP_I64: ((int64_t *)d)[i] = x; break;
  case BP_I32: ((int32_t *)d)[i] = (int32_t)x; break;
  case BP_I16: ((int16_t *)d)[i] = (int16_t)x; break;
  case BP_I8: ((int8_t *)d)[i] = (int8_t)x; break;
  case BP_U64: ((uint64_t *)d)[i] = (uint64_t)x; break;
  case BP_U32: ((uint32_t *)d)[i] = (uint32_t)x; break;
  case BP_U16: ((uint16_t *)d)[i] = (uint16_t)x; break;
  case BP_U8: ((uint8_t *)d)[i] = (uint8_t)x; break;
  case BP_BOOL: ((uint8_t *)d)[i] = x != 0; break;
  default: d_set_f64(d, t, i, (double)x); break;
  }
}

/* ---- index descriptors ---- */
#define BP_CU_MAX_RANK 16 /* Tile views its output with twice the input's rank */

/* A box of `rank` dims walked in row-major order, with element strides into up to 3 operands.
 * bp_walk_prepare must be called once the dims are set: for boxes of fewer than 2^31 elements it
 * precomputes 32-bit dividers, so that splitting a linear index into coordinates costs a
 * multiply-high, an add and a shift per dim instead of a 64-bit division (a few dozen
 * instructions, which made broadcasting and strided copies compute-bound). */
struct bp_walk {
  int rank;
  int fast;                         /* 1: magic/shift are set and every linear index < 2^31 */
  int64_t dims[BP_CU_MAX_RANK];
  int64_t st[3][BP_CU_MAX_RANK];
  uint32_t magic[BP_CU_MAX_RANK];   /* q = (umulhi(n, magic) + n) >> shift = n / dims[d] for n < 2^31 */
  uint32_t shift[BP_CU_MAX_RANK];
};

/* The divider of d (1 <= d < 2^31) for dividends below 2^31 (Granlund-Montgomery, as PyTorch's
 * IntDivider): shift = ceil(log2 d), magic = floor(2^32 (2^shift - d) / d) + 1 (fits 32 bits). */
static inline void bp_walk_prepare(bp_walk *w) {
  int64_t count = 1;
  w->fast = 1;
  for (int d = 0; d < w->rank; d++) {
    count *= w->dims[d];
    if (w->dims[d] <= 0 || w->dims[d] >= ((int64_t)1 << 31) || count >= ((int64_t)1 << 31)) w->fast = 0;
  }
  for (int d = 0; w->fast && d < w->rank; d++) {
    uint32_t div = (uint32_t)w->dims[d], sh = 0;
    while (sh < 32 && ((uint64_t)1 << sh) < div) sh++;
    w->shift[d] = sh;
    w->magic[d] = (uint32_t)((((uint64_t)1 << 32) * (((uint64_t)1 << sh) - div)) / div + 1);
  }
}

/* Offsets of linear box index i into each of the first k operands. */
template <int K>
__device__ inline void walk_offsets(const bp_walk &w, int64_t i, int64_t *off) {
  for (int k = 0; k < K; k++) off[k] = 0;
  if (w.fast) {
    uint32_t u = (uint32_t)i;
    for (int d = w.rank - 1; d >= 0; d--) {
      uint32_t q = (__umulhi(u, w.magic[d]) + u) >> w.shift[d], r = u - q * (uint32_t)w.dims[d];
      for (int k = 0; k < K; k++) off[k] += (int64_t)r * w.st[k][d];
      u = q;
    }
    return;
  }
  for (int d = w.rank - 1; d >= 0; d--) {
    int64_t q = i / w.dims[d], r = i - q * w.dims[d];
    for (int k = 0; k < K; k++) off[k] += r * w.st[k][d];
    i = q;
  }
}

/* Broadcast walk of `out` over inputs ins[0..nin-1] (numpy rules): st[k] are input k's strides
 * (0 on broadcast dims); size-1 dims dropped and dims that every input walks alike merged. */
static inline void bp_walk_bcast(bp_walk *w, const bp_value *outv, const bp_value *const *ins, int nin) {
  int64_t st[3][BP_MAX_RANK];
  for (int k = 0; k < nin; k++) bp_broadcast_strides(ins[k], outv, st[k]);
  int r = 0;
  for (int i = 0; i < outv->rank; i++) {
    if (outv->dims[i] == 1) continue;
    int merge = r > 0;
    for (int k = 0; k < nin && merge; k++)
      if (w->st[k][r - 1] != st[k][i] * outv->dims[i]) merge = 0;
    if (merge) {
      w->dims[r - 1] *= outv->dims[i];
      for (int k = 0; k < nin; k++) w->st[k][r - 1] = st[k][i];
    } else {
      w->dims[r] = outv->dims[i];
      for (int k = 0; k < nin; k++) w->st[k][r] = st[k][i];
      r++;
    }
  }
  if (r == 0) {
    w->dims[0] = 1;
    for (int k = 0; k < nin; k++) w->st[k][0] = 0;
    r = 1;
  }
  w->rank = r;
  bp_walk_prepare(w);
}

static inline int all_same_shape(const bp_value *outv, bp_value *const *ins, int nin) {
  for (int k = 0; k < nin; k++)
    if (!ins[k] || !bp_same_shape(ins[k], outv)) return 0;
  return 1;
}

/* ---- helpers shared between the kernel files (kernels/cuda/copy.cu) ---- */
/* Copies the `rank`-D box `dims` from src to dst with element strides (any sign; 0 broadcasts);
 * unit dims are dropped and contiguous neighbours merged first. es: element bytes (1, 2, 4, 8). */
int bp_cuda_copy_strided(bp_cuda *dc, const bp_node *n, void *dst, const int64_t *dst_st, const void *src,
                         const int64_t *src_st, int rank, const int64_t *dims, size_t es, bp_err *e);
/* dst (its shape) = src broadcast (numpy rules); same dtype. */
int bp_cuda_broadcast_copy(bp_cuda *dc, const bp_node *n, const bp_value *src, bp_value *dst, bp_err *e);

#endif
