/* runtime/transport.h — the runtime's communication interface: non-blocking point-to-point
 * messages, non-blocking all-reduce and barrier over groups of ranks, and abort. The executor only
 * talks to this interface; transport_mpi.c implements it with MPI (CPU ranks); GPU ranks wrap it
 * (transport_staged.c: MPI through host memory; transport_nccl.c: NCCL, bootstrapped through the
 * same MPI world), chosen by transport_select.c.
 *
 * Requests are small integers naming an operation in flight; bp_tp_wait completes one under a
 * watchdog: a wait that lasts longer than the transport's timeout prints one line naming the
 * rank waited for and aborts the whole job, so a dead or stuck rank never leaves the others
 * hanging. Groups are small integers too: 0 is the world; bp_tp_split makes more (collective).
 *
 * Errors: functions return 0 or -1 with the message in t->err (naming the call and the rank). */
#ifndef BITPIPE_RUNTIME_TRANSPORT_H
#define BITPIPE_RUNTIME_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

typedef struct bp_tp bp_tp;

typedef enum bp_tp_dtype { BP_TP_F32 = 0, BP_TP_F64 } bp_tp_dtype;

typedef struct bp_tp_impl {
  const char *name;
  /* p2p: peer and tag are ranks of `group` */
  int (*isend)(bp_tp *t, int group, const void *buf, int64_t nbytes, int peer, int tag, int *req);
  int (*irecv)(bp_tp *t, int group, void *buf, int64_t nbytes, int peer, int tag, int *req);
  /* *done = 1 when the request completed (it is then released) */
  int (*test)(bp_tp *t, int req, int *done);
  /* in-place sum over the group's ranks */
  int (*iallreduce)(bp_tp *t, int group, void *buf, int64_t count, bp_tp_dtype dtype, int *req);
  int (*ibarrier)(bp_tp *t, int group, int *req);
  /* collective over the world: ranks giving the same color >= 0 form a group ordered by key;
   * color < 0: no group (*group = -1) */
  int (*split)(bp_tp *t, int color, int key, int *group);
  int (*group_size)(bp_tp *t, int group, int *size);
  /* lets transfers in flight advance (MPI moves large messages only inside MPI calls); cheap,
   * called between the nodes of a compute instruction */
  void (*progress)(bp_tp *t);
  void (*abort)(bp_tp *t, int code);
  int (*finalize)(bp_tp *t);
  /* optional (NULL: none): describes the oldest transfer the GPU's stream still waits for (a
   * request the transport completed by ordering the stream after it, not by waiting), for the
   * message of a watchdog that finds the stream stuck; "" when there is none */
  void (*pending)(bp_tp *t, char *buf, size_t n);
} bp_tp_impl;

struct bp_tp {
  const bp_tp_impl *impl;
  int rank, size;       /* in the world */
  double timeout_s;     /* watchdog of bp_tp_wait */
  double waited_s;      /* total time spent in bp_tp_wait (for the idle figures) */
  int max_tag;          /* the largest p2p tag the implementation accepts */
  int hold;             /* set by the executor while it posts a batch of joined p2p instructions:
                           a transport that posts in groups (NCCL) keeps queueing until it is
                           cleared, so a batch is never split (the validator's batch semantics) */
  void *state;          /* the implementation's */
  const struct bp_tp_why *why; /* what the current bp_tp_wait is for (a transport that hands a
                                  request to the GPU's stream keeps it for `pending`) */
  int fault_nccl;       /* tests (BITPIPE_FAULT=RANK:nccl:hang): this rank stops before joining the
                           NCCL communicator; every rank then skips the one-GPU-per-rank check */
  char err[512];
};

/* What a wait is for, for the watchdog's message:
 *   "rank R: no <what> for micro-batch M from rank P after S s (rank P may have died)" (peer >= 0)
 *   "rank R: <what> not complete after S s (a rank taking part may have died)" (peer < 0) */
struct bp_tp_why {
  const char *what;     /* "activation", "gradient", "gradient all-reduce of stage 3", ... */
  int mb;               /* -1: none */
  int peer;             /* world rank, -1: a collective */
};
typedef struct bp_tp_why bp_tp_why;

/* MPI: initialises MPI (argc/argv as MPI_Init's) and fills *t; -1 with a message on stderr. */
int bp_tp_mpi_init(bp_tp *t, int *argc, char ***argv);

/* GPU ranks (libbitpipe built with CUDA). Both wrap an initialised MPI transport in place: host
 * buffers keep going through MPI as before; buffers in device memory (cudaPointerGetAttributes)
 * take the wrapper's path. `stream` (a cudaStream_t) is the stream the kernels run on: a device
 * buffer is read only after the work queued there. On failure t is unchanged and err says why.
 *   staged  (transport_staged.c) MPI through pinned host buffers: the device buffer is copied out
 *           before the send / all-reduce and in after the receive / all-reduce completes. Works
 *           whatever GPUs the ranks have, also several ranks on one GPU.
 *   nccl    (transport_nccl.c, when built with NCCL) ncclSend / ncclRecv grouped on a
 *           communication stream, ncclAllReduce; the world's communicator from a unique id
 *           broadcast over MPI, groups by ncclCommSplit. Every rank needs a GPU of its own. */
/* For the wrappers' finalize: puts the wrapped transport `inner` back into t, finalizes it and
 * returns rc (the wrapper's own result), or -1 with inner's message when its finalize fails. */
int bp_tp_unwrap_finalize(bp_tp *t, bp_tp *inner, int rc);
int bp_tp_staged_wrap(bp_tp *t, void *stream, char *err, size_t errlen);
int bp_tp_nccl_wrap(bp_tp *t, void *stream, char *err, size_t errlen);

/* A roll call over the world (start-up): every rank sends one byte to every other and waits for
 * theirs under the watchdog, so a rank that never arrives is named ("no <what> from rank P ...").
 * `tag` must not be in flight otherwise. start posts it; missing tests it without blocking and
 * gives the lowest world rank whose byte has not come (-1: all have, and the sends are complete);
 * end frees it (after missing said -1, or before an abort). bp_tp_rollcall does all three, waiting. */
typedef struct bp_tp_roll {
  int *req;             /* [2 (W - 1)]: receives in world rank order (this rank left out), then sends; -1: done */
  unsigned char *buf;   /* [W + 1] */
} bp_tp_roll;
int bp_tp_rollcall_start(bp_tp *t, int tag, bp_tp_roll *r);
int bp_tp_rollcall_missing(bp_tp *t, bp_tp_roll *r, int *missing);
void bp_tp_rollcall_end(bp_tp_roll *r);
int bp_tp_rollcall(bp_tp *t, int tag, const char *what);

/* Completes req under the watchdog (aborts the job on timeout; does not return then). */
int bp_tp_wait(bp_tp *t, int req, const bp_tp_why *why);
/* Tests without blocking; *done = 1 when complete. */
int bp_tp_test(bp_tp *t, int req, int *done);
/* Sum over the group, blocking under the watchdog (iallreduce + wait). */
int bp_tp_allreduce(bp_tp *t, int group, void *buf, int64_t count, bp_tp_dtype dtype, const char *what);
int bp_tp_barrier(bp_tp *t, int group, const char *what);
void bp_tp_abort(bp_tp *t, int code);

double bp_tp_now(void); /* monotonic seconds */
/* Between polls of a wait (polls: how many so far): nothing for the first 64, then a yield, or,
 * when this machine runs more ranks than cores, a short sleep (20 us, 200 us after 4096 polls). */
void bp_tp_backoff(long polls);

#endif
