/* runtime/transport.c — what every transport shares: the watchdog wait (poll the request, back off
 * between polls: a yield, or a short sleep when ranks outnumber cores so they leave the CPU to the
 * ranks computing; abort the job with one line naming the rank waited for when the timeout
 * passes), the blocking helpers built on the non-blocking calls (so they are watched too), and the
 * start-up roll call. */
#include "runtime/transport.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

double bp_tp_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int bp_tp_test(bp_tp *t, int req, int *done) { return t->impl->test(t, req, done); }

/* 1 when this machine runs more ranks than it has cores (Open MPI / MPICH / Slurm say how many
 * ranks are local; unknown: assumed not). */
static int oversubscribed(void) {
  static int known = -1;
  if (known >= 0) return known;
  const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"};
  long local = 0;
  for (size_t i = 0; i < sizeof vars / sizeof vars[0] && local <= 0; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) local = atol(v);
  }
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  known = local > 0 && cores > 0 && local > cores;
  return known;
}

void bp_tp_backoff(long polls) {
  if (polls <= 64) return;
  /* With a core per rank, keep polling (yielding only): MPI moves a large message in fragments, each
   * needing a call on both sides, so sleeping between polls throttles it (GPT-2 124M, D=2 on one
   * H100, 154 MB of tied gradients all-reduced through the host each step: 1736 ms a step with
   * 200 us naps, 934 without). With more ranks than cores, sleep between polls: the ranks
   * computing need the CPU. */
  if (!oversubscribed()) {
    sched_yield();
    return;
  }
  struct timespec ts = {0, polls > 4096 ? 200000 : 20000};
  nanosleep(&ts, NULL);
}

int bp_tp_wait(bp_tp *t, int req, const bp_tp_why *why) {
  double t0 = bp_tp_now(), now = t0;
  long polls = 0;
  t->why = why;
  for (;;) {
    int done = 0;
    if (t->impl->test(t, req, &done) < 0) return -1;
    if (done) break;
    polls++;
    now = bp_tp_now();
    if (now - t0 > t->timeout_s) {
      char mb[48] = "";
      if (why && why->mb >= 0) snprintf(mb, sizeof mb, " for micro-batch %d", why->mb);
      if (why && why->peer >= 0)
        fprintf(stderr, "rank %d: no %s%s from rank %d after %.0f s (rank %d may have died)\n", t->rank,
                why->what, mb, why->peer, now - t0, why->peer);
      else
        fprintf(stderr, "rank %d: %s not complete after %.0f s (a rank taking part may have died)\n", t->rank,
                why ? why->what : "a transfer", now - t0);
      fflush(stderr);
      t->impl->abort(t, 1);
      return -1; /* not reached */
    }
    /* Spin briefly (a message usually lands within microseconds of a short compute), then back
     * off (bp_tp_backoff: sleeps only when ranks outnumber cores) */
    bp_tp_backoff(polls);
  }
  t->waited_s += now - t0;
  t->why = NULL;
  return 0;
}

int bp_tp_allreduce(bp_tp *t, int group, void *buf, int64_t count, bp_tp_dtype dtype, const char *what) {
  int req;
  if (t->impl->iallreduce(t, group, buf, count, dtype, &req) < 0) return -1;
  bp_tp_why why = {what, -1, -1};
  return bp_tp_wait(t, req, &why);
}

int bp_tp_barrier(bp_tp *t, int group, const char *what) {
  int req;
  if (t->impl->ibarrier(t, group, &req) < 0) return -1;
  bp_tp_why why = {what, -1, -1};
  return bp_tp_wait(t, req, &why);
}

void bp_tp_abort(bp_tp *t, int code) { t->impl->abort(t, code); }

int bp_tp_unwrap_finalize(bp_tp *t, bp_tp *inner, int rc) {
  t->state = inner->state;
  t->impl = inner->impl;
  if (inner->impl->finalize(inner) < 0) {
    snprintf(t->err, sizeof t->err, "%s", inner->err);
    return -1;
  }
  return rc;
}

int bp_tp_rollcall_start(bp_tp *t, int tag, bp_tp_roll *r) {
  int W = t->size, n = W - 1;
  r->req = malloc(sizeof(int) * (size_t)(2 * n + 1));
  r->buf = calloc((size_t)W + 1, 1);
  if (!r->req || !r->buf) {
    bp_tp_rollcall_end(r);
    snprintf(t->err, sizeof t->err, "rank %d: out of memory", t->rank);
    return -1;
  }
  for (int i = 0; i < 2 * n; i++) r->req[i] = -1;
  r->buf[W] = 1; /* what every rank sends */
  for (int w = 0, k = 0; w < W; w++) {
    if (w == t->rank) continue;
    if (t->impl->irecv(t, 0, r->buf + w, 1, w, tag, &r->req[k]) < 0 ||
        t->impl->isend(t, 0, r->buf + W, 1, w, tag, &r->req[n + k]) < 0)
      return -1; /* the caller aborts: requests in flight are left to MPI_Abort */
    k++;
  }
  return 0;
}

int bp_tp_rollcall_missing(bp_tp *t, bp_tp_roll *r, int *missing) {
  int W = t->size, n = W - 1;
  *missing = -1;
  for (int i = 0; i < 2 * n; i++) {
    if (r->req[i] < 0) continue;
    int done = 0;
    if (t->impl->test(t, r->req[i], &done) < 0) return -1;
    if (done) r->req[i] = -1;
    else if (*missing < 0) *missing = i < n ? (i < t->rank ? i : i + 1) : -2; /* -2: only sends remain */
  }
  if (*missing == -2) *missing = W; /* sends in flight: not done, nobody to name */
  return 0;
}

void bp_tp_rollcall_end(bp_tp_roll *r) {
  free(r->req);
  free(r->buf);
  r->req = NULL;
  r->buf = NULL;
}

int bp_tp_rollcall(bp_tp *t, int tag, const char *what) {
  bp_tp_roll r = {0};
  if (bp_tp_rollcall_start(t, tag, &r) < 0) {
    bp_tp_rollcall_end(&r);
    return -1;
  }
  double t0 = bp_tp_now();
  long polls = 0;
  for (;;) {
    int missing;
    if (bp_tp_rollcall_missing(t, &r, &missing) < 0) {
      bp_tp_rollcall_end(&r);
      return -1;
    }
    if (missing < 0) break;
    double now = bp_tp_now();
    if (now - t0 > t->timeout_s) {
      if (missing < t->size)
        fprintf(stderr, "rank %d: no %s from rank %d after %.0f s (rank %d may have died)\n", t->rank, what, missing,
                now - t0, missing);
      else
        fprintf(stderr, "rank %d: %s not complete after %.0f s (a rank taking part may have died)\n", t->rank, what,
                now - t0);
      fflush(stderr);
      t->impl->abort(t, 1);
      bp_tp_rollcall_end(&r);
      return -1; /* not reached */
    }
    bp_tp_backoff(++polls);
  }
  bp_tp_rollcall_end(&r);
  return 0;
}
