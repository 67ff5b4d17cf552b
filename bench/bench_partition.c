/* bench/bench_partition.c — solve time of the partition integer program (GLPK glp_intopt) on
 * synthetic layer costs: 128 layers (GPT-2 shapes with 126 blocks, analytic H100) for each
 * schedule at D=16, N=64; prints a table, asserts nothing. Target: BitPipe under 2 s. */
#include "partitioner/partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *spec = argc > 1 ? argv[1] : "gpt2:n_layer=126,n_embd=2048,vocab=50304,seq=2048";
  int D = argc > 2 ? atoi(argv[2]) : 16, N = argc > 3 ? atoi(argv[3]) : 64;
  const char *scheds[] = {"1f1b", "interleaved", "chimera", "bitpipe"};
  bp_gpt2_shape sh;
  bp_err e = {0};
  bp_lcosts c;
  if (bp_gpt2_shape_parse(spec, &sh, &e) || bp_lcosts_gpt2(&sh, bp_device_model_find("h100"), &c, &e)) {
    fprintf(stderr, "bench_partition: %s\n", e.msg);
    return 1;
  }
  printf("%s: %d layers, D=%d N=%d, analytic H100, no memory cap / 80 GB cap; times measured (wall clock)\n", spec,
         c.n, D, N);
  printf("%-12s %6s %8s %8s %10s %10s %10s %8s %10s\n", "schedule", "stages", "rows", "cols", "cap", "solve s",
         "proxy ms", "gap", "uniform ms");
  for (int k = 0; k < 4; k++)
    for (int capped = 0; capped < 2; capped++) {
      bp_sched_params sp = {.D = D, .N = N};
      bp_program p;
      char err[512];
      if (bp_schedule_generate(scheds[k], &sp, &p, err, sizeof err)) {
        printf("%-12s %s\n", scheds[k], err);
        bp_program_free(&p);
        continue;
      }
      bp_part_problem pp;
      if (bp_part_problem_init(&pp, &p, &c, capped ? 80e9 : 0, err, sizeof err)) {
        printf("%-12s %s\n", scheds[k], err);
        bp_program_free(&p);
        continue;
      }
      int first[pp.S + 1], uni[pp.S + 1];
      bp_ilp_info ii;
      bp_ilp_opts o = {.time_limit_s = 60, .warm_start = 1};
      int rc = bp_part_ilp(&pp, &o, first, &ii, err, sizeof err);
      bp_part_uniform(pp.L, pp.S, uni);
      double pu = bp_part_proxy(&pp, uni, NULL);
      if (rc == 0)
        printf("%-12s %6d %8d %8d %10s %10.3f %10.3f %7.2g%% %10.3f%s\n", scheds[k], pp.S, ii.rows, ii.cols,
               capped ? "80 GB" : "none", ii.seconds, ii.obj * 1e3, ii.gap * 100, pu * 1e3,
               ii.timed_out ? " (time limit)" : "");
      else printf("%-12s %6d %s\n", scheds[k], pp.S, rc == 1 ? "infeasible" : err);
      bp_part_problem_free(&pp);
      bp_program_free(&p);
    }
  bp_lcosts_free(&c);
  return 0;
}
