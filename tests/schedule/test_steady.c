/* tests/schedule/test_steady.c — bitpipe-steady against the target: at D=8, N=32,
 * backward = 2 x forward its simulated bubble must be below interleaved 1F1B's with v=2
 * (0.099; the authors' order gets 0.135), without a higher peak of stashed activations than the
 * authors' order on any rank; and never worse than the authors' order elsewhere. */
#include "check.h"
#include "partitioner/simulate.h"

#include <string.h>

static int run(const char *name, int D, int N, int v, double b, bp_sim_result *s) {
  bp_sched_params sp = {D, N, v};
  bp_program p;
  bp_sim_config c;
  bp_sim_config_default(&c);
  c.bwd = b;
  char err[512];
  memset(s, 0, sizeof *s);
  int rc = bp_schedule_generate(name, &sp, &p, err, sizeof err) || bp_validate(&p, err, sizeof err) ||
           bp_simulate(&p, &c, s, err, sizeof err);
  CHECK(rc == 0, "%s D=%d N=%d: %s", name, D, N, err);
  bp_program_free(&p);
  return rc;
}

int main(void) {
  for (int D = 4; D <= 16; D *= 2)
    for (int k = 1; k <= 4; k *= 2) {
      bp_sim_result st, au;
      if (run("bitpipe-steady", D, k * D, 0, 2, &st) == 0 && run("bitpipe", D, k * D, 0, 2, &au) == 0) {
        CHECK(st.bubble_mean <= au.bubble_mean + 1e-9, "D=%d N=%d: steady %.4f vs authors %.4f", D,
              k * D, st.bubble_mean, au.bubble_mean);
        for (int r = 0; r < D; r++)
          CHECK(st.peak_chunks[r] <= au.peak_chunks[r], "D=%d N=%d rank %d: steady peak %d > authors %d",
                D, k * D, r, st.peak_chunks[r], au.peak_chunks[r]);
      }
      bp_sim_result_free(&st);
      bp_sim_result_free(&au);
    }
  bp_sim_result st, il;
  if (run("bitpipe-steady", 8, 32, 0, 2, &st) == 0 && run("interleaved", 8, 32, 2, 2, &il) == 0) {
    printf("D=8 N=32 B=2F: bitpipe-steady %.4f, interleaved v=2 %.4f (simulated bubble)\n",
           st.bubble_mean, il.bubble_mean);
    CHECK(st.bubble_mean < il.bubble_mean, "bitpipe-steady %.4f must beat interleaved %.4f",
          st.bubble_mean, il.bubble_mean);
  }
  bp_sim_result_free(&st);
  bp_sim_result_free(&il);
  return check_done();
}
