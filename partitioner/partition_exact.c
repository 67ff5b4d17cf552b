/* partitioner/partition_exact.c — exact search over all contiguous partitions, the reference the
 * integer program is tested against. Depth-first over the stages in pipeline order; each rank's
 * load, weight memory and stash-state sums only grow, so a branch is cut when a rank's memory
 * passes the cap or when a lower bound on the proxy (the largest load so far, or the average load
 * once the remaining work is spread perfectly, the pace of the slowest stage so far or of the
 * remaining work spread over the remaining stages, plus the communication so far) reaches the best.
 * The tied parameters' all-reduce (>= 0) is added at the leaves. */
#include "partitioner/partition.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const bp_part_problem *pp;
  double *pre_w, *pre_a, *pre_s; /* prefix sums over layers */
  double *load, *state, *stash;  /* [D], [D], [D][maxv] */
  int maxv;
  int *cur, *best;
  double best_obj, total;
  long nodes, limit;
  int stopped;
} search;

static void dfs(search *z, int s, int a, double comm, double pace) {
  const bp_part_problem *pp = z->pp;
  int S = pp->S, D = pp->D, L = pp->L;
  if (z->limit > 0 && z->nodes >= z->limit) {
    z->stopped = 1;
    return;
  }
  z->nodes++;
  int bmax = s == S - 1 ? L - 1 : L - (S - s);
  int bmin = s == S - 1 ? L - 1 : a;
  /* try ends near the balanced point first */
  double target = z->total * (s + 1) / S;
  int nb = bmax - bmin + 1, order[nb];
  for (int i = 0; i < nb; i++) order[i] = bmin + i;
  for (int i = 1; i < nb; i++)
    for (int j = i; j > 0 && fabs(z->pre_w[order[j] + 1] - target) < fabs(z->pre_w[order[j - 1] + 1] - target); j--) {
      int t = order[j];
      order[j] = order[j - 1], order[j - 1] = t;
    }
  double save_load[D], save_state[D];
  memcpy(save_load, z->load, sizeof(double) * D);
  memcpy(save_state, z->state, sizeof(double) * D);
  double *save_stash = malloc(sizeof(double) * (size_t)D * z->maxv);
  if (!save_stash) {
    z->stopped = 1;
    return;
  }
  memcpy(save_stash, z->stash, sizeof(double) * (size_t)D * z->maxv);
  for (int i = 0; i < nb; i++) {
    int b = order[i];
    double w = z->pre_w[b + 1] - z->pre_w[a], act = z->pre_a[b + 1] - z->pre_a[a];
    double st = z->pre_s[b + 1] - z->pre_s[a];
    double c = comm + (s < S - 1 ? pp->comm[b] : 0), mx = 0, sum = 0;
    int ok = 1;
    for (int r = 0; r < D; r++) {
      z->load[r] = save_load[r] + pp->mult[r * S + s] * w;
      z->state[r] = save_state[r] + pp->copies[r * S + s] * st;
      double peak = 0;
      for (int k = 0; k < pp->nvec[r]; k++) {
        double v = save_stash[r * z->maxv + k] + pp->vec[r][k * S + s] * act;
        z->stash[r * z->maxv + k] = v;
        if (v > peak) peak = v;
      }
      if (pp->mem_cap > 0 && z->state[r] + peak > pp->mem_cap) ok = 0;
      if (z->load[r] > mx) mx = z->load[r];
      sum += z->load[r];
    }
    if (!ok) continue;
    double rest = (z->pre_w[L] - z->pre_w[b + 1]) * pp->N, pc = fmax(pace, pp->K * w);
    double lb_pace = s < S - 1 ? fmax(pc, pp->K * (z->pre_w[L] - z->pre_w[b + 1]) / (S - 1 - s)) : pc;
    double lb_load = fmax(mx, (sum + rest) / D);
    double lb = fmax(lb_load, lb_pace) + BP_PART_TIE * lb_load + c;
    if (lb >= z->best_obj * (1 - 1e-12)) continue;
    z->cur[s + 1] = b + 1;
    if (s == S - 1) {
      double v = fmax(mx, pc) + BP_PART_TIE * mx + c + bp_part_tied(pp, z->cur); /* tied >= 0: not in lb */
      if (v < z->best_obj) {
        z->best_obj = v;
        memcpy(z->best, z->cur, sizeof(int) * (S + 1));
      }
    } else {
      dfs(z, s + 1, b + 1, c, pc);
      if (z->stopped) break;
    }
  }
  memcpy(z->load, save_load, sizeof(double) * D);
  memcpy(z->state, save_state, sizeof(double) * D);
  memcpy(z->stash, save_stash, sizeof(double) * (size_t)D * z->maxv);
  free(save_stash);
}

int bp_part_exact(const bp_part_problem *pp, long node_limit, int *first, bp_exact_info *info, char *err,
                  size_t errlen) {
  int L = pp->L, S = pp->S, D = pp->D, rc = -1;
  search z = {.pp = pp, .best_obj = INFINITY, .limit = node_limit};
  for (int r = 0; r < D; r++)
    if (pp->nvec[r] > z.maxv) z.maxv = pp->nvec[r];
  if (z.maxv == 0) z.maxv = 1;
  z.pre_w = calloc((size_t)L + 1, sizeof(double)), z.pre_a = calloc((size_t)L + 1, sizeof(double));
  z.pre_s = calloc((size_t)L + 1, sizeof(double));
  z.load = calloc((size_t)D, sizeof(double)), z.state = calloc((size_t)D, sizeof(double));
  z.stash = calloc((size_t)D * z.maxv, sizeof(double));
  z.cur = calloc((size_t)S + 1, sizeof(int)), z.best = calloc((size_t)S + 1, sizeof(int));
  if (!z.pre_w || !z.pre_a || !z.pre_s || !z.load || !z.state || !z.stash || !z.cur || !z.best) {
    bp_sched_errf(err, errlen, "partition: out of memory");
    goto done;
  }
  for (int l = 0; l < L; l++) {
    z.pre_w[l + 1] = z.pre_w[l] + pp->work[l];
    z.pre_a[l + 1] = z.pre_a[l] + pp->lc->l[l].act_bytes;
    z.pre_s[l + 1] = z.pre_s[l] + pp->lc->l[l].state_bytes;
  }
  z.total = z.pre_w[L];
  dfs(&z, 0, 0, 0, 0);
  info->nodes = z.nodes;
  info->timed_out = z.stopped;
  if (isinf(z.best_obj)) {
    rc = z.stopped ? bp_sched_errf(err, errlen, "partition: exact search hit its node limit without a solution") : 1;
    goto done;
  }
  memcpy(first, z.best, sizeof(int) * (S + 1));
  info->obj = bp_part_proxy(pp, first, NULL);
  rc = 0;
done:
  free(z.pre_w), free(z.pre_a), free(z.pre_s), free(z.load), free(z.state), free(z.stash), free(z.cur), free(z.best);
  return rc;
}
