/* kernels/cuda/cuda_train.h — training steps on the GPU: attaches a CUDA backend to a trainer made
 * by bp_trainer_new (frontend/train.h), after which bp_trainer_step runs the training graph with the
 * GPU executor (kernels/cuda/exec.c) and updates the parameters on the device with the CPU's
 * optimizer semantics. The graph, parameter set and optimizer options are the trainer's. */
#ifndef BITPIPE_KERNELS_CUDA_TRAIN_H
#define BITPIPE_KERNELS_CUDA_TRAIN_H

#include "frontend/train.h"
#include "kernels/cuda/cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Moves `t` (with targets, not analysis-only) onto CUDA device 0: parameters, constants and the
 * fixed batch are uploaded, optimizer state is allocated there (zeros). Returns 0 or -1. */
int bp_cuda_trainer_attach(bp_trainer *t, bp_precision prec, bp_err *e);
/* The device context of an attached trainer (NULL when none). */
bp_cuda *bp_cuda_trainer_device(const bp_trainer *t);
/* Copies the device parameters back into the trainer's host tensors. */
int bp_cuda_trainer_download_params(bp_trainer *t, bp_err *e);

#ifdef __cplusplus
}
#endif

#endif
