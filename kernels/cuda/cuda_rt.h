/* kernels/cuda/cuda_rt.h — what the pipeline runtime (runtime/, libbitpipe) needs from the CUDA
 * backend beyond kernels/cuda/cuda.h: the context's device and stream (the runtime's transports
 * order their copies and NCCL calls after the kernels on it), the accumulation of a micro-batch's
 * parameter gradients into the chunk's accumulator, and the device flag.
 * Implemented in kernels/cuda/rt_support.cu. */
#ifndef BITPIPE_KERNELS_CUDA_RT_H
#define BITPIPE_KERNELS_CUDA_RT_H

#include "kernels/cuda/cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The context's CUDA stream (a cudaStream_t) and device index. */
void *bp_cuda_stream_handle(const bp_cuda *dc);
int bp_cuda_device_index(const bp_cuda *dc);
/* The device flag kernels raise on bad data (0, or the raiser's tag + 1: bp_cuda_set_tag), read
 * and cleared. Waits for the stream: call it when the stream is idle (after the runtime's
 * watchdog-polled wait), so it never blocks. */
int bp_cuda_take_flag(bp_cuda *dc, int *flag, bp_err *e);
/* The folds of the next MatMul node the runtime runs (runtime/plan.h, bp_rt_fold): its product
 * times alpha, input k stored transposed when trans_k. Reset to (1, 0, 0) after the node. */
void bp_cuda_set_matmul_folds(bp_cuda *dc, float alpha, int trans_a, int trans_b);
/* The bf16 operand cache for the runtime (bf16 precision only; otherwise nothing): GEMM operands
 * inside [lo, hi) (a chunk's parameters, which nothing writes during a step's compute) keep their
 * bf16 copy, so a weight used by the forward and the backward of every micro-batch is converted
 * once per step. bp_cuda_bf16_cache_off releases every copy (call it before the parameters
 * change: the step's start). */
void bp_cuda_bf16_cache_range(bp_cuda *dc, const void *lo, const void *hi);
void bp_cuda_bf16_cache_off(bp_cuda *dc);
/* acc[i] += x[i] for i < n, in float (the CPU runtime's loop, bit for bit), on the stream. */
int bp_cuda_accumulate(bp_cuda *dc, float *acc, const float *x, int64_t n, bp_err *e);

#ifdef __cplusplus
}
#endif

#endif
