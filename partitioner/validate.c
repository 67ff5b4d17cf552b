/* partitioner/validate.c — proves a bp_program well formed (see bp_validate in schedule.h).
 *
 * Four passes, each stopping at the first error, which names the rank and instruction index:
 *   1. structure: fields in range, micro-batch in the chunk's pipe, peers that hold the
 *      neighbouring stage, `joined` only between p2p instructions, split/full backward as
 *      declared;
 *   2. per-rank dataflow: every input produced, received or handed over before it is used, each
 *      (chunk, micro-batch) forwarded and backwarded exactly once, all-reduce after the chunk's
 *      last backward and waited for before the optimizer step;
 *   3. matching: each send has exactly one receive with the same identity on the peer;
 *   4. progress: executes the programs under rendezvous semantics (batches post together, a
 *      send and its receive complete together, ALLREDUCE_WAIT needs every replica's START) and
 *      reports the blocked ranks if they stop short of the end. */
#include "partitioner/schedule.h"

#include <stdlib.h>
#include <string.h>

enum { ST_FWD = 1, ST_BWD_IN = 2, ST_BWD_W = 4, ST_HAVE_ACT = 8, ST_HAVE_GRAD = 16, ST_SENT = 32,
       ST_SENT_GRAD = 64 };

typedef struct {
  const bp_program *p;
  char *err;
  size_t errlen;
  char buf[96];
} vctx;

static const char *desc(vctx *v, const bp_instr *x) {
  return bp_instr_str(v->p, x, v->buf, sizeof v->buf);
}

#define FAIL(v, r, i, ...)                                                                      \
  do {                                                                                          \
    char _m[256];                                                                               \
    snprintf(_m, sizeof _m, __VA_ARGS__);                                                       \
    return bp_sched_errf((v)->err, (v)->errlen, "rank %d instruction %d (%s): %s", (r), (i),     \
                         desc((v), &(v)->p->rank[(r)].code[(i)]), _m);                          \
  } while (0)

/* The rank holding the neighbouring stage of chunk (r, c) in direction dir (+1 next, -1 prev),
 * or -2 if there is none. */
static int neighbour(const bp_program *p, int r, int c, int dir) {
  const bp_chunk *ch = bp_program_chunk(p, r, c);
  int s = ch->stage + dir;
  if (s < 0 || s >= p->n_stages) return -2;
  return p->stage_rank[ch->pipe * p->n_stages + s];
}

static int check_structure(vctx *v) {
  const bp_program *p = v->p;
  int C = p->chunks_per_rank;
  for (int i = 0; i < p->n_pipes * p->n_stages; i++)
    if (p->stage_rank[i] < 0)
      return bp_sched_errf(v->err, v->errlen, "stage %d of pipe %d is on no rank", i % p->n_stages,
                           i / p->n_stages);
  for (int m = 0; m < p->N; m++)
    if (p->mb_pipe[m] < 0 || p->mb_pipe[m] >= p->n_pipes)
      return bp_sched_errf(v->err, v->errlen, "micro-batch %d has no valid pipe", m);
  for (int r = 0; r < p->D; r++) {
    const bp_rank_program *rp = &p->rank[r];
    for (int i = 0; i < rp->n; i++) {
      const bp_instr *x = &rp->code[i];
      bp_op op = (bp_op)x->op;
      if (op >= BP_OP_COUNT)
        return bp_sched_errf(v->err, v->errlen, "rank %d instruction %d: unknown op %d", r, i,
                             x->op);
      if (op == BP_OP_OPTIMIZER_STEP) continue;
      if (x->chunk < 0 || x->chunk >= C) FAIL(v, r, i, "chunk %d out of range 0..%d", x->chunk, C - 1);
      if (op == BP_OP_ALLREDUCE_START || op == BP_OP_ALLREDUCE_WAIT) {
        if (bp_program_replicas(p, bp_program_chunk(p, r, x->chunk)->stage) < 2)
          FAIL(v, r, i, "chunk %d has no replica to all-reduce with", x->chunk);
        continue;
      }
      if (x->mb < 0 || x->mb >= p->N) FAIL(v, r, i, "micro-batch out of range 0..%d", p->N - 1);
      const bp_chunk *ch = bp_program_chunk(p, r, x->chunk);
      if (p->mb_pipe[x->mb] != ch->pipe)
        FAIL(v, r, i, "micro-batch %d runs in pipe %d, chunk %d belongs to pipe %d", x->mb,
             p->mb_pipe[x->mb], x->chunk, ch->pipe);
      if (op == BP_OP_BWD && p->split_backward)
        FAIL(v, r, i, "program declares split backward; use BWD_INPUT + BWD_WEIGHT");
      if ((op == BP_OP_BWD_INPUT || op == BP_OP_BWD_WEIGHT) && !p->split_backward)
        FAIL(v, r, i, "program declares full backward; split ops not allowed");
      if (x->joined && (!bp_op_is_p2p(op) || i == 0 || !bp_op_is_p2p((bp_op)rp->code[i - 1].op)))
        FAIL(v, r, i, "`joined` links only consecutive send/recv instructions");
      int want = -2;
      if (op == BP_OP_SEND_ACT || op == BP_OP_LOCAL_ACT) want = neighbour(p, r, x->chunk, +1);
      if (op == BP_OP_RECV_GRAD) want = neighbour(p, r, x->chunk, +1);
      if (op == BP_OP_SEND_GRAD || op == BP_OP_LOCAL_GRAD) want = neighbour(p, r, x->chunk, -1);
      if (op == BP_OP_RECV_ACT) want = neighbour(p, r, x->chunk, -1);
      if (bp_op_is_p2p(op)) {
        if (want == -2) FAIL(v, r, i, "chunk %d has no neighbouring stage that way", x->chunk);
        if (want == r) FAIL(v, r, i, "the neighbouring stage is on this rank: use a LOCAL hand-over");
        if (x->peer != want) FAIL(v, r, i, "peer must be rank %d, which holds the neighbouring stage", want);
      }
      if ((op == BP_OP_LOCAL_ACT || op == BP_OP_LOCAL_GRAD) && want != r)
        FAIL(v, r, i, "the neighbouring stage is not on this rank (it is on rank %d)", want);
    }
  }
  return 0;
}

static int check_dataflow(vctx *v) {
  const bp_program *p = v->p;
  int C = p->chunks_per_rank, N = p->N, S = p->n_stages;
  uint8_t *st = calloc((size_t)C * N, 1);
  int *ar = calloc(C, sizeof(int)); /* 1 started, 2 waited */
  if (!st || !ar) {
    free(st), free(ar);
    return bp_sched_errf(v->err, v->errlen, "validate: out of memory");
  }
  int rc = 0;
#define CHECK(cond, ...)                                                                        \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      char _m[256];                                                                             \
      snprintf(_m, sizeof _m, __VA_ARGS__);                                                     \
      rc = bp_sched_errf(v->err, v->errlen, "rank %d instruction %d (%s): %s", r, i,             \
                         desc(v, x), _m);                                                       \
      goto out;                                                                                 \
    }                                                                                           \
  } while (0)
  for (int r = 0; r < p->D; r++) {
    memset(st, 0, (size_t)C * N);
    memset(ar, 0, sizeof(int) * C);
    int opt = -1;
    const bp_rank_program *rp = &p->rank[r];
    for (int i = 0; i < rp->n; i++) {
      const bp_instr *x = &rp->code[i];
      bp_op op = (bp_op)x->op;
      CHECK(opt < 0, "comes after the optimizer step (instruction %d)", opt);
      if (op == BP_OP_OPTIMIZER_STEP) {
        for (int c = 0; c < C; c++) {
          const bp_chunk *ch = bp_program_chunk(p, r, c);
          for (int m = 0; m < N; m++)
            CHECK(p->mb_pipe[m] != ch->pipe || (st[c * N + m] & ST_BWD_W),
                  "chunk %d micro-batch %d has no weight gradient yet", c, m);
          CHECK(bp_program_replicas(p, ch->stage) < 2 || ar[c] == 2,
                "chunk %d's gradient all-reduce was not waited for", c);
        }
        opt = i;
        continue;
      }
      int c = x->chunk, m = x->mb;
      const bp_chunk *ch = bp_program_chunk(p, r, c);
      uint8_t *s = m >= 0 ? &st[c * N + m] : NULL;
      switch (op) {
      case BP_OP_FWD:
        CHECK(!(*s & ST_FWD), "forwarded twice");
        CHECK(ch->stage == 0 || (*s & ST_HAVE_ACT),
              "input activation not received or handed over before");
        *s |= ST_FWD;
        break;
      case BP_OP_BWD:
      case BP_OP_BWD_INPUT:
        CHECK(!(*s & ST_BWD_IN), "backwarded twice");
        CHECK(*s & ST_FWD, "backward before its forward");
        CHECK(ch->stage == S - 1 || (*s & ST_HAVE_GRAD),
              "output gradient not received or handed over before");
        *s |= ST_BWD_IN | (op == BP_OP_BWD ? ST_BWD_W : 0);
        break;
      case BP_OP_BWD_WEIGHT:
        CHECK(!(*s & ST_BWD_W), "weight gradient computed twice");
        CHECK(*s & ST_BWD_IN, "weight gradient before the input gradient");
        *s |= ST_BWD_W;
        break;
      case BP_OP_SEND_ACT:
      case BP_OP_LOCAL_ACT:
        CHECK(*s & ST_FWD, "sends an activation not computed yet");
        CHECK(!(*s & ST_SENT), "activation sent twice");
        *s |= ST_SENT;
        if (op == BP_OP_LOCAL_ACT) {
          int c2 = p->stage_chunk[ch->pipe * S + ch->stage + 1];
          st[c2 * N + m] |= ST_HAVE_ACT;
        }
        break;
      case BP_OP_SEND_GRAD:
      case BP_OP_LOCAL_GRAD:
        CHECK(*s & ST_BWD_IN, "sends an input gradient not computed yet");
        CHECK(!(*s & ST_SENT_GRAD), "gradient sent twice");
        *s |= ST_SENT_GRAD;
        if (op == BP_OP_LOCAL_GRAD) {
          int c2 = p->stage_chunk[ch->pipe * S + ch->stage - 1];
          st[c2 * N + m] |= ST_HAVE_GRAD;
        }
        break;
      case BP_OP_RECV_ACT:
        CHECK(!(*s & ST_HAVE_ACT), "activation received twice");
        *s |= ST_HAVE_ACT;
        break;
      case BP_OP_RECV_GRAD:
        CHECK(!(*s & ST_HAVE_GRAD), "gradient received twice");
        *s |= ST_HAVE_GRAD;
        break;
      case BP_OP_ALLREDUCE_START:
        CHECK(ar[c] == 0, "all-reduce started twice");
        for (int mm = 0; mm < N; mm++)
          CHECK(p->mb_pipe[mm] != ch->pipe || (st[c * N + mm] & ST_BWD_W),
                "started before the weight gradient of micro-batch %d", mm);
        ar[c] = 1;
        break;
      case BP_OP_ALLREDUCE_WAIT:
        CHECK(ar[c] == 1, "waits for an all-reduce that was not started (or twice)");
        ar[c] = 2;
        break;
      default: break;
      }
    }
    int i = rp->n - 1;
    const bp_instr *x = rp->n ? &rp->code[i] : &(bp_instr){BP_OP_OPTIMIZER_STEP, 0, -1, -1, -1};
    CHECK(opt >= 0, "rank %d has no optimizer step", r);
    for (int c = 0; c < C; c++)
      for (int m = 0; m < N; m++) {
        if (p->mb_pipe[m] != bp_program_chunk(p, r, c)->pipe) continue;
        CHECK(st[c * N + m] & ST_FWD, "chunk %d micro-batch %d is never forwarded", c, m);
      }
  }
out:
#undef CHECK
  free(st);
  free(ar);
  return rc;
}


/* Pairs every send with its receive; partners are stored flattened at off[r] + i. */
static int check_matching(vctx *v, const int *off, int *prank, int *pidx) {
  const bp_program *p = v->p;
  size_t K = (size_t)2 * p->N * p->n_stages;
  int *sr = malloc(sizeof(int) * K * 4); /* send rank, send idx, recv rank, recv idx */
  if (!sr) return bp_sched_errf(v->err, v->errlen, "validate: out of memory");
  for (size_t k = 0; k < K * 4; k++) sr[k] = -1;
  int rc = 0;
  for (int r = 0; r < p->D && rc == 0; r++)
    for (int i = 0; i < p->rank[r].n && rc == 0; i++) {
      const bp_instr *x = &p->rank[r].code[i];
      if (!bp_op_is_p2p((bp_op)x->op)) continue;
      int k = bp_program_msg_key(p, r, x, NULL), send = x->op == BP_OP_SEND_ACT || x->op == BP_OP_SEND_GRAD;
      int *slot = &sr[(size_t)k * 4 + (send ? 0 : 2)];
      if (slot[0] >= 0) {
        rc = bp_sched_errf(v->err, v->errlen,
                           "rank %d instruction %d (%s): the same message was already %s at rank "
                           "%d instruction %d",
                           r, i, desc(v, x), send ? "sent" : "received", slot[0], slot[1]);
        break;
      }
      slot[0] = r, slot[1] = i;
    }
  for (size_t k = 0; k < K && rc == 0; k++) {
    int *s = &sr[k * 4];
    if (s[0] >= 0 && s[2] < 0) {
      const bp_instr *x = &p->rank[s[0]].code[s[1]];
      rc = bp_sched_errf(v->err, v->errlen, "rank %d instruction %d (%s): no matching %s on rank %d",
                         s[0], s[1], desc(v, x),
                         x->op == BP_OP_SEND_ACT ? "RECV_ACT" : "RECV_GRAD", x->peer);
    } else if (s[2] >= 0 && s[0] < 0) {
      const bp_instr *x = &p->rank[s[2]].code[s[3]];
      rc = bp_sched_errf(v->err, v->errlen, "rank %d instruction %d (%s): no matching %s on rank %d",
                         s[2], s[3], desc(v, x),
                         x->op == BP_OP_RECV_ACT ? "SEND_ACT" : "SEND_GRAD", x->peer);
    } else if (s[0] >= 0) {
      prank[off[s[0]] + s[1]] = s[2], pidx[off[s[0]] + s[1]] = s[3];
      prank[off[s[2]] + s[3]] = s[0], pidx[off[s[2]] + s[3]] = s[1];
    }
  }
  free(sr);
  return rc;
}

static int check_progress(vctx *v, const int *off, const int *prank, const int *pidx) {
  const bp_program *p = v->p;
  int D = p->D, total = off[D];
  int *pc = calloc(D, sizeof(int));
  int *bstart = malloc(sizeof(int) * (total + 1)); /* start index of the batch holding i */
  int *bend = malloc(sizeof(int) * (total + 1));   /* one past its end */
  uint8_t *done = calloc(total + 1, 1);
  int *started = calloc(p->n_stages, sizeof(int)); /* ranks that started stage s's all-reduce */
  if (!pc || !bstart || !bend || !done || !started) {
    free(pc), free(bstart), free(bend), free(done), free(started);
    return bp_sched_errf(v->err, v->errlen, "validate: out of memory");
  }
  for (int r = 0; r < D; r++) {
    const bp_rank_program *rp = &p->rank[r];
    for (int i = 0; i < rp->n;) {
      int e = i + 1;
      while (e < rp->n && rp->code[e].joined) e++;
      for (int j = i; j < e; j++) bstart[off[r] + j] = i, bend[off[r] + j] = e;
      i = e;
    }
  }
  for (int progress = 1; progress;) {
    progress = 0;
    for (int r = 0; r < D; r++) {
      const bp_rank_program *rp = &p->rank[r];
      while (pc[r] < rp->n) {
        const bp_instr *x = &rp->code[pc[r]];
        bp_op op = (bp_op)x->op;
        if (op == BP_OP_ALLREDUCE_START) {
          started[bp_program_chunk(p, r, x->chunk)->stage]++;
        } else if (op == BP_OP_ALLREDUCE_WAIT) {
          int s = bp_program_chunk(p, r, x->chunk)->stage;
          if (started[s] < bp_program_replicas(p, s)) break;
        } else if (bp_op_is_p2p(op)) {
          int all = 1, e = bend[off[r] + pc[r]];
          for (int i = pc[r]; i < e; i++) {
            int g = off[r] + i;
            if (done[g]) continue;
            int pr = prank[g], pi = pidx[g];
            if (pc[pr] == bstart[off[pr] + pi]) /* the partner's batch is posted */
              done[g] = done[off[pr] + pi] = 1;
            else
              all = 0;
          }
          if (!all) break;
          pc[r] = e;
          progress = 1;
          continue;
        }
        pc[r]++;
        progress = 1;
      }
    }
  }
  int rc = 0;
  char msg[1024];
  size_t len = 0;
  msg[0] = 0;
  for (int r = 0; r < D; r++)
    if (pc[r] < p->rank[r].n) {
      len += snprintf(msg + len, len < sizeof msg ? sizeof msg - len : 0,
                      "%s rank %d blocked at instruction %d (%s)", rc ? ";" : "", r, pc[r],
                      desc(v, &p->rank[r].code[pc[r]]));
      if (len >= sizeof msg) len = sizeof msg - 1;
      rc = -1;
    }
  if (rc) bp_sched_errf(v->err, v->errlen, "deadlock under blocking point-to-point semantics:%s", msg);
  free(pc), free(bstart), free(bend), free(done), free(started);
  return rc;
}

int bp_validate(const bp_program *p, char *err, size_t errlen) {
  vctx v = {p, err, errlen, {0}};
  if (!p || !p->rank) return bp_sched_errf(err, errlen, "validate: empty program");
  if (check_structure(&v) || check_dataflow(&v)) return -1;
  int *off = malloc(sizeof(int) * (p->D + 1));
  if (!off) return bp_sched_errf(err, errlen, "validate: out of memory");
  off[0] = 0;
  for (int r = 0; r < p->D; r++) off[r + 1] = off[r] + p->rank[r].n;
  int *prank = malloc(sizeof(int) * (off[p->D] + 1)), *pidx = malloc(sizeof(int) * (off[p->D] + 1));
  int rc = -1;
  if (!prank || !pidx)
    bp_sched_errf(err, errlen, "validate: out of memory");
  else
    rc = check_matching(&v, off, prank, pidx) ? -1 : check_progress(&v, off, prank, pidx);
  free(off), free(prank), free(pidx);
  return rc;
}
