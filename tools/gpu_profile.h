/* tools/gpu_profile.h — `--device-model gpu-profile` for bitpipec MODEL -o TRAIN and bitpipec
 * partition: which device model is the default (gpu-profile when this bitpipec has the CUDA backend
 * and a GPU is visible: the program will train there; else cpu-profile), and the GPU's node timer
 * (kernels/cuda/layer_profile.h) opened on GPU 0 behind an interface that also builds without CUDA,
 * where opening it is a clear error. */
#ifndef BITPIPE_TOOLS_GPU_PROFILE_H
#define BITPIPE_TOOLS_GPU_PROFILE_H

#include "partitioner/layer_costs.h"

#include <stddef.h>

/* "gpu-profile" or its alias "cuda-profile". */
int bp_cli_is_gpu_profile(const char *device_model);
/* The device model when none is given: "gpu-profile" or "cpu-profile". */
const char *bp_cli_default_device_model(void);
/* The GEMM precisions the GPU profile takes, and the default: fp32, as ./train --precision and
 * bitpipec train --precision default to (the profile times what the program will run). */
int bp_cli_precision_ok(const char *precision);
#define BP_CLI_DEFAULT_PRECISION "fp32"

typedef struct bp_cli_gpu_prof bp_cli_gpu_prof;
/* Opens GPU 0 at `precision` (NULL: the default) and fills *dev for bp_profile_opts.device. NULL
 * with a one-line reason in err (no CUDA backend in this build, no GPU visible, a failed setup). */
bp_cli_gpu_prof *bp_cli_gpu_prof_open(const char *precision, bp_profile_device *dev, char *err, size_t n);
void bp_cli_gpu_prof_close(bp_cli_gpu_prof *g);

#endif
