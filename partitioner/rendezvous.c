/* partitioner/rendezvous.c — runs the programs' communication under rendezvous semantics (see
 * rendezvous.h): a rank posts a whole batch of joined send/recv instructions at once; a send and
 * its receive complete together once both are posted; a batch is finished when all its members
 * are; ALLREDUCE_START never blocks and ALLREDUCE_WAIT blocks until every replica of the stage has
 * started. Compute instructions are not checked here (the validator's dataflow pass does that).
 * A worklist wakes a rank only when something it may wait for happened, so a run is linear in
 * the program's length. */
#include "partitioner/rendezvous.h"

#include <stdlib.h>
#include <string.h>


static int is_send(const bp_instr *x) { return x->op == BP_OP_SEND_ACT || x->op == BP_OP_SEND_GRAD; }

void bp_rdv_free(bp_rdv *x) {
  free(x->off), free(x->partner), free(x->bstart), free(x->bend), free(x->pc), free(x->done);
  memset(x, 0, sizeof *x);
}

int bp_rdv_init(bp_rdv *x, const bp_program *p, char *err, size_t errlen) {
  memset(x, 0, sizeof *x);
  int D = p->D;
  x->D = D;
  x->off = malloc(sizeof(int) * (D + 1));
  x->pc = calloc(D, sizeof(int));
  if (!x->off || !x->pc) goto oom;
  x->off[0] = 0;
  for (int r = 0; r < D; r++) x->off[r + 1] = x->off[r] + p->rank[r].n;
  int total = x->off[D];
  size_t K = (size_t)2 * p->N * p->n_stages;
  x->partner = malloc(sizeof(int) * (total + 1));
  x->bstart = malloc(sizeof(int) * (total + 1));
  x->bend = malloc(sizeof(int) * (total + 1));
  x->done = calloc(total + 1, 1);
  int *slot = malloc(sizeof(int) * K * 2); /* per message: global id of send, of recv */
  if (!x->partner || !x->bstart || !x->bend || !x->done || !slot) {
    free(slot);
    goto oom;
  }
  for (size_t k = 0; k < K * 2; k++) slot[k] = -1;
  int rc = 0;
  for (int r = 0; r < D && rc == 0; r++) {
    const bp_rank_program *rp = &p->rank[r];
    for (int i = 0; i < rp->n;) { /* batches */
      int e = i + 1;
      while (e < rp->n && rp->code[e].joined) e++;
      for (int j = i; j < e; j++) x->bstart[x->off[r] + j] = i, x->bend[x->off[r] + j] = e;
      i = e;
    }
    for (int i = 0; i < rp->n && rc == 0; i++) {
      const bp_instr *in = &rp->code[i];
      x->partner[x->off[r] + i] = -1;
      if (!bp_op_is_p2p((bp_op)in->op)) continue;
      int *s = &slot[(size_t)bp_program_msg_key(p, r, in, NULL) * 2 + !is_send(in)];
      if (*s >= 0) {
        int r0 = 0;
        while (x->off[r0 + 1] <= *s) r0++;
        char b[96];
        rc = bp_sched_errf(err, errlen,
                           "rank %d instruction %d (%s): the same message is already %s at rank "
                           "%d instruction %d",
                           r, i, bp_instr_str(p, in, b, sizeof b),
                           is_send(in) ? "sent" : "received", r0, *s - x->off[r0]);
      }
      *s = x->off[r] + i;
    }
  }
  for (size_t k = 0; k < K && rc == 0; k++) {
    int s = slot[2 * k], v = slot[2 * k + 1];
    if ((s < 0) == (v < 0)) {
      if (s >= 0) x->partner[s] = v, x->partner[v] = s;
      continue;
    }
    int g = s >= 0 ? s : v, r = 0;
    while (x->off[r + 1] <= g) r++;
    const bp_instr *in = &p->rank[r].code[g - x->off[r]];
    char b[96];
    static const char *want[BP_OP_COUNT] = {[BP_OP_SEND_ACT] = "RECV_ACT", [BP_OP_RECV_ACT] = "SEND_ACT",
                                            [BP_OP_SEND_GRAD] = "RECV_GRAD", [BP_OP_RECV_GRAD] = "SEND_GRAD"};
    rc = bp_sched_errf(err, errlen, "rank %d instruction %d (%s): no matching %s on rank %d", r,
                       g - x->off[r], bp_instr_str(p, in, b, sizeof b), want[in->op], in->peer);
  }
  free(slot);
  if (rc) bp_rdv_free(x);
  return rc;
oom:
  bp_rdv_free(x);
  return bp_sched_errf(err, errlen, "rendezvous: out of memory");
}

/* The rank holding global instruction g: the last r with off[r] <= g. */
static int rank_of(const bp_rdv *x, int g) {
  int lo = 0, hi = x->D - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (x->off[mid] <= g) lo = mid; else hi = mid - 1;
  }
  return lo;
}

/* A batch is posted when its rank stands at the batch's first instruction. */
static int posted(const bp_rdv *x, int g) { return x->pc[rank_of(x, g)] == x->bstart[g]; }

/* A FIFO of ranks to (re)examine; each rank is in it at most once. */
typedef struct {
  int *q, head, len, D;
  uint8_t *in;
} worklist;

static void wake(worklist *w, int r) {
  if (w->in[r]) return;
  w->in[r] = 1;
  w->q[(w->head + w->len++) % w->D] = r;
}

static int take(worklist *w) {
  int r = w->q[w->head];
  w->head = (w->head + 1) % w->D, w->len--;
  w->in[r] = 0;
  return r;
}

int bp_rdv_run(bp_rdv *x, const bp_program *p) {
  int D = p->D, S = p->n_stages;
  worklist w = {malloc(sizeof(int) * D), 0, 0, D, calloc(D, 1)};
  int *started = calloc(S, sizeof(int));  /* replicas that started stage s's all-reduce */
  int *waits_for = malloc(sizeof(int) * D); /* stage a rank waits for in ALLREDUCE_WAIT */
  if (!w.q || !w.in || !started || !waits_for) {
    free(w.q), free(w.in), free(started), free(waits_for);
    return -1;
  }
  memset(x->pc, 0, sizeof(int) * D);
  memset(x->done, 0, x->off[D] + 1);
  for (int r = 0; r < D; r++) wake(&w, r), waits_for[r] = -1;
  while (w.len > 0) {
    int r = take(&w);
    const bp_rank_program *rp = &p->rank[r];
    while (x->pc[r] < rp->n) {
      const bp_instr *in = &rp->code[x->pc[r]];
      bp_op op = (bp_op)in->op;
      if (op == BP_OP_ALLREDUCE_START) {
        int s = bp_program_chunk(p, r, in->chunk)->stage;
        started[s]++;
        for (int q = 0; q < D; q++)
          if (waits_for[q] == s) wake(&w, q);
      } else if (op == BP_OP_ALLREDUCE_WAIT) {
        int s = bp_program_chunk(p, r, in->chunk)->stage;
        if (started[s] < bp_program_replicas(p, s)) {
          waits_for[r] = s;
          break;
        }
        waits_for[r] = -1;
      } else if (bp_op_is_p2p(op)) {
        int g0 = x->off[r] + x->pc[r], e = x->bend[g0] + x->off[r], all = 1;
        for (int g = g0; g < e; g++) {
          if (x->done[g]) continue;
          int h = x->partner[g];
          if (h >= 0 && posted(x, h)) {
            x->done[g] = x->done[h] = 1;
            wake(&w, rank_of(x, h)); /* its batch may be complete now */
          } else {
            all = 0;
          }
        }
        if (!all) break;
        x->pc[r] = e - x->off[r];
        continue;
      }
      x->pc[r]++;
    }
  }
  int stuck = 0;
  for (int r = 0; r < D; r++) stuck += x->pc[r] < p->rank[r].n;
  free(w.q), free(w.in), free(started), free(waits_for);
  return stuck;
}

int bp_rdv_send_waiting(const bp_rdv *x, const bp_program *p, int r, int i) {
  const bp_instr *in = &p->rank[r].code[i];
  int g = x->off[r] + i;
  if (!is_send(in) || x->done[g] || x->pc[r] != x->bstart[g]) return 0;
  return x->partner[g] >= 0 && !posted(x, x->partner[g]);
}
