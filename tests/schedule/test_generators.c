/* tests/schedule/test_generators.c — every generator over D in {2,4,6,8,16} and N in {D,2D,4D}
 * passes the validator (or is rejected with a message when its requirements exclude the case);
 * generators reject what they cannot do; BitPipe's per-rank forward order for D=4 equals the
 * authors' (bitpipe-schedule.md §1.5); each direction reads its own micro-batches. */
#include "check.h"
#include "partitioner/schedule.h"

#include <string.h>

static void sweep(void) {
  int n = 0;
  const bp_schedule_info *all = bp_schedule_list(&n);
  int Ds[] = {2, 4, 6, 8, 16};
  for (int i = 0; i < n; i++)
    for (int d = 0; d < 5; d++)
      for (int k = 1; k <= 4; k *= 2) {
        int D = Ds[d], N = k * D;
        bp_sched_params sp = {D, N, 0};
        bp_program p;
        char err[512];
        int rc = bp_schedule_generate(all[i].name, &sp, &p, err, sizeof err);
        CHECK(rc == 0, "%s D=%d N=%d: generate: %s", all[i].name, D, N, err);
        if (rc == 0) {
          rc = bp_validate(&p, err, sizeof err);
          CHECK(rc == 0, "%s D=%d N=%d: %s", all[i].name, D, N, err);
        }
        bp_program_free(&p);
      }
}

static void expect_reject(const char *name, int D, int N, int chunks, const char *needle) {
  bp_sched_params sp = {D, N, chunks};
  bp_program p;
  char err[512] = "";
  int rc = bp_schedule_generate(name, &sp, &p, err, sizeof err);
  CHECK(rc != 0 && strstr(err, needle), "%s D=%d N=%d should be rejected mentioning '%s'; got '%s'",
        name, D, N, needle, err);
  bp_program_free(&p);
}

static void rejects(void) {
  expect_reject("chimera", 5, 10, 0, "even");
  expect_reject("bitpipe", 6, 9, 0, "multiple of D");
  expect_reject("bitpipe-steady", 3, 6, 0, "even");
  expect_reject("interleaved", 4, 6, 0, "multiple of D");
  expect_reject("nosuch", 4, 4, 0, "unknown schedule");
}

/* Forward order "mb.chunk" of rank r, compute instructions only. */
static void forward_order(const bp_program *p, int r, char *out, size_t n) {
  out[0] = 0;
  for (int i = 0; i < p->rank[r].n; i++) {
    const bp_instr *x = &p->rank[r].code[i];
    if (x->op != BP_OP_FWD) continue;
    size_t l = strlen(out);
    snprintf(out + l, n - l, "%s%d.c%d", l ? " " : "", x->mb, x->chunk);
  }
}

static void bitpipe_authors_order(void) {
  /* bitpipe-schedule.md §1.5, D=4 N=4 lists, forwards only (code comments:
   * 0,1,2,6,3,7,4,5 / 0,2,1,3,6,4,7,5 / 2,0,3,1,4,6,5,7 / 2,3,0,4,1,5,6,7 in virtual ids) */
  const char *want[4] = {
      "0.c0 1.c0 2.c1 2.c3 3.c1 3.c3 0.c2 1.c2",
      "0.c0 2.c1 1.c0 3.c1 2.c3 0.c2 3.c3 1.c2",
      "2.c1 0.c0 3.c1 1.c0 0.c2 2.c3 1.c2 3.c3",
      "2.c1 3.c1 0.c0 0.c2 1.c0 1.c2 2.c3 3.c3",
  };
  bp_sched_params sp = {4, 4, 0};
  bp_program p;
  char err[512], got[512];
  int rc = bp_schedule_generate("bitpipe", &sp, &p, err, sizeof err);
  CHECK(rc == 0, "bitpipe D=4 N=4: %s", err);
  for (int r = 0; rc == 0 && r < 4; r++) {
    forward_order(&p, r, got, sizeof got);
    CHECK(strcmp(got, want[r]) == 0, "bitpipe rank %d forwards: got '%s', want '%s'", r, got, want[r]);
  }
  /* Full compute order of rank 0 for D=4 N=8 (§1.5), backwards included. */
  const char *r0 = "F0.c0 F1.c0 F2.c1 F2.c3 F3.c1 F3.c3 F0.c2 B0.c2 F1.c2 B1.c2 B2.c3 B2.c1 B3.c3 "
                   "B3.c1 B0.c0 F4.c0 B1.c0 F5.c0 F6.c1 F6.c3 F7.c1 F7.c3 F4.c2 B4.c2 F5.c2 B5.c2 "
                   "B6.c3 B6.c1 B7.c3 B7.c1 B4.c0 B5.c0";
  bp_program_free(&p);
  sp.N = 8;
  rc = bp_schedule_generate("bitpipe", &sp, &p, err, sizeof err);
  CHECK(rc == 0, "bitpipe D=4 N=8: %s", err);
  if (rc == 0) {
    got[0] = 0;
    char b[32];
    for (int i = 0; i < p.rank[0].n; i++) {
      const bp_instr *x = &p.rank[0].code[i];
      if (!bp_op_is_compute((bp_op)x->op)) continue;
      size_t l = strlen(got);
      snprintf(got + l, sizeof got - l, "%s%s", l ? " " : "", bp_instr_str(&p, x, b, sizeof b));
    }
    CHECK(strcmp(got, r0) == 0, "bitpipe D=4 N=8 rank 0: got '%s'", got);
    /* chunk placement: c0 DOWN stage d, c1 UP stage D-1-d, c2 DOWN 2D-1-d, c3 UP D+d */
    const bp_chunk *c = bp_program_chunk(&p, 1, 2);
    CHECK(c->pipe == 0 && c->stage == 6, "rank 1 chunk 2 is DOWN stage 6 (got pipe %d stage %d)",
          c->pipe, c->stage);
    c = bp_program_chunk(&p, 1, 3);
    CHECK(c->pipe == 1 && c->stage == 5, "rank 1 chunk 3 is UP stage 5");
  }
  bp_program_free(&p);
}

static void data_feed(void) {
  const char *names[2] = {"bitpipe", "bitpipe-steady"};
  for (int k = 0; k < 2; k++) {
    bp_sched_params sp = {8, 32, 0};
    bp_program p;
    char err[512];
    int rc = bp_schedule_generate(names[k], &sp, &p, err, sizeof err);
    CHECK(rc == 0, "%s: %s", names[k], err);
    if (rc) {
      bp_program_free(&p);
      continue;
    }
    int seen[32] = {0}, per_pipe[2] = {0, 0}, dup = 0;
    for (int m = 0; m < p.N; m++) {
      dup |= seen[p.mb_sample[m]]++;
      per_pipe[p.mb_pipe[m]]++;
    }
    CHECK(!dup, "%s: two micro-batches read the same input", names[k]);
    CHECK(per_pipe[0] == 16 && per_pipe[1] == 16, "%s: each direction gets N/2 micro-batches", names[k]);
    bp_program_free(&p);
  }
}

int main(void) {
  sweep();
  rejects();
  bitpipe_authors_order();
  data_feed();
  return check_done();
}
