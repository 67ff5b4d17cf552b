/* partitioner/partition_eval.c — the partition problem read off a schedule's program, the
 * evaluator (proxy, memory, simulator with one cost row per stage), and uniform/manual partitions. */
#include "partitioner/partition.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void bp_part_problem_free(bp_part_problem *pp) {
  if (pp->vec)
    for (int r = 0; r < pp->D; r++) free(pp->vec[r]);
  free(pp->vec), free(pp->nvec), free(pp->work), free(pp->mult), free(pp->copies), free(pp->comm);
  free(pp->tied_a), free(pp->tied_b), free(pp->tied_cost);
  memset(pp, 0, sizeof *pp);
}

int bp_part_problem_init(bp_part_problem *pp, const bp_program *p, const bp_lcosts *lc, double mem_cap, char *err,
                         size_t errlen) {
  memset(pp, 0, sizeof *pp);
  int L = lc->n, S = p->n_stages, D = p->D;
  pp->L = L, pp->S = S, pp->D = D, pp->N = p->N, pp->lc = lc, pp->prog = p, pp->mem_cap = mem_cap;
  if (L < S)
    return bp_sched_errf(err, errlen,
                         "the model has %d layers but schedule '%s' with D=%d has %d stages (chunks in pipeline "
                         "order): every chunk needs at least one layer; use fewer ranks, a schedule with fewer "
                         "chunks, or finer layers (--layers fine)",
                         L, p->schedule, D, S);
  pp->work = calloc((size_t)L, sizeof(double));
  pp->comm = calloc((size_t)L, sizeof(double));
  pp->mult = calloc((size_t)D * S, sizeof(double));
  pp->copies = calloc((size_t)D * S, sizeof(double));
  pp->nvec = calloc((size_t)D, sizeof(int));
  pp->vec = calloc((size_t)D, sizeof(int *));
  int *cnt = calloc((size_t)S, sizeof(int)), *mbp = calloc((size_t)p->n_pipes, sizeof(int));
  if (!pp->work || !pp->comm || !pp->mult || !pp->copies || !pp->nvec || !pp->vec || !cnt || !mbp) goto oom;
  for (int l = 0; l < L; l++) {
    pp->work[l] = lc->l[l].fwd + lc->l[l].bwd;
    pp->comm[l] = 2 * (lc->link_lat + (lc->link_bw > 0 ? lc->l[l].out_bytes / lc->link_bw : 0));
  }
  for (int m = 0; m < p->N; m++) mbp[p->mb_pipe[m]]++;
  for (int q = 0; q < p->n_pipes; q++)
    for (int s = 0; s < S; s++) {
      int r = p->stage_rank[q * S + s];
      pp->mult[r * S + s] += mbp[q];
      pp->copies[r * S + s] += 1;
    }
  for (int r = 0; r < D; r++) {
    double k = 0;
    for (int s = 0; s < S; s++) k += pp->mult[r * S + s];
    if (k > pp->K) pp->K = k;
  }
  for (int r = 0; r < D; r++) {
    const bp_rank_program *rp = &p->rank[r];
    int cap = 8, nv = 0;
    int *v = malloc(sizeof(int) * (size_t)cap * S);
    if (!v) goto oom;
    memset(cnt, 0, sizeof(int) * S);
    for (int i = 0; i < rp->n; i++) {
      const bp_instr *x = &rp->code[i];
      if (x->chunk < 0) continue;
      int s = bp_program_chunk(p, r, x->chunk)->stage;
      if (x->op == BP_OP_BWD || x->op == BP_OP_BWD_WEIGHT) cnt[s]--;
      if (x->op != BP_OP_FWD) continue;
      cnt[s]++;
      /* keep the state unless an earlier one dominates it; drop those it dominates */
      int dominated = 0;
      for (int k = 0; k < nv && !dominated; k++) {
        int ge = 1;
        for (int t = 0; t < S && ge; t++) ge = v[k * S + t] >= cnt[t];
        dominated = ge;
      }
      if (dominated) continue;
      for (int k = 0; k < nv;) {
        int le = 1;
        for (int t = 0; t < S && le; t++) le = v[k * S + t] <= cnt[t];
        if (le) memmove(v + k * S, v + (nv - 1) * S, sizeof(int) * S), nv--;
        else k++;
      }
      if (nv == cap) {
        cap *= 2;
        int *nvp = realloc(v, sizeof(int) * (size_t)cap * S);
        if (!nvp) {
          free(v);
          goto oom;
        }
        v = nvp;
      }
      memcpy(v + nv * S, cnt, sizeof(int) * S);
      nv++;
    }
    pp->vec[r] = v, pp->nvec[r] = nv;
  }
  if (lc->n_tied > 0) { /* the all-reduce of each tied parameter, for each pair of stages */
    int T = lc->n_tied;
    pp->tied_a = calloc((size_t)T, sizeof(int)), pp->tied_b = calloc((size_t)T, sizeof(int));
    pp->tied_cost = calloc((size_t)T * S * S, sizeof(double));
    if (!pp->tied_a || !pp->tied_b || !pp->tied_cost) goto oom;
    pp->n_tied = T;
    for (int i = 0; i < T; i++) {
      pp->tied_a[i] = lc->tied[i].a, pp->tied_b[i] = lc->tied[i].b;
      for (int s = 0; s < S; s++)
        for (int t = 0; t < S; t++) {
          int same = 1, k = 0;
          for (int r = 0; r < D; r++) {
            int hs = pp->copies[r * S + s] > 0, ht = pp->copies[r * S + t] > 0;
            same &= hs == ht, k += hs || ht;
          }
          pp->tied_cost[((size_t)i * S + s) * S + t] =
              same || k < 2 ? 0
                            : 2.0 * (k - 1) * lc->link_lat +
                                  (lc->link_bw > 0 ? 2.0 * (k - 1) / k * lc->tied[i].bytes / lc->link_bw : 0);
        }
    }
  }
  free(cnt), free(mbp);
  return 0;
oom:
  free(cnt), free(mbp);
  bp_part_problem_free(pp);
  return bp_sched_errf(err, errlen, "partition: out of memory");
}

static void stage_sums(const bp_part_problem *pp, const int *first, double *work, double *act, double *state) {
  for (int s = 0; s < pp->S; s++) {
    work[s] = act[s] = state[s] = 0;
    for (int l = first[s]; l < first[s + 1]; l++)
      work[s] += pp->work[l], act[s] += pp->lc->l[l].act_bytes, state[s] += pp->lc->l[l].state_bytes;
  }
}

static int stage_of(const int *first, int S, int l) {
  int lo = 0, hi = S - 1; /* the last s with first[s] <= l */
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (first[mid] <= l) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

double bp_part_tied(const bp_part_problem *pp, const int *first) {
  double v = 0;
  int S = pp->S;
  for (int i = 0; i < pp->n_tied; i++)
    v += pp->tied_cost[((size_t)i * S + stage_of(first, S, pp->tied_a[i])) * S + stage_of(first, S, pp->tied_b[i])];
  return v;
}

/* load, state, mem per rank; returns the proxy. */
static double eval_core(const bp_part_problem *pp, const int *first, double *load, double *state, double *mem,
                        double *comm_out, double *maxload_out, double *pace_out) {
  int S = pp->S, D = pp->D;
  double w[S], a[S], st[S], comm = bp_part_tied(pp, first), mx = 0, pace = 0;
  stage_sums(pp, first, w, a, st);
  for (int s = 0; s < S; s++)
    if (pp->K * w[s] > pace) pace = pp->K * w[s];
  for (int s = 0; s + 1 < S; s++) comm += pp->comm[first[s + 1] - 1];
  for (int r = 0; r < D; r++) {
    load[r] = state[r] = 0;
    for (int s = 0; s < S; s++) load[r] += pp->mult[r * S + s] * w[s], state[r] += pp->copies[r * S + s] * st[s];
    double stash = 0;
    for (int k = 0; k < pp->nvec[r]; k++) {
      double b = 0;
      for (int s = 0; s < S; s++) b += pp->vec[r][k * S + s] * a[s];
      if (b > stash) stash = b;
    }
    mem[r] = state[r] + stash;
    if (load[r] > mx) mx = load[r];
  }
  if (comm_out) *comm_out = comm;
  if (maxload_out) *maxload_out = mx;
  if (pace_out) *pace_out = pace;
  return (mx > pace ? mx : pace) + BP_PART_TIE * mx + comm;
}

double bp_part_proxy(const bp_part_problem *pp, const int *first, double *peak_mem) {
  int D = pp->D;
  double load[D], state[D], mem[D];
  double v = eval_core(pp, first, load, state, mem, NULL, NULL, NULL);
  if (peak_mem) {
    *peak_mem = 0;
    for (int r = 0; r < D; r++)
      if (mem[r] > *peak_mem) *peak_mem = mem[r];
  }
  return v;
}

double bp_part_proxy_ranks(const bp_part_problem *pp, const int *first, double *load, double *mem) {
  int D = pp->D;
  double state[D];
  return eval_core(pp, first, load, state, mem, NULL, NULL, NULL);
}

void bp_part_eval_free(bp_part_eval *ev) {
  free(ev->load), free(ev->state), free(ev->mem), free(ev->sim_mem);
  memset(ev, 0, sizeof *ev);
}

int bp_part_evaluate(const bp_part_problem *pp, const int *first, int simulate, bp_part_eval *ev, char *err,
                     size_t errlen) {
  memset(ev, 0, sizeof *ev);
  int D = pp->D, S = pp->S;
  ev->load = calloc((size_t)D, sizeof(double)), ev->state = calloc((size_t)D, sizeof(double));
  ev->mem = calloc((size_t)D, sizeof(double)), ev->sim_mem = calloc((size_t)D, sizeof(double));
  if (!ev->load || !ev->state || !ev->mem || !ev->sim_mem) {
    bp_part_eval_free(ev);
    return bp_sched_errf(err, errlen, "partition: out of memory");
  }
  ev->proxy = eval_core(pp, first, ev->load, ev->state, ev->mem, &ev->comm, &ev->max_load, &ev->pace);
  ev->tied = bp_part_tied(pp, first);
  ev->feasible = 1;
  for (int r = 0; r < D; r++) {
    if (ev->mem[r] > ev->peak_mem) ev->peak_mem = ev->mem[r];
    if (pp->mem_cap > 0 && ev->mem[r] > pp->mem_cap) ev->feasible = 0;
  }
  if (!simulate) return 0;
  bp_costs table = {.n = S, .layer = calloc((size_t)S, sizeof(bp_layer_cost))};
  if (!table.layer) {
    bp_part_eval_free(ev);
    return bp_sched_errf(err, errlen, "partition: out of memory");
  }
  for (int s = 0; s < S; s++) {
    bp_layer_cost *c = &table.layer[s];
    for (int l = first[s]; l < first[s + 1]; l++) {
      const bp_lcost *x = &pp->lc->l[l];
      c->fwd += x->fwd, c->bwd += x->bwd, c->act_bytes += x->act_bytes, c->param_bytes += x->param_bytes;
    }
    c->out_bytes = pp->lc->l[first[s + 1] - 1].out_bytes;
  }
  bp_sim_config cfg;
  bp_sim_config_default(&cfg);
  cfg.costs = &table;
  cfg.latency = pp->lc->link_lat, cfg.bandwidth = pp->lc->link_bw;
  bp_sim_result res;
  int rc = bp_simulate(pp->prog, &cfg, &res, err, errlen);
  free(table.layer);
  if (rc) {
    bp_part_eval_free(ev);
    return -1;
  }
  ev->simulated = 1;
  ev->step_time = res.step_time + ev->tied, ev->bubble_mean = res.bubble_mean, ev->bubble_max = res.bubble_max;
  for (int r = 0; r < D; r++) ev->sim_mem[r] = ev->state[r] + res.peak_bytes[r];
  bp_sim_result_free(&res);
  return 0;
}

void bp_part_uniform(int L, int S, int *first) {
  for (int s = 0; s <= S; s++) first[s] = (int)((long)s * L / S);
}

int bp_part_parse(const char *spec, int L, int S, int *first, char *err, size_t errlen) {
  const char *p = spec;
  int s = 0, next = 0;
  while (*p) {
    char *end;
    long a = strtol(p, &end, 10), b;
    if (end == p) goto bad;
    p = end;
    if (*p == '-') {
      p++;
      b = strtol(p, &end, 10);
      if (end == p) goto bad;
      p = end;
    } else {
      b = a;
    }
    if (s >= S)
      return bp_sched_errf(err, errlen, "--partition %s: more ranges than the schedule's %d stages", spec, S);
    if (a != next || b < a || b >= L)
      return bp_sched_errf(err, errlen,
                           "--partition %s: range %d is %ld-%ld but must start at layer %d and end at or after "
                           "it, before layer %d (ranges cover 0..%d in order)",
                           spec, s, a, b, next, L, L - 1);
    first[s++] = (int)a, next = (int)b + 1;
    if (*p == ',') p++;
    else if (*p) goto bad;
  }
  if (s != S || next != L)
    return bp_sched_errf(err, errlen, "--partition %s: %d ranges covering layers 0..%d, but the schedule has %d stages "
                                      "and the model %d layers (0..%d)",
                         spec, s, next - 1, S, L, L - 1);
  first[S] = L;
  return 0;
bad:
  return bp_sched_errf(err, errlen, "--partition %s: expected ranges like 0-3,4-6,7 (layers per stage)", spec);
}

char *bp_part_format(const int *first, int S, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int s = 0; s < S && k < n; s++) {
    int a = first[s], b = first[s + 1] - 1;
    k += a == b ? (size_t)snprintf(buf + k, n - k, "%s%d", s ? "," : "", a)
                : (size_t)snprintf(buf + k, n - k, "%s%d-%d", s ? "," : "", a, b);
  }
  return buf;
}
