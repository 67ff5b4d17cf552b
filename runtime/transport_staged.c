/* runtime/transport_staged.c — the MPI transport for GPU ranks, staging device buffers through
 * pinned host memory (runtime/transport.h, bp_tp_staged_wrap). Needed when ranks share a GPU
 * (NCCL refuses two ranks on one device: "Duplicate GPU detected"), and usable everywhere.
 *
 *   isend      queue the copy of the device range out to a pinned buffer (on a copy stream, after
 *              an event recorded on the kernels' stream, so it reads what the kernels wrote); the
 *              MPI_Isend goes out once the copy is done (found by the next test or progress call:
 *              the host does not wait for the copy, the kernels' stream runs on);
 *   irecv      MPI_Irecv into a pinned buffer at once; when the test finds it complete, the copy in
 *              is queued on the copy stream (after an event recorded on the kernels' stream when the
 *              receive was posted: what the slot held before is read by then) and the kernels'
 *              stream waits for it (an event), so the consumer runs after it without a host wait;
 *   iallreduce like isend, then MPI_Iallreduce in place on the pinned buffer; on completion the
 *              copy in, as a receive's.
 * Sends and all-reduces whose copies are queued are posted to MPI in the order they were made
 * (copies on one stream finish in order), so collectives keep the same order on every rank. Host
 * buffers go straight to the MPI transport. Pinned buffers are pooled by size and reused once their
 * copy is done (cudaHostAlloc is slow). Every CUDA call is checked; errors name the call, the peer
 * and the size. */
#include "runtime/transport.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_HOST = 0, K_SEND_COPY, K_SEND, K_RECV, K_AR_COPY, K_ALLREDUCE };

typedef struct sreq {
  int kind;       /* K_*; -1: free */
  int inner;      /* the MPI transport's request (not for K_*_COPY) */
  void *dev;      /* device buffer (K_RECV, K_ALLREDUCE: copied in at completion) */
  int64_t nbytes;
  int pin;        /* pool index of the pinned buffer, -1: none */
  int peer, group, tag;
  int64_t count;  /* all-reduce */
  bp_tp_dtype dtype;
  long seq;       /* K_*_COPY: posting order */
  cudaEvent_t posted; /* K_RECV: recorded on the kernels' stream at the post (made once per entry) */
} sreq;

typedef struct pinned {
  void *p;
  int64_t cap;
  int busy;
  cudaEvent_t copied;  /* recorded after the last copy from / to it */
  int copying;         /* `copied` not yet seen complete */
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
  long seq;
  int ncopying;            /* requests in K_*_COPY */
  int failed;              /* posting from st_progress failed: the next test reports it */
  char ferr[512];
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

/* 1 when pin i's last copy is done (0: still running, -1: error). */
static int pin_idle(bp_tp *t, int i) {
  staged *s = t->state;
  if (!s->pool[i].copying) return 1;
  cudaError_t q = cudaEventQuery(s->pool[i].copied);
  if (q == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return 0;
  }
  CUT(q, "(a staging buffer's copy)");
  s->pool[i].copying = 0;
  return 1;
}

static int pin_get(bp_tp *t, int64_t n, int *out) {
  staged *s = t->state;
  int best = -1;
  for (int i = 0; i < s->npool; i++) {
    if (s->pool[i].busy || s->pool[i].cap < n || (best >= 0 && s->pool[i].cap >= s->pool[best].cap)) continue;
    int idle = pin_idle(t, i);
    if (idle < 0) return -1;
    if (idle) best = i;
  }
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
    pinned *pn = &s->pool[s->npool];
    memset(pn, 0, sizeof *pn);
    char ctx[64];
    snprintf(ctx, sizeof ctx, "(%lld bytes of pinned staging memory)", (long long)n);
    CUT(cudaHostAlloc(&pn->p, (size_t)(n > 0 ? n : 1), cudaHostAllocDefault), ctx);
    cudaError_t rc = cudaEventCreateWithFlags(&pn->copied, cudaEventDisableTiming);
    if (rc != cudaSuccess) {
      cudaFreeHost(pn->p);
      return cufail(t, "cudaEventCreateWithFlags(&copied)", rc, ctx);
    }
    pn->cap = n;
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
  sreq *r = &s->req[s->nreq];
  memset(r, 0, sizeof *r);
  r->kind = -1;
  r->pin = -1;
  CUT(cudaEventCreateWithFlags(&r->posted, cudaEventDisableTiming), "(a receive's ordering event)");
  *out = s->nreq++;
  return 0;
}

static void free_req(staged *s, int r) {
  if (s->req[r].pin >= 0) s->pool[s->req[r].pin].busy = 0;
  if (s->req[r].kind == K_SEND_COPY || s->req[r].kind == K_AR_COPY) s->ncopying--;
  s->req[r].kind = -1;
  s->req[r].pin = -1;
}

/* Device -> pinned on the copy stream, after the kernels queued so far; not waited for. */
static int copy_out(bp_tp *t, int pin, const void *src, int64_t n, const char *ctx) {
  staged *s = t->state;
  pinned *p = &s->pool[pin];
  CUT(cudaEventRecord(s->ready, s->compute), ctx);
  CUT(cudaStreamWaitEvent(s->copy, s->ready, 0), ctx);
  CUT(cudaMemcpyAsync(p->p, src, (size_t)n, cudaMemcpyDeviceToHost, s->copy), ctx);
  CUT(cudaEventRecord(p->copied, s->copy), ctx);
  p->copying = 1;
  return 0;
}

/* Pinned -> device on the copy stream (after `after`, when given), and the kernels' stream waits
 * for it: whatever the kernels queue next sees the bytes. */
static int copy_in(bp_tp *t, void *dst, int pin, int64_t n, cudaEvent_t after, const char *ctx) {
  staged *s = t->state;
  pinned *p = &s->pool[pin];
  if (after) CUT(cudaStreamWaitEvent(s->copy, after, 0), ctx);
  CUT(cudaMemcpyAsync(dst, p->p, (size_t)n, cudaMemcpyHostToDevice, s->copy), ctx);
  CUT(cudaEventRecord(p->copied, s->copy), ctx);
  p->copying = 1;
  CUT(cudaStreamWaitEvent(s->compute, p->copied, 0), ctx);
  return 0;
}

/* Posts to MPI the sends and all-reduces whose copies out are done, oldest first; stops at the
 * first whose copy is still running (later ones wait for it: the same order on every rank). */
static int advance(bp_tp *t) {
  staged *s = t->state;
  while (s->ncopying > 0) {
    int best = -1;
    for (int i = 0; i < s->nreq; i++)
      if ((s->req[i].kind == K_SEND_COPY || s->req[i].kind == K_AR_COPY) && (best < 0 || s->req[i].seq < s->req[best].seq))
        best = i;
    if (best < 0) break;
    sreq *r = &s->req[best];
    int idle = pin_idle(t, r->pin);
    if (idle <= 0) return idle;
    void *h = s->pool[r->pin].p;
    int rc = r->kind == K_SEND_COPY ? s->inner.impl->isend(&s->inner, r->group, h, r->nbytes, r->peer, r->tag, &r->inner)
                                    : s->inner.impl->iallreduce(&s->inner, r->group, h, r->count, r->dtype, &r->inner);
    if (rc < 0) return inner_fail(t);
    r->kind = r->kind == K_SEND_COPY ? K_SEND : K_ALLREDUCE;
    s->ncopying--;
  }
  return 0;
}

static int st_p2p(bp_tp *t, int send, int group, void *buf, int64_t nbytes, int peer, int tag, int *req) {
  staged *s = t->state;
  int r, inner, pin = -1;
  if (new_req(t, &r) < 0) return -1;
  sreq *q = &s->req[r];
  if (!is_device(buf)) {
    int rc = send ? s->inner.impl->isend(&s->inner, group, buf, nbytes, peer, tag, &inner)
                  : s->inner.impl->irecv(&s->inner, group, buf, nbytes, peer, tag, &inner);
    if (rc < 0) return inner_fail(t);
    q->kind = K_HOST;
    q->inner = inner;
    *req = r;
    return 0;
  }
  char ctx[96];
  snprintf(ctx, sizeof ctx, "(staging %lld bytes %s rank %d)", (long long)nbytes, send ? "to" : "from", peer);
  if (pin_get(t, nbytes, &pin) < 0) return -1;
  q->pin = pin; /* released by free_req on failure */
  q->kind = K_HOST;
  q->dev = buf;
  q->nbytes = nbytes;
  q->peer = peer;
  q->group = group;
  q->tag = tag;
  if (send) {
    if (copy_out(t, pin, buf, nbytes, ctx) < 0) {
      free_req(s, r);
      return -1;
    }
    q->kind = K_SEND_COPY;
    q->seq = ++s->seq;
    s->ncopying++;
    *req = r;
    return 0;
  }
  /* the copy in comes after the kernels queued so far (earlier readers of the slot) */
  if (cudaEventRecord(q->posted, s->compute) != cudaSuccess ||
      s->inner.impl->irecv(&s->inner, group, s->pool[pin].p, nbytes, peer, tag, &inner) < 0) {
    free_req(s, r);
    cudaError_t c = cudaGetLastError();
    return c != cudaSuccess ? cufail(t, "cudaEventRecord(posted, compute)", c, ctx) : inner_fail(t);
  }
  q->kind = K_RECV;
  q->inner = inner;
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
  if (s->failed) {
    snprintf(t->err, sizeof t->err, "%s", s->ferr);
    return -1;
  }
  if (advance(t) < 0) return -1;
  sreq *r = &s->req[req];
  if (r->kind == K_SEND_COPY || r->kind == K_AR_COPY) return 0;
  int d = 0;
  if (s->inner.impl->test(&s->inner, r->inner, &d) < 0) return inner_fail(t);
  if (!d) return 0;
  if (r->kind == K_RECV || r->kind == K_ALLREDUCE) {
    char ctx[96];
    snprintf(ctx, sizeof ctx, "(staging %lld bytes %s)", (long long)r->nbytes,
             r->kind == K_RECV ? "received" : "of an all-reduce");
    if (copy_in(t, r->dev, r->pin, r->nbytes, r->kind == K_RECV ? r->posted : NULL, ctx) < 0) {
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
  sreq *q = &s->req[r];
  if (!is_device(buf)) {
    if (s->inner.impl->iallreduce(&s->inner, group, buf, count, dtype, &inner) < 0) return inner_fail(t);
    q->kind = K_HOST;
    q->inner = inner;
    *req = r;
    return 0;
  }
  int64_t n = count * (dtype == BP_TP_F64 ? 8 : 4);
  char ctx[96];
  snprintf(ctx, sizeof ctx, "(staging %lld bytes for an all-reduce of group %d)", (long long)n, group);
  if (pin_get(t, n, &pin) < 0) return -1;
  q->pin = pin;
  q->kind = K_HOST;
  if (copy_out(t, pin, buf, n, ctx) < 0) {
    free_req(s, r);
    return -1;
  }
  q->kind = K_AR_COPY;
  q->dev = buf;
  q->nbytes = n;
  q->count = count;
  q->dtype = dtype;
  q->group = group;
  q->peer = -1;
  q->seq = ++s->seq;
  s->ncopying++;
  *req = r;
  return 0;
}

static int st_ibarrier(bp_tp *t, int group, int *req) {
  staged *s = t->state;
  int r, inner;
  if (new_req(t, &r) < 0) return -1;
  if (s->inner.impl->ibarrier(&s->inner, group, &inner) < 0) return inner_fail(t);
  s->req[r].kind = K_HOST;
  s->req[r].inner = inner;
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
  /* errors surface at the next test */
  if (!s->failed && advance(t) < 0) {
    s->failed = 1;
    snprintf(s->ferr, sizeof s->ferr, "%s", t->err);
  }
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
  cudaError_t c0 = cudaStreamSynchronize(s->copy);
  if (c0 != cudaSuccess) rc = cufail(t, "cudaStreamSynchronize(copy)", c0, NULL);
  for (int i = 0; i < s->npool; i++) {
    cudaError_t c = cudaFreeHost(s->pool[i].p);
    if (c != cudaSuccess && rc == 0) rc = cufail(t, "cudaFreeHost(staging buffer)", c, NULL);
    cudaEventDestroy(s->pool[i].copied);
  }
  for (int i = 0; i < s->nreq; i++) cudaEventDestroy(s->req[i].posted);
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
    st_progress, st_abort, st_finalize, NULL,
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
