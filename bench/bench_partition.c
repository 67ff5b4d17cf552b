/* bench/bench_partition.c — solve time of the partition integer program (GLPK glp_intopt); prints
 * tables, asserts nothing. Target: BitPipe at 128 layers, D=16 under 2 s on the 2-core CI machine.
 *
 *   bench_partition [SPEC [D [N]]]  GPT-2 shapes (default 126 blocks + embed + head = 128 layers,
 *                                   analytic H100), every schedule, no cap and an 80 GB cap
 *   bench_partition --random        random layer costs (128 layers, work +-30 %, a 3x last layer,
 *                                   seeds 1-3), D=16 N=64, no cap and a cap 10 % under uniform's
 *                                   peak; where the incumbent cannot pin the cuts by itself
 *   options: --cold                 no incumbent and no bounds from it (what GLPK does alone)
 *            --time-limit S         per solve (default 60)
 * Columns: solve s = wall clock of bp_part_ilp (bounds, incumbent, LP, branch and bound); cols =
 * the binaries left after the bounds fixed `fixed` of them (+ T, M); proxy = the optimum's proxy;
 * incumbent = the heuristic's proxy given to GLPK; gap = GLPK's (proxy - bound) / proxy. */
#include "partitioner/partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *scheds[] = {"1f1b", "interleaved", "chimera", "bitpipe"};

static void header(void) {
  printf("%-12s %-6s %6s %6s %6s %6s %9s %9s %11s %11s %9s %11s\n", "schedule", "case", "stages", "rows", "cols",
         "fixed", "cap", "solve s", "proxy ms", "incumb. ms", "gap", "uniform ms");
}

static void run(const char *sched, const char *tag, const bp_lcosts *c, int D, int N, double cap_frac, double cap_abs,
                const bp_ilp_opts *o) {
  bp_sched_params sp = {.D = D, .N = N};
  bp_program p;
  char err[512], capbuf[32];
  if (bp_schedule_generate(sched, &sp, &p, err, sizeof err)) {
    printf("%-12s %s\n", sched, err);
    bp_program_free(&p);
    return;
  }
  bp_part_problem pp;
  if (bp_part_problem_init(&pp, &p, c, 0, err, sizeof err)) {
    printf("%-12s %s\n", sched, err);
    bp_program_free(&p);
    return;
  }
  int first[pp.S + 1], uni[pp.S + 1];
  bp_part_uniform(pp.L, pp.S, uni);
  double upeak, pu = bp_part_proxy(&pp, uni, &upeak);
  pp.mem_cap = cap_abs > 0 ? cap_abs : cap_frac > 0 ? upeak * cap_frac : 0;
  if (pp.mem_cap <= 0) snprintf(capbuf, sizeof capbuf, "none");
  else if (cap_abs > 0) snprintf(capbuf, sizeof capbuf, "%.0f GB", cap_abs / 1e9);
  else snprintf(capbuf, sizeof capbuf, "%.2f GB", pp.mem_cap / 1e9);
  bp_ilp_info ii;
  int rc = bp_part_ilp(&pp, o, first, &ii, err, sizeof err);
  if (rc == 0)
    printf("%-12s %-6s %6d %6d %6d %6d %9s %9.3f %11.3f %11.3f %8.2g%% %11.3f%s\n", sched, tag, pp.S, ii.rows,
           ii.cols, ii.fixed, capbuf, ii.seconds, ii.obj * 1e3, ii.incumbent * 1e3, ii.gap * 100, pu * 1e3,
           ii.timed_out ? " (time limit)" : "");
  else printf("%-12s %-6s %6d %9s %s (%.3f s)\n", sched, tag, pp.S, capbuf, rc == 1 ? "infeasible" : err, ii.seconds);
  fflush(stdout);
  bp_part_problem_free(&pp);
  bp_program_free(&p);
}

static uint64_t rng;
static double urand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0;
}

static int random_costs(bp_lcosts *c, int L, int seed) {
  bp_err e = {0};
  if (bp_lcosts_alloc(c, L, &e)) return -1;
  rng = 88172645463325252ull * (uint64_t)seed;
  for (int l = 0; l < L; l++) {
    bp_lcost *x = &c->l[l];
    snprintf(x->name, sizeof x->name, "l%d", l);
    x->fwd = 1e-3 * (0.7 + 0.6 * urand()) * (l == L - 1 ? 3 : 1);
    x->bwd = 2 * x->fwd;
    x->param_bytes = 1e8 * (0.7 + 0.6 * urand());
    x->state_bytes = 4 * x->param_bytes;
    x->act_bytes = 1e7 * (0.7 + 0.6 * urand());
    x->out_bytes = 1e6;
  }
  c->link_bw = 450e9, c->link_lat = 5e-6;
  return bp_lcosts_add_tied(c, 0, L - 1, 2e8, "tied", &e);
}

int main(int argc, char **argv) {
  const char *pos[3] = {NULL, NULL, NULL};
  int np = 0, random = 0;
  bp_ilp_opts o = {.time_limit_s = 60, .warm_start = 1};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--random")) random = 1;
    else if (!strcmp(argv[i], "--cold")) o.warm_start = 0;
    else if (!strcmp(argv[i], "--time-limit") && i + 1 < argc) o.time_limit_s = atof(argv[++i]);
    else if (!strcmp(argv[i], "--help")) {
      printf("usage: bench_partition [SPEC [D [N]]] [--random] [--cold] [--time-limit S]\n");
      return 0;
    } else if (np < 3) pos[np++] = argv[i];
  }
  const char *spec = pos[0] ? pos[0] : "gpt2:n_layer=126,n_embd=2048,vocab=50304,seq=2048";
  int D = pos[1] ? atoi(pos[1]) : 16, N = pos[2] ? atoi(pos[2]) : 64;
  if (D <= 0 || N <= 0) {
    fprintf(stderr, "bench_partition: D and N must be positive\n");
    return 2;
  }
  if (random) {
    printf("random layer costs: 128 layers, D=%d N=%d, %s; times measured (wall clock)\n", D, N,
           o.warm_start ? "incumbent + bounds" : "cold (GLPK alone)");
    header();
    for (int seed = 1; seed <= 3; seed++) {
      bp_lcosts c;
      if (random_costs(&c, 128, seed)) return 1;
      char tag[16];
      snprintf(tag, sizeof tag, "seed%d", seed);
      for (int k = 0; k < 4; k++) run(scheds[k], tag, &c, D, N, 0, 0, &o), run(scheds[k], tag, &c, D, N, 0.9, 0, &o);
      bp_lcosts_free(&c);
    }
    return 0;
  }
  bp_gpt2_shape sh;
  bp_err e = {0};
  bp_lcosts c;
  if (bp_gpt2_shape_parse(spec, &sh, &e) || bp_lcosts_gpt2(&sh, bp_device_model_find("h100"), &c, &e)) {
    fprintf(stderr, "bench_partition: %s\n", e.msg);
    return 1;
  }
  printf("%s: %d layers, D=%d N=%d, analytic H100, %s; times measured (wall clock)\n", spec, c.n, D, N,
         o.warm_start ? "incumbent + bounds" : "cold (GLPK alone)");
  header();
  for (int k = 0; k < 4; k++) run(scheds[k], "gpt2", &c, D, N, 0, 0, &o), run(scheds[k], "gpt2", &c, D, N, 0, 80e9, &o);
  bp_lcosts_free(&c);
  return 0;
}
