/* partitioner/lower.c — turns the compute order a generator wrote (FWD/BWD/... and optional
 * ALLREDUCE_START markers per rank) into the complete program: receives before each compute op,
 * sends or local hand-overs after it, eager all-reduce starts, waits and the optimizer step.
 *
 * Placement of p2p instructions. The receives a compute op needs are posted in the batch just
 * before it. The send of an op's output goes, by default, into that same batch before the next
 * compute op (so "send my output, receive my next input" is one batch, as in Megatron's
 * send_forward_recv_backward). Under blocking semantics some orders then deadlock — typically
 * two ranks that each send to the other before receiving. The pass executes the program under
 * rendezvous semantics (rendezvous.c); while it stops short, it takes a send that waits on a
 * receiver which has not posted and delays it into the batch before the following compute op,
 * then tries again. Delays only grow and are bounded by the list's end, so the loop ends; if no
 * send can be delayed the compute order itself deadlocks and lowering fails, naming the ranks. */
#include "partitioner/rendezvous.h"
#include "partitioner/schedule.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  int D, C;
  bp_rank_program *cmp; /* [D] the generators' compute orders */
  int **delay;          /* [D][n]: extra compute ops a send waits before it is posted */
  int **src;            /* [D][lowered n]: compute item that produced a send; -1 otherwise */
  int *src_cap;
} lctx;

/* The neighbour rank an op's input comes from / output goes to, or -2 (none); *local is set when
 * that neighbour is this rank. `out` selects output (1) or input (0). */
static int neighbour(const bp_program *p, int r, const bp_instr *x, int out) {
  const bp_chunk *ch = bp_program_chunk(p, r, x->chunk);
  int dir;
  if (x->op == BP_OP_FWD) dir = out ? +1 : -1;
  else if (x->op == BP_OP_BWD || x->op == BP_OP_BWD_INPUT) dir = out ? -1 : +1;
  else return -2;
  int s = ch->stage + dir;
  if (s < 0 || s >= p->n_stages) return -2;
  return p->stage_rank[ch->pipe * p->n_stages + s];
}

static int emit(bp_program *p, lctx *L, int r, bp_instr x, int src, char *err, size_t errlen) {
  if (bp_rank_push(&p->rank[r], x, err, errlen)) return -1;
  int n = p->rank[r].n;
  if (n > L->src_cap[r]) {
    int cap = n * 2;
    int *s = realloc(L->src[r], sizeof(int) * cap);
    if (!s) return bp_sched_errf(err, errlen, "lower: out of memory");
    L->src[r] = s, L->src_cap[r] = cap;
  }
  L->src[r][n - 1] = src;
  return 0;
}

/* Builds rank r's lowered list from its compute order and the current send delays. */
static int build_rank(bp_program *p, lctx *L, int r, char *err, size_t errlen) {
  const bp_rank_program *in = &L->cmp[r];
  int n = in->n, C = L->C, rc = 0;
  int *next = malloc(sizeof(int) * (n + 1));   /* next compute item after i (n: none) */
  int *head = malloc(sizeof(int) * (n + 1));   /* sends posted before item t: a list by target */
  int *tail = malloc(sizeof(int) * (n + 1));
  int *link = malloc(sizeof(int) * (n + 1));
  int *last = malloc(sizeof(int) * C);         /* last weight-gradient op of each chunk */
  uint8_t *explicit = calloc(C, 1);            /* generator placed ALLREDUCE_START itself */
  if (!next || !head || !tail || !link || !last || !explicit) {
    rc = bp_sched_errf(err, errlen, "lower: out of memory");
    goto out;
  }
  p->rank[r].n = 0;
  for (int c = 0; c < C; c++) last[c] = -1;
  next[n] = n;
  for (int i = n - 1; i >= 0; i--)
    next[i] = i + 1 < n && bp_op_is_compute((bp_op)in->code[i + 1].op) ? i + 1 : next[i + 1];
  for (int i = 0; i <= n; i++) head[i] = tail[i] = -1;
  for (int i = 0; i < n; i++) {
    const bp_instr *x = &in->code[i];
    if (x->op == BP_OP_BWD || x->op == BP_OP_BWD_WEIGHT) last[x->chunk] = i;
    if (x->op == BP_OP_ALLREDUCE_START) explicit[x->chunk] = 1;
    int to = neighbour(p, r, x, 1);
    if (to < 0 || to == r) continue;
    int t = next[i];
    for (int d = 0; d < L->delay[r][i] && t < n; d++) t = next[t];
    link[i] = -1; /* append i to target t's list, keeping producer order */
    if (tail[t] < 0) head[t] = i; else link[tail[t]] = i;
    tail[t] = i;
  }
  for (int i = 0; i <= n && rc == 0; i++) {
    const bp_instr *x = i < n ? &in->code[i] : NULL;
    if (x && x->op == BP_OP_ALLREDUCE_START) {
      rc = emit(p, L, r, bp_instr_make(BP_OP_ALLREDUCE_START, x->chunk, -1, -1, 0), -1, err, errlen);
      continue;
    }
    int joined = 0; /* the batch before item i: delayed sends, then this op's receive */
    for (int j = head[i]; j >= 0 && rc == 0; j = link[j]) {
      const bp_instr *y = &in->code[j];
      bp_op op = y->op == BP_OP_FWD ? BP_OP_SEND_ACT : BP_OP_SEND_GRAD;
      rc = emit(p, L, r, bp_instr_make(op, y->chunk, y->mb, neighbour(p, r, y, 1), joined), j, err,
                errlen);
      joined = 1;
    }
    if (!x || rc) continue;
    int from = neighbour(p, r, x, 0);
    if (from >= 0 && from != r) {
      bp_op op = x->op == BP_OP_FWD ? BP_OP_RECV_ACT : BP_OP_RECV_GRAD;
      rc = emit(p, L, r, bp_instr_make(op, x->chunk, x->mb, from, joined), -1, err, errlen);
    }
    if (rc == 0) rc = emit(p, L, r, bp_instr_make((bp_op)x->op, x->chunk, x->mb, -1, 0), -1, err, errlen);
    if (rc == 0 && i == last[x->chunk] && !explicit[x->chunk] &&
        bp_program_replicas(p, bp_program_chunk(p, r, x->chunk)->stage) > 1)
      /* eager: the chunk's gradients are final, start their all-reduce now */
      rc = emit(p, L, r, bp_instr_make(BP_OP_ALLREDUCE_START, x->chunk, -1, -1, 0), -1, err, errlen);
    if (rc == 0 && neighbour(p, r, x, 1) == r)
      rc = emit(p, L, r,
                bp_instr_make(x->op == BP_OP_FWD ? BP_OP_LOCAL_ACT : BP_OP_LOCAL_GRAD, x->chunk,
                              x->mb, -1, 0),
                -1, err, errlen);
  }
  for (int c = 0; c < C && rc == 0; c++)
    if (bp_program_replicas(p, bp_program_chunk(p, r, c)->stage) > 1)
      rc = emit(p, L, r, bp_instr_make(BP_OP_ALLREDUCE_WAIT, c, -1, -1, 0), -1, err, errlen);
  if (rc == 0) rc = emit(p, L, r, bp_instr_make(BP_OP_OPTIMIZER_STEP, -1, -1, -1, 0), -1, err, errlen);
out:
  free(next), free(head), free(tail), free(link), free(last), free(explicit);
  return rc;
}

/* Checks what the generator wrote before lowering it. */
static int check_input(const bp_program *p, char *err, size_t errlen) {
  for (int i = 0; i < p->n_pipes * p->n_stages; i++)
    if (p->stage_rank[i] < 0)
      return bp_sched_errf(err, errlen, "lower: stage %d of pipe %d is not placed",
                           i % p->n_stages, i / p->n_stages);
  for (int r = 0; r < p->D; r++)
    for (int i = 0; i < p->rank[r].n; i++) {
      const bp_instr *x = &p->rank[r].code[i];
      if (!bp_op_is_compute((bp_op)x->op) && x->op != BP_OP_ALLREDUCE_START)
        return bp_sched_errf(err, errlen, "lower: rank %d instruction %d: %s before lowering", r,
                             i, bp_op_name((bp_op)x->op));
      if (x->chunk < 0 || x->chunk >= p->chunks_per_rank ||
          (x->op != BP_OP_ALLREDUCE_START && (x->mb < 0 || x->mb >= p->N)))
        return bp_sched_errf(err, errlen, "lower: rank %d instruction %d: chunk %d / mb %d out of range",
                             r, i, x->chunk, x->mb);
    }
  return 0;
}

/* Whether rank `to` waits, directly or through others, on rank `from` (x is a stuck run). */
static int waits_on(const bp_program *p, const bp_rdv *x, int from, int to, uint8_t *seen) {
  if (from == to) return 1;
  if (seen[from]) return 0;
  seen[from] = 1;
  int pc = x->pc[from];
  if (pc >= p->rank[from].n || !bp_op_is_p2p((bp_op)p->rank[from].code[pc].op)) return 0;
  for (int i = pc; i < x->bend[x->off[from] + pc]; i++) {
    int g = x->off[from] + i, h = x->partner[g];
    if (x->done[g] || h < 0) continue;
    int q = 0;
    while (x->off[q + 1] <= h) q++;
    if (waits_on(p, x, q, to, seen)) return 1;
  }
  return 0;
}

/* Delays by one compute op a send that waits on a receiver which (transitively) waits on the
 * sender: a send on a cycle of the stuck run's wait-for graph. Returns 0 if there is none. */
static int pick_and_delay(const bp_program *p, lctx *L, const bp_rdv *x) {
  uint8_t *seen = calloc(p->D, 1);
  if (!seen) return 0;
  int fixed = 0;
  for (int r = 0; r < p->D && !fixed; r++) {
    int pc = x->pc[r];
    if (pc >= p->rank[r].n) continue;
    for (int i = pc; i < x->bend[x->off[r] + pc] && !fixed; i++) {
      if (!bp_rdv_send_waiting(x, p, r, i)) continue;
      int h = x->partner[x->off[r] + i], q = 0;
      while (x->off[q + 1] <= h) q++;
      memset(seen, 0, p->D);
      if (!waits_on(p, x, q, r, seen)) continue;
      int j = L->src[r][i], t = j, n = L->cmp[r].n;
      for (int d = 0; d <= L->delay[r][j] && t < n; d++) /* its current target */
        do t++; while (t < n && !bp_op_is_compute((bp_op)L->cmp[r].code[t].op));
      if (t < n) L->delay[r][j]++, fixed = 1;
    }
  }
  free(seen);
  return fixed;
}

int bp_program_lower(bp_program *p, char *err, size_t errlen) {
  if (check_input(p, err, errlen)) return -1;
  if (p->D < 1) return bp_sched_errf(err, errlen, "lower: no ranks");
  size_t D = (size_t)p->D;
  int rc = 0;
  lctx L = {p->D, p->chunks_per_rank, calloc(D, sizeof(bp_rank_program)), calloc(D, sizeof(int *)),
            calloc(D, sizeof(int *)), calloc(D, sizeof(int))};
  if (!L.cmp || !L.delay || !L.src || !L.src_cap) {
    rc = bp_sched_errf(err, errlen, "lower: out of memory");
    goto out;
  }
  for (int r = 0; r < p->D; r++) { /* take the compute orders; p->rank becomes the output */
    L.cmp[r] = p->rank[r];
    p->rank[r] = (bp_rank_program){0, 0, NULL};
    L.delay[r] = calloc(L.cmp[r].n + 1, sizeof(int));
    if (!L.delay[r]) {
      rc = bp_sched_errf(err, errlen, "lower: out of memory");
      goto out;
    }
  }
  for (;;) {
    for (int r = 0; r < p->D && rc == 0; r++) rc = build_rank(p, &L, r, err, errlen);
    if (rc) goto out;
    bp_rdv x;
    if (bp_rdv_init(&x, p, err, errlen)) { /* the generator forgot or duplicated an op */
      rc = -1;
      goto out;
    }
    int stuck = bp_rdv_run(&x, p);
    if (stuck <= 0) {
      bp_rdv_free(&x);
      if (stuck < 0) rc = bp_sched_errf(err, errlen, "lower: out of memory");
      goto out;
    }
    int fixed = pick_and_delay(p, &L, &x);
    if (!fixed) {
      char b[96];
      int r = 0;
      while (x.pc[r] >= p->rank[r].n) r++;
      rc = bp_sched_errf(err, errlen,
                         "lower: the compute order of '%s' deadlocks: rank %d stops at "
                         "instruction %d (%s)",
                         p->schedule, r, x.pc[r], bp_instr_str(p, &p->rank[r].code[x.pc[r]], b, sizeof b));
    }
    bp_rdv_free(&x);
    if (rc) goto out;
  }
out:
  for (int r = 0; r < p->D; r++) {
    if (L.cmp) free(L.cmp[r].code);
    if (L.delay) free(L.delay[r]);
    if (L.src) free(L.src[r]);
  }
  free(L.cmp), free(L.delay), free(L.src), free(L.src_cap);
  return rc;
}
