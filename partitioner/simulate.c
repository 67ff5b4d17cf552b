/* partitioner/simulate.c — replays a bp_program in simulated time (cost model in simulate.h):
 * per-rank clocks advanced in program order, asynchronous sends, blocking receives and
 * all-reduce waits. A worklist re-examines a rank only when a message or all-reduce it may be
 * waiting for appears. Also counts peak stashed activations and communication volume. */
#include "partitioner/simulate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void bp_sim_config_default(bp_sim_config *c) {
  memset(c, 0, sizeof *c);
  c->fwd = 1, c->bwd = 2, c->wgrad_frac = 0.5;
}

/* Per model stage figures under cfg. */
typedef struct {
  double *fwd, *bwd, *act, *param, *out; /* [S] */
} stage_costs;

static void stage_costs_free(stage_costs *s) {
  free(s->fwd), free(s->bwd), free(s->act), free(s->param), free(s->out);
}

static int stage_costs_make(const bp_program *p, const bp_sim_config *cfg, stage_costs *sc,
                            char *err, size_t errlen) {
  int S = p->n_stages;
  double share = (double)p->D / S; /* of a full stage (L/D layers) */
  sc->fwd = calloc(S, sizeof(double)), sc->bwd = calloc(S, sizeof(double));
  sc->act = calloc(S, sizeof(double)), sc->param = calloc(S, sizeof(double));
  sc->out = calloc(S, sizeof(double));
  if (!sc->fwd || !sc->bwd || !sc->act || !sc->param || !sc->out) {
    stage_costs_free(sc);
    return bp_sched_errf(err, errlen, "simulate: out of memory");
  }
  const bp_costs *t = cfg->costs;
  if (t && t->n > 0) {
    if (t->n % S != 0) {
      stage_costs_free(sc);
      return bp_sched_errf(err, errlen,
                           "simulate: the cost table has %d rows, which %d stages ('%s', D=%d) "
                           "cannot share evenly",
                           t->n, S, p->schedule, p->D);
    }
    int k = t->n / S;
    for (int s = 0; s < S; s++) {
      for (int i = s * k; i < (s + 1) * k; i++) {
        sc->fwd[s] += t->layer[i].fwd, sc->bwd[s] += t->layer[i].bwd;
        sc->act[s] += t->layer[i].act_bytes, sc->param[s] += t->layer[i].param_bytes;
      }
      sc->out[s] = t->layer[(s + 1) * k - 1].out_bytes;
    }
    return 0;
  }
  for (int s = 0; s < S; s++) {
    sc->fwd[s] = cfg->fwd * share, sc->bwd[s] = cfg->bwd * share;
    sc->act[s] = cfg->act_bytes * share, sc->param[s] = cfg->param_bytes * share;
    sc->out[s] = cfg->msg_bytes;
  }
  return 0;
}

static double op_time(const bp_program *p, const bp_sim_config *cfg, const stage_costs *sc, int r,
                      const bp_instr *x) {
  if (!bp_op_is_compute((bp_op)x->op)) return 0;
  int s = bp_program_chunk(p, r, x->chunk)->stage;
  switch ((bp_op)x->op) {
  case BP_OP_FWD: return sc->fwd[s];
  case BP_OP_BWD: return sc->bwd[s];
  case BP_OP_BWD_INPUT: return sc->bwd[s] * (1 - cfg->wgrad_frac);
  case BP_OP_BWD_WEIGHT: return sc->bwd[s] * cfg->wgrad_frac;
  default: return 0;
  }
}

double bp_sim_op_time(const bp_program *p, const bp_sim_config *cfg, int r, const bp_instr *x) {
  stage_costs sc;
  if (stage_costs_make(p, cfg, &sc, NULL, 0)) return 0;
  double t = op_time(p, cfg, &sc, r, x);
  stage_costs_free(&sc);
  return t;
}

void bp_sim_result_free(bp_sim_result *r) {
  if (r->start)
    for (int i = 0; i < r->D; i++) free(r->start[i]);
  if (r->end)
    for (int i = 0; i < r->D; i++) free(r->end[i]);
  free(r->start), free(r->end), free(r->busy), free(r->bubble), free(r->peak_chunks);
  free(r->peak_stage), free(r->peak_bytes);
  memset(r, 0, sizeof *r);
}


static double p2p_time(const bp_sim_config *c, double bytes) {
  return c->latency + (c->bandwidth > 0 ? bytes / c->bandwidth : 0);
}

static void count_memory(const bp_program *p, const stage_costs *sc, bp_sim_result *out) {
  double share = (double)p->D / p->n_stages;
  for (int r = 0; r < p->D; r++) {
    int n = 0;
    double bytes = 0, peak_b = 0;
    for (int i = 0; i < p->rank[r].n; i++) {
      const bp_instr *x = &p->rank[r].code[i];
      int s = x->chunk >= 0 ? bp_program_chunk(p, r, x->chunk)->stage : 0;
      if (x->op == BP_OP_FWD) n++, bytes += sc->act[s];
      if (x->op == BP_OP_BWD || x->op == BP_OP_BWD_WEIGHT) n--, bytes -= sc->act[s];
      if (n > out->peak_chunks[r]) out->peak_chunks[r] = n;
      if (bytes > peak_b) peak_b = bytes;
    }
    out->peak_stage[r] = out->peak_chunks[r] * share;
    out->peak_bytes[r] = peak_b;
  }
}

int bp_simulate(const bp_program *p, const bp_sim_config *cfg, bp_sim_result *out, char *err,
                size_t errlen) {
  int D = p->D, S = p->n_stages, rc = 0;
  memset(out, 0, sizeof *out);
  stage_costs sc;
  if (stage_costs_make(p, cfg, &sc, err, errlen)) return -1;
  size_t K = (size_t)2 * p->N * S;
  out->D = D;
  out->busy = calloc(D, sizeof(double)), out->bubble = calloc(D, sizeof(double));
  out->peak_chunks = calloc(D, sizeof(int)), out->peak_stage = calloc(D, sizeof(double));
  out->peak_bytes = calloc(D, sizeof(double));
  out->start = calloc(D, sizeof(double *)), out->end = calloc(D, sizeof(double *));
  double *arrival = malloc(sizeof(double) * K); /* NAN until sent */
  double *clock = calloc(D, sizeof(double));
  int *posted = calloc(D, sizeof(int)); /* sends before this index are posted */
  int *pc = calloc(D, sizeof(int)), *queue = malloc(sizeof(int) * D);
  uint8_t *queued = calloc(D, 1);
  int *ar_count = calloc(S, sizeof(int));
  double *ar_begin = calloc(S, sizeof(double)), *ar_end = malloc(sizeof(double) * S);
  int *waiting_msg = malloc(sizeof(int) * K); /* rank blocked on a message, or -1 */
  int oom = !out->busy || !out->bubble || !out->peak_chunks || !out->peak_stage ||
            !out->peak_bytes || !out->start || !out->end || !arrival || !clock || !pc || !posted || !queue ||
            !queued || !ar_count || !ar_begin || !ar_end || !waiting_msg;
  for (int r = 0; r < D && !oom; r++) {
    out->start[r] = calloc(p->rank[r].n + 1, sizeof(double));
    out->end[r] = calloc(p->rank[r].n + 1, sizeof(double));
    oom = !out->start[r] || !out->end[r];
  }
  if (oom) {
    rc = bp_sched_errf(err, errlen, "simulate: out of memory");
    goto done;
  }
  for (size_t k = 0; k < K; k++) arrival[k] = NAN, waiting_msg[k] = -1;
  for (int s = 0; s < S; s++) ar_end[s] = NAN;
  int head = 0, len = 0;
#define WAKE(r)                                                                                 \
  do {                                                                                          \
    int _r = (r);                                                                               \
    if (!queued[_r]) queued[_r] = 1, queue[(head + len++) % D] = _r;                            \
  } while (0)
  for (int r = 0; r < D; r++) WAKE(r);
  while (len > 0) {
    int r = queue[head];
    head = (head + 1) % D, len--, queued[r] = 0;
    const bp_rank_program *rp = &p->rank[r];
    while (pc[r] < rp->n) {
      int i = pc[r], rs;
      const bp_instr *x = &rp->code[i];
      double t = clock[r];
      bp_op op = (bp_op)x->op;
      if (bp_op_is_p2p(op) && i >= posted[r]) {
        /* A batch is posted as a whole: its sends leave now, even those listed after a
         * receive of the same batch. */
        int e = i + 1;
        while (e < rp->n && rp->code[e].joined) e++;
        for (int j = i; j < e; j++) {
          const bp_instr *y = &rp->code[j];
          if (y->op != BP_OP_SEND_ACT && y->op != BP_OP_SEND_GRAD) continue;
          int k = bp_program_msg_key(p, r, y, &rs);
          /* an activation is stage rs-1's output; a gradient, that of stage rs's output */
          double bytes = sc.out[y->op == BP_OP_SEND_ACT ? rs - 1 : rs];
          arrival[k] = t + p2p_time(cfg, bytes);
          out->p2p_messages++, out->p2p_bytes += bytes;
          if (waiting_msg[k] >= 0) {
            WAKE(waiting_msg[k]);
            waiting_msg[k] = -1;
          }
          out->start[r][j] = out->end[r][j] = t;
        }
        posted[r] = e;
      }
      if (op == BP_OP_SEND_ACT || op == BP_OP_SEND_GRAD) {
        /* posted with its batch above */
      } else if (op == BP_OP_RECV_ACT || op == BP_OP_RECV_GRAD) {
        int k = bp_program_msg_key(p, r, x, &rs);
        if (isnan(arrival[k])) {
          waiting_msg[k] = r;
          break;
        }
        out->start[r][i] = t;
        clock[r] = t > arrival[k] ? t : arrival[k];
        out->end[r][i] = clock[r];
      } else if (op == BP_OP_ALLREDUCE_START) {
        int s = bp_program_chunk(p, r, x->chunk)->stage, k = bp_program_replicas(p, s);
        if (t > ar_begin[s]) ar_begin[s] = t;
        out->start[r][i] = out->end[r][i] = t;
        double bytes = sc.param[s], ring = 2.0 * (k - 1) / k;
        out->allreduce_stage += ring * p->D / S; /* a chunk holds D/S of a full stage */
        out->allreduce_bytes += ring * bytes;
        if (++ar_count[s] == k) {
          ar_end[s] = ar_begin[s] + 2.0 * (k - 1) * cfg->latency +
                      (cfg->bandwidth > 0 ? ring * bytes / cfg->bandwidth : 0);
          for (int q = 0; q < D; q++) WAKE(q); /* rare: wake everyone who may wait */
        }
      } else if (op == BP_OP_ALLREDUCE_WAIT) {
        int s = bp_program_chunk(p, r, x->chunk)->stage;
        if (isnan(ar_end[s])) break;
        out->start[r][i] = t;
        clock[r] = t > ar_end[s] ? t : ar_end[s];
        out->end[r][i] = clock[r];
      } else {
        double d = op == BP_OP_LOCAL_ACT || op == BP_OP_LOCAL_GRAD ? cfg->local_copy
                   : op == BP_OP_OPTIMIZER_STEP                    ? cfg->optimizer
                                                                   : op_time(p, cfg, &sc, r, x);
        if (op == BP_OP_LOCAL_ACT || op == BP_OP_LOCAL_GRAD) out->local_copies++;
        if (bp_op_is_compute(op)) out->busy[r] += d;
        out->start[r][i] = t, out->end[r][i] = clock[r] = t + d;
      }
      pc[r]++;
    }
  }
#undef WAKE
  for (int r = 0; r < D; r++)
    if (pc[r] < p->rank[r].n) {
      char b[96];
      rc = bp_sched_errf(err, errlen,
                         "simulate: rank %d never gets past instruction %d (%s): the program "
                         "deadlocks even with asynchronous sends",
                         r, pc[r], bp_instr_str(p, &p->rank[r].code[pc[r]], b, sizeof b));
      goto done;
    }
  for (int r = 0; r < D; r++)
    if (clock[r] > out->step_time) out->step_time = clock[r];
  for (int r = 0; r < D; r++) {
    out->bubble[r] = out->step_time > 0 ? (out->step_time - out->busy[r]) / out->step_time : 0;
    out->bubble_mean += out->bubble[r] / D;
    if (out->bubble[r] > out->bubble_max) out->bubble_max = out->bubble[r];
  }
  count_memory(p, &sc, out);
done:
  free(arrival), free(clock), free(pc), free(posted), free(queue), free(queued), free(ar_count), free(ar_begin);
  free(ar_end), free(waiting_msg);
  stage_costs_free(&sc);
  if (rc) bp_sim_result_free(out);
  return rc;
}
