/* kernels/cuda/rt_support.cu — the pieces of kernels/cuda/cuda_rt.h: the context's stream and
 * device for the pipeline runtime, reading (and clearing) the device flag, and the gradient
 * accumulation kernel (acc += x in float: an add rounds once on both backends, so the GPU's
 * accumulators equal the CPU runtime's). */
#include "kernels/cuda/common.cuh"

extern "C" {
#include "kernels/cuda/cuda_rt.h"
}

extern "C" void *bp_cuda_stream_handle(const bp_cuda *dc) { return (void *)dc->stream; }
extern "C" int bp_cuda_device_index(const bp_cuda *dc) { return dc->device; }

extern "C" int bp_cuda_take_flag(bp_cuda *dc, int *flag, bp_err *e) {
  int f = 0;
  BP_CU_AT(cudaMemcpyAsync(&f, dc->flag, sizeof f, cudaMemcpyDeviceToHost, dc->stream), "device flag", e);
  BP_CU_AT(cudaStreamSynchronize(dc->stream), "device flag", e);
  if (f) BP_CU_AT(cudaMemsetAsync(dc->flag, 0, sizeof(int), dc->stream), "device flag", e);
  *flag = f;
  return 0;
}

__global__ void k_accumulate(float *acc, const float *x, int64_t n) {
  GRID_STRIDE(i, n) acc[i] = __fadd_rn(acc[i], x[i]);
}

extern "C" int bp_cuda_accumulate(bp_cuda *dc, float *acc, const float *x, int64_t n, bp_err *e) {
  const bp_node *nd = NULL;
  if (n <= 0) return 0;
  k_accumulate<<<bp_cuda_blocks(dc, n), THREADS, 0, dc->stream>>>(acc, x, n);
  return bp_cuda_after_launch(dc, nd, "k_accumulate", e, __FILE__, __LINE__);
}

extern "C" void bp_cuda_set_matmul_folds(bp_cuda *dc, float alpha, int trans_a, int trans_b) {
  dc->mm_alpha = alpha;
  dc->mm_trans[0] = trans_a != 0;
  dc->mm_trans[1] = trans_b != 0;
}

extern "C" void bp_cuda_bf16_cache_range(bp_cuda *dc, const void *lo, const void *hi) {
  if (dc->prec != BP_PREC_BF16) return;
  dc->bf16_cache_on = 1;
  dc->bf16_lo = (const char *)lo;
  dc->bf16_hi = (const char *)hi;
}

extern "C" void bp_cuda_bf16_cache_off(bp_cuda *dc) {
  bp_cuda_bf16_clear(dc);
  dc->bf16_cache_on = 0;
  dc->bf16_lo = dc->bf16_hi = NULL;
}
