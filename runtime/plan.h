/* runtime/plan.h — the contract between the code generator and the runtime: what a compiled
 * model hands to libbitpipe. The generated train.c fills these structs as static data (plus one
 * forward / backward function per stage) and calls bp_rt_main(); the runtime executes the ranks'
 * programs on them. Nothing here needs protobuf-c or GLPK.
 *
 * Model cut. The training graph (forward + loss + backward) is cut into S stages (the schedule's
 * model segments). Each stage is a self-contained graph of its own: tensor ids are local to the
 * stage. A stage's backward is the vector-Jacobian product of its forward: for a stage that is not
 * the last, the backward is seeded by the gradients of its boundary outputs (grad_in, received
 * from the next stage); for the last stage by the loss times its weight (loss_weight, written by
 * the runtime: this micro-batch's share of the iteration's counted tokens, so the iteration's loss
 * is the mean over every counted token as in single-process training).
 *
 * Memory. Every tensor of a stage lives in one of four places (bp_rt_mem), at a byte offset the
 * compiler planned (liveness-based):
 *   PARAM  the chunk's trainable parameters, one arena per chunk, laid out as the weights file's
 *          section of that stage. Gradient accumulators and optimizer state mirror this layout
 *          (same offsets) in arenas of the same size.
 *   CONST  the stage's constants and frozen initializers (also from the weights file), one arena
 *          per chunk (read-only).
 *   SLOT   what lives across instructions for one micro-batch of one chunk: data inputs, received
 *          activations and gradients, the stash (forward tensors backward reads), the boundary
 *          outputs until sent, and (split backward) what the weight half reads from the input
 *          half. One arena per in-flight micro-batch of a chunk; the runtime takes a slot at the
 *          first instruction touching (chunk, micro-batch) and gives it back after the last.
 *   WORK   transient within one compute instruction: one arena per rank, shared by all its
 *          chunks (a rank runs one compute instruction at a time). Its size is the largest
 *          stage's work_bytes.
 * Kernels may not assume zeroed outputs: the runtime clears each node's outputs before calling it
 * (as the CPU executor's calloc does), so accumulating kernels stay correct.
 *
 * Boundaries. act_in, act_out, grad_in, grad_out are each a contiguous byte range of the slot
 * (the tensors of that list in order, offsets increasing): a message is that range, sent as one
 * buffer. Stage s's act_out range has the same size and tensor list (shapes, dtypes) as stage s+1's
 * act_in range; grad_out of stage s+1 matches grad_in of stage s. Non-float boundary tensors (an
 * integer mask forwarded along) have no gradient: the grad ranges hold the float ones only, in
 * order. Transfers are asynchronous: a receive may land in its act_in / grad_in range at any time
 * while the slot is held, and a send reads act_out / grad_out until the slot is given back; so
 * these four ranges (and the data inputs and loss_weight, which the runtime writes) share their
 * bytes with no other tensor of the slot, and nothing writes act_out / grad_out after the
 * instruction that produces them.
 */
#ifndef BITPIPE_RUNTIME_PLAN_H
#define BITPIPE_RUNTIME_PLAN_H

#include <stdint.h>

#include "frontend/ir.h"
#include "partitioner/schedule.h"

typedef enum bp_rt_mem { BP_MEM_PARAM = 0, BP_MEM_CONST, BP_MEM_SLOT, BP_MEM_WORK } bp_rt_mem;

typedef struct bp_rt_tensor {
  const char *name;        /* the ONNX / training-graph name, for messages and traces */
  uint8_t dtype;           /* bp_dtype */
  uint8_t rank;
  uint8_t mem;             /* bp_rt_mem */
  int64_t dims[BP_MAX_RANK];
  int64_t offset;          /* bytes into its arena */
  int64_t nbytes;
} bp_rt_tensor;

/* A range of bytes in the slot arena. */
typedef struct bp_rt_range {
  int64_t offset, nbytes;
} bp_rt_range;

/* What the data loader writes into a stage's data input tensors (in the slot) before FWD. */
typedef enum bp_rt_data_kind {
  BP_DATA_TOKENS = 0,  /* the model's token input: int64 [B, T] windows of the token stream */
  BP_DATA_TARGETS,     /* the loss's targets: int64 [B, T], the next token of each position */
  BP_DATA_FIXED,       /* a graph input given by --input NAME=FILE: split along dim 0 per micro-batch */
} bp_rt_data_kind;

typedef struct bp_rt_data_input {
  int tensor;              /* stage-local tensor id (mem SLOT) */
  uint8_t kind;            /* bp_rt_data_kind */
  const char *input_name;  /* the graph input's name (TARGETS: "targets") */
} bp_rt_data_input;

/* A trainable parameter held by a stage. */
typedef struct bp_rt_param {
  int tensor;              /* stage-local id of the parameter (mem PARAM) */
  int grad;                /* stage-local id of its per-micro-batch gradient (SLOT or WORK),
                              produced by the backward (by the weight half when split); -1: the
                              loss does not reach it from this stage (gradient zero) */
  int global_id;           /* index into bp_rt_model.param_names: the same id in several stages
                              is a tied weight (its gradients are summed over those stages) */
} bp_rt_param;

/* Views and folds into MatMul (frontend/mmfold.h), decided by the compiler for one node. A node with
 * `view` set does not run: the memory plan put its output 0 at the bytes of its input `view_in`
 * (a relabelling: Reshape, Squeeze, a Cast to the same dtype..., a folded Transpose or Mul). A
 * MatMul reads its input k transposed (the bytes hold the logical value's last two dims swapped)
 * when trans[k], takes input k's value as its bytes x 2^in_log2[k], and writes its product x
 * 2^out_log2. All zero: the node runs as written. The runtime checks the views against the plan at
 * start; the GPU applies the folds as the GEMM's flags and alpha, the CPU materialises them (the
 * same arithmetic as the nodes they replace, so results are bitwise those of the unfolded graph). */
typedef struct bp_rt_fold {
  uint8_t view, view_in;
  uint8_t trans[2];
  int8_t in_log2[2], out_log2;
} bp_rt_fold;

struct bp_rt_exec;
/* A stage's generated code: runs nodes [begin, end) of the stage with bp_rt_run_node. */
typedef int (*bp_rt_stage_fn)(struct bp_rt_exec *x);

typedef struct bp_rt_stage {
  int index;               /* 0..S-1 */
  const char *layers;      /* "block3-block5", for reports */
  int ntensors;
  const bp_rt_tensor *tensors;
  int nnodes;
  bp_node *nodes;          /* `op` is resolved by the runtime at start (bp_op_find) */
  const bp_rt_fold *folds; /* [nnodes], or NULL: every node runs as written */
  /* nodes [0, n_forward) forward (+ loss on the last stage); [n_forward, n_bwd_input) the input
   * gradient half of the backward; [n_bwd_input, nnodes) the weight gradient half. Without a
   * split the runtime runs both halves for BWD. */
  int n_forward, n_bwd_input;
  bp_rt_stage_fn forward, backward_input, backward_weight;
  /* boundaries (stage-local tensor ids, all mem SLOT) */
  int n_act_in;  const int *act_in;    bp_rt_range act_in_range;
  int n_act_out; const int *act_out;   bp_rt_range act_out_range;
  int n_grad_in; const int *grad_in;   bp_rt_range grad_in_range;   /* seeds for float act_out */
  int n_grad_out; const int *grad_out; bp_rt_range grad_out_range;  /* gradients of float act_in */
  int n_data; const bp_rt_data_input *data;
  int loss;                /* last stage: the micro-batch's loss before weighting (float scalar,
                              SLOT; the mean over its counted tokens); else -1 */
  int loss_weight;         /* last stage: float scalar input (SLOT) the runtime writes; else -1 */
  int nparams;
  const bp_rt_param *params;
  /* arena sizes in bytes */
  int64_t param_bytes, const_bytes, slot_bytes, work_bytes;
  /* where this stage's PARAM then CONST bytes start in the weights file */
  int64_t weights_offset;
} bp_rt_stage;

typedef struct bp_rt_model {
  const char *model_path;      /* the ONNX file compiled (for --save-onnx and messages) */
  const char *weights_file;    /* default weights file name, next to the program */
  uint64_t fingerprint;        /* ties program, weights file and checkpoints together */
  int n_stages;
  const bp_rt_stage *stages;
  int n_params;                /* unique trainable parameters */
  const char *const *param_names;
  const int64_t *param_numel;
  /* --save-onnx: byte offset of each parameter's raw_data in model_path (-1: not patchable) */
  const int64_t *param_onnx_offset;
  int batch, seq;              /* micro-batch shape: B sequences of T tokens */
  int vocab;                   /* classes of the loss (cross-entropy), for checking token ids */
  int loss_kind;               /* bp_loss_kind (0 cross-entropy, 1 mse) */
  int64_t ignore_index;
  double flops_per_token;      /* forward + backward, for the achieved FLOP/s in the log */
} bp_rt_model;

/* Training hyper-parameters baked in at compile time (command-line flags of ./train override). */
typedef struct bp_rt_hparams {
  int optimizer;               /* bp_optimizer_kind: 0 sgd, 1 adamw */
  double lr, momentum, weight_decay, clip, beta1, beta2, eps;
  int dropout;
  uint64_t seed;
} bp_rt_hparams;

typedef struct bp_rt_plan {
  const bp_rt_model *model;
  const bp_program *program;   /* the schedule (D ranks, N micro-batches), lowered and validated */
  bp_rt_hparams hp;
  double predicted_step_s;     /* the simulator's step time with the compile-time costs */
  const double *predicted_bubble; /* [D] */
  const int64_t *planned_rank_bytes; /* [D] what the memory plan says each rank allocates: the
                                 compiler calls bp_rt_rank_bytes (below), as the runtime does */
  const char *plan_json;       /* the plan file written next to the program */
} bp_rt_plan;

/* The execution context of one compute instruction: the stage and the values of its tensors
 * bound to the chunk's and slot's arenas. Generated stage functions pass it through. */
typedef struct bp_rt_exec {
  const bp_rt_stage *stage;
  bp_value *vals;              /* [stage->ntensors], data pointers bound for this call */
  bp_ctx *ctx;                 /* training flag and RNG stream (dropout) */
  int rank, chunk, mb;
} bp_rt_exec;

/* Runs node k of x->stage (clears its outputs, calls the op's eval). Errors name the node, the
 * stage, the rank and the micro-batch. */
int bp_rt_run_node(struct bp_rt_exec *x, int k);

/* The generated main() calls this: parses ./train's command line, runs, returns the exit code. */
int bp_rt_main(const bp_rt_plan *plan, int argc, char **argv);

/* The weights file (written by the compiler next to the program, read by the runtime): this
 * 64-byte header (host byte order, little-endian on every supported machine), then each stage's
 * section at its weights_offset (64-byte aligned, from the start of the file): param_bytes of
 * PARAM arena then const_bytes of CONST arena, exactly as the arenas are laid out. total_bytes is
 * the file's size; fingerprint equals bp_rt_model.fingerprint (a hash of the plan: tensors,
 * offsets, nodes, program), so a weights file from another compile is refused. */
#define BP_RT_WEIGHTS_MAGIC "BPWEIGHT"
#define BP_RT_WEIGHTS_VERSION 1
typedef struct bp_rt_weights_header {
  char magic[8];           /* BP_RT_WEIGHTS_MAGIC, not NUL-terminated */
  uint32_t version;        /* BP_RT_WEIGHTS_VERSION */
  uint32_t n_stages;
  uint64_t fingerprint;
  uint64_t total_bytes;
  uint8_t reserved[32];    /* zero */
} bp_rt_weights_header;

/* Memory accounting, one definition for the compiler (planned_rank_bytes) and the runtime (what
 * it allocates): runtime/memplan.c, in library bitpipe_rtplan (no MPI; libbitpipe includes it).
 * Slots of local chunk c on rank r: the most micro-batches of c alive at once, where (c, m) is
 * alive from the first to the last instruction of program->rank[r] naming it (LOCAL_ACT and
 * LOCAL_GRAD also name the neighbour chunk that receives the hand-over: the next / previous
 * stage of the same pipe). Bytes of rank r: over its chunks, param_bytes * (2 + optimizer
 * states: 1 for SGD, 2 for AdamW) + const_bytes + slots * slot_bytes, plus the largest
 * work_bytes among its chunks. Both return -1 on an inconsistent plan (err says why). */
int bp_rt_chunk_slots(const bp_program *p, int r, int *slots /* [chunks_per_rank] */, char *err,
                      size_t errlen);
int64_t bp_rt_rank_bytes(const bp_rt_model *m, const bp_program *p, int r, int optimizer, char *err,
                         size_t errlen);

#endif
