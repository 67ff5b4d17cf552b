/* tests/gpu/test_pipeline_gpu_transport.c — the GPU transports of the runtime (runtime/transport.h:
 * bp_tp_staged_wrap, bp_tp_nccl_wrap) on their own, under mpirun:
 *
 *     mpirun -np K test_pipeline_gpu_transport staged|nccl
 *
 * Every rank opens GPU (local rank mod visible GPUs), wraps the MPI transport, and checks against
 * values it computes itself (integers in float32, so sums are exact):
 *   1. a ring: each rank sends three device buffers (1 KiB, 3 MiB, 5 floats; different tags) to the
 *      next rank and receives three from the previous one (with one rank: to itself), receives
 *      posted before the sends; the received bytes must be the sender's;
 *   2. device all-reduce over the world and over a split group (even / odd ranks), float32 and
 *      float64;
 *   3. host buffers through the same transport (all-reduce of doubles, a ring of host bytes): they
 *      must take the MPI path untouched;
 *   4. the reused staging buffers: the ring runs three times.
 * Prints one line per check and "transport <name>: all passed"; exit 0, 1 on a mismatch, 77 with
 * "skipped: no GPU" when no device is visible (or "skipped: built without NCCL" for nccl). */
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/cuda_rt.h"
#include "runtime/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(int ok, int rank, const char *what) {
  if (!ok) {
    failures++;
    fprintf(stderr, "rank %d: FAIL %s\n", rank, what);
  }
}

static int wait_all(bp_tp *t, int *req, int n) {
  for (int i = 0; i < n; i++) {
    bp_tp_why why = {"a test transfer", -1, -1};
    if (bp_tp_wait(t, req[i], &why) < 0) {
      fprintf(stderr, "rank %d: %s\n", t->rank, t->err);
      return -1;
    }
  }
  return 0;
}

static float val(int rank, int msg, int64_t i) { return (float)(rank * 1000003 + msg * 7919 + (i % 65521)); }

int main(int argc, char **argv) {
  bp_tp t;
  if (bp_tp_mpi_init(&t, &argc, &argv) < 0) return 1;
  const char *mode = argc > 1 ? argv[1] : "staged";
  int count = bp_cuda_device_count(), rc = 0;
  if (count == 0 || (!strcmp(mode, "nccl") && !BP_TEST_NCCL)) {
    if (t.rank == 0) printf("skipped: %s\n", count == 0 ? "no GPU" : "built without NCCL");
    t.impl->finalize(&t);
    return 77;
  }
  t.timeout_s = 60;
  const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  int dev = (lr ? atoi(lr) : t.rank) % count;
  bp_err e = {0};
  bp_cuda *dc = bp_cuda_new(dev, BP_PREC_FP32, &e);
  if (!dc) {
    fprintf(stderr, "rank %d: %s\n", t.rank, e.msg);
    bp_tp_abort(&t, 1);
  }
  char err[512];
  int wrc = !strcmp(mode, "nccl") ? bp_tp_nccl_wrap(&t, bp_cuda_stream_handle(dc), err, sizeof err)
                                  : bp_tp_staged_wrap(&t, bp_cuda_stream_handle(dc), err, sizeof err);
  if (wrc < 0) {
    fprintf(stderr, "rank %d: wrapping the transport (%s): %s\n", t.rank, mode, err);
    bp_tp_abort(&t, 1);
  }
  int W = t.size, r = t.rank, next = (r + 1) % W, prev = (r + W - 1) % W;
  const int64_t sizes[3] = {256, 3 << 18, 5}; /* floats */
  float *dsend[3], *drecv[3], *host = malloc(sizeof(float) * (3 << 18));
  if (!host) bp_tp_abort(&t, 1);
#define OK(call)                                                                                   \
  do {                                                                                             \
    if ((call) < 0) {                                                                              \
      fprintf(stderr, "rank %d: %s: %s\n", r, #call, e.set ? e.msg : t.err);                      \
      bp_tp_abort(&t, 1);                                                                          \
    }                                                                                              \
  } while (0)
  for (int m = 0; m < 3; m++) {
    size_t b = sizeof(float) * (size_t)sizes[m];
    OK((dsend[m] = bp_cuda_alloc(dc, b, "send buffer", &e)) ? 0 : -1);
    OK((drecv[m] = bp_cuda_alloc(dc, b, "receive buffer", &e)) ? 0 : -1);
    for (int64_t i = 0; i < sizes[m]; i++) host[i] = val(r, m, i);
    OK(bp_cuda_upload(dc, dsend[m], host, b, "send buffer", &e));
  }
  OK(bp_cuda_sync(dc, "uploads", &e));
  /* 1 + 4: the ring, three rounds (the staging buffers are reused) */
  for (int round = 0; round < 3; round++) {
    int req[6];
    for (int m = 0; m < 3; m++) {
      OK(bp_cuda_memset(dc, drecv[m], 0xff, sizeof(float) * (size_t)sizes[m], "receive buffer", &e));
      OK(t.impl->irecv(&t, 0, drecv[m], (int64_t)sizeof(float) * sizes[m], prev, 10 + m, &req[m]));
    }
    for (int m = 0; m < 3; m++) OK(t.impl->isend(&t, 0, dsend[m], (int64_t)sizeof(float) * sizes[m], next, 10 + m, &req[3 + m]));
    if (wait_all(&t, req, 6) < 0) bp_tp_abort(&t, 1);
    for (int m = 0; m < 3; m++) {
      OK(bp_cuda_download(dc, host, drecv[m], sizeof(float) * (size_t)sizes[m], "received", &e));
      int same = 1;
      for (int64_t i = 0; i < sizes[m] && same; i++) same = host[i] == val(prev, m, i);
      char what[96];
      snprintf(what, sizeof what, "ring round %d: message %d (%lld floats) from rank %d", round, m, (long long)sizes[m], prev);
      check(same, r, what);
    }
  }
  if (r == 0) printf("ring of device buffers (%d ranks, 3 rounds x 3 messages): %s\n", W, failures ? "FAILED" : "ok");
  /* 2: device all-reduce, world and a split group, float32 and float64 */
  int sub = -1, subsize = 0;
  OK(t.impl->split(&t, r % 2, r, &sub));
  OK(t.impl->group_size(&t, sub, &subsize));
  for (int g = 0; g < 2; g++) {
    int group = g ? sub : 0, req;
    int64_t n = 100003;
    float *d = bp_cuda_alloc(dc, sizeof(float) * (size_t)n, "all-reduce buffer", &e);
    OK(d ? 0 : -1);
    for (int64_t i = 0; i < n; i++) host[i] = val(r, 9, i);
    OK(bp_cuda_upload(dc, d, host, sizeof(float) * (size_t)n, "all-reduce buffer", &e));
    OK(t.impl->iallreduce(&t, group, d, n, BP_TP_F32, &req));
    if (wait_all(&t, &req, 1) < 0) bp_tp_abort(&t, 1);
    OK(bp_cuda_download(dc, host, d, sizeof(float) * (size_t)n, "all-reduce result", &e));
    int same = 1;
    for (int64_t i = 0; i < n && same; i++) {
      double want = 0;
      for (int q = 0; q < W; q++)
        if (!g || q % 2 == r % 2) want += val(q, 9, i);
      same = host[i] == (float)want;
    }
    check(same, r, g ? "float32 all-reduce over the even/odd group" : "float32 all-reduce over the world");
    bp_cuda_release(dc, d);
    double *dd = bp_cuda_alloc(dc, sizeof(double) * 3, "all-reduce buffer", &e), hd[3] = {r + 0.5, 1, -2.0 * r};
    OK(dd ? 0 : -1);
    OK(bp_cuda_upload(dc, dd, hd, sizeof hd, "all-reduce buffer", &e));
    OK(t.impl->iallreduce(&t, group, dd, 3, BP_TP_F64, &req));
    if (wait_all(&t, &req, 1) < 0) bp_tp_abort(&t, 1);
    OK(bp_cuda_download(dc, hd, dd, sizeof hd, "all-reduce result", &e));
    double w0 = 0, w1 = 0, w2 = 0;
    for (int q = 0; q < W; q++)
      if (!g || q % 2 == r % 2) w0 += q + 0.5, w1 += 1, w2 += -2.0 * q;
    check(hd[0] == w0 && hd[1] == w1 && hd[2] == w2, r, "float64 device all-reduce");
    bp_cuda_release(dc, dd);
  }
  if (r == 0) printf("device all-reduce (world, group of %d; float32, float64): %s\n", subsize, failures ? "FAILED" : "ok");
  /* 3: host buffers take the MPI path */
  double hs[2] = {1.0, (double)r};
  OK(bp_tp_allreduce(&t, 0, hs, 2, BP_TP_F64, "host all-reduce"));
  check(hs[0] == W && hs[1] == W * (W - 1) / 2.0, r, "host all-reduce");
  char hb_out[64], hb_in[64];
  snprintf(hb_out, sizeof hb_out, "from rank %d", r);
  memset(hb_in, 0, sizeof hb_in);
  {
    int req[2];
    OK(t.impl->irecv(&t, 0, hb_in, sizeof hb_in, prev, 20, &req[0]));
    OK(t.impl->isend(&t, 0, hb_out, sizeof hb_out, next, 20, &req[1]));
    if (wait_all(&t, req, 2) < 0) bp_tp_abort(&t, 1);
    char want[64];
    snprintf(want, sizeof want, "from rank %d", prev);
    check(!strcmp(hb_in, want), r, "host bytes through the ring");
  }
  if (r == 0) printf("host buffers through the wrapped transport: %s\n", failures ? "FAILED" : "ok");
  double f = failures;
  OK(bp_tp_allreduce(&t, 0, &f, 1, BP_TP_F64, "the verdict"));
  if (r == 0) printf("transport %s (%s), %d rank%s on %d visible GPU%s: %s\n", t.impl->name, mode, W, W > 1 ? "s" : "",
                     count, count > 1 ? "s" : "", f == 0 ? "all passed" : "FAILURES");
  rc = f == 0 ? 0 : 1;
  for (int m = 0; m < 3; m++) {
    bp_cuda_release(dc, dsend[m]);
    bp_cuda_release(dc, drecv[m]);
  }
  free(host);
  if (t.impl->finalize(&t) < 0) {
    fprintf(stderr, "rank %d: %s\n", r, t.err);
    rc = 1;
  }
  bp_cuda_free(dc);
  return rc;
}
