/* kernels/cuda/internal.h — the device context's fields and the checking macros shared by the CUDA
 * backend's C and CUDA files (not part of the public interface, kernels/cuda/cuda.h).
 *
 * Checking: BP_CU(call) / BP_LT(call) inside an eval function (where `n` is the node and `e` the
 * error) return -1 with "node 'NAME' (OP): CUDA call 'CALL' failed: REASON (file:line)";
 * BP_CU_AT(call, what, e) does the same outside a node, naming `what` instead. */
#ifndef BITPIPE_KERNELS_CUDA_INTERNAL_H
#define BITPIPE_KERNELS_CUDA_INTERNAL_H

#include "frontend/ir.h"
#include "kernels/cuda/cuda.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bp_cuda {
  int device;
  char name[400];
  int sm_count;
  cudaStream_t stream;
  cublasLtHandle_t lt;
  void *workspace;         /* cuBLASLt workspace */
  size_t workspace_bytes;
  bp_precision prec;
  int *flag;               /* device int: 0, or tag + 1 of the first node whose kernel found bad data */
  int tag;
  const void *const *host_in; /* see bp_cuda_set_host_inputs */
  int nhost_in;
  int sync_each;           /* BP_CUDA_SYNC=1 */
  int warned_gemm;         /* the GEMM fallback was reported */
  int64_t host_runs;
  char host_ops[1024];
  /* scratch host buffer for downloaded parameter inputs, kept until the next node */
  void *scratch[8];
  int nscratch;
  struct bp_gemm_cache *gemm_cache; /* GEMM plans (kernels/cuda/gemm.cu), made on first use */
  /* Set by the executor around one MatMul node whose inputs it folded (kernels/cuda/exec.c):
   * the product is scaled by mm_alpha, and input k is stored transposed (last two dims swapped)
   * when mm_trans[k]. Outside such a node: 1 and 0 (what a direct kernel call sees). */
  float mm_alpha;
  int mm_trans[2];
  /* bf16 copies of GEMM operands kept for the rest of one executor run (bf16 precision): an
   * operand used by several GEMMs (attention's P forward and backward, dS twice, the logits'
   * gradient twice) is converted once. On only while the executor runs (it invalidates an entry
   * when it releases the buffer, and clears all at the end of the run). */
  int bf16_cache_on;
  const char *bf16_lo, *bf16_hi; /* when bf16_hi: only operands inside [lo, hi) are kept (the pipeline
                                    runtime's parameters: bp_cuda_bf16_cache_range) */
  struct bp_bf16_entry *bf16_cache;
  int nbf16, capbf16;
  size_t bf16_bytes;
};

/* Destroys the cached GEMM plans (bp_cuda_free). */
void bp_cuda_gemm_cache_free(bp_cuda *dc);
/* The bf16 operand cache (kernels/cuda/gemm.cu): forget copies of data inside [p, p + bytes) (the
 * buffer is being released); clear releases every copy. */
void bp_cuda_bf16_forget(bp_cuda *dc, const void *p, size_t bytes);
void bp_cuda_bf16_clear(bp_cuda *dc);

/* Formats the error of a failed call and returns -1. `n` may be NULL (then `what` names the context). */
int bp_cuda_fail(bp_err *e, const bp_node *n, const char *what, const char *call, const char *reason,
                 const char *file, int line);
const char *bp_cublas_status_str(int status);

#define BP_CU(call)                                                                                \
  do {                                                                                             \
    cudaError_t bp_cu_rc_ = (call);                                                                \
    if (bp_cu_rc_ != cudaSuccess)                                                                  \
      return bp_cuda_fail(e, n, NULL, #call, cudaGetErrorString(bp_cu_rc_), __FILE__, __LINE__);  \
  } while (0)
#define BP_CU_AT(call, what, err)                                                                  \
  do {                                                                                             \
    cudaError_t bp_cu_rc_ = (call);                                                                \
    if (bp_cu_rc_ != cudaSuccess)                                                                  \
      return bp_cuda_fail((err), NULL, (what), #call, cudaGetErrorString(bp_cu_rc_), __FILE__, __LINE__); \
  } while (0)
#define BP_LT(call)                                                                                \
  do {                                                                                             \
    cublasStatus_t bp_lt_rc_ = (call);                                                             \
    if (bp_lt_rc_ != CUBLAS_STATUS_SUCCESS)                                                        \
      return bp_cuda_fail(e, n, NULL, #call, bp_cublas_status_str((int)bp_lt_rc_), __FILE__, __LINE__); \
  } while (0)

/* After a kernel launch: the launch error (bad configuration), and with BP_CUDA_SYNC=1 the
 * kernel's own fault. `kname` names the kernel. */
int bp_cuda_after_launch(bp_cuda *dc, const bp_node *n, const char *kname, bp_err *e, const char *file, int line);
#define BP_LAUNCHED(dc, kname)                                                                     \
  do {                                                                                             \
    if (bp_cuda_after_launch((dc), n, (kname), e, __FILE__, __LINE__) < 0) return -1;              \
  } while (0)

/* The device context of an eval call, or -1 with an error when ctx carries none. */
int bp_cuda_ctx(bp_ctx *ctx, const bp_node *n, bp_cuda **dc, bp_err *e);

/* A host view of input k of the current node: the caller's host copy (bp_cuda_set_host_inputs) or
 * a download into a scratch buffer owned by the context. hv gets in->dtype/shape and host data.
 * NULL input gives NULL. */
int bp_cuda_host_view(bp_cuda *dc, const bp_node *n, bp_value *const *in, int nin, int k, bp_value *hv,
                      bp_value **phv, bp_err *e);
/* Releases the scratch buffers of host views (called by the executor between nodes). */
void bp_cuda_scratch_clear(bp_cuda *dc);
/* Records a host-staged run of op `op` (for the report). */
void bp_cuda_note_host(bp_cuda *dc, const char *op);

/* Per-node timing of the executor (kernels/cuda/profile.c), on when BP_CUDA_PROFILE=1. */
typedef struct bp_cuda_prof bp_cuda_prof;
int bp_cuda_prof_enabled(void);
bp_cuda_prof *bp_cuda_prof_new(const bp_graph *g, bp_err *e);
void bp_cuda_prof_free(bp_cuda_prof *p);
/* Records boundary event i (0: before node 0; i: after node i-1) on the context's stream. */
int bp_cuda_prof_mark(bp_cuda_prof *p, bp_cuda *dc, int i, bp_err *e);
/* After a run whose last boundary was recorded: adds the node times (the first run is skipped). */
int bp_cuda_prof_collect(bp_cuda_prof *p, bp_err *e);
/* Adds `ms` of work outside the graph under `name` (a string literal); not counted in the warm-up run. */
void bp_cuda_prof_add(bp_cuda_prof *p, const char *name, double ms);
/* Per op type and the slowest nodes, per counted run. */
void bp_cuda_prof_report(const bp_cuda_prof *p, FILE *f);
/* The executor's profile, or NULL when profiling is off. */
bp_cuda_prof *bp_cuda_exec_prof(const bp_cuda_exec *x);
/* The seconds of every node in the last collected run (node_s[nnodes]; warm-up included). */
int bp_cuda_prof_last(const bp_cuda_prof *p, double *node_s, bp_err *e);
/* Turns per-node timing on for one executor (kernels/cuda/layer_profile.c), as BP_CUDA_PROFILE=1
 * does for all, but without the report when it is freed (unless BP_CUDA_PROFILE asks for it). */
int bp_cuda_exec_time_nodes(bp_cuda_exec *x, bp_err *e);

/* Elements covered by one launch of a grid-stride kernel of 256 threads. */
unsigned bp_cuda_blocks(const bp_cuda *dc, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
