/* tests/partition/test_solvers.c — the GLPK integer program against the exact search on random
 * instances (layers 5-40, D 2-8, every schedule, random memory caps and links, tied parameters
 * between random layers): same optimum, and the same infeasibility verdict; the smallest cap
 * (the integer program minimising peak memory) equals enumeration where there are <= 3000
 * partitions. Also: the evaluator's memory equals the simulator's, uniform and
 * manual partitions parse, and on a heavy-head GPT-2 (124M shapes, analytic H100) the automatic
 * partition beats the uniform one in simulated step time, with fewer blocks beside the head. */
#include "partitioner/partition.h"
#include "tests/schedule/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;
static double urand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0;
}
static int irand(int a, int b) { return a + (int)(urand() * (b - a + 1)); }

static void random_costs(bp_lcosts *c, int L) {
  bp_err e = {0};
  bp_lcosts_alloc(c, L, &e);
  for (int l = 0; l < L; l++) {
    bp_lcost *x = &c->l[l];
    snprintf(x->name, sizeof x->name, "l%d", l);
    x->fwd = 0.2 + urand() * (l == L - 1 ? 6 : 2);
    x->bwd = x->fwd * (1.5 + urand());
    x->param_bytes = 1e6 * (0.5 + urand());
    x->state_bytes = 4 * x->param_bytes;
    x->act_bytes = 1e5 * (0.5 + urand() * 3);
    x->out_bytes = 1e4 * (0.5 + urand());
  }
  if (urand() < 0.5) c->link_bw = 1e5 * (1 + urand() * 10), c->link_lat = 0.01 * urand();
  /* tied parameters: the embedding/head pair, or any two layers (the solver's z variables) */
  double u = urand();
  if (u < 0.3) bp_lcosts_add_tied(c, 0, L - 1, 2e6, "wte", &e);
  else if (u < 0.7) {
    int a = irand(0, L - 2), b = irand(a + 1, L - 1);
    bp_lcosts_add_tied(c, a, b, 1e6 * (1 + urand() * 20), "shared", &e);
    if (urand() < 0.5) bp_lcosts_add_tied(c, irand(0, a), b, 5e5, "shared2", &e);
  }
}

/* The least peak memory over every partition, by enumeration (cut positions in lexicographic order). */
static double brute_min_memory(const bp_part_problem *pp, long *count) {
  int S = pp->S, L = pp->L, f[S + 1];
  double best = INFINITY;
  for (int s = 0; s <= S; s++) f[s] = s;
  f[S] = L;
  *count = 0;
  for (;;) {
    double peak;
    bp_part_proxy(pp, f, &peak);
    if (peak < best) best = peak;
    ++*count;
    int s = S - 1; /* advance the last cut that can move, reset the ones after it */
    while (s >= 1 && f[s] == L - (S - s)) s--;
    if (s < 1) break;
    f[s]++;
    for (int t = s + 1; t < S; t++) f[t] = f[t - 1] + 1;
  }
  return best;
}

static void random_instances(void) {
  int n_sched;
  const bp_schedule_info *all = bp_schedule_list(&n_sched);
  int compared = 0, infeasible = 0, skipped = 0, with_tied = 0, min_mem_checked = 0;
  double worst_ilp = 0;
  for (int it = 0; it < 80; it++) {
    const char *name = all[it % n_sched].name;
    int two = !strcmp(name, "chimera") || !strncmp(name, "bitpipe", 7);
    int D = irand(1, 4) * 2;
    if (!two && urand() < 0.3) D = irand(2, 8);
    int N = D * irand(1, 2);
    bp_sched_params sp = {.D = D, .N = N, .chunks = 0};
    bp_program p;
    char err[512];
    int rc = bp_schedule_generate(name, &sp, &p, err, sizeof err);
    CHECK(rc == 0, "%s D=%d N=%d: %s", name, D, N, err);
    if (rc) {
      bp_program_free(&p);
      continue;
    }
    int S = p.n_stages, Lmax = S * 4 < 40 ? S * 4 : 40;
    if (S >= 12) Lmax = S + 10 < 40 ? S + 10 : 40; /* keep the exact search quick */
    int L = irand(S > 5 ? S : 5, Lmax > S ? Lmax : S);
    bp_lcosts c;
    random_costs(&c, L);
    bp_part_problem pp;
    rc = bp_part_problem_init(&pp, &p, &c, 0, err, sizeof err);
    CHECK(rc == 0, "%s: %s", name, err);
    if (rc == 0) {
      int first[S + 1], fe[S + 1], fi[S + 1];
      bp_part_uniform(L, S, first);
      double peak;
      bp_part_proxy(&pp, first, &peak);
      if (urand() < 0.6) pp.mem_cap = peak * (0.7 + urand() * 0.5);
      bp_exact_info ei = {0};
      bp_ilp_info ii = {0};
      bp_ilp_opts o = {.time_limit_s = 60, .warm_start = it % 2};
      int re = bp_part_exact(&pp, 20000000, fe, &ei, err, sizeof err);
      int ri = bp_part_ilp(&pp, &o, fi, &ii, err, sizeof err);
      if (ei.timed_out || ii.timed_out) {
        skipped++;
      } else {
        CHECK(re == ri, "%s D=%d N=%d L=%d cap %.3g: exact says %d, GLPK says %d (%s)", name, D, N, L, pp.mem_cap,
              re, ri, err);
        if (re == 0 && ri == 0) {
          compared++;
          with_tied += bp_part_tied(&pp, fe) > 0 || bp_part_tied(&pp, fi) > 0;
          CHECK(fabs(ei.obj - ii.obj) <= 1e-6 * ei.obj, "%s D=%d N=%d L=%d: exact %.9g, GLPK %.9g", name, D, N, L,
                ei.obj, ii.obj);
          CHECK(ii.gap < 1e-6, "%s: GLPK's gap %.3g at an optimum", name, ii.gap);
          double pk;
          bp_part_proxy(&pp, fi, &pk);
          CHECK(pp.mem_cap <= 0 || pk <= pp.mem_cap * (1 + 1e-9), "%s: GLPK's partition over the cap", name);
          if (ii.seconds > worst_ilp) worst_ilp = ii.seconds;
          /* the evaluator's memory is the simulator's */
          bp_part_eval ev;
          if (bp_part_evaluate(&pp, fi, 1, &ev, err, sizeof err) == 0) {
            for (int r = 0; r < D; r++)
              CHECK(fabs(ev.mem[r] - ev.sim_mem[r]) <= 1e-6 * ev.mem[r], "%s rank %d: memory %.6g vs simulator %.6g",
                    name, r, ev.mem[r], ev.sim_mem[r]);
            bp_part_eval_free(&ev);
          } else {
            CHECK(0, "evaluate: %s", err);
          }
        }
        /* the smallest cap (the integer program minimising peak memory) against enumeration */
        double cnt = 1;
        for (int k = 1; k < S; k++) cnt = cnt * (L - k) / k;
        if (cnt <= 3000) {
          long n;
          double want = brute_min_memory(&pp, &n), got = 0;
          int fm[S + 1];
          CHECK(bp_part_min_memory(&pp, &got, fm, err, sizeof err) == 0 && fabs(got - want) <= 1e-9 * want,
                "%s D=%d N=%d L=%d: smallest cap %.9g, enumeration of %ld partitions %.9g (%s)", name, D, N, L, got,
                n, want, err);
          min_mem_checked++;
        }
        if (re == 1 && ri == 1) {
          infeasible++;
          double need;
          int fm[S + 1];
          CHECK(bp_part_min_memory(&pp, &need, fm, err, sizeof err) == 0 && need > pp.mem_cap,
                "%s: the smallest cap %.6g should exceed the cap %.6g", name, need, pp.mem_cap);
        }
      }
      bp_part_problem_free(&pp);
    }
    bp_lcosts_free(&c);
    bp_program_free(&p);
  }
  printf("random instances: %d optima compared (%d with a tied all-reduce), %d infeasible in both, %d skipped "
         "(limit); slowest GLPK %.3f s\n",
         compared, with_tied, infeasible, skipped, worst_ilp);
  CHECK(with_tied >= 5, "too few instances pay a tied all-reduce (%d)", with_tied);
  printf("smallest caps checked against enumeration: %d\n", min_mem_checked);
  CHECK(min_mem_checked >= 20, "too few smallest caps checked (%d)", min_mem_checked);
  CHECK(compared >= 40, "too few instances compared (%d)", compared);
}

static void parse_and_uniform(void) {
  int f[5];
  char err[256], buf[64];
  CHECK(bp_part_parse("0-3,4-6,7-9", 10, 3, f, err, sizeof err) == 0 && f[1] == 4 && f[2] == 7 && f[3] == 10,
        "parse: %s", err);
  CHECK(!strcmp(bp_part_format(f, 3, buf, sizeof buf), "0-3,4-6,7-9"), "format: %s", buf);
  CHECK(bp_part_parse("0-3,5-9", 10, 2, f, err, sizeof err) < 0, "a gap must be refused");
  CHECK(bp_part_parse("0-3,4-9", 10, 3, f, err, sizeof err) < 0 && strstr(err, "3 stages"), "count: %s", err);
  bp_part_uniform(10, 4, f);
  CHECK(f[0] == 0 && f[1] == 2 && f[2] == 5 && f[3] == 7, "uniform: %d %d %d", f[1], f[2], f[3]);
}

static void heavy_head(void) {
  const char *scheds[] = {"1f1b", "interleaved", "chimera", "bitpipe"};
  bp_gpt2_shape sh;
  bp_err e = {0};
  bp_gpt2_shape_parse("gpt2:fine=1", &sh, &e);
  bp_lcosts c;
  CHECK(bp_lcosts_gpt2(&sh, bp_device_model_find("h100"), &c, &e) == 0, "gpt2: %s", e.msg);
  CHECK(c.l[c.n - 1].fwd > 2 * c.l[1].fwd, "the head (%.3g s) should outweigh a half block (%.3g s)",
        c.l[c.n - 1].fwd, c.l[1].fwd);
  for (int k = 0; k < 4; k++) {
    bp_sched_params sp = {.D = 8, .N = 32};
    bp_program p;
    char err[512];
    if (bp_schedule_generate(scheds[k], &sp, &p, err, sizeof err)) {
      CHECK(0, "%s: %s", scheds[k], err);
      bp_program_free(&p);
      continue;
    }
    bp_part_problem pp;
    CHECK(bp_part_problem_init(&pp, &p, &c, 80e9, err, sizeof err) == 0, "%s", err);
    int S = pp.S, fa[S + 1], fu[S + 1];
    bp_ilp_info ii;
    bp_ilp_opts o = {.time_limit_s = 30, .warm_start = 1};
    CHECK(bp_part_ilp(&pp, &o, fa, &ii, err, sizeof err) == 0, "%s: %s", scheds[k], err);
    bp_part_uniform(pp.L, S, fu);
    bp_part_eval ea, eu;
    bp_part_evaluate(&pp, fa, 1, &ea, err, sizeof err);
    bp_part_evaluate(&pp, fu, 1, &eu, err, sizeof err);
    printf("heavy head %-12s auto %.4f s (proxy %.4f), uniform %.4f s (proxy %.4f); head stage has %d layers (uniform %d)\n",
           scheds[k], ea.step_time, ea.proxy, eu.step_time, eu.proxy, fa[S] - fa[S - 1], fu[S] - fu[S - 1]);
    CHECK(ea.step_time < eu.step_time, "%s: auto %.4f not below uniform %.4f", scheds[k], ea.step_time, eu.step_time);
    CHECK(fa[S] - fa[S - 1] < fu[S] - fu[S - 1], "%s: the head's stage should carry fewer layers", scheds[k]);
    bp_part_eval_free(&ea), bp_part_eval_free(&eu);
    bp_part_problem_free(&pp);
    bp_program_free(&p);
  }
  bp_lcosts_free(&c);
}

int main(void) {
  parse_and_uniform();
  heavy_head();
  random_instances();
  return check_done();
}
