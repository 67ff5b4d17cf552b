/* tools/gpu_profile.c — the GPU profile source for bitpipec's commands (tools/gpu_profile.h):
 * with the CUDA backend (BP_HAVE_CUDA) a bp_cuda_profiler on GPU 0; without it, the same calls
 * answer that this bitpipec was built without CUDA. */
#include "tools/gpu_profile.h"

#ifdef BP_HAVE_CUDA
#include "kernels/cuda/layer_profile.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_cli_is_gpu_profile(const char *m) { return m && (!strcmp(m, "gpu-profile") || !strcmp(m, "cuda-profile")); }

int bp_cli_precision_ok(const char *p) { return p && (!strcmp(p, "fp32") || !strcmp(p, "tf32") || !strcmp(p, "bf16")); }

#ifdef BP_HAVE_CUDA
struct bp_cli_gpu_prof {
  bp_cuda_profiler p;
};

const char *bp_cli_default_device_model(void) { return bp_cuda_device_count() > 0 ? "gpu-profile" : "cpu-profile"; }

bp_cli_gpu_prof *bp_cli_gpu_prof_open(const char *precision, bp_profile_device *dev, char *err, size_t n) {
  bp_precision prec;
  if (bp_precision_parse(precision ? precision : BP_CLI_DEFAULT_PRECISION, &prec)) {
    snprintf(err, n, "--precision is fp32, tf32 or bf16, got '%s'", precision);
    return NULL;
  }
  if (bp_cuda_device_count() == 0) {
    snprintf(err, n, "--device-model gpu-profile: no GPU is visible (cudaGetDeviceCount found none; check the driver "
                     "and CUDA_VISIBLE_DEVICES), so there is nothing to profile on; use cpu-profile or an analytic "
                     "model (h100, h200, a100)");
    return NULL;
  }
  bp_cli_gpu_prof *g = calloc(1, sizeof *g);
  if (!g) {
    snprintf(err, n, "out of memory");
    return NULL;
  }
  bp_err e = {0};
  if (bp_cuda_profiler_open(&g->p, 0, prec, &e)) {
    snprintf(err, n, "--device-model gpu-profile: GPU 0: %s", e.msg);
    free(g);
    return NULL;
  }
  *dev = (bp_profile_device){.time_nodes = bp_cuda_profiler_time_nodes, .self = &g->p, .key = g->p.key,
                             .what = g->p.what, .gpu_name = g->p.name, .mem_bytes = g->p.mem_bytes};
  return g;
}

void bp_cli_gpu_prof_close(bp_cli_gpu_prof *g) {
  if (!g) return;
  bp_cuda_profiler_close(&g->p);
  free(g);
}
#else
struct bp_cli_gpu_prof {
  int unused;
};

const char *bp_cli_default_device_model(void) { return "cpu-profile"; }

bp_cli_gpu_prof *bp_cli_gpu_prof_open(const char *precision, bp_profile_device *dev, char *err, size_t n) {
  (void)dev;
  if (precision && !bp_cli_precision_ok(precision)) snprintf(err, n, "--precision is fp32, tf32 or bf16, got '%s'", precision);
  else
    snprintf(err, n, "--device-model gpu-profile: this bitpipec was built without the CUDA backend (no CUDA toolkit, "
                     "or -DBP_CUDA=OFF); use cpu-profile or an analytic model (h100, h200, a100)");
  return NULL;
}

void bp_cli_gpu_prof_close(bp_cli_gpu_prof *g) { (void)g; }
#endif
