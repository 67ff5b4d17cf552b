/* tests/runtime/toy_model.h — a small token model, cut into pipeline stages and turned into a
 * runtime plan (runtime/plan.h) in the test itself, the way the code generator does it, so the
 * runtime is tested without the code generator:
 *
 *   x = Gather(E, tokens)                                   stage 0 (E: [V, H], tied)
 *   x = Tanh(MatMul(x, W_l))  (x = x * c_l for odd l)       layers l = 0..L-1, spread over stages
 *   x = x + Gather(P, tokens); logits = MatMul(x, E^T)      last stage (tokens forwarded along)
 *   loss = softmax cross-entropy(logits, targets)
 *
 * Each stage graph is built with the frontend's builder, differentiated with bp_autodiff (the
 * vector-Jacobian product seeded by the received gradient, or by loss * loss_weight on the last
 * stage), its backward split into the input-gradient and weight-gradient halves, and laid out in
 * the four arenas (PARAM, CONST, SLOT, WORK). The boundary carries two tensors (the float hidden
 * state and the int64 tokens), the embedding is tied between the first and the last stage, and
 * some layers read a constant: the runtime's boundary, tied-weight and constant paths all run.
 * The reference is the same model as one graph trained by the single-process trainer. */
#ifndef BITPIPE_TESTS_TOY_MODEL_H
#define BITPIPE_TESTS_TOY_MODEL_H

#include "runtime/plan.h"

typedef struct toy_cfg {
  int V, H, L, B, T;        /* vocabulary, hidden, layers, micro-batch rows, sequence */
  const char *schedule;
  int D, N, chunks;
  uint64_t init_seed;       /* initial weights */
  const char *model_path;   /* the stand-in for the ONNX file (--save-onnx), or NULL */
  bp_rt_hparams hp;
} toy_cfg;

void toy_cfg_default(toy_cfg *c);

typedef struct toy_plan {
  bp_rt_plan plan;
  bp_rt_model model;
  bp_program prog;
  int S;
  bp_rt_stage *stages;
  bp_graph **graphs;        /* per stage: nodes and tensors the stage borrows */
  char **param_names;
  int64_t *param_numel;
  int64_t *param_offset;    /* in the stand-in model file */
  double *bubble;
  int64_t *planned;
  uint8_t **param_bytes, **const_bytes; /* per stage: initial PARAM / CONST arena contents */
  void **owned;             /* everything else malloc'ed */
  int nowned, capowned;
} toy_plan;

int toy_build(const toy_cfg *c, toy_plan *tp, bp_err *e);
void toy_free(toy_plan *tp);
int toy_write_weights(const toy_plan *tp, const char *path, bp_err *e);
/* The stand-in model file for --save-onnx: 100 bytes, then each parameter's initial values
 * followed by 16 bytes (param_onnx_offset records where each one starts). */
int toy_write_model(const toy_plan *tp, const toy_cfg *c, const char *path, bp_err *e);

/* The whole model as one graph with `batch` rows, logits as its output (for bp_trainer). */
bp_graph *toy_full_graph(const toy_cfg *c, int batch, bp_err *e);
/* Initial values of parameter `gid` (0: E, 1..L: W_l, L+1: P). */
void toy_param_init(const toy_cfg *c, int gid, float *dst, int64_t n);

#endif
