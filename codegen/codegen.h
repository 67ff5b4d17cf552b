/* codegen/codegen.h — the code generator: from an ONNX model and a pipeline schedule to a training
 * program for libbitpipe (runtime/plan.h is the contract it writes to).
 *
 * The flow (`bitpipec MODEL -o train`, tools/cmd_compile.c):
 *   bp_cg_prepare       the frontend's analysis-only training graph (untie/retie, prepare, loss,
 *                       trainable set), the layers (partitioner/layers.h), their costs, the schedule
 *                       program (validated) and the partition of layers onto its S stages;
 *   bp_cg_build_stages  per stage a self-contained graph: forward, pseudo-loss, its own backward
 *                       (a vector-Jacobian product) split into input and weight halves (stages.c);
 *   bp_cg_plan_memory   every tensor's arena and offset (memplan.c), the parameter table, the
 *                       weights layout, the fingerprint and the planned bytes per rank;
 *   bp_cg_emit_*        train.c, the weights file, the plan JSON (emit_c.c, weights.c, plan.c).
 * Functions return 0 or -1 with the first error in a bp_err; nothing exits.
 *
 * Names used below: G is the training graph of the whole model (forward nodes [0, n_fwd), loss
 * included, then its backward, which the code generator does not use); a stage graph has its own
 * tensor ids (the runtime's stage-local ids). */
#ifndef BITPIPE_CODEGEN_H
#define BITPIPE_CODEGEN_H

#include <stdint.h>
#include <stdio.h>

#include "frontend/train.h"
#include "partitioner/partition.h"
#include "runtime/plan.h"

typedef struct bp_cg_opts {
  const char *model;          /* the ONNX file */
  int D, N;                   /* pipeline ranks, micro-batches per iteration */
  int micro_batch;            /* binds 'batch' (sequences per micro-batch) */
  int seq;                    /* binds 'sequence' when > 0 */
  const bp_binding *binds;    /* more --bind NAME=V */
  int nbinds;
  const char *schedule;       /* bitpipe, 1f1b, ... (partitioner/schedule.h) */
  int chunks;                 /* interleaved: chunks per rank; 0 the schedule's default */
  const char *partition;      /* "auto" (GLPK), "uniform", or ranges "0-3,4-6,..." */
  const char *device_model;   /* NULL or "cpu-profile": profile on this CPU; "gpu-profile" (alias
                                 "cuda-profile"): profile on the GPU through profile_device; h100,
                                 h200, a100: analytic */
  const bp_profile_device *profile_device; /* gpu-profile: the GPU's node timer, made by the caller
                                 (tools/gpu_profile.c; this library does not link CUDA) */
  const char *profile_cache;  /* NULL: the default cache; "": none */
  int profile_repeats;        /* 0: 5 */
  double ilp_time_limit;      /* 0: 60 s */
  bp_train_opts train;        /* loss, optimizer, hyper-parameters, dropout, freeze/train */
} bp_cg_opts;

void bp_cg_opts_default(bp_cg_opts *o);

/* A trainable parameter held by a stage (stage-local ids). */
typedef struct bp_cg_param {
  int tensor, grad, global_id;
} bp_cg_param;

typedef struct bp_cg_data {
  int tensor;                 /* stage-local, a graph input of the stage graph */
  int kind;                   /* bp_rt_data_kind */
} bp_cg_data;

typedef struct bp_cg_stage {
  int index;
  int layer_begin, layer_end; /* layers [begin, end) of the model */
  char layers[96];            /* "block0.1-head.2" */
  bp_graph *g;                /* nodes: forward [0, n_forward), input half [n_forward, n_bwd_input),
                                 weight half [n_bwd_input, nnodes); inputs: act_in, data, grad_in,
                                 loss_weight; outputs: act_out, loss, grad_out, parameter gradients */
  int n_forward, n_bwd_input;
  int n_act_in, n_act_out, n_grad_in, n_grad_out;
  int *act_in, *act_out, *grad_in, *grad_out;
  int n_data;
  bp_cg_data *data;
  int loss, loss_weight;      /* last stage; -1 elsewhere */
  int nparams;
  bp_cg_param *params;        /* in the PARAM arena's order: untied ones first, tied ones last */
  /* memory plan (memplan.c), per stage-local tensor */
  uint8_t *mem;               /* bp_rt_mem */
  int64_t *offset, *nbytes;
  int *live_begin, *live_end; /* the interval (node positions, -1 = before the first node,
                                 nnodes = after the last) the plan gave the tensor */
  bp_rt_range act_in_range, act_out_range, grad_in_range, grad_out_range;
  int64_t param_bytes, const_bytes, slot_bytes, work_bytes;
  int64_t slot_lower_bound, work_lower_bound; /* the most bytes live at once (no packing loss) */
  int64_t weights_offset;
  bp_rt_fold *folds;          /* [nnodes] views and folds (memplan.c), NULL when none */
  int n_views, n_folds;       /* nodes that do not run; MatMuls applying a fold */
} bp_cg_stage;

typedef struct bp_cg {
  bp_cg_opts o;
  bp_trainer *t;              /* G: the analysis-only training graph */
  int n_fwd;                  /* forward nodes of G (loss included) */
  bp_model_layers ml;         /* layers of G (ml.g borrows t->g) */
  bp_layers_granularity gran;
  bp_lcosts lc;
  int have_costs;
  bp_program prog;
  int have_prog;
  int S, L;
  int *first;                 /* [S+1]: stage s = layers [first[s], first[s+1]) */
  bp_part_problem pp;
  bp_part_eval ev;            /* the partition's evaluation (proxy, memory, simulated step) */
  int have_eval;
  bp_ilp_info ilp;
  int used_ilp;
  double *pred_bubble;        /* [D] simulated with one cost row per stage */
  double pred_step_s;
  int stages_built;
  bp_cg_stage *stages;        /* [S] */
  int token_input, targets;   /* G tensor ids */
  int n_params;               /* unique trainable parameters (the trainer's order) */
  int64_t *param_numel;       /* [n_params] */
  int64_t *param_onnx_offset; /* [n_params] */
  int *param_stages;          /* [n_params]: stages holding the parameter (tied when > 1) */
  int vocab;
  double flops_per_token;
  uint64_t fingerprint;
  int64_t *rank_bytes;        /* [D] planned (the formula in runtime/plan.h) */
  int *chunk_slots;           /* [D*C]: slots(c) of each rank's chunk */
  int64_t weights_bytes;      /* the weights file's size */
} bp_cg;

/* The front half: graph, layers, costs, schedule program (validated), partition. `log` (or NULL)
 * receives one progress line per phase. */
int bp_cg_prepare(bp_cg *cg, const bp_cg_opts *o, FILE *log, bp_err *e);
/* Simulates the program with the partition's per-stage costs (after bp_cg_prepare); the caller frees
 * res with bp_sim_result_free. */
int bp_cg_simulate(const bp_cg *cg, bp_sim_result *res, bp_err *e);
/* Per-stage graphs (stages.c). Needs cg->t, n_fwd, ml, S, first. */
int bp_cg_build_stages(bp_cg *cg, bp_err *e);
/* Memory plan of every stage, parameter table, weights layout, fingerprint, per-rank bytes. */
int bp_cg_plan_memory(bp_cg *cg, bp_err *e);
void bp_cg_free(bp_cg *cg);

/* One stage's memory plan (memplan.c), for tests. */
int bp_cg_plan_stage(bp_cg_stage *st, bp_err *e);
/* slots(c) of every chunk and the planned bytes of every rank (runtime/plan.h's formula). */
int bp_cg_rank_bytes(bp_cg *cg, bp_err *e);

/* Byte offsets of the raw_data of the named initializers in an ONNX file (onnx_offsets.c):
 * offsets[i] = the offset of names[i]'s raw_data payload, or -1 when it is not exactly one
 * initializer with raw_data of `nbytes[i]` bytes (typed fields, external data, absent, twice). */
int bp_onnx_raw_offsets(const char *path, int n, const char *const *names, const int64_t *nbytes, int64_t *offsets,
                        bp_err *e);

/* The fingerprint: a hash of the plan (fingerprint.c). */
uint64_t bp_cg_fingerprint(const bp_cg *cg);

/* Writers. train.c names the weights and plan files (next to the program), the bitpipec command
 * line that made it and the command that rebuilds the program from it (both for its header). */
int bp_cg_emit_c(const bp_cg *cg, const char *path, const char *weights_name, const char *plan_name,
                 const char *command_line, const char *rebuild, bp_err *e);
int bp_cg_write_weights(const bp_cg *cg, const char *path, bp_err *e);
int bp_cg_write_plan(const bp_cg *cg, const char *path, bp_err *e);

#endif
