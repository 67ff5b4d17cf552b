/* runtime/trace.c — --trace FILE: a Chrome / Perfetto trace of what every rank really did,
 * measured with the executor's own clocks: compute (forward, backward halves, optimizer), the
 * time blocked waiting for activations, gradients, sends and all-reduces, and the moments
 * transfers were posted. Each rank records into memory; at the end world rank 0 gathers every
 * rank's events and writes one JSON file (one process row per rank: thread "compute" for what
 * blocks the rank, thread "transfers" for posts). Times are microseconds since the start barrier
 * of each rank's own monotonic clock (the ranks of one machine share it). */
#include "runtime/rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_MAX_EVENTS (1 << 22)
#define TAG_COUNT 8
#define TAG_EVENTS 9

void bp_rt_trace_add(bp_rt *rt, int kind, int chunk, int mb, int peer, double t0, double t1) {
  if (!rt->tracing || rt->nev >= TRACE_MAX_EVENTS) return;
  if (rt->nev == rt->capev) {
    long cap = rt->capev ? rt->capev * 2 : 4096;
    bp_rt_event *n = realloc(rt->ev, sizeof *n * (size_t)cap);
    if (!n) return; /* the trace is best effort: stop recording rather than fail the run */
    rt->ev = n;
    rt->capev = cap;
  }
  bp_rt_event *v = &rt->ev[rt->nev++];
  v->t0 = t0 - rt->t_start;
  v->t1 = t1 - rt->t_start;
  v->kind = (int16_t)kind;
  v->chunk = (int16_t)chunk;
  v->mb = mb;
  v->peer = peer;
  v->step = (int32_t)(kind == RT_EV_CKPT ? rt->step : rt->step + 1); /* a checkpoint follows its step */
}

static const char *kind_name(int k) {
  switch (k) {
  case BP_OP_FWD: return "F";
  case BP_OP_BWD: return "B";
  case BP_OP_BWD_INPUT: return "B(input)";
  case BP_OP_BWD_WEIGHT: return "W";
  case BP_OP_SEND_ACT: return "send act";
  case BP_OP_RECV_ACT: return "recv act";
  case BP_OP_SEND_GRAD: return "send grad";
  case BP_OP_RECV_GRAD: return "recv grad";
  case BP_OP_LOCAL_ACT: return "local act";
  case BP_OP_LOCAL_GRAD: return "local grad";
  case BP_OP_ALLREDUCE_START: return "all-reduce start";
  case BP_OP_OPTIMIZER_STEP: return "optimizer";
  case RT_EV_WAIT_ACT: return "wait act";
  case RT_EV_WAIT_GRAD: return "wait grad";
  case RT_EV_WAIT_SEND: return "wait send";
  case RT_EV_WAIT_ALLREDUCE: return "wait all-reduce";
  case RT_EV_SYNC: return "grad sync";
  case RT_EV_CKPT: return "checkpoint";
  default: return "?";
  }
}

static const char *kind_cat(int k) {
  if (k <= BP_OP_BWD_WEIGHT || k == BP_OP_OPTIMIZER_STEP) return "compute";
  if (k >= RT_EV_WAIT_ACT && k <= RT_EV_SYNC) return "wait";
  if (k == RT_EV_CKPT) return "checkpoint";
  if (k == BP_OP_LOCAL_ACT || k == BP_OP_LOCAL_GRAD) return "copy";
  return "transfer";
}

static void write_rank(FILE *f, const bp_rt *rt, int w, const bp_rt_event *ev, long n, int *first) {
  fprintf(f, "%s{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}},\n", *first ? "" : ",",
          w, w);
  fprintf(f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"compute\"}},\n", w);
  fprintf(f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":1,\"args\":{\"name\":\"transfers\"}}", w);
  *first = 0;
  int C = rt->prog->chunks_per_rank, r = w % rt->D;
  for (long i = 0; i < n; i++) {
    const bp_rt_event *v = &ev[i];
    int post = (v->kind >= BP_OP_SEND_ACT && v->kind <= BP_OP_RECV_GRAD) || v->kind == BP_OP_ALLREDUCE_START;
    int stage = v->chunk >= 0 && v->chunk < C ? bp_program_chunk(rt->prog, r, v->chunk)->stage : -1;
    char name[96];
    if (v->mb >= 0) snprintf(name, sizeof name, "%s m%d", kind_name(v->kind), v->mb);
    else snprintf(name, sizeof name, "%s", kind_name(v->kind));
    if (stage >= 0) snprintf(name + strlen(name), sizeof name - strlen(name), " (stage %d)", stage);
    fprintf(f, ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"%s\",\"ts\":%.3f,", name, kind_cat(v->kind), post ? "i" : "X",
            v->t0 * 1e6);
    if (post) fprintf(f, "\"s\":\"t\",");
    else fprintf(f, "\"dur\":%.3f,", (v->t1 - v->t0) * 1e6);
    fprintf(f, "\"pid\":%d,\"tid\":%d,\"args\":{\"step\":%d", w, post ? 1 : 0, v->step);
    if (v->chunk >= 0) fprintf(f, ",\"chunk\":%d", v->chunk);
    if (v->peer >= 0) fprintf(f, ",\"peer\":%d", v->peer);
    fprintf(f, "}}");
  }
}

int bp_rt_trace_write(bp_rt *rt, const char *path, bp_err *e) {
  bp_tp *tp = rt->tp;
  int64_t n = rt->nev;
  if (rt->wrank != 0) {
    int req;
    bp_tp_why why = {"sending the trace to rank 0", -1, -1};
    if (tp->impl->isend(tp, 0, &n, sizeof n, 0, TAG_COUNT, &req) < 0 || bp_tp_wait(tp, req, &why) < 0)
      return bp_rt_errf(rt, e, "%s", tp->err);
    if (n > 0 && (tp->impl->isend(tp, 0, rt->ev, n * (int64_t)sizeof(bp_rt_event), 0, TAG_EVENTS, &req) < 0 ||
                  bp_tp_wait(tp, req, &why) < 0))
      return bp_rt_errf(rt, e, "%s", tp->err);
    return 0;
  }
  FILE *f = fopen(path, "w");
  int rc = 0;
  if (!f) rc = bp_errf(e, "--trace '%s': cannot write it", path);
  int first = 1;
  if (f) {
    fprintf(f, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"schedule\":\"%s\",\"clock\":\"measured\"},\"traceEvents\":[\n",
            rt->prog->schedule);
    write_rank(f, rt, 0, rt->ev, rt->nev, &first);
  }
  /* the other ranks' events, one rank at a time (all ranks send; rank 0 always receives) */
  for (int w = 1; w < rt->W; w++) {
    int64_t k = 0;
    int req;
    bp_tp_why why = {"trace events", -1, w};
    if (tp->impl->irecv(tp, 0, &k, sizeof k, w, TAG_COUNT, &req) < 0 || bp_tp_wait(tp, req, &why) < 0)
      return bp_rt_errf(rt, e, "%s", tp->err);
    bp_rt_event *ev = k > 0 ? malloc(sizeof *ev * (size_t)k) : NULL;
    if (k > 0 && !ev) {
      if (f) fclose(f);
      return bp_rt_errf(rt, e, "out of memory receiving the trace");
    }
    if (k > 0 && (tp->impl->irecv(tp, 0, ev, k * (int64_t)sizeof *ev, w, TAG_EVENTS, &req) < 0 ||
                  bp_tp_wait(tp, req, &why) < 0)) {
      free(ev);
      if (f) fclose(f);
      return bp_rt_errf(rt, e, "%s", tp->err);
    }
    if (f) write_rank(f, rt, w, ev, k, &first);
    free(ev);
  }
  if (f) {
    fprintf(f, "\n]}\n");
    if (fclose(f) != 0 && rc == 0) rc = bp_errf(e, "--trace '%s': write error", path);
  }
  return rc;
}
