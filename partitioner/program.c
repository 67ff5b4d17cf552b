/* partitioner/program.c — building bp_programs: allocation, chunk placement, emitting
 * instructions, lowering compute-only lists into full programs (p2p, hand-overs, all-reduce,
 * and printing. Lowering compute orders into full programs is in lower.c. */
#include "partitioner/schedule.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[BP_OP_COUNT] = {
    "FWD",       "BWD",       "BWD_INPUT",  "BWD_WEIGHT",      "SEND_ACT",       "RECV_ACT",
    "SEND_GRAD", "RECV_GRAD", "LOCAL_ACT",  "LOCAL_GRAD",      "ALLREDUCE_START", "ALLREDUCE_WAIT",
    "OPTIMIZER_STEP",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == BP_OP_COUNT, "one name per op");

int bp_sched_errf(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

const char *bp_op_name(bp_op op) { return (unsigned)op < BP_OP_COUNT ? op_names[op] : "?"; }
int bp_op_is_compute(bp_op op) { return op <= BP_OP_BWD_WEIGHT; }
int bp_op_is_p2p(bp_op op) { return op >= BP_OP_SEND_ACT && op <= BP_OP_RECV_GRAD; }

int bp_program_init(bp_program *p, const char *schedule, int D, int N, int n_stages, int n_pipes,
                    int chunks_per_rank, int split_backward, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  if (D < 1 || N < 1 || n_stages < 1 || n_pipes < 1 || n_pipes > 2 || chunks_per_rank < 1)
    return bp_sched_errf(err, errlen, "program: bad sizes D=%d N=%d S=%d pipes=%d C=%d", D, N,
                         n_stages, n_pipes, chunks_per_rank);
  if ((long)D * chunks_per_rank != (long)n_pipes * n_stages)
    return bp_sched_errf(err, errlen,
                         "program: D*C=%d chunks cannot hold %d pipes x %d stages exactly once",
                         D * chunks_per_rank, n_pipes, n_stages);
  snprintf(p->schedule, sizeof p->schedule, "%s", schedule);
  p->D = D, p->N = N, p->n_stages = n_stages, p->n_pipes = n_pipes;
  p->chunks_per_rank = chunks_per_rank, p->split_backward = split_backward;
  p->chunk = malloc(sizeof *p->chunk * D * chunks_per_rank);
  p->stage_rank = malloc(sizeof(int) * n_pipes * n_stages);
  p->stage_chunk = malloc(sizeof(int) * n_pipes * n_stages);
  p->mb_pipe = calloc(N, sizeof(int));
  p->mb_sample = malloc(sizeof(int) * N);
  p->rank = calloc(D, sizeof *p->rank);
  if (!p->chunk || !p->stage_rank || !p->stage_chunk || !p->mb_pipe || !p->mb_sample || !p->rank) {
    bp_program_free(p);
    return bp_sched_errf(err, errlen, "program: out of memory");
  }
  for (int i = 0; i < D * chunks_per_rank; i++) p->chunk[i].pipe = p->chunk[i].stage = -1;
  for (int i = 0; i < n_pipes * n_stages; i++) p->stage_rank[i] = p->stage_chunk[i] = -1;
  for (int m = 0; m < N; m++) p->mb_sample[m] = m;
  return 0;
}

void bp_program_free(bp_program *p) {
  if (p->rank)
    for (int r = 0; r < p->D; r++) free(p->rank[r].code);
  free(p->rank);
  free(p->chunk);
  free(p->stage_rank);
  free(p->stage_chunk);
  free(p->mb_pipe);
  free(p->mb_sample);
  memset(p, 0, sizeof *p);
}

int bp_program_place(bp_program *p, int r, int c, int pipe, int stage, char *err, size_t errlen) {
  if (r < 0 || r >= p->D || c < 0 || c >= p->chunks_per_rank || pipe < 0 || pipe >= p->n_pipes ||
      stage < 0 || stage >= p->n_stages)
    return bp_sched_errf(err, errlen, "place: rank %d chunk %d pipe %d stage %d out of range", r,
                         c, pipe, stage);
  int k = pipe * p->n_stages + stage;
  if (p->stage_rank[k] >= 0)
    return bp_sched_errf(err, errlen, "place: stage %d of pipe %d placed twice", stage, pipe);
  p->chunk[r * p->chunks_per_rank + c] = (bp_chunk){pipe, stage};
  p->stage_rank[k] = r;
  p->stage_chunk[k] = c;
  return 0;
}

/* Appends x to one rank's list (grows it). */
int bp_rank_push(bp_rank_program *rp, bp_instr x, char *err, size_t errlen) {
  if (rp->n == rp->cap) {
    int cap = rp->cap ? rp->cap * 2 : 64;
    bp_instr *code = realloc(rp->code, sizeof *code * cap);
    if (!code) return bp_sched_errf(err, errlen, "emit: out of memory");
    rp->code = code, rp->cap = cap;
  }
  rp->code[rp->n++] = x;
  return 0;
}

bp_instr bp_instr_make(bp_op op, int chunk, int mb, int peer, int joined) {
  return (bp_instr){(uint8_t)op, (uint8_t)(joined != 0), (int16_t)chunk, mb, peer};
}

int bp_program_emit(bp_program *p, int r, bp_op op, int chunk, int mb, int peer, int joined,
                    char *err, size_t errlen) {
  if (r < 0 || r >= p->D) return bp_sched_errf(err, errlen, "emit: rank %d out of range", r);
  return bp_rank_push(&p->rank[r], bp_instr_make(op, chunk, mb, peer, joined), err, errlen);
}

int bp_program_emit_stage(bp_program *p, int r, bp_op op, int stage, int mb, char *err,
                          size_t errlen) {
  if (mb < 0 || mb >= p->N || stage < 0 || stage >= p->n_stages)
    return bp_sched_errf(err, errlen, "emit: micro-batch %d stage %d out of range", mb, stage);
  int k = p->mb_pipe[mb] * p->n_stages + stage;
  if (p->stage_rank[k] != r)
    return bp_sched_errf(err, errlen, "emit: stage %d of pipe %d is not on rank %d", stage,
                         p->mb_pipe[mb], r);
  return bp_program_emit(p, r, op, p->stage_chunk[k], mb, -1, 0, err, errlen);
}

int bp_program_replicas(const bp_program *p, int stage) {
  int n = 0;
  for (int q = 0; q < p->n_pipes; q++) n += p->stage_rank[q * p->n_stages + stage] >= 0;
  return n;
}

/* ---- printing ------------------------------------------------------------------------------ */

char *bp_instr_str(const bp_program *p, const bp_instr *in, char *buf, size_t n) {
  (void)p;
  switch ((bp_op)in->op) {
  case BP_OP_FWD: snprintf(buf, n, "F%d.c%d", in->mb, in->chunk); break;
  case BP_OP_BWD: snprintf(buf, n, "B%d.c%d", in->mb, in->chunk); break;
  case BP_OP_BWD_INPUT: snprintf(buf, n, "BI%d.c%d", in->mb, in->chunk); break;
  case BP_OP_BWD_WEIGHT: snprintf(buf, n, "W%d.c%d", in->mb, in->chunk); break;
  case BP_OP_SEND_ACT:
  case BP_OP_SEND_GRAD:
    snprintf(buf, n, "%s c%d m%d ->%d%s", bp_op_name((bp_op)in->op), in->chunk, in->mb, in->peer,
             in->joined ? " (joined)" : "");
    break;
  case BP_OP_RECV_ACT:
  case BP_OP_RECV_GRAD:
    snprintf(buf, n, "%s c%d m%d <-%d%s", bp_op_name((bp_op)in->op), in->chunk, in->mb, in->peer,
             in->joined ? " (joined)" : "");
    break;
  case BP_OP_LOCAL_ACT:
  case BP_OP_LOCAL_GRAD:
    snprintf(buf, n, "%s c%d m%d", bp_op_name((bp_op)in->op), in->chunk, in->mb);
    break;
  case BP_OP_ALLREDUCE_START:
  case BP_OP_ALLREDUCE_WAIT: snprintf(buf, n, "%s c%d", bp_op_name((bp_op)in->op), in->chunk); break;
  default: snprintf(buf, n, "%s", bp_op_name((bp_op)in->op)); break;
  }
  return buf;
}

void bp_program_print(FILE *f, const bp_program *p) {
  char buf[64];
  fprintf(f, "# schedule %s: D=%d N=%d stages=%d pipes=%d chunks/rank=%d%s\n", p->schedule, p->D,
          p->N, p->n_stages, p->n_pipes, p->chunks_per_rank,
          p->split_backward ? " (backward split into BWD_INPUT + BWD_WEIGHT)" : "");
  for (int r = 0; r < p->D; r++) {
    fprintf(f, "rank %d chunks:", r);
    for (int c = 0; c < p->chunks_per_rank; c++) {
      const bp_chunk *ch = bp_program_chunk(p, r, c);
      fprintf(f, " c%d=pipe%d/stage%d", c, ch->pipe, ch->stage);
    }
    fprintf(f, "\n");
    for (int i = 0; i < p->rank[r].n; i++)
      fprintf(f, "  %4d %s\n", i, bp_instr_str(p, &p->rank[r].code[i], buf, sizeof buf));
  }
}

int bp_program_msg_key(const bp_program *p, int r, const bp_instr *x, int *recv_stage) {
  const bp_chunk *ch = bp_program_chunk(p, r, x->chunk);
  int grad = x->op == BP_OP_SEND_GRAD || x->op == BP_OP_RECV_GRAD;
  int stage = ch->stage; /* the receiving stage identifies the message */
  if (x->op == BP_OP_SEND_ACT) stage++;
  if (x->op == BP_OP_SEND_GRAD) stage--;
  if (recv_stage) *recv_stage = stage;
  return (grad * p->N + x->mb) * p->n_stages + stage;
}
