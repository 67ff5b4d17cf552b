/* kernels/cuda/layer_profile.c — the GPU's node timer (kernels/cuda/layer_profile.h): a device
 * context at the program's GEMM precision, the training graph on the CUDA executor with zeros as
 * inputs (valid token ids and targets, as the CPU profile uses), a warm-up run that is not counted
 * (module loading, cuBLASLt's first heuristics, the memory pool's growth), then the timed runs.
 * Per-node times come from the executor's events (one after every node, so they add up to the
 * run's whole stream time, host gaps between kernels included); whole runs are timed by two
 * events around bp_cuda_execute with the per-node events off. */
#include "kernels/cuda/layer_profile.h"
#include "kernels/cuda/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHAT "profiling on the GPU"

int bp_cuda_profiler_open(bp_cuda_profiler *p, int device, bp_precision prec, bp_err *e) {
  memset(p, 0, sizeof *p);
  p->prec = prec;
  if (!(p->dc = bp_cuda_new(device, prec, e))) return -1;
  struct cudaDeviceProp prop;
  size_t fr = 0, total = 0;
  cudaError_t rc = cudaGetDeviceProperties(&prop, device);
  if (rc == cudaSuccess) rc = cudaMemGetInfo(&fr, &total);
  if (rc != cudaSuccess) {
    bp_cuda_fail(e, NULL, WHAT, "cudaGetDeviceProperties / cudaMemGetInfo", cudaGetErrorString(rc), __FILE__,
                 __LINE__);
    bp_cuda_profiler_close(p);
    return -1;
  }
  snprintf(p->name, sizeof p->name, "%s", prop.name);
  p->mem_bytes = (double)total, p->free_bytes = (double)fr;
  char tag[256];
  snprintf(tag, sizeof tag, "%s", prop.name);
  for (char *c = tag; *c; c++)
    if (*c == ' ' || *c == '\t' || *c == '\n') *c = '_';
  snprintf(p->key, sizeof p->key, "gpu:%s:sm_%d%d:%s", tag, prop.major, prop.minor, bp_precision_name(prec));
  snprintf(p->what, sizeof p->what, "%s, sm_%d%d, %s GEMMs, CUDA events per node of the CUDA executor", prop.name,
           prop.major, prop.minor, bp_precision_name(prec));
  return 0;
}

void bp_cuda_profiler_close(bp_cuda_profiler *p) {
  bp_cuda_free(p->dc);
  p->dc = NULL;
}

/* A checked CUDA call that cannot return from run_graph directly (its buffers must be freed). */
#define CHECKED(call)                                                                              \
  do {                                                                                             \
    cudaError_t crc_ = (call);                                                                     \
    if (crc_ != cudaSuccess) {                                                                     \
      bp_cuda_fail(e, NULL, WHAT ": a whole-graph run", #call, cudaGetErrorString(crc_), __FILE__, __LINE__); \
      goto done;                                                                                   \
    }                                                                                              \
  } while (0)

/* One warm-up and `repeats` timed runs of g: node times (node_s) or whole-run times (run_s). */
static int run_graph(bp_cuda_profiler *p, const bp_graph *g, int repeats, double *node_s, double *run_s, bp_err *e) {
  bp_cuda *dc = p->dc;
  if (!dc) return bp_errf(e, "internal: the GPU profiler is not open");
  int ni = g->ninputs, no = g->noutputs, rc = -1;
  bp_value *din = calloc((size_t)ni + 1, sizeof(bp_value)), *outs = calloc((size_t)no + 1, sizeof(bp_value));
  bp_value **pin = calloc((size_t)ni + 1, sizeof(bp_value *));
  cudaEvent_t ev[2] = {0, 0};
  bp_cuda_exec *x = NULL;
  if (!din || !outs || !pin) {
    bp_errf(e, "out of memory");
    goto done;
  }
  if (!(x = bp_cuda_exec_new(dc, g, e))) goto done;
  if (node_s && bp_cuda_exec_time_nodes(x, e)) goto done;
  for (int k = 0; run_s && k < 2; k++) CHECKED(cudaEventCreate(&ev[k]));
  for (int i = 0; i < ni; i++) {
    const bp_tensor *t = g->tensors[g->inputs[i]];
    size_t bytes = bp_value_bytes(&t->v);
    char what[300];
    snprintf(what, sizeof what, WHAT ": input '%s'", t->name);
    din[i] = t->v;
    if (!(din[i].data = bp_cuda_alloc(dc, bytes, what, e)) || bp_cuda_memset(dc, din[i].data, 0, bytes, what, e))
      goto done;
    pin[i] = &din[i];
  }
  bp_ctx ctx = {.training = 1, .seed = 0, .counter = 0};
  for (int rep = 0; rep <= repeats; rep++) { /* run 0 warms up */
    if (run_s) CHECKED(cudaEventRecord(ev[0], dc->stream));
    if (bp_cuda_execute(x, &ctx, pin, outs, e) < 0) goto done;
    for (int j = 0; j < no; j++) bp_cuda_release(dc, outs[j].data), outs[j].data = NULL;
    if (run_s) {
      float ms = 0;
      CHECKED(cudaEventRecord(ev[1], dc->stream));
      CHECKED(cudaEventSynchronize(ev[1]));
      CHECKED(cudaEventElapsedTime(&ms, ev[0], ev[1]));
      if (rep > 0) run_s[rep - 1] = ms * 1e-3;
    }
    if (node_s && rep > 0 && bp_cuda_prof_last(bp_cuda_exec_prof(x), node_s + (size_t)(rep - 1) * g->nnodes, e))
      goto done;
  }
  rc = bp_cuda_sync(dc, WHAT, e);
done:
  for (int j = 0; outs && j < no; j++) bp_cuda_release(dc, outs[j].data);
  for (int i = 0; din && i < ni; i++) bp_cuda_release(dc, din[i].data);
  bp_cuda_exec_free(x);
  for (int k = 0; k < 2; k++)
    if (ev[k]) cudaEventDestroy(ev[k]);
  cudaStreamSynchronize(dc->stream); /* the releases above are stream-ordered (teardown: unchecked) */
  free(din), free(outs), free(pin);
  return rc;
}

int bp_cuda_profiler_time_nodes(void *self, const bp_graph *g, int repeats, double *node_s, bp_err *e) {
  return run_graph(self, g, repeats, node_s, NULL, e);
}

int bp_cuda_profiler_time_runs(bp_cuda_profiler *p, const bp_graph *g, int repeats, double *run_s, bp_err *e) {
  return run_graph(p, g, repeats, NULL, run_s, e);
}
