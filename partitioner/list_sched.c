/* partitioner/list_sched.c — derives a compute order by list scheduling: an event-driven run
 * with nominal op durations in which every idle rank picks, among the ops whose inputs are
 * there, a backward first (it frees memory and feeds the ranks upstream), else a forward if its
 * stash is under its cap, else (split backward) a deferred weight-gradient op. Preference among
 * ready ops of one kind follows per-rank lists. The order it records is the order of a real
 * execution, so it never deadlocks; any costs may replay it. Used by the zero-bubble schedules. */
#include "partitioner/list_sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  double ready;   /* inputs available at (INFINITY: not yet known) */
  uint8_t state;  /* 0 pending, 1 scheduled */
} opstate;

/* Op index: (kind, mb, stage) with kind 0 = F, 1 = B (or BWD_INPUT), 2 = W. */
static size_t ix(const bp_program *p, int kind, int mb, int stage) {
  return ((size_t)kind * p->N + mb) * p->n_stages + stage;
}

int bp_list_schedule(bp_program *p, const bp_ls_spec *sp, char *err, size_t errlen) {
  int D = p->D, N = p->N, S = p->n_stages, split = p->split_backward;
  size_t nops = (size_t)3 * N * S;
  opstate *op = malloc(sizeof *op * nops);
  double *free_at = calloc(D, sizeof(double));
  int *stash = calloc(D, sizeof(int)), *fpos = calloc(D, sizeof(int)), *bpos = calloc(D, sizeof(int));
  int *wq = malloc(sizeof(int) * (size_t)N * S * 2), wn = 0; /* deferred W: (mb, stage) */
  int inflight[2] = {0, 0}; /* per pipe */
  int rc = 0;
  if (!op || !free_at || !stash || !fpos || !bpos || !wq) {
    rc = bp_sched_errf(err, errlen, "%s: out of memory", p->schedule);
    goto out;
  }
  for (size_t i = 0; i < nops; i++) op[i] = (opstate){INFINITY, 0};
  for (int m = 0; m < N; m++) op[ix(p, 0, m, 0)].ready = 0;
  long remaining = (long)N * S * (split ? 3 : 2);
  double t = 0;
  while (remaining > 0) {
    int progressed = 0;
    for (int r = 0; r < D; r++) {
      if (free_at[r] > t) continue;
      const bp_ls_list *bl = &sp->bwd[r], *fl = &sp->fwd[r];
      int kind = -1, m = -1, s = -1, wslot = -1;
      /* first not-yet-scheduled position of each list, so scans stay short */
      while (bpos[r] < bl->n && op[ix(p, 1, bl->mb[bpos[r]], bl->stage[bpos[r]])].state) bpos[r]++;
      while (fpos[r] < fl->n && op[ix(p, 0, fl->mb[fpos[r]], fl->stage[fpos[r]])].state) fpos[r]++;
      {
      for (int i = bpos[r]; i < (sp->bwd_strict && bpos[r] < bl->n ? bpos[r] + 1 : bl->n) && kind < 0; i++) {
        opstate *o = &op[ix(p, 1, bl->mb[i], bl->stage[i])];
        if (!o->state && o->ready <= t) kind = 1, m = bl->mb[i], s = bl->stage[i];
      }
      }
      int cap = sp->cap ? sp->cap[r] : 1 << 30;
      if (kind < 0 && stash[r] < cap)
        for (int i = fpos[r]; i < fl->n && kind < 0; i++) {
          opstate *o = &op[ix(p, 0, fl->mb[i], fl->stage[i])];
          if (o->state || o->ready > t) continue;
          if (fl->stage[i] == 0 && sp->inflight && inflight[p->mb_pipe[fl->mb[i]]] >= sp->inflight)
            continue; /* admission control: this pipe has enough micro-batches in flight */
          if (sp->unit > 0 && sp->cap) {
            /* reserve room for the forwards of the oldest unit still pending here */
            int u0 = fl->mb[fpos[r]] / sp->unit, u = fl->mb[i] / sp->unit, pend = 0;
            if (u > u0) {
              for (int j = fpos[r]; j < fl->n && fl->mb[j] / sp->unit == u0; j++)
                pend += !op[ix(p, 0, fl->mb[j], fl->stage[j])].state;
              if (stash[r] + pend >= cap) continue;
            }
          }
          kind = 0, m = fl->mb[i], s = fl->stage[i];
        }
      if (kind < 0 && split)
        for (int i = 0; i < wn; i++) /* oldest deferred W of this rank */
          if (p->stage_rank[p->mb_pipe[wq[2 * i]] * S + wq[2 * i + 1]] == r) {
            wslot = i, kind = 2, m = wq[2 * i], s = wq[2 * i + 1];
            break;
          }
      if (kind < 0) continue;
      double d = kind == 0 ? sp->f : kind == 1 ? (split ? sp->b : sp->b + sp->w) : sp->w;
      double end = t + d;
      int q = p->mb_pipe[m];
      bp_op emit = kind == 0 ? BP_OP_FWD : kind == 2 ? BP_OP_BWD_WEIGHT : split ? BP_OP_BWD_INPUT : BP_OP_BWD;
      if (bp_program_emit(p, r, emit, p->stage_chunk[q * S + s], m, -1, 0, err, errlen)) {
        rc = -1;
        goto out;
      }
      op[ix(p, kind, m, s)].state = 1;
      free_at[r] = end;
      remaining--, progressed = 1;
      if (kind == 0 && s == 0) inflight[q]++;
      if (kind == 1 && s == 0) inflight[q]--;
      if (kind == 0) {
        stash[r]++;
        if (s + 1 < S) op[ix(p, 0, m, s + 1)].ready = end;
        /* the last stage's backward needs only its own forward */
        if (s == S - 1) op[ix(p, 1, m, s)].ready = end;
      } else if (kind == 1) {
        if (s > 0) op[ix(p, 1, m, s - 1)].ready = end; /* its forward is done already */
        if (split) wq[2 * wn] = m, wq[2 * wn + 1] = s, wn++;
        else stash[r]--;
      } else {
        stash[r]--;
        memmove(&wq[2 * wslot], &wq[2 * wslot + 2], sizeof(int) * 2 * (wn - wslot - 1));
        wn--;
      }
    }
    if (remaining == 0) break;
    /* advance to the next moment something can change: a rank frees up or an op gets ready */
    double next = INFINITY;
    for (int r = 0; r < D; r++)
      if (free_at[r] > t && free_at[r] < next) next = free_at[r];
    for (size_t i = 0; i < nops; i++)
      if (!op[i].state && op[i].ready > t && op[i].ready < next) next = op[i].ready;
    if (progressed) continue; /* a zero-length op may have made something ready at t */
    if (!isfinite(next)) {
      rc = bp_sched_errf(err, errlen,
                         "%s: list scheduling stalled with %ld ops left (memory caps too tight)",
                         p->schedule, remaining);
      goto out;
    }
    t = next;
  }
out:
  free(op), free(free_at), free(stash), free(fpos), free(bpos), free(wq);
  return rc;
}

int bp_ls_lists_alloc(bp_ls_list *l, int D, int per_rank) {
  for (int r = 0; r < D; r++) {
    l[r].n = 0;
    l[r].mb = malloc(sizeof(int) * per_rank);
    l[r].stage = malloc(sizeof(int) * per_rank);
    if (!l[r].mb || !l[r].stage) {
      bp_ls_lists_free(l, r + 1);
      return -1;
    }
  }
  return 0;
}

void bp_ls_lists_free(bp_ls_list *l, int D) {
  for (int r = 0; r < D; r++) free(l[r].mb), free(l[r].stage), l[r].mb = l[r].stage = NULL;
}
