/* kernels/cuda/device.c — the CUDA device context: device selection, stream, cuBLASLt handle and
 * workspace, the stream-ordered memory helpers, the device flag that kernels raise on bad data,
 * host views of parameter inputs, and the error formatting of failed CUDA/cuBLAS calls. */
#include "kernels/cuda/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKSPACE_BYTES (32u << 20) /* cuBLASLt: 32 MiB lets it pick its split-K and Hopper kernels */

const char *bp_precision_name(bp_precision p) {
  return p == BP_PREC_TF32 ? "tf32" : p == BP_PREC_BF16 ? "bf16" : "fp32";
}

int bp_precision_parse(const char *s, bp_precision *p) {
  if (!strcmp(s, "fp32")) *p = BP_PREC_FP32;
  else if (!strcmp(s, "tf32")) *p = BP_PREC_TF32;
  else if (!strcmp(s, "bf16")) *p = BP_PREC_BF16;
  else return -1;
  return 0;
}

const char *bp_cublas_status_str(int status) {
  switch (status) {
  case CUBLAS_STATUS_SUCCESS: return "success";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
  case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
  case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
  case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
  case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
  case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
  default: return "unknown cuBLAS status";
  }
}

int bp_cuda_fail(bp_err *e, const bp_node *n, const char *what, const char *call, const char *reason,
                 const char *file, int line) {
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  if (n)
    return bp_errf(e, "node '%s' (%s): CUDA call '%s' failed: %s (%s:%d)", n->name ? n->name : "", n->op_type,
                   call, reason, base, line);
  return bp_errf(e, "%s: CUDA call '%s' failed: %s (%s:%d)", what ? what : "cuda", call, reason, base, line);
}

int bp_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError(); /* no driver / no device: clear the sticky-free error and report none */
    return 0;
  }
  return n;
}

bp_cuda *bp_cuda_new(int device, bp_precision prec, bp_err *e) {
  int count = bp_cuda_device_count();
  if (count == 0) {
    bp_errf(e, "no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)");
    return NULL;
  }
  if (device < 0 || device >= count) {
    bp_errf(e, "CUDA device %d does not exist (%d visible)", device, count);
    return NULL;
  }
  bp_cuda *dc = calloc(1, sizeof *dc);
  if (!dc) {
    bp_errf(e, "out of memory");
    return NULL;
  }
  dc->device = device;
  dc->prec = prec;
  dc->mm_alpha = 1.0f;
  const char *s = getenv("BP_CUDA_SYNC");
  dc->sync_each = s && *s && strcmp(s, "0") != 0;
  struct cudaDeviceProp prop;
#define INIT(call)                                                                                 \
  do {                                                                                             \
    cudaError_t rc_ = (call);                                                                      \
    if (rc_ != cudaSuccess) {                                                                      \
      bp_cuda_fail(e, NULL, "CUDA device setup", #call, cudaGetErrorString(rc_), __FILE__, __LINE__); \
      goto fail;                                                                                   \
    }                                                                                              \
  } while (0)
  INIT(cudaSetDevice(device));
  INIT(cudaGetDeviceProperties(&prop, device));
  snprintf(dc->name, sizeof dc->name, "%.300s (sm_%d%d, %d SMs, %.1f GiB)", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
  dc->sm_count = prop.multiProcessorCount;
  INIT(cudaStreamCreateWithFlags(&dc->stream, cudaStreamNonBlocking));
  /* Freed blocks stay in the stream-ordered pool instead of going back to the driver at every
   * synchronisation: a training step frees and reallocates the same sizes each time. */
  cudaMemPool_t pool;
  INIT(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t keep = UINT64_MAX;
  INIT(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  INIT(cudaMalloc(&dc->workspace, WORKSPACE_BYTES));
  dc->workspace_bytes = WORKSPACE_BYTES;
  INIT(cudaMalloc((void **)&dc->flag, sizeof(int)));
  INIT(cudaMemset(dc->flag, 0, sizeof(int)));
#undef INIT
  {
    cublasStatus_t st = cublasLtCreate(&dc->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
      bp_cuda_fail(e, NULL, "CUDA device setup", "cublasLtCreate(&dc->lt)", bp_cublas_status_str((int)st), __FILE__,
                   __LINE__);
      goto fail;
    }
  }
  return dc;
fail:
  bp_cuda_free(dc);
  return NULL;
}

/* Teardown: the calls' status is not checked (there is nothing left to report it to, and a failed
 * release must not hide the error that led here). */
void bp_cuda_free(bp_cuda *dc) {
  if (!dc) return;
  bp_cuda_scratch_clear(dc);
  if (dc->stream) cudaStreamSynchronize(dc->stream);
  bp_cuda_bf16_clear(dc);
  free(dc->bf16_cache);
  bp_cuda_gemm_cache_free(dc);
  if (dc->lt) cublasLtDestroy(dc->lt);
  cudaFree(dc->workspace);
  cudaFree(dc->flag);
  if (dc->stream) cudaStreamDestroy(dc->stream);
  free(dc);
}

const char *bp_cuda_device_name(const bp_cuda *dc) { return dc->name; }
void bp_cuda_set_precision(bp_cuda *dc, bp_precision p) { dc->prec = p; }
bp_precision bp_cuda_get_precision(const bp_cuda *dc) { return dc->prec; }

void *bp_cuda_alloc(bp_cuda *dc, size_t bytes, const char *what, bp_err *e) {
  void *p = NULL;
  cudaError_t rc = cudaMallocAsync(&p, bytes ? bytes : 1, dc->stream);
  if (rc != cudaSuccess) {
    char ctx[300];
    snprintf(ctx, sizeof ctx, "%s (%zu bytes)", what ? what : "device buffer", bytes);
    bp_cuda_fail(e, NULL, ctx, "cudaMallocAsync(&p, bytes, dc->stream)", cudaGetErrorString(rc), __FILE__, __LINE__);
    return NULL;
  }
  return p;
}

void bp_cuda_release(bp_cuda *dc, void *p) {
  if (p) cudaFreeAsync(p, dc->stream); /* a failure here leaves a leak, never a wrong result */
}

int bp_cuda_upload(bp_cuda *dc, void *dst, const void *src, size_t bytes, const char *what, bp_err *e) {
  if (!bytes) return 0;
  BP_CU_AT(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, dc->stream), what, e);
  return 0;
}

int bp_cuda_download(bp_cuda *dc, void *dst, const void *src, size_t bytes, const char *what, bp_err *e) {
  if (!bytes) return 0;
  BP_CU_AT(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, dc->stream), what, e);
  BP_CU_AT(cudaStreamSynchronize(dc->stream), what, e);
  return 0;
}

int bp_cuda_memset(bp_cuda *dc, void *dst, int byte, size_t bytes, const char *what, bp_err *e) {
  if (!bytes) return 0;
  BP_CU_AT(cudaMemsetAsync(dst, byte, bytes, dc->stream), what, e);
  return 0;
}

int bp_cuda_sync(bp_cuda *dc, const char *what, bp_err *e) {
  BP_CU_AT(cudaStreamSynchronize(dc->stream), what, e);
  return 0;
}

void bp_cuda_set_host_inputs(bp_cuda *dc, const void *const *host, int n) {
  bp_cuda_scratch_clear(dc);
  dc->host_in = n > 0 ? host : NULL;
  dc->nhost_in = n > 0 ? n : 0;
}

void bp_cuda_set_tag(bp_cuda *dc, int tag) { dc->tag = tag; }

int bp_cuda_check_flags(bp_cuda *dc, bp_node *const *nodes, int nnodes, bp_err *e) {
  int flag = 0;
  BP_CU_AT(cudaMemcpyAsync(&flag, dc->flag, sizeof flag, cudaMemcpyDeviceToHost, dc->stream), "device flag", e);
  BP_CU_AT(cudaStreamSynchronize(dc->stream), "device flag", e);
  if (!flag) return 0;
  BP_CU_AT(cudaMemsetAsync(dc->flag, 0, sizeof(int), dc->stream), "device flag", e);
  int tag = flag - 1;
  if (nodes && tag >= 0 && tag < nnodes)
    return bp_errf(e, "node '%s' (%s): an index or target is out of range (found by the GPU kernel)",
                   nodes[tag]->name ? nodes[tag]->name : "", nodes[tag]->op_type);
  return bp_errf(e, "node #%d: an index or target is out of range (found by the GPU kernel)", tag);
}

int64_t bp_cuda_host_runs(const bp_cuda *dc) { return dc->host_runs; }
const char *bp_cuda_host_ops(const bp_cuda *dc) { return dc->host_ops; }

void bp_cuda_note_host(bp_cuda *dc, const char *op) {
  dc->host_runs++;
  size_t len = strlen(op), have = strlen(dc->host_ops);
  /* the list holds each op name once */
  for (const char *p = dc->host_ops; (p = strstr(p, op)) != NULL; p += len)
    if ((p == dc->host_ops || p[-1] == ' ') && (p[len] == ',' || p[len] == 0)) return;
  if (have + len + 3 < sizeof dc->host_ops)
    snprintf(dc->host_ops + have, sizeof dc->host_ops - have, "%s%s", have ? ", " : "", op);
}

int bp_cuda_after_launch(bp_cuda *dc, const bp_node *n, const char *kname, bp_err *e, const char *file, int line) {
  cudaError_t rc = cudaGetLastError();
  if (rc == cudaSuccess && dc->sync_each) rc = cudaStreamSynchronize(dc->stream);
  if (rc == cudaSuccess) return 0;
  char call[160];
  snprintf(call, sizeof call, "%s<<<...>>>", kname);
  return bp_cuda_fail(e, n, "kernel", call, cudaGetErrorString(rc), file, line);
}

int bp_cuda_ctx(bp_ctx *ctx, const bp_node *n, bp_cuda **dc, bp_err *e) {
  *dc = ctx ? (bp_cuda *)ctx->device : NULL;
  if (!*dc)
    return bp_errf(e, "node '%s' (%s): the CUDA kernel was called without a device context (ctx->device)",
                   n->name ? n->name : "", n->op_type);
  return 0;
}

int bp_cuda_host_view(bp_cuda *dc, const bp_node *n, bp_value *const *in, int nin, int k, bp_value *hv,
                      bp_value **phv, bp_err *e) {
  *phv = NULL;
  if (k >= nin || !in[k]) return 0;
  *hv = *in[k];
  *phv = hv;
  if (k < dc->nhost_in && dc->host_in[k]) {
    hv->data = (void *)dc->host_in[k];
    return 0;
  }
  size_t bytes = bp_value_bytes(in[k]);
  if (dc->nscratch >= (int)(sizeof dc->scratch / sizeof dc->scratch[0]))
    return bp_errf(e, "node '%s' (%s): too many host views", n->name ? n->name : "", n->op_type);
  void *h = malloc(bytes ? bytes : 1);
  if (!h) return bp_errf(e, "node '%s' (%s): out of memory", n->name ? n->name : "", n->op_type);
  dc->scratch[dc->nscratch++] = h;
  if (bytes) {
    BP_CU(cudaMemcpyAsync(h, in[k]->data, bytes, cudaMemcpyDeviceToHost, dc->stream));
    BP_CU(cudaStreamSynchronize(dc->stream));
  }
  hv->data = h;
  return 0;
}

void bp_cuda_scratch_clear(bp_cuda *dc) {
  for (int i = 0; i < dc->nscratch; i++) free(dc->scratch[i]);
  dc->nscratch = 0;
}

unsigned bp_cuda_blocks(const bp_cuda *dc, int64_t n) {
  int64_t b = (n + 255) / 256, cap = (int64_t)(dc->sm_count > 0 ? dc->sm_count : 80) * 16;
  if (b < 1) b = 1;
  return (unsigned)(b < cap ? b : cap);
}
