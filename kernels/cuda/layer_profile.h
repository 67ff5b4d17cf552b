/* kernels/cuda/layer_profile.h — the GPU's node timer for the partitioner's profiled layer costs
 * (`--device-model gpu-profile`): the whole training graph runs on GPU `device` with the CUDA
 * executor at the GEMM precision the program will train in, with a CUDA event recorded after every
 * node (kernels/cuda/profile.c), so a node's time is what the stream spent on it; one warm-up run,
 * then the timed runs. Also whole-graph runs timed without the per-node events, to check the
 * per-node sums against.
 *
 * bp_cuda_profiler_time_nodes has the signature of partitioner/layer_costs.h's bp_node_timer_fn,
 * without this library depending on the partitioner: the caller fills a bp_profile_device with
 * { bp_cuda_profiler_time_nodes, &profiler, profiler.key, profiler.what, profiler.name,
 *   profiler.mem_bytes }. */
#ifndef BITPIPE_KERNELS_CUDA_LAYER_PROFILE_H
#define BITPIPE_KERNELS_CUDA_LAYER_PROFILE_H

#include "kernels/cuda/cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bp_cuda_profiler {
  bp_cuda *dc;
  bp_precision prec;
  char name[256];     /* the GPU's name (cudaDeviceProp.name), e.g. "NVIDIA H100 80GB HBM3" */
  char key[300];      /* the profile cache key's device: "gpu:NAME_WITH_UNDERSCORES:PRECISION" */
  char what[400];     /* for the cost table's source */
  double mem_bytes;   /* the device's total memory (cudaMemGetInfo) */
  double free_bytes;  /* free when the profiler was opened */
} bp_cuda_profiler;

/* Opens a context on `device` (no GPU or a failed setup: -1 with the reason). */
int bp_cuda_profiler_open(bp_cuda_profiler *p, int device, bp_precision prec, bp_err *e);
void bp_cuda_profiler_close(bp_cuda_profiler *p);
/* The node timer (bp_node_timer_fn): self is a bp_cuda_profiler. One warm-up run of g, then
 * `repeats` runs with node_s[r * g->nnodes + i] = seconds of node i in run r. Inputs are zeros. */
int bp_cuda_profiler_time_nodes(void *self, const bp_graph *g, int repeats, double *node_s, bp_err *e);
/* The same runs without per-node events: run_s[r] = seconds of timed run r of the whole graph
 * (CUDA events recorded on the stream before and after bp_cuda_execute). */
int bp_cuda_profiler_time_runs(bp_cuda_profiler *p, const bp_graph *g, int repeats, double *run_s, bp_err *e);

#ifdef __cplusplus
}
#endif

#endif
