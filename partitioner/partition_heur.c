/* partitioner/partition_heur.c — what the integer program is given before GLPK starts: the exact
 * bottleneck (the smallest possible largest stage, by dynamic programming), an incumbent (dynamic
 * programming plus a local search on the real objective), and the range each cut can take given a
 * largest-stage bound and the memory cap (a greedy sweep from each end). With an incumbent of value
 * UB the pace term alone bounds every stage's work: K * w_s <= UB - TIE * (average load) - (the
 * cheapest S-1 cuts), which pins most cut variables before branching starts. */
#include "partitioner/partition.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the bottleneck ------------------------------------------------------------------------- */

double bp_part_bottleneck(const bp_part_problem *pp) {
  int L = pp->L, S = pp->S;
  double *pre = malloc(sizeof(double) * (size_t)(L + 1)), *cur = malloc(sizeof(double) * (size_t)(L + 1));
  double *nxt = malloc(sizeof(double) * (size_t)(L + 1)), res = INFINITY;
  if (!pre || !cur || !nxt) goto done;
  pre[0] = 0;
  for (int l = 0; l < L; l++) pre[l + 1] = pre[l] + pp->work[l];
  /* cur[e]: the best largest stage of [0, e) in s stages */
  for (int e = 0; e <= L; e++) cur[e] = e >= 1 ? pre[e] : INFINITY;
  for (int s = 2; s <= S; s++) {
    for (int e = 0; e <= L; e++) {
      nxt[e] = INFINITY;
      if (e < s) continue;
      for (int j = e - 1; j >= s - 1; j--) {
        double seg = pre[e] - pre[j];
        if (seg >= nxt[e]) break; /* longer last stages only get heavier */
        double v = fmax(cur[j], seg);
        if (v < nxt[e]) nxt[e] = v;
      }
    }
    double *t = cur;
    cur = nxt, nxt = t;
  }
  res = cur[L];
done:
  free(pre), free(cur), free(nxt);
  return res;
}

/* The partition with every stage's work <= wcap and the cheapest cuts (comm), or -1. */
static int cheapest_cuts(const bp_part_problem *pp, double wcap, int *first) {
  int L = pp->L, S = pp->S, rc = -1;
  double *pre = malloc(sizeof(double) * (size_t)(L + 1));
  double *c = malloc(sizeof(double) * (size_t)(S + 1) * (L + 1));
  int *arg = malloc(sizeof(int) * (size_t)(S + 1) * (L + 1));
  if (!pre || !c || !arg) goto done;
  pre[0] = 0;
  for (int l = 0; l < L; l++) pre[l + 1] = pre[l] + pp->work[l];
#define C(s, e) c[(size_t)(s) * (L + 1) + (e)]
#define A(s, e) arg[(size_t)(s) * (L + 1) + (e)]
  for (int s = 0; s <= S; s++)
    for (int e = 0; e <= L; e++) C(s, e) = INFINITY, A(s, e) = -1;
  C(0, 0) = 0;
  for (int s = 1; s <= S; s++)
    for (int e = s; e <= L - (S - s); e++)
      for (int j = e - 1; j >= s - 1; j--) {
        if (pre[e] - pre[j] > wcap) break;
        if (isinf(C(s - 1, j))) continue;
        double v = C(s - 1, j) + (j > 0 ? pp->comm[j - 1] : 0);
        if (v < C(s, e)) C(s, e) = v, A(s, e) = j;
      }
  if (isinf(C(S, L))) goto done;
  first[S] = L;
  for (int s = S; s >= 1; s--) first[s - 1] = A(s, first[s]);
  rc = 0;
#undef C
#undef A
done:
  free(pre), free(c), free(arg);
  return rc;
}

/* ---- the incumbent ---------------------------------------------------------------------------- */

/* A partition's score, compared lexicographically: memory over the cap summed over the ranks (so a
 * move that helps any rank over the cap counts), the objective (mode 0: the proxy; mode 1: the
 * peak memory), then the sum of squares of what the objective takes the largest of (loads;
 * memories), which steers moves across plateaus where the largest does not change. */
typedef struct {
  double excess, value, spread;
} score_t;

static score_t score(const bp_part_problem *pp, const int *first, int mode, double *load, double *mem) {
  score_t sc = {0, 0, 0};
  double v = bp_part_proxy_ranks(pp, first, load, mem), peak = 0;
  for (int r = 0; r < pp->D; r++) {
    if (mem[r] > peak) peak = mem[r];
    if (mode == 0 && pp->mem_cap > 0 && mem[r] > pp->mem_cap) sc.excess += mem[r] - pp->mem_cap;
    double x = mode == 1 ? mem[r] : load[r];
    sc.spread += x * x;
  }
  sc.value = mode == 1 ? peak : v;
  return sc;
}

static int lt(double a, double b) { return isinf(b) ? a < b : a < b - 1e-12 * (fabs(a) + fabs(b)); }

static int better(score_t a, score_t b) {
  if (lt(a.excess, b.excess)) return 1;
  if (lt(b.excess, a.excess)) return 0;
  if (lt(a.value, b.value)) return 1;
  if (lt(b.value, a.value)) return 0;
  return lt(a.spread, b.spread);
}

/* Moves one cut by up to 2 layers, or two neighbouring cuts together by 1 (a stage slides), taking
 * the first that improves, until none does. */
static score_t local_search(const bp_part_problem *pp, int mode, int *first) {
  int S = pp->S, D = pp->D;
  double load[D], mem[D];
  score_t cur = score(pp, first, mode, load, mem);
  for (int pass = 0, improved = 1; improved && pass < 10000; pass++) {
    improved = 0;
    for (int s = 1; s < S; s++)
      for (int mv = 0; mv < 6; mv++) {
        static const int dd[6] = {-1, 1, -2, 2, -1, 1};
        int d = dd[mv], two = mv >= 4 && s + 1 < S;
        if (mv >= 4 && !two) continue;
        int o1 = first[s], o2 = two ? first[s + 1] : 0;
        first[s] += d;
        if (two) first[s + 1] += d;
        int ok = first[s] > first[s - 1] && first[s] < first[s + 1] && (!two || first[s + 1] < first[s + 2]);
        score_t sc;
        if (ok && better(sc = score(pp, first, mode, load, mem), cur)) {
          cur = sc, improved = 1;
        } else {
          first[s] = o1;
          if (two) first[s + 1] = o2;
        }
      }
  }
  return cur;
}

/* Cuts where a running sum of per-layer weights passes s/S of its total. */
static int balanced(int L, int S, const double *w, int *c) {
  double tot = 0, run = 0;
  for (int l = 0; l < L; l++) tot += w[l];
  c[0] = 0, c[S] = L;
  int s = 1;
  for (int l = 0; l < L && s < S; l++) {
    run += w[l];
    if ((run >= tot * s / S && l + 1 >= s) || L - (l + 1) <= S - s) c[s++] = l + 1;
  }
  if (s != S) return -1;
  for (int t = 0; t < S; t++)
    if (c[t] >= c[t + 1]) return -1;
  return 0;
}

int bp_part_incumbent(const bp_part_problem *pp, int mode, int *first, double *value) {
  int L = pp->L, S = pp->S, nc = 0;
  int(*cand)[S + 1] = malloc(sizeof(int) * (size_t)(S + 1) * 6);
  double *w = malloc(sizeof(double) * (size_t)L);
  if (!cand || !w) {
    free(cand), free(w);
    return 0;
  }
  bp_part_uniform(L, S, cand[nc++]);
  if (balanced(L, S, pp->work, cand[nc]) == 0) nc++;
  double ws = bp_part_bottleneck(pp);
  if (isfinite(ws) && cheapest_cuts(pp, ws * (1 + 1e-12), cand[nc]) == 0) nc++;
  for (int l = 0; l < L; l++) w[l] = pp->lc->l[l].state_bytes + pp->lc->l[l].act_bytes;
  if (balanced(L, S, w, cand[nc]) == 0) nc++;
  /* under a cap: the partition of least peak memory, as a start for the proxy */
  if (mode == 0 && pp->mem_cap > 0 && bp_part_incumbent(pp, 1, cand[nc], &ws)) nc++;
  score_t best = {INFINITY, INFINITY, INFINITY};
  for (int k = 0; k < nc; k++) {
    score_t sc = local_search(pp, mode, cand[k]);
    if (better(sc, best)) best = sc, memcpy(first, cand[k], sizeof(int) * (S + 1));
  }
  free(cand), free(w);
  if (!(best.excess == 0)) return 0;
  *value = best.value;
  return 1;
}

/* ---- cut ranges ------------------------------------------------------------------------------- */

/* Each rule is a row over the stages: sum_s coef[s] . (state, act, work)(stage s) <= cap, with
 * non-negative coefficients (a rank's memory in one stash state; a rank's load; one stage's work).
 * A stage's share of a rule is bounded by cap minus the least the rule's other stages can hold
 * within the current ranges (the layers a stage must contain: between its latest start and its
 * earliest end; else its lightest possible layer). A reachability sweep from each end turns those
 * per-stage bounds into cut ranges; a narrower range raises the other stages' least shares, so the
 * bounds are recomputed until nothing moves (bound propagation). */
typedef struct {
  const bp_part_problem *pp;
  int nq;
  double *coef;         /* [nq][S][3] */
  double *cap;          /* [nq] */
  double *share;        /* [nq][S] the bound on stage s's share of rule q this round */
  double *pw, *ps, *pa; /* prefix sums: work, state, act */
} ranger;

static double seg_val(const ranger *g, int q, int s, int a, int e) {
  const double *c = g->coef + ((size_t)q * g->pp->S + s) * 3;
  return c[0] * (g->ps[e] - g->ps[a]) + c[1] * (g->pa[e] - g->pa[a]) + c[2] * (g->pw[e] - g->pw[a]);
}

static int seg_ok(const ranger *g, int s, int a, int e) {
  int S = g->pp->S;
  for (int q = 0; q < g->nq; q++) {
    const double *c = g->coef + ((size_t)q * S + s) * 3;
    if ((c[0] != 0 || c[1] != 0 || c[2] != 0) && seg_val(g, q, s, a, e) > g->share[(size_t)q * S + s]) return 0;
  }
  return 1;
}

static void add_rule(ranger *g, const double *coef, double cap) {
  int S = g->pp->S;
  memcpy(g->coef + (size_t)g->nq * S * 3, coef, sizeof(double) * S * 3);
  g->cap[g->nq++] = cap;
}

/* The positions each cut can take under the per-stage bounds: R[s] = the ends of prefixes that s
 * stages can cover, from the left; Q[s] = the starts of suffixes that stages s.. can cover, from
 * the right; first[s] lies in both. (A stage's bound depends on the stage, so a greedy sweep is not
 * enough: a heavy layer may fit the next stage but not this one.) Extending a stage only adds to
 * its share, so each scan stops at its first failure. Returns 0 with the ranges intersected into
 * lo/hi, or 1 when some cut has no position. */
static int sweep(const ranger *g, int *lo, int *hi, unsigned char *R, unsigned char *Q) {
  int L = g->pp->L, S = g->pp->S;
  memset(R, 0, (size_t)(S + 1) * (L + 1));
  memset(Q, 0, (size_t)(S + 1) * (L + 1));
  R[0] = 1;
  for (int s = 0; s < S; s++)
    for (int a = lo[s]; a <= hi[s]; a++) {
      if (!R[(size_t)s * (L + 1) + a]) continue;
      for (int e = a + 1; e <= hi[s + 1] && seg_ok(g, s, a, e); e++)
        if (e >= lo[s + 1]) R[(size_t)(s + 1) * (L + 1) + e] = 1;
    }
  Q[(size_t)S * (L + 1) + L] = 1;
  for (int s = S - 1; s >= 0; s--)
    for (int e = hi[s + 1]; e >= lo[s + 1]; e--) {
      if (!Q[(size_t)(s + 1) * (L + 1) + e]) continue;
      for (int a = e - 1; a >= lo[s] && seg_ok(g, s, a, e); a--)
        if (a <= hi[s]) Q[(size_t)s * (L + 1) + a] = 1;
    }
  for (int s = 0; s <= S; s++) {
    int nlo = -1, nhi = -1;
    for (int p = lo[s]; p <= hi[s]; p++)
      if (R[(size_t)s * (L + 1) + p] && Q[(size_t)s * (L + 1) + p]) {
        if (nlo < 0) nlo = p;
        nhi = p;
      }
    if (nlo < 0) return 1;
    lo[s] = nlo, hi[s] = nhi;
  }
  return 0;
}

int bp_part_cut_ranges(const bp_part_problem *pp, double wcap, double mcap, double lcap, int *lo, int *hi) {
  int L = pp->L, S = pp->S, D = pp->D, rc = -1, maxq = S;
  for (int r = 0; r < D; r++) maxq += (pp->nvec[r] ? pp->nvec[r] : 1) + 1;
  ranger g = {.pp = pp};
  g.pw = calloc((size_t)L + 1, sizeof(double)), g.ps = calloc((size_t)L + 1, sizeof(double));
  g.pa = calloc((size_t)L + 1, sizeof(double));
  g.coef = calloc((size_t)maxq * S * 3, sizeof(double)), g.cap = calloc((size_t)maxq, sizeof(double));
  g.share = calloc((size_t)maxq * S, sizeof(double));
  double *c = calloc((size_t)S * 3, sizeof(double));
  unsigned char *R = malloc((size_t)(S + 1) * (L + 1)), *Q = malloc((size_t)(S + 1) * (L + 1));
  if (!g.pw || !g.ps || !g.pa || !g.coef || !g.cap || !g.share || !c || !R || !Q) goto done;
  for (int l = 0; l < L; l++) {
    g.pw[l + 1] = g.pw[l] + pp->work[l];
    g.ps[l + 1] = g.ps[l] + pp->lc->l[l].state_bytes;
    g.pa[l + 1] = g.pa[l] + pp->lc->l[l].act_bytes;
  }
  if (wcap > 0)
    for (int s = 0; s < S; s++) {
      memset(c, 0, sizeof(double) * S * 3);
      c[s * 3 + 2] = 1;
      add_rule(&g, c, wcap);
    }
  for (int r = 0; r < D; r++) {
    if (mcap > 0)
      for (int k = 0; k < (pp->nvec[r] ? pp->nvec[r] : 1); k++) {
        for (int s = 0; s < S; s++)
          c[s * 3] = pp->copies[r * S + s], c[s * 3 + 1] = pp->nvec[r] ? pp->vec[r][k * S + s] : 0, c[s * 3 + 2] = 0;
        add_rule(&g, c, mcap);
      }
    if (lcap > 0) {
      for (int s = 0; s < S; s++) c[s * 3] = c[s * 3 + 1] = 0, c[s * 3 + 2] = pp->mult[r * S + s];
      add_rule(&g, c, lcap);
    }
  }
  for (int s = 0; s <= S; s++) lo[s] = s, hi[s] = L - (S - s);
  hi[0] = 0, lo[S] = L;
  for (int round = 0; round < 100; round++) {
    /* each stage's least share of each rule, from the current ranges */
    for (int q = 0; q < g.nq; q++) {
      double least[S], sum = 0;
      for (int s = 0; s < S; s++) {
        const double *cq = g.coef + ((size_t)q * S + s) * 3;
        least[s] = 0;
        if (cq[0] == 0 && cq[1] == 0 && cq[2] == 0) continue;
        if (hi[s] < lo[s + 1]) least[s] = seg_val(&g, q, s, hi[s], lo[s + 1]);
        else { /* no layer is certain: the lightest it could hold */
          least[s] = INFINITY;
          for (int l = lo[s]; l < hi[s + 1]; l++) least[s] = fmin(least[s], seg_val(&g, q, s, l, l + 1));
          if (isinf(least[s])) least[s] = 0;
        }
        sum += least[s];
      }
      for (int s = 0; s < S; s++) g.share[(size_t)q * S + s] = g.cap[q] - (sum - least[s]);
    }
    int olo[S + 1], ohi[S + 1];
    memcpy(olo, lo, sizeof olo), memcpy(ohi, hi, sizeof ohi);
    if (sweep(&g, lo, hi, R, Q)) {
      rc = 1;
      goto done;
    }
    if (!memcmp(olo, lo, sizeof olo) && !memcmp(ohi, hi, sizeof ohi)) break;
  }
  rc = 0;
done:
  free(g.pw), free(g.ps), free(g.pa), free(g.coef), free(g.cap), free(g.share), free(c), free(R), free(Q);
  return rc;
}

/* ---- polishing an optimum ------------------------------------------------------------------ */

/* Sum of squared rank loads, and whether the partition fits the cap. */
static double spread(const bp_part_problem *pp, const int *first, double *peak) {
  bp_part_eval ev;
  if (bp_part_evaluate(pp, first, 0, &ev, NULL, 0)) return INFINITY;
  double v = 0;
  for (int r = 0; r < pp->D; r++) v += ev.load[r] * ev.load[r];
  *peak = ev.peak_mem;
  bp_part_eval_free(&ev);
  return v;
}

void bp_part_polish(const bp_part_problem *pp, int *first) {
  int S = pp->S;
  double peak, opt = bp_part_proxy(pp, first, &peak), cur = spread(pp, first, &peak);
  double tol = opt * (1 + 1e-12);
  for (int pass = 0, improved = 1; improved && pass < 1000; pass++) {
    improved = 0;
    for (int s = 1; s < S; s++)
      for (int d = -2; d <= 2; d++) {
        if (!d) continue;
        int old = first[s], nw = old + d;
        if (nw <= first[s - 1] || nw >= first[s + 1]) continue;
        first[s] = nw;
        double pk, v = bp_part_proxy(pp, first, &pk), sp = v <= tol ? spread(pp, first, &pk) : INFINITY;
        if (v <= tol && (pp->mem_cap <= 0 || pk <= pp->mem_cap) && sp < cur * (1 - 1e-12)) cur = sp, improved = 1;
        else first[s] = old;
      }
  }
}
