/* runtime/transport_staged.c — the MPI transport for GPU ranks, staging device buffers through
 * pinned host memory (runtime/transport.h, bp_tp_staged_wrap). Needed when ranks share a GPU
 * (NCCL refuses two ranks on one device: "Duplicate GPU detected"), and usable everywhere.
 *
 *   isend      copy the device range out to a pinned buffer, then MPI_Isend from it;
 *   irecv      MPI_Irecv into a pinned buffer; when the test finds it complete, copy it in;
 *   iallreduce copy out, MPI_Iallreduce in place on the pinned buffer, copy in on completion.
 * Host buffers go straight to the MPI transport. Copies run on a stream of their own, after an
 * event recorded on the kernels' stream (so a send reads what the kernels wrote), and are waited
 * for before the request moves on: a receive is complete only once its bytes are on the device.
 * Pinned buffers are pooled by size and reused (cudaHostAlloc is slow). Every CUDA call is checked;
 * errors name the call, the peer and the size. */
#include "runtime/transport.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_HOST = 0, K_SEND, K_RECV, K_ALLREDUCE };

typedef struct sreq {
  int kind;       /* K_*; -1: free */
  int inner;      /* the MPI transport's request */
  void *dev;      /* device buffer (K_RECV, K_ALLREDUCE: copied in at completion) */
  int64_t nbytes;
  int pin;        /* pool index of the pinned buffer, -1: none */
  int peer;
} sreq;

typedef struct pinned {
  void *p;
  int64_t cap;
  int busy;
} pinned;

typedef struct staged {
  bp_tp inner;             /* the MPI transport it wraps (state, impl) */
  cudaStream_t compute;    /* the kernels' stream */
  cudaStream_t copy;
  cudaEvent_t ready;       /* recorded on `compute` before each copy out */
  sreq *req;
  int nreq, capreq;
  pinned *pool;
  int npool, cappool;
} staged;

static int cufail(bp_tp *t, const char *call, cudaError_t rc, const char *ctx) {
  snprintf(t->err, sizeof t->err, "rank %d: %s%s%s failed: %s", t->rank, call, ctx ? " " : "", ctx ? ctx : "",
           cudaGetErrorString(rc));
  return -1;
}
#define CUT(call, ctx)                                                                             \
  do {                                                                                             \
    cudaError_t cu_rc_ = (call);                                                                   \
    if (cu_rc_ != cudaSuccess) return cufail(t, #call, cu_rc_, (ctx));                            \
  } while (0)

/* Passes the MPI transport's error up. */
static int inner_fail(bp_tp *t) {
  staged *s = t->state;
  snprintf(t->err, sizeof t->err, "%s", s->inner.err);
  return -1;
}

static int is_device(const void *p) {
  struct cudaPointerAttributes a;
  if (!p || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError(); /* plain host memory on old runtimes: not an error */
    return 0;
  }
  return a.type == cudaMemoryTypeDevice;
}

static int pin_get(bp_tp *t, int64_t n, int *out) {
  staged *s = t->state;
  int best = -1;
  for (int i = 0; i < s->npool; i++)
    if (!s->pool[i].busy && s->pool[i].cap >= n && (best < 0 || s->pool[i].cap < s->pool[best].cap)) best = i;
  if (best < 0) {
    if (s->npool == s->cappool) {
      int cap = s->cappool ? 2 * s->cappool : 16;
      pinned *np = realloc(s->pool, sizeof *np * (size_t)cap);
      if (!np) {
        snprintf(t->err, sizeof t->err, "rank %d: out of memory for staging buffers", t->rank);
        return -1;
      }
      s->pool = np;
      s->cappool = cap;
    }
    void *p = NULL;
    char ctx[64];
    snprintf(ctx, sizeof ctx, "(%lld bytes of pinned staging memory)", (long long)n);
    CUT(cudaHostAlloc(&p, (size_t)(n > 0 ? n : 1), cudaHostAllocDefault), ctx);
    s->pool[s->npool] = (pinned){p, n, 0};
    best = s->npool++;
  }
  s->pool[best].busy = 1;
  *out = best;
  return 0;
}

static int new_req(bp_tp *t, int *out) {
  staged *s = t->state;
  for (int i = 0; i < s->nreq; i++)
    if (s->req[i].kind < 0) {
      *out = i;
      return 0;
    }
  if (s->nreq == s->capreq) {
    int cap = s->capreq ? 2 * s->capreq : 64;
    sreq *r = realloc(s->req, sizeof *r * (size_t)cap);
    if (!r) {
      snprintf(t->err, sizeof t->err, "rank %d: out of memory for transfer requests", t->rank);
      return -1;
    }
    s->req = r;
    s->capreq = cap;
  }
  s->req[s->nreq].kind = -1;
  s->req[s->nreq].pin = -1;
  *out = s->nreq++;
  return 0;
}

static void free_req(staged *s, int r) {
  if (s->req[r].pin >= 0) s->pool[s->req[r].pin].busy = 0;
  s->req[r].kind = -1;
  s->req[r].pin = -1;
}

/* Device -> pinned, after the kernels queued so far; waits for it. */
static int copy_out(bp_tp *t, void *dst, const void *src, int64_t n, const char *ctx) {
  staged *s = t->state;
  CUT(cudaEventRecord(s->ready, s->compute), ctx);
  CUT(cudaStreamWaitEvent(s->copy, s->ready, 0), ctx);
  CUT(cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyDeviceToHost, s->copy), ctx);
  CUT(cudaStreamSynchronize(s->copy), ctx);
  return 0;
}

static int copy_in(bp_tp *t, void *dst, const void *src, int64_t n, const char *ctx) {
  staged *s = t->state;
  CUT(cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyHostToDevice, s->copy), ctx);
  CUT(cudaStreamSynchronize(s->copy), ctx);
  return 0;
}

/* Registers a request: kind k around the MPI request `inner`. */
static void set_req(staged *s, int r, int k, int inner, void *dev, int64_t n, int pin, int peer) {
  s->req[r] = (sreq){k, inner, dev, n, pin, peer};
}

static int st_p2p(bp_tp *t, int send, int group, void *buf, int64_t nbytes, int peer, int tag, int *req) {
  staged *s = t->state;
  int r, inner, pin = -1;
  if (new_req(t, &r) < 0) return -1;
  if (!is_device(buf)) {
    int rc = send ? s->inner.impl->isend(&s->inner, group, buf, nbytes, peer, tag, &inner)
                  : s->inner.impl->irecv(&s->inner, group, buf, nbytes, peer, tag, &inner);
    if (rc < 0) return inner_fail(t);
    set_req(s, r, K_HOST, inner, NULL, nbytes, -1, peer);
    *req = r;
    return 0;
  }
  char ctx[96];
  snprintf(ctx, sizeof ctx, "(staging %lld bytes %s rank %d)", (long long)nbytes, send ? "to" : "from", peer);
  if (pin_get(t, nbytes, &pin) < 0) return -1;
  void *h = s->pool[pin].p;
  s->req[r].pin = pin; /* released by free_req on failure */
  s->req[r].kind = K_HOST;
  if (send && copy_out(t, h, buf, nbytes, ctx) < 0) {
    free_req(s, r);
    return -1;
  }
  int rc = send ? s->inner.impl->isend(&s->inner, group, h, nbytes, peer, tag, &inner)
                : s->inner.impl->irecv(&s->inner, group, h, nbytes, peer, tag, &inner);
  if (rc < 0) {
    free_req(s, r);
    return inner_fail(t);
  }
  set_req(s, r, send ? K_SEND : K_RECV, inner, buf, nbytes, pin, peer);
  *req = r;
  return 0;
}

static int st_isend(bp_tp *t, int group, const void *buf, int64_t nbytes, int peer, int tag, int *req) {
  return st_p2p(t, 1, group, (void *)buf, nbytes, peer, tag, req);
}

static int st_irecv(bp_tp *t, int group, void *buf, int64_t nbytes, int peer, int tag, int *req) {
  return st_p2p(t, 0, group, buf, nbytes, peer, tag, req);
}

static int st_test(bp_tp *t, int req, int *done) {
  staged *s = t->state;
  *done = 0;
  if (req < 0 || req >= s->nreq || s->req[req].kind < 0) {
    snprintf(t->err, sizeof t->err, "rank %d: test of unknown transfer request %d", t->rank, req);
    return -1;
  }
  sreq *r = &s->req[req];
  int d = 0;
  if (s->inner.impl->test(&s->inner, r->inner, &d) < 0) return inner_fail(t);
  if (!d) return 0;
  if (r->kind == K_RECV || r->kind == K_ALLREDUCE) {
    char ctx[96];
    snprintf(ctx, sizeof ctx, "(staging %lld bytes %s)", (long long)r->nbytes,
             r->kind == K_RECV ? "received" : "of an all-reduce");
    if (copy_in(t, r->dev, s->pool[r->pin].p, r->nbytes, ctx) < 0) {
      free_req(s, req);
      return -1;
    }
  }
  free_req(s, req);
  *done = 1;
  return 0;
}

static int st_iallreduce(bp_tp *t, int group, void *buf, int64_t count, bp_tp_dtype dtype, int *req) {
  staged *s = t->state;
  int r, inner, pin;
  if (new_req(t, &r) < 0) return -1;
  if (!is_device(buf)) {
    if (s->inner.impl->iallreduce(&s->inner, group, buf, count, dtype, &inner) < 0) return inner_fail(t);
    set_req(s, r, K_HOST, inner, NULL, 0, -1, -1);
    *req = r;
    return 0;
  }
  int64_t n = count * (dtype == BP_TP_F64 ? 8 : 4);
  char ctx[96];
  snprintf(ctx, sizeof ctx, "(staging %lld bytes for an all-reduce of group %d)", (long long)n, group);
  if (pin_get(t, n, &pin) < 0) return -1;
  s->req[r].pin = pin;
  s->req[r].kind = K_HOST;
  if (copy_out(t, s->pool[pin].p, buf, n, ctx) < 0) {
    free_req(s, r);
    return -1;
  }
  if (s->inner.impl->iallreduce(&s->inner, group, s->pool[pin].p, count, dtype, &inner) < 0) {
    free_req(s, r);
    return inner_fail(t);
  }
  set_req(s, r, K_ALLREDUCE, inner, buf, n, pin, -1);
  *req = r;
  return 0;
}

static int st_ibarrier(bp_tp *t, int group, int *req) {
  staged *s = t->state;
  int r, inner;
  if (new_req(t, &r) < 0) return -1;
  if (s->inner.impl->ibarrier(&s->inner, group, &inner) < 0) return inner_fail(t);
  set_req(s, r, K_HOST, inner, NULL, 0, -1, -1);
  *req = r;
  return 0;
}

static int st_split(bp_tp *t, int color, int key, int *group) {
  staged *s = t->state;
  return s->inner.impl->split(&s->inner, color, key, group) < 0 ? inner_fail(t) : 0;
}

static int st_group_size(bp_tp *t, int group, int *size) {
  staged *s = t->state;
  return s->inner.impl->group_size(&s->inner, group, size) < 0 ? inner_fail(t) : 0;
}

static void st_progress(bp_tp *t) {
  staged *s = t->state;
  s->inner.impl->progress(&s->inner);
}

static void st_abort(bp_tp *t, int code) {
  staged *s = t->state;
  s->inner.impl->abort(&s->inner, code);
}

static int st_finalize(bp_tp *t) {
  staged *s = t->state;
  int rc = 0;
  /* teardown: CUDA failures are reported, MPI is finalised regardless */
  for (int i = 0; i < s->npool; i++) {
    cudaError_t c = cudaFreeHost(s->pool[i].p);
    if (c != cudaSuccess && rc == 0) rc = cufail(t, "cudaFreeHost(staging buffer)", c, NULL);
  }
  cudaError_t c1 = cudaEventDestroy(s->ready), c2 = cudaStreamDestroy(s->copy);
  if (rc == 0 && c1 != cudaSuccess) rc = cufail(t, "cudaEventDestroy(ready)", c1, NULL);
  if (rc == 0 && c2 != cudaSuccess) rc = cufail(t, "cudaStreamDestroy(copy)", c2, NULL);
  if (rc < 0) fprintf(stderr, "train: %s\n", t->err);
  free(s->pool);
  free(s->req);
  bp_tp inner = s->inner;
  free(s);
  return bp_tp_unwrap_finalize(t, &inner, rc);
}

static const bp_tp_impl staged_impl = {
    "mpi (host-staged)", st_isend, st_irecv, st_test, st_iallreduce, st_ibarrier, st_split, st_group_size,
    st_progress, st_abort, st_finalize,
};

int bp_tp_staged_wrap(bp_tp *t, void *stream, char *err, size_t errlen) {
  staged *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->inner = *t;
  s->compute = (cudaStream_t)stream;
  cudaError_t rc = cudaStreamCreateWithFlags(&s->copy, cudaStreamNonBlocking);
  if (rc != cudaSuccess) {
    snprintf(err, errlen, "cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking) failed: %s", cudaGetErrorString(rc));
    free(s);
    return -1;
  }
  rc = cudaEventCreateWithFlags(&s->ready, cudaEventDisableTiming);
  if (rc != cudaSuccess) {
    snprintf(err, errlen, "cudaEventCreateWithFlags(&ready, cudaEventDisableTiming) failed: %s", cudaGetErrorString(rc));
    cudaStreamDestroy(s->copy);
    free(s);
    return -1;
  }
  t->state = s;
  t->impl = &staged_impl;
  return 0;
}
