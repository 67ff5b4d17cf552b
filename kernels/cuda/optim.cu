/* kernels/cuda/optim.cu — SGD (momentum) and AdamW updates over flat float32 device buffers with
 * frontend/optimizer.c's semantics operation for operation: the same float32 expressions, scalars
 * computed once in double on the host, and every float operation written as an explicitly rounded
 * intrinsic so that nvcc cannot contract a multiply and an add into one FMA (the CPU rounds each).
 * The updated parameters are therefore bit-identical to the CPU's for the same gradients. Also the
 * sum of squares of a gradient in double (the global gradient norm). */
#include "kernels/cuda/common.cuh"

#include <math.h>

__global__ void k_sgd(float *p, const float *g, float *buf, int64_t n, int first, float lr, float momentum, float wd,
                      double gscale, int has_wd, int has_m) {
  GRID_STRIDE(i, n) {
    float d = (float)((double)g[i] * gscale);
    if (has_wd) d = __fadd_rn(d, __fmul_rn(wd, p[i]));
    if (has_m) {
      buf[i] = first ? d : __fadd_rn(__fmul_rn(momentum, buf[i]), d);
      d = buf[i];
    }
    p[i] = __fsub_rn(p[i], __fmul_rn(lr, d));
  }
}

extern "C" int bp_cuda_sgd_update(bp_cuda *dc, float *p, const float *g, float *buf, int64_t n, int first, double lr,
                                  double momentum, double wd, double gscale, bp_err *e) {
  const bp_node *nd = NULL;
  if (n <= 0) return 0;
  k_sgd<<<bp_cuda_blocks(dc, n), THREADS, 0, dc->stream>>>(p, g, buf, n, first, (float)lr, (float)momentum, (float)wd,
                                                            gscale, wd != 0, momentum != 0);
  return bp_cuda_after_launch(dc, nd, "k_sgd", e, __FILE__, __LINE__);
}

__global__ void k_adamw(float *p, const float *g, float *m, float *v, int64_t n, float step_size, float bc2s, float eps,
                        float decay, float b1, float b2, double gscale) {
  const float omb1 = __fsub_rn(1.0f, b1), omb2 = __fsub_rn(1.0f, b2);
  GRID_STRIDE(i, n) {
    float d = (float)((double)g[i] * gscale);
    float pi = __fmul_rn(p[i], decay);
    float mi = __fadd_rn(m[i], __fmul_rn(__fsub_rn(d, m[i]), omb1));
    float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(omb2, d), d));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2s), eps);
    p[i] = __fsub_rn(pi, __fmul_rn(step_size, __fdiv_rn(mi, denom)));
    m[i] = mi;
    v[i] = vi;
  }
}

extern "C" int bp_cuda_adamw_update(bp_cuda *dc, float *p, const float *g, float *m, float *v, int64_t n, int step,
                                    double lr, double beta1, double beta2, double eps, double wd, double gscale,
                                    bp_err *e) {
  const bp_node *nd = NULL;
  if (n <= 0) return 0;
  /* the host half of frontend/optimizer.c's bp_adamw_update */
  double bc1 = 1 - pow(beta1, step), bc2 = 1 - pow(beta2, step);
  float step_size = (float)(lr / bc1), bc2s = (float)sqrt(bc2), decay = (float)(1 - lr * wd);
  k_adamw<<<bp_cuda_blocks(dc, n), THREADS, 0, dc->stream>>>(p, g, m, v, n, step_size, bc2s, (float)eps, decay,
                                                              (float)beta1, (float)beta2, gscale);
  return bp_cuda_after_launch(dc, nd, "k_adamw", e, __FILE__, __LINE__);
}

__global__ void k_sumsq(const float *x, int64_t n, double *acc) {
  __shared__ double sh[32];
  double s = 0;
  GRID_STRIDE(i, n) s += (double)x[i] * (double)x[i];
  s = block_sum(s, sh);
  if (threadIdx.x == 0) atomicAdd(acc, s);
}

extern "C" int bp_cuda_sumsq(bp_cuda *dc, const float *x, int64_t n, double *acc, bp_err *e) {
  const bp_node *nd = NULL;
  if (n <= 0) return 0;
  k_sumsq<<<bp_cuda_blocks(dc, n), THREADS, 0, dc->stream>>>(x, n, acc);
  return bp_cuda_after_launch(dc, nd, "k_sumsq", e, __FILE__, __LINE__);
}
