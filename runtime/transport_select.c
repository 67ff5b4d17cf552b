/* runtime/transport_select.c — the transport of a GPU run (collective, at start-up, after every
 * rank opened its GPU): NCCL when it was built in, every rank has a GPU of its own (the devices'
 * UUIDs, gathered with MPI_Allgather, are distinct: NCCL refuses two ranks on one GPU with
 * "Duplicate GPU detected") and the program's messages suit NCCL's in-order matching (below); else
 * MPI staging through host memory. --transport mpi|nccl forces one; forcing NCCL where it cannot
 * work is an error naming why. A single rank takes MPI unless NCCL is forced (it has nothing to send).
 * The message order NCCL needs is checked on the program by msgorder.c.
 *
 * Everything here is under the watchdog: a roll call first (a rank that never arrives is named),
 * then the UUIDs go round in an all-reduce of the MPI transport (a watched wait), and NCCL's own
 * start-up is watched in transport_nccl.c. Test hooks: BITPIPE_FAULT=RANK:init:hang stops RANK
 * before the roll call; RANK:nccl:hang stops it before it joins the NCCL communicator (then every
 * rank skips the one-GPU-per-rank check, so that this runs on a machine with one GPU: NCCL never
 * compares the GPUs when a rank does not come). */
#include "runtime/rt.h"
#include "kernels/cuda/cuda_rt.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_rt_cuda_transport(bp_rt *rt, bp_err *e) {
  void *stream = NULL;
  int device = 0;
  {
    bp_cuda *dc = bp_rt_cuda_context(rt); /* this rank's, made by device_cuda.c */
    stream = bp_cuda_stream_handle(dc);
    device = bp_cuda_device_index(dc);
  }
  bp_rt_fault_startup(rt, -1);
  if (bp_tp_rollcall(rt->tp, 1, "check-in before the GPU transport is chosen") < 0)
    return bp_errf(e, "%s", rt->tp->err);
  struct cudaDeviceProp prop;
  cudaError_t crc = cudaGetDeviceProperties(&prop, device);
  if (crc != cudaSuccess) return bp_errf(e, "rank %d: cudaGetDeviceProperties(GPU %d) failed: %s", rt->wrank, device, cudaGetErrorString(crc));
  /* the UUIDs of every rank's GPU: an all-reduce in which each rank fills its own 16 values */
  double *sum = calloc(16 * (size_t)rt->W, sizeof(double));
  unsigned char *uuid = malloc(16 * (size_t)rt->W);
  if (!sum || !uuid) {
    free(sum);
    free(uuid);
    return bp_errf(e, "rank %d: out of memory", rt->wrank);
  }
  for (int i = 0; i < 16; i++) sum[16 * rt->wrank + i] = (unsigned char)prop.uuid.bytes[i];
  if (bp_tp_allreduce(rt->tp, 0, sum, 16 * (int64_t)rt->W, BP_TP_F64, "gathering the GPUs' UUIDs") < 0) {
    free(sum);
    free(uuid);
    return bp_errf(e, "%s", rt->tp->err);
  }
  for (int i = 0; i < 16 * rt->W; i++) uuid[i] = (unsigned char)sum[i];
  free(sum);
  int dup_a = -1, dup_b = -1;
  for (int i = 0; i < rt->W && dup_a < 0; i++)
    for (int j = i + 1; j < rt->W && dup_a < 0; j++)
      if (!memcmp(uuid + 16 * i, uuid + 16 * j, 16)) dup_a = i, dup_b = j;
  int distinct_gpus = 0;
  for (int i = 0; i < rt->W; i++) {
    int first = 1;
    for (int j = 0; j < i && first; j++) first = memcmp(uuid + 16 * i, uuid + 16 * j, 16) != 0;
    distinct_gpus += first;
  }
  free(uuid);
  char why[256] = "";
  int fifo = bp_rt_p2p_in_order(rt->prog, why, sizeof why);
  if (fifo < 0) return bp_errf(e, "rank %d: %s", rt->wrank, why);
#ifdef BP_RT_NCCL
  int built = 1;
#else
  int built = 0;
#endif
  int nccl;
  if (rt->o.transport == 2) {
    if (!built)
      return bp_errf(e, "--transport nccl: this program was built without NCCL (no nccl.h / libnccl when libbitpipe "
                        "was built); use --transport mpi");
    if (dup_a >= 0 && rt->fault_kind && rt->fault_step == -2)
      dup_a = -1; /* the test hook: see the top */
    if (dup_a >= 0)
      return bp_errf(e, "--transport nccl: ranks %d and %d share one GPU (NCCL refuses that: \"Duplicate GPU "
                        "detected\"); give every rank its own GPU or use --transport mpi", dup_a, dup_b);
    if (!fifo) return bp_errf(e, "--transport nccl: %s, and NCCL matches messages in posting order; use --transport mpi", why);
    nccl = 1;
  } else
    nccl = rt->o.transport == 0 && built && dup_a < 0 && fifo && rt->W > 1;
  char err[512];
  rt->tp->fault_nccl = nccl && rt->fault_kind && rt->fault_step == -2 && rt->wrank == rt->fault_rank;
  int rc = nccl ? bp_tp_nccl_wrap(rt->tp, stream, err, sizeof err) : bp_tp_staged_wrap(rt->tp, stream, err, sizeof err);
  if (rc < 0) return bp_errf(e, "rank %d: setting up the %s transport: %s", rt->wrank, nccl ? "NCCL" : "MPI", err);
  size_t len = strlen(rt->device_desc);
  if (nccl)
    snprintf(rt->device_desc + len, sizeof rt->device_desc - len, "; transport nccl (%d ranks on %d GPUs)", rt->W,
             distinct_gpus);
  else
    snprintf(rt->device_desc + len, sizeof rt->device_desc - len, "; transport mpi staged through host memory (%d ranks on %d GPU%s%s%s)",
             rt->W, distinct_gpus, distinct_gpus > 1 ? "s" : "", rt->o.transport == 1 ? ", --transport mpi" : "",
             rt->o.transport == 0 && built && dup_a < 0 && !fifo ? ", messages not in NCCL's order" : "");
  return 0;
}
