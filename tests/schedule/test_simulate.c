/* tests/schedule/test_simulate.c — the simulator against closed forms on uniform costs with
 * free links: bubble ratios of GPipe, 1F1B, interleaved 1F1B, Chimera and BitPipe, BitPipe's
 * D=4 makespan and D=8 table (bitpipe-schedule.md §2.1, §3.3), peak activations, the link and
 * all-reduce model, communication counts and cost tables. */
#include "check.h"
#include "partitioner/simulate.h"

#include <stdlib.h>
#include <string.h>

static int sim(const char *name, int D, int N, int v, double f, double b, bp_sim_result *s,
               bp_program *p) {
  bp_sched_params sp = {D, N, v};
  bp_sim_config c;
  bp_sim_config_default(&c);
  c.fwd = f, c.bwd = b;
  char err[512];
  memset(s, 0, sizeof *s);
  if (bp_schedule_generate(name, &sp, p, err, sizeof err) || bp_validate(p, err, sizeof err) ||
      bp_simulate(p, &c, s, err, sizeof err)) {
    CHECK(0, "%s D=%d N=%d: %s", name, D, N, err);
    return -1;
  }
  return 0;
}

static void bubble(const char *name, int D, int N, int v, double f, double b, double want) {
  bp_sim_result s;
  bp_program p;
  if (sim(name, D, N, v, f, b, &s, &p) == 0) {
    char what[96];
    snprintf(what, sizeof what, "%s D=%d N=%d v=%d F=%g B=%g mean bubble", name, D, N, v, f, b);
    CHECK_NEAR(s.bubble_mean, want, 1e-9, what);
    snprintf(what, sizeof what, "%s D=%d N=%d v=%d F=%g B=%g max bubble", name, D, N, v, f, b);
    CHECK_NEAR(s.bubble_max, want, 1e-9, what);
  }
  bp_sim_result_free(&s);
  bp_program_free(&p);
}

static void closed_forms(void) {
  int Ds[] = {2, 4, 8, 16};
  for (int d = 0; d < 4; d++)
    for (int k = 1; k <= 4; k *= 2) {
      int D = Ds[d], N = k * D;
      double one = (double)(D - 1) / (N + D - 1);
      bubble("gpipe", D, N, 0, 1, 1, one);
      bubble("1f1b", D, N, 0, 1, 1, one);
      bubble("1f1b", D, N, 0, 1, 2, one);
      for (int v = 2; v <= 4; v += 2) bubble("interleaved", D, N, v, 1, 2, (double)(D - 1) / (v * N + D - 1));
      bubble("chimera", D, N, 0, 1, 1, (double)(D - 2) / (2 * N + D - 2));
      bubble("bitpipe", D, N, 0, 1, 1, (double)(D - 2) / (4 * N + D - 2));
      double idle = (D - 2) * (N / D + 1.0);
      bubble("bitpipe", D, N, 0, 1, 2, idle / (6 * N + idle));
      bubble("chimera", D, N, 0, 1, 2, (D - 2) * (N / D + 1.0) / (3 * N + (D - 2) * (N / D + 1.0)));
    }
  bubble("gpipe", 3, 5, 0, 1, 2, 2.0 / 7); /* odd D, N not a multiple */
  bubble("1f1b", 5, 3, 0, 1, 2, 4.0 / 7);
}

static void bitpipe_figures(void) {
  bp_sim_result s;
  bp_program p;
  /* §2.1: D=4 N=4, chunk forward 1 backward 2 = full-stage --fwd 2 --bwd 4: makespan 28 */
  if (sim("bitpipe", 4, 4, 0, 2, 4, &s, &p) == 0) {
    CHECK_NEAR(s.step_time, 28, 1e-9, "bitpipe D=4 N=4 makespan");
    for (int r = 0; r < 4; r++) CHECK_NEAR(s.busy[r], 24, 1e-9, "bitpipe D=4 N=4 work per rank");
  }
  bp_sim_result_free(&s), bp_program_free(&p);
  if (sim("bitpipe", 4, 8, 0, 2, 4, &s, &p) == 0) CHECK_NEAR(s.step_time, 54, 1e-9, "bitpipe D=4 N=8 makespan (§2.2)");
  bp_sim_result_free(&s), bp_program_free(&p);
  /* §3.3 table, D=8 */
  struct { const char *name; int N; double b, want; int v; } t[] = {
      {"1f1b", 8, 1, 0.467, 0},     {"interleaved", 8, 1, 0.304, 2}, {"chimera", 8, 1, 0.273, 0},
      {"bitpipe", 8, 1, 0.158, 0},  {"chimera", 8, 2, 0.333, 0},     {"bitpipe", 8, 2, 0.200, 0},
      {"1f1b", 16, 2, 0.304, 0},    {"interleaved", 16, 2, 0.179, 2}, {"chimera", 16, 1, 0.158, 0},
      {"chimera", 16, 2, 0.273, 0}, {"bitpipe", 16, 1, 0.086, 0},    {"bitpipe", 16, 2, 0.158, 0},
      {"1f1b", 32, 1, 0.179, 0},    {"interleaved", 32, 2, 0.099, 2}, {"bitpipe", 32, 1, 0.045, 0},
      {"bitpipe", 32, 2, 0.135, 0},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (sim(t[i].name, 8, t[i].N, t[i].v, 1, t[i].b, &s, &p) == 0) {
      char what[96];
      snprintf(what, sizeof what, "D=8 table: %s N=%d tb/tf=%g", t[i].name, t[i].N, t[i].b);
      CHECK_NEAR(s.bubble_mean, t[i].want, 0.0005, what);
      bp_sim_result_free(&s), bp_program_free(&p);
    }
}

static void peaks(void) {
  bp_sim_result s;
  bp_program p;
  for (int D = 2; D <= 16; D *= 2)
    for (int k = 1; k <= 4; k *= 2) {
      int N = k * D;
      if (sim("1f1b", D, N, 0, 1, 2, &s, &p) == 0)
        for (int r = 0; r < D; r++)
          CHECK(s.peak_chunks[r] == (D - r < N ? D - r : N), "1f1b D=%d N=%d rank %d peak %d, want %d",
                D, N, r, s.peak_chunks[r], D - r);
      bp_sim_result_free(&s), bp_program_free(&p);
      if (sim("gpipe", D, N, 0, 1, 2, &s, &p) == 0)
        CHECK(s.peak_chunks[0] == N && s.peak_chunks[D - 1] == N, "gpipe peak N");
      bp_sim_result_free(&s), bp_program_free(&p);
      if (sim("bitpipe", D, N, 0, 1, 2, &s, &p) == 0)
        for (int r = 0; r < D; r++) {
          int mn = r < D - 1 - r ? r : D - 1 - r;
          CHECK(s.peak_chunks[r] == 3 * D / 2 + 1 + mn, "bitpipe D=%d N=%d rank %d peak %d, want %d",
                D, N, r, s.peak_chunks[r], 3 * D / 2 + 1 + mn);
        }
      bp_sim_result_free(&s), bp_program_free(&p);
      if (D >= 4 && sim("chimera", D, N, 0, 1, 2, &s, &p) == 0)
        for (int r = 0; r < D; r++) {
          int mn = r < D - 1 - r ? r : D - 1 - r;
          CHECK(s.peak_chunks[r] == D / 2 + 1 + mn, "chimera D=%d rank %d peak %d", D, r, s.peak_chunks[r]);
        }
      bp_sim_result_free(&s), bp_program_free(&p);
      if (N > D && sim("interleaved", D, N, 2, 1, 2, &s, &p) == 0)
        for (int r = 0; r < D; r++)
          CHECK(s.peak_chunks[r] == D + 2 * (D - 1 - r) + 1, "interleaved D=%d rank %d peak %d", D, r,
                s.peak_chunks[r]);
      bp_sim_result_free(&s), bp_program_free(&p);
    }
}

static void links_and_volume(void) {
  bp_sched_params sp = {2, 1, 0};
  bp_program p;
  bp_sim_result s;
  bp_sim_config c;
  char err[512];
  bp_sim_config_default(&c);
  c.latency = 0.5; /* F + lat + F + B + lat + B = 1 + .5 + 1 + 2 + .5 + 2 */
  CHECK(bp_schedule_generate("1f1b", &sp, &p, err, sizeof err) == 0, "%s", err);
  CHECK(bp_simulate(&p, &c, &s, err, sizeof err) == 0, "%s", err);
  CHECK_NEAR(s.step_time, 7, 1e-9, "1f1b D=2 N=1 with latency 0.5");
  bp_sim_result_free(&s), bp_program_free(&p);

  sp = (bp_sched_params){2, 2, 0}; /* chimera D=2: no bubble; the stage-0 all-reduce at the end */
  bp_sim_config_default(&c);
  c.fwd = c.bwd = 1, c.param_bytes = 1e6, c.bandwidth = 1e6;
  CHECK(bp_schedule_generate("chimera", &sp, &p, err, sizeof err) == 0, "%s", err);
  CHECK(bp_simulate(&p, &c, &s, err, sizeof err) == 0, "%s", err);
  CHECK_NEAR(s.step_time, 5, 1e-9, "chimera D=2 N=2 with a 1-unit ring all-reduce exposed");
  CHECK_NEAR(s.allreduce_bytes, 4e6, 1e-3, "2 stages x 2 replicas x 1 MB each");
  bp_sim_result_free(&s), bp_program_free(&p);

  sp = (bp_sched_params){8, 32, 0};
  bp_sim_config_default(&c);
  c.msg_bytes = 100;
  CHECK(bp_schedule_generate("1f1b", &sp, &p, err, sizeof err) == 0, "%s", err);
  CHECK(bp_simulate(&p, &c, &s, err, sizeof err) == 0, "%s", err);
  CHECK(s.p2p_messages == 2 * 32 * 7, "1f1b p2p messages %ld, want 2N(D-1)", s.p2p_messages);
  CHECK_NEAR(s.p2p_bytes, 100.0 * 2 * 32 * 7, 1e-6, "p2p bytes");
  bp_sim_result_free(&s), bp_program_free(&p);
  CHECK(bp_schedule_generate("bitpipe", &sp, &p, err, sizeof err) == 0, "%s", err);
  CHECK(bp_simulate(&p, &c, &s, err, sizeof err) == 0, "%s", err);
  CHECK(s.p2p_messages == 2 * 32 * 2 * 7 && s.local_copies == 2 * 32,
        "bitpipe: 2(D-1) p2p + 1 local copy per micro-batch and direction of F and B (%ld, %ld)",
        s.p2p_messages, s.local_copies);
  bp_sim_result_free(&s), bp_program_free(&p);
}

static void cost_table(void) {
  const char *path = "test_simulate_costs.txt";
  FILE *f = fopen(path, "w");
  CHECK(f != NULL, "cannot write %s", path);
  if (!f) return;
  fprintf(f, "# fwd bwd act param out\n");
  for (int i = 0; i < 8; i++) fprintf(f, "0.5 1 10 20 30  # layer %d\n", i);
  fclose(f);
  bp_costs t;
  char err[512];
  CHECK(bp_costs_load(path, &t, err, sizeof err) == 0 && t.n == 8, "load: %s", err);
  bp_sched_params sp = {4, 8, 0};
  bp_program p;
  bp_sim_result s;
  bp_sim_config c;
  bp_sim_config_default(&c);
  c.costs = &t;
  CHECK(bp_schedule_generate("1f1b", &sp, &p, err, sizeof err) == 0, "%s", err);
  CHECK(bp_simulate(&p, &c, &s, err, sizeof err) == 0, "%s", err);
  CHECK_NEAR(s.step_time, 33, 1e-9, "8 layers of (0.5, 1) on 4 ranks = stages of (1, 2): (N+D-1)*3");
  CHECK_NEAR(s.peak_bytes[0], 4 * 20, 1e-9, "rank 0 stashes 4 micro-batches x 2 layers x 10 bytes");
  bp_sim_result_free(&s), bp_program_free(&p);
  sp.D = 3, sp.N = 3; /* 8 rows cannot be cut into 3 stages */
  CHECK(bp_schedule_generate("1f1b", &sp, &p, err, sizeof err) == 0, "%s", err);
  CHECK(bp_simulate(&p, &c, &s, err, sizeof err) != 0 && strstr(err, "8 rows"), "uneven table: %s", err);
  bp_program_free(&p);
  bp_costs_free(&t);
  remove(path);
}

int main(void) {
  closed_forms();
  bitpipe_figures();
  peaks();
  links_and_volume();
  cost_table();
  return check_done();
}
