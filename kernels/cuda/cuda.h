/* kernels/cuda/cuda.h — the CUDA backend: a device context (stream, cuBLASLt handle and workspace,
 * GEMM precision), device memory helpers, the CUDA op table, the executor of a prepared graph on
 * the GPU, and the optimizer updates over flat float32 buffers.
 *
 * Kernels have the bp_eval_fn signature of frontend/ir.h: bp_value.data are DEVICE pointers, and
 * the context is reached through ctx->device (a bp_cuda *). Ops without their own kernel (or with
 * one only for float32) run host-staged: inputs copied to the host, the CPU kernel, outputs copied
 * back; bp_cuda_op_table lists which is which, and the context counts host-staged node runs.
 *
 * Errors: every CUDA/cuBLASLt call is checked; the message names the call, the op and the node.
 * Kernels that find bad data (an index out of range, a target outside the classes) cannot fail
 * synchronously: they raise a device flag naming the node, which bp_cuda_check_flags turns into an
 * error (the executor checks it at the end of each run).
 *
 * Settings from the environment (read once by bp_cuda_new):
 *   BP_CUDA_SYNC=1   synchronise after every kernel, so an asynchronous fault names its node. */
#ifndef BITPIPE_KERNELS_CUDA_H
#define BITPIPE_KERNELS_CUDA_H

#include "frontend/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GEMM precision: fp32 (IEEE products), tf32 (tensor cores, 10-bit mantissa inputs), bf16
 * (inputs rounded to bfloat16, fp32 accumulation and fp32 outputs). Everything else is fp32. */
typedef enum { BP_PREC_FP32 = 0, BP_PREC_TF32 = 1, BP_PREC_BF16 = 2 } bp_precision;
const char *bp_precision_name(bp_precision p);
int bp_precision_parse(const char *s, bp_precision *p); /* 0, or -1 for an unknown name */

typedef struct bp_cuda bp_cuda;

/* Number of visible CUDA devices; 0 when there is no driver or no device (not an error). */
int bp_cuda_device_count(void);
bp_cuda *bp_cuda_new(int device, bp_precision prec, bp_err *e);
void bp_cuda_free(bp_cuda *dc);
const char *bp_cuda_device_name(const bp_cuda *dc);
void bp_cuda_set_precision(bp_cuda *dc, bp_precision p);
bp_precision bp_cuda_get_precision(const bp_cuda *dc);

/* ---- memory (stream-ordered on the context's stream; `what` names the buffer in errors) ---- */
void *bp_cuda_alloc(bp_cuda *dc, size_t bytes, const char *what, bp_err *e);
void bp_cuda_release(bp_cuda *dc, void *p); /* NULL is fine */
int bp_cuda_upload(bp_cuda *dc, void *dst, const void *src, size_t bytes, const char *what, bp_err *e);
/* Copies to the host and waits for it. */
int bp_cuda_download(bp_cuda *dc, void *dst, const void *src, size_t bytes, const char *what, bp_err *e);
int bp_cuda_memset(bp_cuda *dc, void *dst, int byte, size_t bytes, const char *what, bp_err *e);
int bp_cuda_sync(bp_cuda *dc, const char *what, bp_err *e);

/* Host copies of the current node's inputs that the caller already has on the host (compile-time
 * constants): host[k] for input k, or NULL. Kernels whose parameters are inputs (Slice starts,
 * Reduce axes, Dropout ratio, ...) read them from here instead of copying them back. The array
 * is borrowed until the next call; n = 0 clears it. Each call starts a new node: it also releases
 * the parameter copies downloaded for the previous one. */
void bp_cuda_set_host_inputs(bp_cuda *dc, const void *const *host, int n);
/* Which node (an index the caller chooses, e.g. the node's position) device flags report. */
void bp_cuda_set_tag(bp_cuda *dc, int tag);
/* Waits for the stream; if a kernel raised the flag, returns -1 with an error naming the node
 * (nodes[tag] when `nodes` is given) and clears the flag. */
int bp_cuda_check_flags(bp_cuda *dc, bp_node *const *nodes, int nnodes, bp_err *e);
/* Host-staged node runs since the context was made, and the op names (comma separated). */
int64_t bp_cuda_host_runs(const bp_cuda *dc);
const char *bp_cuda_host_ops(const bp_cuda *dc);

/* ---- the op table --------------------------------------------------------------------------- */
typedef enum { BP_CUDA_OWN = 1, BP_CUDA_HOST = 2 } bp_cuda_kind;
typedef struct bp_cuda_op {
  const char *domain; /* NULL: the default ONNX domain */
  const char *name;
  bp_eval_fn eval;    /* device values; ctx->device set */
  bp_cuda_kind kind;
  const char *own;    /* BP_CUDA_OWN: the dtypes the own kernel covers (others run host-staged) */
} bp_cuda_op;
/* The CUDA entry of an op of the CPU op table: its own kernel, or the host-staged path. NULL when
 * the CPU table has no such op. */
const bp_cuda_op *bp_cuda_op_find(const char *domain, const char *op_type);
/* Every op of the CPU table, in its order, with its CUDA entry (for coverage reports). */
const bp_cuda_op *bp_cuda_op_at(int i, int *count);
/* The host-staged evaluation of any op of the CPU table (what BP_CUDA_HOST entries run). */
int bp_cuda_eval_host(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                      int nout, bp_err *e);

/* ---- the executor ------------------------------------------------------------------------ */
/* Device copies of a prepared graph's initializers and constants (uploaded once), and the CUDA op
 * of every node. The graph must outlive it. */
typedef struct bp_cuda_exec bp_cuda_exec;
bp_cuda_exec *bp_cuda_exec_new(bp_cuda *dc, const bp_graph *g, bp_err *e);
void bp_cuda_exec_free(bp_cuda_exec *x);
/* Device buffer of an initializer/constant tensor (NULL for others). Parameters are updated in place. */
void *bp_cuda_exec_tensor(const bp_cuda_exec *x, int t);
/* The walk of bp_execute (frontend/exec.c) on the GPU: inputs[i] (device values) feed graph input
 * i; outputs[i] receives graph output i in a new device buffer the caller releases. Intermediates
 * are released after their last use. ctx->device is set to the executor's context for the run. */
int bp_cuda_execute(bp_cuda_exec *x, bp_ctx *ctx, bp_value *const *inputs, bp_value *outputs, bp_err *e);

/* ---- optimizers over flat float32 device buffers (frontend/optimizer.c's semantics, bit for bit) */
int bp_cuda_sgd_update(bp_cuda *dc, float *p, const float *g, float *buf, int64_t n, int first, double lr,
                       double momentum, double wd, double gscale, bp_err *e);
int bp_cuda_adamw_update(bp_cuda *dc, float *p, const float *g, float *m, float *v, int64_t n, int step,
                         double lr, double beta1, double beta2, double eps, double wd, double gscale, bp_err *e);
/* acc (one device double) += sum of x[i]^2, accumulated in double. */
int bp_cuda_sumsq(bp_cuda *dc, const float *x, int64_t n, double *acc, bp_err *e);

#ifdef __cplusplus
}
#endif

#endif
