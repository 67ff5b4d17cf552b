/* partitioner/schedule.h — pipeline schedules as data: the per-rank instruction program, the
 * generators that build one, and the validator that proves one well formed.
 *
 * One bp_program drives everything downstream: the simulator (partitioner/simulate.h), the
 * renderers, the code generator (which prints each rank's list as static data) and the runtime's
 * executor (which walks it). So the struct is plain data: arrays of small fixed-size records.
 *
 * Vocabulary
 *   D        pipeline ranks (devices), 0..D-1.
 *   N        micro-batches per iteration.
 *   pipe     a direction: a path every micro-batch of that pipe takes over the ranks. 1F1B has one
 *            pipe; Chimera and BitPipe have two (DOWN = 0, UP = 1) that run in opposite directions.
 *   stage    a model segment: the model's layers are cut into S consecutive segments (stages
 *            0..S-1; stage s holds layers [s*L/S, (s+1)*L/S)). Every micro-batch of every pipe
 *            passes all S stages in order, forward 0..S-1 and backward S-1..0.
 *   chunk    a (pipe, stage) placed on a rank: the rank's local copy of that stage's weights, used
 *            by the micro-batches of that pipe. chunk indices are local to a rank (0..C-1).
 *   replica  stage s has one chunk per pipe; with two pipes, each stage's weights live on two
 *            ranks and their gradients are all-reduced before the optimizer step.
 *
 * Instruction semantics (what the runtime does, what the validator and simulator assume)
 *   FWD(c, m)           forward of local chunk c for micro-batch m; stashes c's activations.
 *   BWD(c, m)           full backward of c for m: input gradient and weight gradient; frees the
 *                       stash.
 *   BWD_INPUT(c, m)     the input-gradient half (ZB's "B"); sends are as for BWD.
 *   BWD_WEIGHT(c, m)    the weight-gradient half (ZB's "W"); frees the stash.
 *   SEND_ACT(c, m, p)   send c's output activation for m to rank p (which holds the next stage).
 *   RECV_ACT(c, m, p)   receive c's input activation for m from rank p (the previous stage).
 *   SEND_GRAD(c, m, p)  send the gradient of c's input for m to rank p (the previous stage).
 *   RECV_GRAD(c, m, p)  receive the gradient of c's output for m from rank p (the next stage).
 *   LOCAL_ACT(c, m)     hand c's output to the next stage's chunk on this same rank (a V turn).
 *   LOCAL_GRAD(c, m)    hand c's input gradient to the previous stage's chunk on this rank.
 *   ALLREDUCE_START(c)  start (non-blocking) the sum of c's weight gradients with every other
 *                       replica of c's stage; each replicated stage has its own communicator,
 *                       so starts of different stages need no common order across ranks.
 *   ALLREDUCE_WAIT(c)   block until that all-reduce is complete.
 *   OPTIMIZER_STEP      update every chunk of the rank; comes last.
 *
 * Point-to-point semantics. The validator proves freedom from deadlock under *blocking*
 * (rendezvous) semantics: a send completes only when its matching receive is posted, and a
 * receive only when its matching send is posted. A run of p2p instructions linked by `joined`
 * is posted as one batch (like NCCL group calls or torch's batch_isend_irecv) and completes when
 * all its members have matched. Messages are matched by their identity (kind, micro-batch,
 * stage), not by arrival order. A program that is safe under rendezvous is safe with any amount of
 * buffering, so a runtime may use asynchronous sends (the simulator does).
 *
 * Errors: functions return 0 on success and -1 on failure, with a message written to the
 * caller's err buffer (errlen bytes, may be 0). Nothing in the library exits.
 */
#ifndef BITPIPE_SCHEDULE_H
#define BITPIPE_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum bp_op {
  BP_OP_FWD = 0,
  BP_OP_BWD,
  BP_OP_BWD_INPUT,
  BP_OP_BWD_WEIGHT,
  BP_OP_SEND_ACT,
  BP_OP_RECV_ACT,
  BP_OP_SEND_GRAD,
  BP_OP_RECV_GRAD,
  BP_OP_LOCAL_ACT,
  BP_OP_LOCAL_GRAD,
  BP_OP_ALLREDUCE_START,
  BP_OP_ALLREDUCE_WAIT,
  BP_OP_OPTIMIZER_STEP,
  BP_OP_COUNT
} bp_op;

/* One instruction. 12 bytes; a rank's program is an array of these. Unused fields are -1. */
typedef struct bp_instr {
  uint8_t op;     /* bp_op */
  uint8_t joined; /* p2p only: posted in one batch with the previous (p2p) instruction */
  int16_t chunk;  /* local chunk index; -1 for OPTIMIZER_STEP */
  int32_t mb;     /* micro-batch 0..N-1; -1 for all-reduce and optimizer step */
  int32_t peer;   /* SEND/RECV: the other rank; -1 otherwise */
} bp_instr;

typedef struct bp_rank_program {
  int n, cap;
  bp_instr *code; /* [n] */
} bp_rank_program;

/* Where a chunk sits in the model. */
typedef struct bp_chunk {
  int pipe;  /* 0..n_pipes-1 */
  int stage; /* 0..n_stages-1 */
} bp_chunk;

typedef struct bp_program {
  char schedule[32];   /* generator name, e.g. "bitpipe" */
  int D, N;
  int n_stages;        /* S: model segments every micro-batch passes */
  int n_pipes;         /* directions: 1 or 2 */
  int chunks_per_rank; /* C */
  int split_backward;  /* 1: backward is BWD_INPUT + BWD_WEIGHT; 0: BWD */
  bp_chunk *chunk;     /* [D*C]: chunk[r*C + c] */
  int *stage_rank;     /* [n_pipes*S]: rank holding stage s of pipe p, at [p*S + s] */
  int *stage_chunk;    /* [n_pipes*S]: that rank's local chunk index */
  int *mb_pipe;        /* [N]: the pipe micro-batch m runs in */
  int *mb_sample;      /* [N]: data feed — which of the iteration's N input micro-batches m reads */
  bp_rank_program *rank; /* [D] */
} bp_program;

/* ---- building programs (program.c) --------------------------------------------------------- */

/* Allocates an empty program; every chunk unplaced, mb_pipe = 0, mb_sample[m] = m. */
int bp_program_init(bp_program *p, const char *schedule, int D, int N, int n_stages, int n_pipes,
                    int chunks_per_rank, int split_backward, char *err, size_t errlen);
void bp_program_free(bp_program *p);
/* Puts stage `stage` of pipe `pipe` on rank r as its local chunk c. */
int bp_program_place(bp_program *p, int r, int c, int pipe, int stage, char *err, size_t errlen);
/* Appends one instruction to rank r. */
int bp_program_emit(bp_program *p, int r, bp_op op, int chunk, int mb, int peer, int joined,
                    char *err, size_t errlen);
/* Appends x to one rank's list, growing it. */
int bp_rank_push(bp_rank_program *rp, bp_instr x, char *err, size_t errlen);
bp_instr bp_instr_make(bp_op op, int chunk, int mb, int peer, int joined);
/* Appends a compute instruction FWD/BWD/... of the chunk holding (pipe of mb, stage) on r. */
int bp_program_emit_stage(bp_program *p, int r, bp_op op, int stage, int mb, char *err,
                          size_t errlen);

/* Generators first emit only compute instructions (FWD, BWD, BWD_INPUT, BWD_WEIGHT) and, where
 * a schedule fixes them, ALLREDUCE_START markers. bp_program_lower then rewrites every rank's
 * list into the full program:
 *   - before a compute op: RECV_ACT / RECV_GRAD for its inputs from other ranks;
 *   - after it: SEND_ACT / SEND_GRAD of its outputs, or LOCAL_ACT / LOCAL_GRAD at a V turn;
 *     the sends after one op and the receives before the next form one batch;
 *   - where that order would deadlock under blocking semantics, a send is delayed into the
 *     batch before a later compute op (as Megatron pairs send_forward with recv_backward), one
 *     step at a time, until the whole program runs through;
 *   - ALLREDUCE_START of each replicated chunk right after its last backward (eager), unless
 *     the generator placed one; then ALLREDUCE_WAIT of each and OPTIMIZER_STEP at the end. */
int bp_program_lower(bp_program *p, char *err, size_t errlen);

/* Lookups. */
static inline const bp_chunk *bp_program_chunk(const bp_program *p, int r, int c) {
  return &p->chunk[r * p->chunks_per_rank + c];
}
int bp_program_replicas(const bp_program *p, int stage); /* ranks holding that stage: n_pipes */
/* Identity of the message a SEND_* or RECV_* instruction x of rank r carries: (gradient?,
 * micro-batch, receiving stage), as one index in [0, 2 * N * n_stages). The receiving stage is
 * stored in *recv_stage when it is not NULL. Pairs sends with receives everywhere. */
int bp_program_msg_key(const bp_program *p, int r, const bp_instr *x, int *recv_stage);
int bp_op_is_compute(bp_op op);  /* FWD, BWD, BWD_INPUT, BWD_WEIGHT */
int bp_op_is_p2p(bp_op op);      /* SEND_* / RECV_* */
const char *bp_op_name(bp_op op);
/* "F3.c1", "RECV_ACT c0 m2 <-1" ... into buf; returns buf. */
char *bp_instr_str(const bp_program *p, const bp_instr *in, char *buf, size_t n);
/* Prints every rank's list, one instruction a line with its index. */
void bp_program_print(FILE *f, const bp_program *p);

/* ---- generators (gen_*.c, generators.c) ---------------------------------------------------- */

typedef struct bp_sched_params {
  int D;      /* pipeline ranks */
  int N;      /* micro-batches per iteration */
  int chunks; /* interleaved: chunks per rank (v); 0 = the schedule's default */
} bp_sched_params;

typedef int (*bp_sched_generate_fn)(const bp_sched_params *sp, bp_program *out, char *err,
                                    size_t errlen);

typedef struct bp_schedule_info {
  const char *name;
  const char *summary;  /* one line */
  const char *requires; /* the conditions on D, N, chunks, in words */
  bp_sched_generate_fn generate;
} bp_schedule_info;

/* The table of generators, in the order --compare prints them. */
const bp_schedule_info *bp_schedule_list(int *count);
const bp_schedule_info *bp_schedule_find(const char *name);
/* Finds the generator, runs it and lowers the result: a complete program. The caller frees
 * `out` with bp_program_free, also on failure. */
int bp_schedule_generate(const char *name, const bp_sched_params *sp, bp_program *out, char *err,
                         size_t errlen);

int bp_gen_gpipe(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen);
int bp_gen_1f1b(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen);
int bp_gen_interleaved(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen);
int bp_gen_chimera(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen);
int bp_gen_bitpipe(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen);
int bp_gen_bitpipe_steady(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen);
int bp_gen_zb_h1(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen);
int bp_gen_zb_v(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen);

/* ---- validator (validate.c) ---------------------------------------------------------------- */

/* Proves p well formed: instructions in range; each (chunk, micro-batch) of the right pipe
 * forwarded and backwarded exactly once; every input produced, received or handed over before
 * use on its rank; each send matched by exactly one receive (and vice versa) with the right peers;
 * no deadlock under blocking (rendezvous) point-to-point semantics with batches; every replicated
 * chunk's all-reduce started after its last backward and waited for before the optimizer step.
 * The first error found is reported, naming rank and instruction index. */
int bp_validate(const bp_program *p, char *err, size_t errlen);

/* ---- shared by the error paths ------------------------------------------------------------- */
int bp_sched_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
