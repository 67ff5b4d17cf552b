/* runtime/transport_nccl.c — the NCCL transport for GPU ranks with a GPU each (runtime/transport.h,
 * bp_tp_nccl_wrap). It wraps the MPI transport: host buffers (start-up agreement, loss and norm,
 * checkpoint gathers) keep going through MPI; device buffers go through NCCL.
 *
 * Communicators. The world's: rank 0 makes the unique id (ncclGetUniqueId), an all-reduce of the
 * MPI transport hands it to every rank, ncclCommInitRank. Each group the runtime makes (bp_tp split: MPI_Comm_split) gets a
 * NCCL communicator with the same members and order (ncclCommSplit of the world's, same color and
 * key), and a communication stream of its own.
 *
 * Point-to-point. isend / irecv on a device buffer are queued; the queue is posted as one NCCL
 * group (ncclGroupStart; ncclSend / ncclRecv ...; ncclGroupEnd) on the group's stream when the
 * runtime next tests a request or lets transfers progress (never in the middle of a batch of
 * joined instructions: t->hold, so a batch is one group), after an event recorded on the
 * kernels' stream at the post (a send reads what the kernels wrote). NCCL matches the sends and
 * receives of a pair of ranks in the order they are posted, not by tag; transport_select.c uses
 * NCCL only for programs whose every pair of ranks posts its messages in the same order on both
 * sides (the runtime posts in instruction order). A stream runs its NCCL calls one after another,
 * so a rank's transfers complete in program order; the schedule validator's proof of freedom from
 * deadlock under blocking (rendezvous) semantics with batches covers exactly that.
 *
 * All-reduce. ncclAllReduce in place on the group's stream (a stage group's own communicator), so
 * gradient all-reduces of different stages and the pipeline's transfers never wait on each other.
 *
 * Completion, on the GPU: an event recorded after the call on its stream. Once a request is posted,
 * its test makes the kernels' stream wait for that event (cudaStreamWaitEvent) and reports it done:
 * the host never waits for a transfer, the kernels that read a received buffer (or overwrite a
 * sent one) run after it. The request stays in the table, pending, with what it was waited for
 * (t->why), until its event has fired; the runtime's waits for the GPU (device_cuda.c, under the
 * watchdog) name the oldest pending one when the stream does not finish (`pending`: a peer that
 * never sends; NCCL would wait forever). ncclCommGetAsyncError is checked while requests are
 * pending.
 *
 * Start-up under the watchdog: the unique id goes out in an all-reduce of the MPI transport (a
 * watched wait), and ncclCommInitRank and every ncclCommSplit run on a helper thread while this
 * one polls under the timeout, together with a roll call of the ranks joining: a rank that never
 * joins is named and the job aborted instead of hanging in NCCL's bootstrap. Every NCCL and CUDA
 * call is checked; errors name the call, NCCL's own last message, the peer and the size. */
#include "runtime/transport.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { K_HOST = 0, K_NCCL, K_PENDING };

typedef struct nreq {
  int kind;            /* K_*; -1: free */
  int inner;           /* K_HOST: the MPI transport's request */
  int queued;          /* K_NCCL p2p: waiting in the queue (not yet posted) */
  int send, group, peer;
  void *buf;
  int64_t nbytes;
  cudaEvent_t done;    /* made once per table entry */
  long seq;            /* posting order (the oldest pending one is named) */
  char why[96];        /* K_PENDING: what it was waited for */
} nreq;

typedef struct ngroup {
  ncclComm_t comm;     /* NULL: this rank is not in the group */
  cudaStream_t stream;
} ngroup;

typedef struct tnccl {
  bp_tp inner;         /* the MPI transport it wraps */
  cudaStream_t compute;
  cudaEvent_t ready;   /* recorded on `compute` at each post */
  ngroup *g;           /* indexed like the MPI transport's groups */
  int ng;
  nreq *req;
  int nreq, capreq;
  int *queue, nqueue;  /* request ids of queued p2p, in posting order */
  int failed;          /* a post from nc_progress failed: the next test reports it */
  char ferr[512];
  long seq;
  int device;          /* for the helper thread */
} tnccl;

static int ncfail(bp_tp *t, const char *call, ncclResult_t rc, ncclComm_t comm, const char *ctx) {
  const char *last = comm ? ncclGetLastError(comm) : ncclGetLastError(NULL);
  snprintf(t->err, sizeof t->err, "rank %d: %s%s%s failed: %s%s%s", t->rank, call, ctx ? " " : "", ctx ? ctx : "",
           ncclGetErrorString(rc), last && *last ? " — " : "", last && *last ? last : "");
  return -1;
}
static int cufail(bp_tp *t, const char *call, cudaError_t rc, const char *ctx) {
  snprintf(t->err, sizeof t->err, "rank %d: %s%s%s failed: %s", t->rank, call, ctx ? " " : "", ctx ? ctx : "",
           cudaGetErrorString(rc));
  return -1;
}
#define NC(call, comm, ctx)                                                                        \
  do {                                                                                             \
    ncclResult_t nc_rc_ = (call);                                                                  \
    if (nc_rc_ != ncclSuccess) return ncfail(t, #call, nc_rc_, (comm), (ctx));                    \
  } while (0)
#define CUT(call, ctx)                                                                             \
  do {                                                                                             \
    cudaError_t cu_rc_ = (call);                                                                   \
    if (cu_rc_ != cudaSuccess) return cufail(t, #call, cu_rc_, (ctx));                            \
  } while (0)

static int inner_fail(bp_tp *t) {
  tnccl *s = t->state;
  snprintf(t->err, sizeof t->err, "%s", s->inner.err);
  return -1;
}

static int is_device(const void *p) {
  struct cudaPointerAttributes a;
  if (!p || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return a.type == cudaMemoryTypeDevice;
}

/* Frees pending requests whose transfer is complete; reports a failed communicator. */
static int retire(bp_tp *t) {
  tnccl *s = t->state;
  for (int i = 0; i < s->nreq; i++) {
    nreq *r = &s->req[i];
    if (r->kind != K_PENDING) continue;
    cudaError_t q = cudaEventQuery(r->done);
    if (q == cudaSuccess) {
      r->kind = -1;
      continue;
    }
    if (q != cudaErrorNotReady) return cufail(t, "cudaEventQuery(a transfer's completion event)", q, r->why);
    (void)cudaGetLastError(); /* cudaErrorNotReady is no error */
    ncclResult_t async = ncclSuccess;
    ncclComm_t comm = s->g[r->group].comm;
    NC(ncclCommGetAsyncError(comm, &async), comm, NULL);
    if (async != ncclSuccess && async != ncclInProgress) return ncfail(t, "NCCL communicator", async, comm, r->why);
  }
  return 0;
}

static int new_req(bp_tp *t, int *out) {
  tnccl *s = t->state;
  if (retire(t) < 0) return -1;
  for (int i = 0; i < s->nreq; i++)
    if (s->req[i].kind < 0) {
      *out = i;
      return 0;
    }
  if (s->nreq == s->capreq) {
    int cap = s->capreq ? 2 * s->capreq : 64;
    nreq *r = realloc(s->req, sizeof *r * (size_t)cap);
    int *q = realloc(s->queue, sizeof *q * (size_t)cap);
    if (r) s->req = r;
    if (q) s->queue = q;
    if (!r || !q) {
      snprintf(t->err, sizeof t->err, "rank %d: out of memory for transfer requests", t->rank);
      return -1;
    }
    s->capreq = cap;
  }
  nreq *r = &s->req[s->nreq];
  memset(r, 0, sizeof *r);
  r->kind = -1;
  r->seq = 0;
  CUT(cudaEventCreateWithFlags(&r->done, cudaEventDisableTiming), "(a transfer's completion event)");
  *out = s->nreq++;
  return 0;
}

static int group_of(bp_tp *t, int group, const char *call, ngroup **g) {
  tnccl *s = t->state;
  if (group < 0 || group >= s->ng || !s->g[group].comm) {
    snprintf(t->err, sizeof t->err, "rank %d: %s on group %d, which this rank is not part of", t->rank, call, group);
    return -1;
  }
  *g = &s->g[group];
  return 0;
}

/* Posts the queued point-to-point transfers as one NCCL group; while the executor posts a batch
 * (t->hold), only when `force`. */
static int flush(bp_tp *t, int force) {
  tnccl *s = t->state;
  if (s->nqueue == 0 || (t->hold && !force)) return 0;
  int n = s->nqueue;
  s->nqueue = 0;
  /* every stream that takes part waits for the kernels queued before the posts */
  for (int i = 0; i < n; i++) {
    nreq *r = &s->req[s->queue[i]];
    int first = 1;
    for (int j = 0; j < i; j++) first = first && s->req[s->queue[j]].group != r->group;
    if (first) CUT(cudaStreamWaitEvent(s->g[r->group].stream, s->ready, 0), "(ordering transfers after the kernels)");
  }
  NC(ncclGroupStart(), NULL, NULL);
  for (int i = 0; i < n; i++) {
    nreq *r = &s->req[s->queue[i]];
    ngroup *g = &s->g[r->group];
    char ctx[96];
    snprintf(ctx, sizeof ctx, "(%s rank %d, %lld bytes)", r->send ? "to" : "from", r->peer, (long long)r->nbytes);
    ncclResult_t rc = r->send ? ncclSend(r->buf, (size_t)r->nbytes, ncclUint8, r->peer, g->comm, g->stream)
                              : ncclRecv(r->buf, (size_t)r->nbytes, ncclUint8, r->peer, g->comm, g->stream);
    if (rc != ncclSuccess) {
      ncclGroupEnd();
      return ncfail(t, r->send ? "ncclSend" : "ncclRecv", rc, g->comm, ctx);
    }
  }
  NC(ncclGroupEnd(), NULL, "(posting queued transfers)");
  for (int i = 0; i < n; i++) {
    nreq *r = &s->req[s->queue[i]];
    CUT(cudaEventRecord(r->done, s->g[r->group].stream), "(a transfer's completion event)");
    r->queued = 0;
  }
  return 0;
}

static int nc_p2p(bp_tp *t, int send, int group, void *buf, int64_t nbytes, int peer, int tag, int *req) {
  tnccl *s = t->state;
  int r;
  if (new_req(t, &r) < 0) return -1;
  if (!is_device(buf)) {
    int inner;
    int rc = send ? s->inner.impl->isend(&s->inner, group, buf, nbytes, peer, tag, &inner)
                  : s->inner.impl->irecv(&s->inner, group, buf, nbytes, peer, tag, &inner);
    if (rc < 0) return inner_fail(t);
    s->req[r].kind = K_HOST;
    s->req[r].inner = inner;
    *req = r;
    return 0;
  }
  ngroup *g;
  if (group_of(t, group, send ? "ncclSend" : "ncclRecv", &g) < 0) return -1;
  CUT(cudaEventRecord(s->ready, s->compute), "(ordering a transfer after the kernels)");
  nreq *q = &s->req[r];
  q->kind = K_NCCL;
  q->queued = 1;
  q->send = send;
  q->group = group;
  q->peer = peer;
  q->buf = buf;
  q->nbytes = nbytes;
  q->seq = ++s->seq;
  s->queue[s->nqueue++] = r;
  *req = r;
  return 0;
}

static int nc_isend(bp_tp *t, int group, const void *buf, int64_t nbytes, int peer, int tag, int *req) {
  return nc_p2p(t, 1, group, (void *)buf, nbytes, peer, tag, req);
}

static int nc_irecv(bp_tp *t, int group, void *buf, int64_t nbytes, int peer, int tag, int *req) {
  return nc_p2p(t, 0, group, buf, nbytes, peer, tag, req);
}

static int nc_test(bp_tp *t, int req, int *done) {
  tnccl *s = t->state;
  *done = 0;
  if (req < 0 || req >= s->nreq || s->req[req].kind < 0) {
    snprintf(t->err, sizeof t->err, "rank %d: test of unknown transfer request %d", t->rank, req);
    return -1;
  }
  if (s->failed) {
    snprintf(t->err, sizeof t->err, "%s", s->ferr);
    return -1;
  }
  /* (a request of the batch being posted is never waited for; if it were, it must go out now) */
  if (flush(t, s->req[req].kind == K_NCCL && s->req[req].queued) < 0) return -1;
  nreq *r = &s->req[req];
  if (r->kind == K_HOST) {
    int d = 0;
    if (s->inner.impl->test(&s->inner, r->inner, &d) < 0) return inner_fail(t);
    if (d) r->kind = -1;
    *done = d;
    return 0;
  }
  /* posted: the kernels' stream waits for it; it stays pending (named by `pending`) until done */
  CUT(cudaStreamWaitEvent(s->compute, r->done, 0), "(ordering the kernels after a transfer)");
  const bp_tp_why *why = t->why;
  if (why && why->peer >= 0 && why->mb >= 0)
    snprintf(r->why, sizeof r->why, "the %s for micro-batch %d from rank %d", why->what, why->mb, why->peer);
  else if (why && why->peer >= 0)
    snprintf(r->why, sizeof r->why, "the %s from rank %d", why->what, why->peer);
  else if (why)
    snprintf(r->why, sizeof r->why, "%s", why->what);
  else
    snprintf(r->why, sizeof r->why, "a transfer %s rank %d of group %d", r->send ? "to" : "from", r->peer, r->group);
  r->kind = K_PENDING;
  *done = 1;
  return 0;
}

/* The oldest pending transfer (the GPU's stream waits for it). */
static void nc_pending(bp_tp *t, char *buf, size_t n) {
  tnccl *s = t->state;
  buf[0] = 0;
  nreq *old = NULL;
  for (int i = 0; i < s->nreq; i++) {
    nreq *r = &s->req[i];
    if (r->kind == K_PENDING && cudaEventQuery(r->done) == cudaErrorNotReady && (!old || r->seq < old->seq)) old = r;
  }
  (void)cudaGetLastError();
  if (old)
    snprintf(buf, n, "it waits for %s over NCCL%s", old->why,
             old->peer >= 0 && strstr(old->why, "from rank") ? "; that rank may have died" : "");
}

static int nc_iallreduce(bp_tp *t, int group, void *buf, int64_t count, bp_tp_dtype dtype, int *req) {
  tnccl *s = t->state;
  int r;
  if (new_req(t, &r) < 0) return -1;
  if (!is_device(buf)) {
    int inner;
    if (s->inner.impl->iallreduce(&s->inner, group, buf, count, dtype, &inner) < 0) return inner_fail(t);
    s->req[r].kind = K_HOST;
    s->req[r].inner = inner;
    *req = r;
    return 0;
  }
  if (flush(t, 1) < 0) return -1;
  ngroup *g;
  if (group_of(t, group, "ncclAllReduce", &g) < 0) return -1;
  char ctx[96];
  snprintf(ctx, sizeof ctx, "(group %d, %lld values)", group, (long long)count);
  CUT(cudaEventRecord(s->ready, s->compute), ctx);
  CUT(cudaStreamWaitEvent(g->stream, s->ready, 0), ctx);
  NC(ncclAllReduce(buf, buf, (size_t)count, dtype == BP_TP_F64 ? ncclFloat64 : ncclFloat32, ncclSum, g->comm, g->stream),
     g->comm, ctx);
  nreq *q = &s->req[r];
  CUT(cudaEventRecord(q->done, g->stream), ctx);
  q->kind = K_NCCL;
  q->queued = 0;
  q->send = 0;
  q->group = group;
  q->peer = -1;
  q->buf = buf;
  q->nbytes = count;
  q->seq = ++s->seq;
  *req = r;
  return 0;
}

static int nc_ibarrier(bp_tp *t, int group, int *req) {
  tnccl *s = t->state;
  int r, inner;
  if (new_req(t, &r) < 0) return -1;
  if (s->inner.impl->ibarrier(&s->inner, group, &inner) < 0) return inner_fail(t);
  s->req[r].kind = K_HOST;
  s->req[r].inner = inner;
  *req = r;
  return 0;
}

static int add_group(bp_tp *t, int at, ncclComm_t comm) {
  tnccl *s = t->state;
  if (at >= s->ng) {
    ngroup *g = realloc(s->g, sizeof *g * (size_t)(at + 1));
    if (!g) {
      snprintf(t->err, sizeof t->err, "rank %d: out of memory for communicators", t->rank);
      return -1;
    }
    for (int i = s->ng; i <= at; i++) g[i] = (ngroup){NULL, NULL};
    s->g = g;
    s->ng = at + 1;
  }
  s->g[at].comm = comm;
  CUT(cudaStreamCreateWithFlags(&s->g[at].stream, cudaStreamNonBlocking), "(a communication stream)");
  return 0;
}

/* ---- start-up under the watchdog: ncclCommInitRank / ncclCommSplit on a helper thread ---- */
typedef struct watched {
  int split;                 /* 0: ncclCommInitRank, 1: ncclCommSplit */
  int device;
  int nranks, rank, color, key;
  ncclUniqueId id;
  ncclComm_t parent, comm;
  ncclResult_t rc;
  cudaError_t crc;
  atomic_int done;
} watched;

static void *watched_main(void *p) {
  watched *w = p;
  /* the CUDA device is per thread */
  w->crc = cudaSetDevice(w->device);
  if (w->crc == cudaSuccess)
    w->rc = w->split ? ncclCommSplit(w->parent, w->color, w->key, &w->comm, NULL)
                     : ncclCommInitRank(&w->comm, w->nranks, w->id, w->rank);
  atomic_store(&w->done, 1);
  return NULL;
}

/* Runs w on a helper thread and polls it under `abort_t`'s timeout (with the roll call `roll`, when
 * given, naming a rank that never joins); on timeout prints one line and aborts the job (the
 * thread stays blocked in NCCL: nothing else can end it). 0 when the call returned (w->rc / w->crc
 * say how), -1 with err set when the thread could not start. */
static int run_watched(bp_tp *abort_t, watched *w, bp_tp_roll *roll, const char *what, char *err, size_t errlen) {
  pthread_t th;
  atomic_init(&w->done, 0);
  int prc = pthread_create(&th, NULL, watched_main, w);
  if (prc != 0) {
    snprintf(err, errlen, "pthread_create (for %s) failed: %s", what, strerror(prc));
    return -1;
  }
  double t0 = bp_tp_now();
  long polls = 0;
  int missing = -1;
  while (!atomic_load(&w->done)) {
    if (roll && roll->req && bp_tp_rollcall_missing(abort_t, roll, &missing) < 0) missing = -1;
    double now = bp_tp_now();
    if (now - t0 > abort_t->timeout_s) {
      if (missing >= 0 && missing < abort_t->size)
        fprintf(stderr, "rank %d: %s not complete after %.0f s: rank %d never joined (it may have died)\n",
                abort_t->rank, what, now - t0, missing);
      else
        fprintf(stderr, "rank %d: %s not complete after %.0f s (a rank taking part may have died)\n", abort_t->rank,
                what, now - t0);
      fflush(stderr);
      abort_t->impl->abort(abort_t, 1);
      return -1; /* not reached */
    }
    bp_tp_backoff(++polls);
  }
  pthread_join(th, NULL);
  return 0;
}

static int nc_split(bp_tp *t, int color, int key, int *group) {
  tnccl *s = t->state;
  if (s->inner.impl->split(&s->inner, color, key, group) < 0) return inner_fail(t);
  /* the same members in the same order: collective over the world's communicator, under the
   * watchdog (a helper thread calls it) */
  watched w;
  memset(&w, 0, sizeof w);
  w.split = 1;
  w.device = s->device;
  w.parent = s->g[0].comm;
  w.color = color >= 0 ? color : NCCL_SPLIT_NOCOLOR;
  w.key = key;
  char what[64];
  snprintf(what, sizeof what, "ncclCommSplit (color %d)", color);
  if (run_watched(&s->inner, &w, NULL, what, t->err, sizeof t->err) < 0) return -1;
  if (w.crc != cudaSuccess) return cufail(t, "cudaSetDevice (the ncclCommSplit thread)", w.crc, NULL);
  NC(w.rc, s->g[0].comm, what);
  if (*group < 0) return 0;
  return add_group(t, *group, w.comm);
}

static int nc_group_size(bp_tp *t, int group, int *size) {
  tnccl *s = t->state;
  return s->inner.impl->group_size(&s->inner, group, size) < 0 ? inner_fail(t) : 0;
}

static void nc_progress(bp_tp *t) {
  tnccl *s = t->state;
  /* errors surface at the next test */
  if (!s->failed && (flush(t, 0) < 0 || retire(t) < 0)) {
    s->failed = 1;
    snprintf(s->ferr, sizeof s->ferr, "%s", t->err);
  }
  s->inner.impl->progress(&s->inner);
}

static void nc_abort(bp_tp *t, int code) {
  tnccl *s = t->state;
  /* NCCL kernels waiting for a dead peer would keep the GPU busy: abort the communicators first */
  for (int i = 0; i < s->ng; i++)
    if (s->g[i].comm) ncclCommAbort(s->g[i].comm);
  s->inner.impl->abort(&s->inner, code);
}

static int nc_finalize(bp_tp *t) {
  tnccl *s = t->state;
  int rc = 0;
  /* teardown: failures are reported, MPI is finalised regardless */
  for (int i = s->ng - 1; i >= 0; i--) {
    if (s->g[i].comm) {
      ncclResult_t r = ncclCommDestroy(s->g[i].comm);
      if (r != ncclSuccess && rc == 0) rc = ncfail(t, "ncclCommDestroy", r, NULL, NULL);
    }
    if (s->g[i].stream) {
      cudaError_t c = cudaStreamDestroy(s->g[i].stream);
      if (c != cudaSuccess && rc == 0) rc = cufail(t, "cudaStreamDestroy(communication stream)", c, NULL);
    }
  }
  for (int i = 0; i < s->nreq; i++) cudaEventDestroy(s->req[i].done);
  cudaEventDestroy(s->ready);
  if (rc < 0) fprintf(stderr, "train: %s\n", t->err);
  free(s->g);
  free(s->req);
  free(s->queue);
  bp_tp inner = s->inner;
  free(s);
  return bp_tp_unwrap_finalize(t, &inner, rc);
}

static const bp_tp_impl nccl_impl = {
    "nccl", nc_isend, nc_irecv, nc_test, nc_iallreduce, nc_ibarrier, nc_split, nc_group_size,
    nc_progress, nc_abort, nc_finalize, nc_pending,
};

int bp_tp_nccl_wrap(bp_tp *t, void *stream, char *err, size_t errlen) {
  /* the world's unique id, from rank 0, in a watched all-reduce (the other ranks add zeros); its
   * status travels with it, so no rank waits alone */
  enum { IDN = (int)sizeof(ncclUniqueId) };
  double boot[IDN + 1];
  memset(boot, 0, sizeof boot);
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  if (t->rank == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    boot[IDN] = (double)r;
    for (int i = 0; i < IDN; i++) boot[i] = (double)((unsigned char *)&id)[i];
  }
  if (bp_tp_allreduce(t, 0, boot, IDN + 1, BP_TP_F64, "the broadcast of the NCCL unique id") < 0) {
    snprintf(err, errlen, "%s", t->err);
    return -1;
  }
  if (boot[IDN] != 0) {
    snprintf(err, errlen, "rank 0: ncclGetUniqueId failed: %s", ncclGetErrorString((ncclResult_t)(int)boot[IDN]));
    return -1;
  }
  for (int i = 0; i < IDN; i++) ((unsigned char *)&id)[i] = (unsigned char)boot[i];
  if (t->fault_nccl) {
    fprintf(stderr, "rank %d: BITPIPE_FAULT: stopping before joining the NCCL communicator\n", t->rank);
    fflush(stderr);
    for (;;) pause();
  }
  int device = 0;
  cudaError_t c = cudaGetDevice(&device);
  if (c != cudaSuccess) {
    snprintf(err, errlen, "cudaGetDevice failed: %s", cudaGetErrorString(c));
    return -1;
  }
  /* ncclCommInitRank under the watchdog, with a roll call of the ranks joining it */
  bp_tp_roll roll = {0};
  if (bp_tp_rollcall_start(t, 2, &roll) < 0) {
    snprintf(err, errlen, "%s", t->err);
    bp_tp_rollcall_end(&roll);
    return -1;
  }
  watched w;
  memset(&w, 0, sizeof w);
  w.device = device;
  w.nranks = t->size;
  w.rank = t->rank;
  w.id = id;
  char what[64];
  snprintf(what, sizeof what, "ncclCommInitRank (world of %d ranks)", t->size);
  int wrc = run_watched(t, &w, &roll, what, err, errlen);
  /* NCCL's bootstrap saw every rank, so their roll call bytes were sent before: complete them */
  for (double t0 = bp_tp_now(); wrc == 0;) {
    int missing;
    if (bp_tp_rollcall_missing(t, &roll, &missing) < 0) {
      snprintf(err, errlen, "%s", t->err);
      wrc = -1;
    } else if (missing < 0)
      break;
    else if (bp_tp_now() - t0 > t->timeout_s) {
      snprintf(err, errlen, "the roll call of the NCCL start-up did not complete after %.0f s", t->timeout_s);
      wrc = -1;
    } else
      usleep(20);
  }
  bp_tp_rollcall_end(&roll);
  if (wrc < 0) {
    if (w.comm && w.rc == ncclSuccess) ncclCommDestroy(w.comm);
    return -1;
  }
  if (w.crc != cudaSuccess) {
    snprintf(err, errlen, "cudaSetDevice(%d) (the ncclCommInitRank thread) failed: %s", device, cudaGetErrorString(w.crc));
    return -1;
  }
  if (w.rc != ncclSuccess) {
    const char *last = ncclGetLastError(NULL);
    snprintf(err, errlen, "ncclCommInitRank(world of %d ranks) failed: %s%s%s", t->size, ncclGetErrorString(w.rc),
             last && *last ? " — " : "", last && *last ? last : "");
    return -1;
  }
  ncclComm_t world = w.comm;
  tnccl *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    ncclCommDestroy(world);
    return -1;
  }
  s->inner = *t;
  s->compute = (cudaStream_t)stream;
  s->device = device;
  c = cudaEventCreateWithFlags(&s->ready, cudaEventDisableTiming);
  if (c != cudaSuccess) {
    snprintf(err, errlen, "cudaEventCreateWithFlags(&ready) failed: %s", cudaGetErrorString(c));
    ncclCommDestroy(world);
    free(s);
    return -1;
  }
  t->state = s;
  t->impl = &nccl_impl;
  if (add_group(t, 0, world) < 0) {
    snprintf(err, errlen, "%s", t->err);
    ncclCommDestroy(world);
    cudaEventDestroy(s->ready);
    free(s->g);
    t->state = s->inner.state;
    t->impl = s->inner.impl;
    free(s);
    return -1;
  }
  return 0;
}
