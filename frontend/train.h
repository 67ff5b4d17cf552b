/* frontend/train.h — training in one process on the CPU: parameter passes (untie/retie), the
 * appended loss, the training graph (forward + loss + backward from frontend/autodiff.h), and the
 * optimizers. `bitpipec train` and the tests drive it; the pipeline runtime is compared with it. */
#ifndef BITPIPE_TRAIN_H
#define BITPIPE_TRAIN_H

#include "frontend/autodiff.h"
#include "frontend/passes.h"

/* ---- parameters (frontend/params.c) ---- */
/* What the parameter passes did, for reports (`bitpipec inspect`): `name` became its own parameter
 * (untie: a copy of `source`), or was pointed back at `source` (retie; `transpose`: name = source^T). */
typedef struct bp_param_note {
  char *name, *source;
  int transpose;
} bp_param_note;
typedef struct bp_param_notes {
  int n, cap;
  bp_param_note *v;
} bp_param_notes;
void bp_param_notes_free(bp_param_notes *l);

/* Each Identity(float initializer) whose output is not a graph output becomes its own initializer
 * (a copy). Returns the number split, or -1. Run on a loaded graph, before preparation. `notes`
 * (or NULL) receives one entry per split. */
int bp_params_untie(bp_graph *g, bp_param_notes *notes, bp_err *e);
/* Uses of an initializer that equals another or its transpose (and is not constant-filled) are
 * pointed at the other (through a new Transpose). Returns the number retied, or -1. */
int bp_params_retie(bp_graph *g, int report, bp_param_notes *notes, bp_err *e);
/* Anonymous float initializers (`val_N`, weights or literal scalars): a default dynamo export. */
int bp_params_looks_dynamo_default(const bp_graph *g);

/* Why a float initializer in use is not trained. */
typedef enum {
  BP_FROZEN_NONE = 0,
  BP_FROZEN_UNREACHED, /* no differentiable path to the loss */
  BP_FROZEN_BUFFER,    /* feeds only constant tables (rotary inv_freq, masks): every path from it
                          goes through a non-linear constant function (Cos, Sin, Range, a
                          comparison...) before it meets data that depends on the model's inputs */
  BP_FROZEN_SCALAR,    /* a rank-0 literal (dynamo stores Python scalars as initializers: scales,
                          epsilons, Pow exponents, mask fill values) */
  BP_FROZEN_USER,      /* --freeze matched, or --train did not */
} bp_frozen_reason;
const char *bp_frozen_reason_str(bp_frozen_reason r);
/* On a prepared graph: reason[t] = BP_FROZEN_BUFFER or BP_FROZEN_SCALAR for float initializers
 * that are buffers or scalar literals by the rules above, else BP_FROZEN_NONE (caller allocates
 * ntensors bytes). Returns 0 or -1 (out of memory). */
int bp_params_find_buffers(const bp_graph *g, unsigned char *reason, bp_err *e);

/* ---- loss (frontend/loss.c) ---- */
typedef enum { BP_LOSS_CROSS_ENTROPY = 0, BP_LOSS_MSE } bp_loss_kind;
/* Appends a loss on graph output tensor `out` against a new graph input named `targets_name`
 * (integer [leading dims of out] for cross-entropy, out's shape and dtype for MSE). Returns the
 * loss tensor id; *targets_id receives the new input's id. */
int bp_loss_append(bp_graph *g, int out, bp_loss_kind kind, int64_t ignore_index, const char *targets_name,
                   int *targets_id, bp_err *e);

/* ---- optimizers (frontend/optimizer.c) ---- */
void bp_sgd_update(float *p, const float *g, float *buf, int64_t n, int first, double lr, double momentum,
                   double wd, double gscale);
void bp_adamw_update(float *p, const float *g, float *m, float *v, int64_t n, int step, double lr, double beta1,
                     double beta2, double eps, double wd, double gscale);

/* ---- the trainer (frontend/train.c) ---- */
typedef enum { BP_OPT_SGD = 0, BP_OPT_ADAMW } bp_optimizer_kind;

typedef struct bp_train_opts {
  const char *output;        /* graph output the loss is taken on; NULL: the first float output */
  bp_loss_kind loss;
  int64_t ignore_index;      /* cross-entropy targets equal to it do not count (default -100) */
  bp_optimizer_kind optimizer;
  double lr, momentum, weight_decay, clip; /* clip <= 0: no clipping */
  double beta1, beta2, eps;
  const char *freeze_re, *train_re;  /* POSIX extended regexes on parameter names, or NULL */
  int no_retie;
  int dropout;               /* 1: Dropout draws masks (training); 0: Dropout is the identity */
  uint64_t seed;
  int quiet;                 /* no notes/warnings on stderr */
} bp_train_opts;
void bp_train_opts_default(bp_train_opts *o);

/* A device backend for the steps (kernels/cuda: bp_cuda_trainer_attach). NULL: the CPU. */
struct bp_trainer;
typedef struct bp_train_backend {
  const char *name;
  int (*step)(struct bp_trainer *t, double *loss, double *grad_norm, bp_err *e);
  void (*free)(struct bp_trainer *t);
  void *state;
} bp_train_backend;

typedef struct bp_trainer {
  bp_graph *g;
  bp_train_opts o;
  bp_ctx ctx;
  int loss, targets;
  int nparams;
  int *params, *grads;       /* tensor ids */
  float **state1, **state2;  /* momentum buffer / AdamW moments, per parameter */
  int nfrozen;
  int *frozen;               /* float initializers in use but not trained (buffers, --freeze) */
  unsigned char *frozen_why; /* per frozen entry: a bp_frozen_reason */
  int ninputs;
  bp_value **inputs;         /* per g->inputs (targets last), borrowed */
  int step;
  int64_t stash_bytes;
  int stash_tensors;
  int untied, retied, dynamo_default;
  bp_param_notes untie_notes, retie_notes;
  int analysis_only;         /* built without targets: graph and reports only, no steps */
  bp_train_backend *backend; /* steps run there when set (owned: freed through backend->free) */
} bp_trainer;

/* Builds the training graph from a loaded graph `g` (taken over: freed with the trainer).
 * given[i]: value of original graph input i (kept alive by the caller; entries may be NULL when
 * --bind gives the shapes); targets: the loss's targets (kept alive by the caller). targets NULL:
 * analysis only (`bitpipec inspect`): the training graph, parameter sets and stash are built but
 * parameters are not copied, no optimizer state is allocated and bp_trainer_step refuses. */
bp_trainer *bp_trainer_new(bp_graph *g, bp_value **given, bp_value *targets, const bp_binding *binds, int nbinds,
                           const bp_train_opts *o, bp_err *e);
/* One step on the fixed batch: loss and global gradient norm before the update, then the update.
 * A non-finite loss or gradient norm is an error naming the step (parameters left unchanged). */
int bp_trainer_step(bp_trainer *t, double *loss, double *grad_norm, bp_err *e);
void bp_trainer_free(bp_trainer *t);

#endif
