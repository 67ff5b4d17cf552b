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
 * fixed batches), checkpoint.c, trace.c, save_onnx.c, log.c, transport*.c; device.c (where the
 * arenas live and the operations on them: the CPU's, or device_cuda.c's on a GPU). */
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
  int device;                        /* --device: 0 auto (cuda when built with it and a GPU is visible), 1 cpu, 2 cuda */
  int precision;                     /* --precision: 0 fp32, 1 tf32, 2 bf16 (GEMMs on the GPU; bp_precision) */
  int precision_given;
  int transport;                     /* --transport: 0 auto, 1 mpi, 2 nccl */
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
  uint8_t *param, *grad, *state1, *state2, *cnst;  /* arenas (device memory on a GPU) */
  uint8_t *cnst_host;                /* GPU runs: host copy of CONST (shapes, axes: kernels read them on the host) */
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

struct bp_rt;
/* ---- the device (device.c, device_cuda.c): where the arenas live and what is done to them ----
 * The GPU queues work and waits only in sync, put/get and sumsq (device_cuda.c). Every touch of arena memory outside the kernels goes through these, so the executor, gradient
 * sync, optimizer, weights and checkpoints are the same code on the CPU and on a GPU. The CPU's
 * implementations are the plain loops and memcpy of the single-process trainer (bit-identical);
 * the GPU's run on the device context's stream and are checked (errors name the call and `what`). */
typedef struct bp_rt_dev {
  const char *name;                  /* "cpu" or "cuda" */
  int host_memory;                   /* arenas are plain host memory (the CPU) */
  void *(*alloc)(struct bp_rt *rt, int64_t n, const char *what, bp_err *e); /* zeroed; NULL on failure */
  void (*release)(struct bp_rt *rt, void *p);
  /* plain copies, complete on return (the GPU waits for its queue first, under the watchdog) */
  int (*put)(struct bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e); /* host -> arena */
  int (*get)(struct bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e); /* arena -> host */
  int (*copy)(struct bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e);
  int (*zero)(struct bp_rt *rt, void *dst, int64_t n, const char *what, bp_err *e);
  /* queued uploads: stage gives a host buffer of n bytes to fill, upload queues the copy of a
   * piece of it into an arena (the buffer is the device's until the copy is done) */
  void *(*stage)(struct bp_rt *rt, int64_t n, bp_err *e);
  int (*upload)(struct bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e);
  /* a queued download: the host's dst holds the bytes after the next sync */
  int (*fetch)(struct bp_rt *rt, void *dst, const void *src, int64_t n, const char *what, bp_err *e);
  /* node k of chunk c's stage on bound values (outputs cleared first, as the CPU executor's calloc) */
  int (*eval)(struct bp_rt *rt, rt_chunk *c, bp_ctx *ctx, int k, bp_value **in, bp_value **out, bp_err *e);
  int (*step_begin)(struct bp_rt *rt, bp_err *e);
  /* around the nodes of one compute instruction; the device adds its span to busy_s and the trace
   * (the CPU: host clocks from t0; the GPU: events on the stream, accounted at the next sync) */
  int (*begin)(struct bp_rt *rt, rt_chunk *c, bp_err *e);
  int (*finish)(struct bp_rt *rt, rt_chunk *c, int op, int mb, double t0, bp_err *e);
  int (*accumulate)(struct bp_rt *rt, float *acc, const float *x, int64_t n, bp_err *e); /* acc += x */
  /* *sq = sum over the count buffers of x^2, in double */
  int (*sumsq)(struct bp_rt *rt, const float *const *x, const int64_t *n, int count, double *sq, bp_err *e);
  int (*sgd)(struct bp_rt *rt, float *p, const float *g, float *buf, int64_t n, int first, double gscale, bp_err *e);
  int (*adamw)(struct bp_rt *rt, float *p, const float *g, float *m, float *v, int64_t n, int step, double gscale,
               bp_err *e);
  /* everything queued is done (under the watchdog), fetches have landed, kernels' bad-data flags
   * are reported (naming the instruction and node) */
  int (*sync)(struct bp_rt *rt, const char *what, bp_err *e);
  void (*close)(struct bp_rt *rt);
} bp_rt_dev;

typedef struct bp_rt {
  const bp_rt_plan *plan;
  const bp_rt_model *model;
  const bp_program *prog;
  bp_rt_opts o;
  bp_tp *tp;
  const bp_rt_dev *dev;              /* device.c: the CPU's, or device_cuda.c's */
  void *gpu;                         /* device_cuda.c's state (NULL on the CPU) */
  char device_desc[512];             /* for the start-up report: device, precision, transport */
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
  const float **norm_x;              /* [n_params]: gradients this rank counts in the norm */
  int64_t *norm_n;
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
  unsigned char *mb_done;            /* [N]: 0, or 1 + the loss's dtype once micro-batch m's loss was fetched
                                        (into mb_loss_raw; mb_loss[m] is set at the optimizer step) */
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
  /* fault injection (tests): BITPIPE_FAULT=RANK:STEP|init|nccl:kill|exit|hang (fault_step -1: init, -2: nccl) */
  int fault_rank, fault_kind;
  /* a host buffer for data inputs on their way to device arenas (executor.c) */
  uint8_t *hostbuf;
  int64_t hostbuf_cap;
  long fault_step;
  int cur_instr;                     /* index of the instruction being run (device flags name it) */
  unsigned char *mb_loss_raw;        /* [N * 16]: each micro-batch's loss as fetched (dev->fetch) */
} bp_rt;

/* log.c: rank-prefixed errors and rank-0 output */
int bp_rt_errf(bp_rt *rt, bp_err *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Gives the error already in e the rank (and a context: "rank R: CONTEXT: message"); returns -1. */
int bp_rt_err_wrap(bp_rt *rt, bp_err *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void bp_rt_say(bp_rt *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* device.c: picks the device from --device (auto: a GPU when the program was built with CUDA and
 * one is visible) and sets rt->dev; then, collectively, the transport for it (a GPU run wraps
 * rt->tp: host-staged MPI, or NCCL when every rank has its own GPU). */
int bp_rt_device_open(bp_rt *rt, bp_err *e);
int bp_rt_device_transport(bp_rt *rt, bp_err *e);
void bp_rt_device_close(bp_rt *rt);
extern const bp_rt_dev bp_rt_dev_cpu;
#ifdef BP_RT_CUDA
int bp_rt_cuda_open(bp_rt *rt, bp_err *e);      /* device_cuda.c */
void *bp_rt_cuda_context(bp_rt *rt);           /* device_cuda.c: the rank's bp_cuda */
int bp_rt_cuda_transport(bp_rt *rt, bp_err *e); /* transport_select.c */
#endif

/* msgorder.c: 1 when every pair of ranks posts its messages in the same order on both sides (what
 * NCCL's in-order matching needs), 0 when not (why names the first pair), -1 out of memory. */
int bp_rt_p2p_in_order(const bp_program *p, char *why, size_t n);

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
/* Reads exactly n bytes at offset off of fd (pread, in pieces of at most 1 GiB); 0 or -1. */
int bp_rt_read_at(int fd, void *dst, int64_t n, int64_t off);
int bp_rt_weights_load(bp_rt *rt, const char *path, bp_err *e);
const char *bp_rt_default_weights(const bp_rt_model *m, char *buf, size_t n);

/* executor.c */
int bp_rt_exec_step(bp_rt *rt, bp_err *e);
int bp_rt_resolve_ops(const bp_rt_model *m, bp_err *e);
/* BITPIPE_FAULT at a start-up point `where` (-1: before the GPU transport is chosen) */
void bp_rt_fault_startup(bp_rt *rt, int where);

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
