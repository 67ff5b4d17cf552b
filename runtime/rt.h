/* runtime/rt.h — the runtime's internal state and the functions its files share (not part of
 * the contract with the compiler, which is runtime/plan.h).
 *
 * Ranks. The world has W = R * D ranks: R data-parallel replicas of the D-rank pipeline. World
 * rank w is pipeline rank r = w % D of replica q = w / D and runs program->rank[r]. Messages of
 * the pipeline go over the replica's group with pipeline rank numbers; errors and logs use world
 * ranks.
 *
 * Files: main.c (command line, the step loop, the summary), memory.c (arenas), weights.c (the
 * weights file), executor.c (the instruction walk, bp_rt_run_node), gradsync.c (groups, gradient
 * all-reduce, tied weights, global norm), update.c (the optimizer), data.c (token files and
 * fixed batches), checkpoint.c, trace.c, save_onnx.c, log.c, transport*.c. */
#ifndef BITPIPE_RUNTIME_RT_H
#define BITPIPE_RUNTIME_RT_H

#include "runtime/plan.h"
#include "runtime/transport.h"

#include <stdio.h>

#define BP_RT_MAX_INPUTS 16

typedef struct bp_rt_opts {
  const char *data;                  /* --data FILE (token file) */
  int ninputs;
  const char *input_name[BP_RT_MAX_INPUTS], *input_file[BP_RT_MAX_INPUTS];
  const char *targets;               /* --targets FILE */
  const char *weights;               /* --weights FILE (default: next to the program) */
  const char *checkpoint, *resume, *save_onnx, *trace;
  long steps;                        /* train until this step */
  long save_every;
  double timeout_s;
  int quiet;
  bp_rt_hparams hp;                  /* the plan's, with the command line's overrides */
} bp_rt_opts;

/* ---- data (data.c) ---- */
typedef struct bp_rt_data {
  int mode;                          /* 0: token file, 1: fixed batch */
  const char *path;                  /* token file */
  const uint16_t *tok;               /* mmapped tokens */
  void *map;
  size_t map_len;
  int64_t ntok, nwin;                /* tokens; windows of T+1 tokens at stride T */
  uint64_t seed;
  int64_t perm_epoch[2];             /* cached permutations of the windows per epoch */
  uint32_t *perm[2];
  int nfixed;                        /* fixed batch: values by input name (targets: "targets") */
  const char *fixed_name[BP_RT_MAX_INPUTS + 1];
  const char *fixed_file[BP_RT_MAX_INPUTS + 1];
  bp_value fixed[BP_RT_MAX_INPUTS + 1];
  int B, T, N, R, vocab, loss_kind;
  int64_t ignore_index;
  int64_t per_step;                  /* sequences per step: N * R * B */
} bp_rt_data;

/* ---- per chunk state ---- */
typedef struct rt_slot {
  uint8_t *base;
  int mb;                            /* micro-batch holding it, -1: free */
  int recv_act, recv_grad;           /* requests in flight into it, -1: none */
  int send[2];                       /* sends in flight out of it, -1: none */
} rt_slot;

typedef struct rt_chunk {
  int index, pipe, stage;
  const bp_rt_stage *st;
  uint8_t *param, *grad, *state1, *state2, *cnst;
  int nslots;
  rt_slot *slot;
  int *slot_of;                      /* [N]: slot of micro-batch m, -1: none */
  int *first, *last;                 /* [N]: instructions where (c, m) is first / last named */
  bp_value *vals;                    /* [ntensors]: bound per compute instruction */
  int group;                         /* stage group for the gradient all-reduce, -1: alone */
  int64_t ar_floats;                 /* floats of the eager all-reduce (non-tied prefix) */
  int ar_req;                        /* all-reduce in flight, -1: none */
  int ar_in_program;                 /* the program starts it (else: after last_bwd) */
  int last_bwd;                      /* index of the chunk's last backward instruction */
} rt_chunk;

/* ---- trace (trace.c) ---- */
typedef struct bp_rt_event {
  double t0, t1;                     /* seconds since the run's start (after the start barrier) */
  int16_t kind;                      /* bp_op, or one of the RT_EV_* below */
  int16_t chunk;
  int32_t mb, peer, step;
} bp_rt_event;
enum { RT_EV_WAIT_ACT = 100, RT_EV_WAIT_GRAD, RT_EV_WAIT_SEND, RT_EV_WAIT_ALLREDUCE, RT_EV_SYNC, RT_EV_CKPT };

typedef struct bp_rt {
  const bp_rt_plan *plan;
  const bp_rt_model *model;
  const bp_program *prog;
  bp_rt_opts o;
  bp_tp *tp;
  int W, D, R, wrank, r, replica, C, N, S;
  int pipe_group;                    /* this replica's pipeline ranks */
  rt_chunk *chunk;                   /* [C] */
  uint8_t *work;
  int64_t work_bytes;
  int64_t allocated_bytes, planned_bytes;
  bp_rt_data data;
  /* tied parameters: global ids held by more than one stage */
  unsigned char *tied;               /* [n_params] */
  int64_t *tied_off;                 /* [n_params]: a tied id's place in tied_buf */
  int64_t tied_floats;
  float *tied_buf;
  /* designated holder of each unique parameter (replica 0, pipe 0, lowest stage): counted once in
   * the norm, written to checkpoints and --save-onnx */
  int *holder_rank;                  /* [n_params]: world rank */
  int *holder_chunk;                 /* [n_params]: its local chunk */
  int *holder_index;                 /* [n_params]: index into that stage's params */
  /* per step */
  long step;                         /* last completed step */
  int64_t data_pos;                  /* sequences consumed before this step */
  double *mb_weight;                 /* [N*R]: loss weight per global sample of the step */
  double *mb_loss;                   /* [N]: loss of each micro-batch whose last stage ran here */
  unsigned char *mb_done;            /* [N]: mb_loss[m] is set */
  double loss, grad_norm;            /* of the last step */
  int err_everywhere;                /* the error is the same on every rank (rank 0 reports it) */
  /* measured */
  double t_start;                    /* after the start barrier */
  double busy_s, step_s;             /* this step: compute time, wall time */
  double sum_busy, sum_step, sum_wait;
  long measured_steps;
  int warmup_skipped;
  /* trace */
  int tracing;
  bp_rt_event *ev;
  long nev, capev;
  /* fault injection (tests): BITPIPE_FAULT=RANK:STEP:kill|exit|hang */
  int fault_rank, fault_kind;
  long fault_step;
} bp_rt;

/* log.c: rank-prefixed errors and rank-0 output */
int bp_rt_errf(bp_rt *rt, bp_err *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void bp_rt_say(bp_rt *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* memplan.c */
int bp_rt_local_peer_chunk(const bp_program *p, int r, int c, int dir);

/* memory.c: arenas of every chunk, the work arena, slot bookkeeping */
int bp_rt_memory_init(bp_rt *rt, bp_err *e);
void bp_rt_memory_free(bp_rt *rt);
int bp_rt_slot_acquire(bp_rt *rt, rt_chunk *c, int mb, bp_err *e);
int bp_rt_slot_release(bp_rt *rt, rt_chunk *c, int mb, bp_err *e);
uint8_t *bp_rt_slot_base(rt_chunk *c, int mb);
/* checks the plan: stage/program agreement, tensors inside their arenas, boundary ranges */
int bp_rt_plan_check(const bp_rt_plan *plan, bp_err *e);

/* weights.c */
int bp_rt_weights_load(bp_rt *rt, const char *path, bp_err *e);
const char *bp_rt_default_weights(const bp_rt_model *m, char *buf, size_t n);

/* executor.c */
int bp_rt_exec_step(bp_rt *rt, bp_err *e);
int bp_rt_resolve_ops(const bp_rt_model *m, bp_err *e);

/* gradsync.c */
int bp_rt_groups_init(bp_rt *rt, bp_err *e);
int bp_rt_allreduce_start(bp_rt *rt, rt_chunk *c, bp_err *e);
int bp_rt_allreduce_wait(bp_rt *rt, rt_chunk *c, bp_err *e);
/* the optimizer step's synchronisation: pending all-reduces, tied weights, loss and norm */
int bp_rt_sync_grads(bp_rt *rt, double local_loss, bp_err *e);

/* update.c */
int bp_rt_update(bp_rt *rt, bp_err *e);

/* data.c */
int bp_rt_data_open(bp_rt *rt, bp_err *e);
void bp_rt_data_close(bp_rt_data *d);
/* Writes data input `in` of micro-batch sample `sample` (0..N*R-1 in the step) at dst. */
int bp_rt_data_fill(bp_rt_data *d, int64_t pos, int sample, const bp_rt_data_input *in, const bp_rt_tensor *t,
                    void *dst, bp_err *e);
/* Counted targets of that sample (cross-entropy: not the ignore index; mse: all). */
int bp_rt_data_count(bp_rt_data *d, int64_t pos, int sample, int64_t *count, bp_err *e);

/* checkpoint.c */
int bp_rt_checkpoint_save(bp_rt *rt, bp_err *e);
int bp_rt_checkpoint_load(bp_rt *rt, const char *dir, bp_err *e);
/* Packs what this rank holds for parameters it is the designated holder of (with optimizer
 * states when `states`) and gathers it on world rank 0 into buf (in global id order). */
int bp_rt_gather_params(bp_rt *rt, int states, float **out, int64_t *nfloats, bp_err *e);
/* The watchdog's timeout while parameters (and states) are gathered and written. */
double bp_rt_io_timeout(const bp_rt *rt, int states);

/* trace.c */
void bp_rt_trace_add(bp_rt *rt, int kind, int chunk, int mb, int peer, double t0, double t1);
int bp_rt_trace_write(bp_rt *rt, const char *path, bp_err *e);

/* save_onnx.c */
int bp_rt_save_onnx(bp_rt *rt, const char *path, bp_err *e);

#endif
