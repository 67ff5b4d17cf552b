/* tests/schedule/test_broken.c — hand-written broken programs must be rejected with a message
 * naming rank and instruction: a missing receive, sends in swapped order that deadlock under
 * blocking point-to-point semantics, a missing all-reduce wait, a double forward. The same
 * programs written correctly must pass (so the checks can tell the difference). */
#include "check.h"
#include "partitioner/schedule.h"

#include <string.h>

/* GPipe-like D=2, N=2 by hand. swap: rank 0 sends m1 before m0; drop_recv: rank 1 has no
 * RECV_ACT for m1. */
static int build(bp_program *p, int swap, int drop_recv, char *err, size_t n) {
  if (bp_program_init(p, "hand", 2, 2, 2, 1, 1, 0, err, n) || bp_program_place(p, 0, 0, 0, 0, err, n) ||
      bp_program_place(p, 1, 0, 0, 1, err, n))
    return -1;
  int a = swap ? 1 : 0, b = swap ? 0 : 1;
  /* rank 1 posts "send grad 0, receive act 1" as one batch, as 1F1B runtimes do */
  struct { int r, op, mb, peer, joined; } code[] = {
      {0, BP_OP_FWD, 0, -1, 0},       {0, BP_OP_FWD, 1, -1, 0},       {0, BP_OP_SEND_ACT, a, 1, 0},
      {0, BP_OP_SEND_ACT, b, 1, 0},   {0, BP_OP_RECV_GRAD, 0, 1, 0},  {0, BP_OP_BWD, 0, -1, 0},
      {0, BP_OP_RECV_GRAD, 1, 1, 0},  {0, BP_OP_BWD, 1, -1, 0},       {0, BP_OP_OPTIMIZER_STEP, -1, -1, 0},
      {1, BP_OP_RECV_ACT, 0, 0, 0},   {1, BP_OP_FWD, 0, -1, 0},       {1, BP_OP_BWD, 0, -1, 0},
      {1, BP_OP_SEND_GRAD, 0, 0, 0},  {1, BP_OP_RECV_ACT, 1, 0, 1}, {1, BP_OP_FWD, 1, -1, 0},
      {1, BP_OP_BWD, 1, -1, 0},       {1, BP_OP_SEND_GRAD, 1, 0, 0},  {1, BP_OP_OPTIMIZER_STEP, -1, -1, 0},
  };
  for (size_t i = 0; i < sizeof code / sizeof code[0]; i++) {
    if (drop_recv && code[i].r == 1 && code[i].op == BP_OP_RECV_ACT && code[i].mb == 1) continue;
    int chunk = code[i].op == BP_OP_OPTIMIZER_STEP ? -1 : 0;
    int joined = code[i].joined && !drop_recv;
    if (bp_program_emit(p, code[i].r, (bp_op)code[i].op, chunk, code[i].mb, code[i].peer, joined, err, n))
      return -1;
  }
  return 0;
}

static void hand_written(void) {
  bp_program p;
  char err[1024];
  CHECK(build(&p, 0, 0, err, sizeof err) == 0, "build: %s", err);
  CHECK(bp_validate(&p, err, sizeof err) == 0, "the correct hand-written program is valid: %s", err);
  bp_program_free(&p);

  CHECK(build(&p, 1, 0, err, sizeof err) == 0, "build: %s", err);
  int rc = bp_validate(&p, err, sizeof err);
  CHECK(rc != 0 && strstr(err, "deadlock") && strstr(err, "rank 0 blocked at instruction 2") &&
            strstr(err, "rank 1 blocked at instruction 0"),
        "swapped sends deadlock, naming both ranks: '%s'", err);
  printf("swapped sends: %s\n", err);
  bp_program_free(&p);

  CHECK(build(&p, 0, 1, err, sizeof err) == 0, "build: %s", err);
  rc = bp_validate(&p, err, sizeof err);
  CHECK(rc != 0 && strstr(err, "rank 1 instruction 4") && strstr(err, "not received"),
        "missing recv names rank 1 instruction 4: '%s'", err);
  printf("missing recv: %s\n", err);
  bp_program_free(&p);
}

/* Removes instruction i of rank r from a generated program. */
static void drop(bp_program *p, int r, int i) {
  memmove(&p->rank[r].code[i], &p->rank[r].code[i + 1], sizeof(bp_instr) * (p->rank[r].n - i - 1));
  p->rank[r].n--;
}

static void generated(void) {
  bp_sched_params sp = {4, 8, 0};
  bp_program p;
  char err[1024];
  /* a generated program with one receive removed: the send has no partner or the op no input */
  CHECK(bp_schedule_generate("1f1b", &sp, &p, err, sizeof err) == 0, "%s", err);
  for (int i = 0; i < p.rank[2].n; i++)
    if (p.rank[2].code[i].op == BP_OP_RECV_GRAD) {
      drop(&p, 2, i);
      break;
    }
  int rc = bp_validate(&p, err, sizeof err);
  CHECK(rc != 0 && strstr(err, "rank 2 instruction"), "1f1b without a RECV_GRAD: '%s'", err);
  bp_program_free(&p);

  /* chimera without one ALLREDUCE_WAIT: the optimizer step comes before the reduction */
  CHECK(bp_schedule_generate("chimera", &sp, &p, err, sizeof err) == 0, "%s", err);
  for (int i = 0; i < p.rank[1].n; i++)
    if (p.rank[1].code[i].op == BP_OP_ALLREDUCE_WAIT) {
      drop(&p, 1, i);
      break;
    }
  rc = bp_validate(&p, err, sizeof err);
  CHECK(rc != 0 && strstr(err, "rank 1 instruction") && strstr(err, "not waited"),
        "chimera without a wait: '%s'", err);
  bp_program_free(&p);

  /* bitpipe with a forward duplicated */
  CHECK(bp_schedule_generate("bitpipe", &sp, &p, err, sizeof err) == 0, "%s", err);
  for (int i = 0; i < p.rank[3].n; i++)
    if (p.rank[3].code[i].op == BP_OP_FWD) {
      p.rank[3].code[i + 1] = p.rank[3].code[i]; /* overwrite the next instruction with a copy */
      break;
    }
  rc = bp_validate(&p, err, sizeof err);
  CHECK(rc != 0 && strstr(err, "rank 3 instruction"), "bitpipe with a duplicated forward: '%s'", err);
  bp_program_free(&p);
}

int main(void) {
  hand_written();
  generated();
  return check_done();
}
