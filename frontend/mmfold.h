/* frontend/mmfold.h — which nodes of a graph need not run on a GEMM backend: views (nodes that only
 * relabel their input's bytes) and folds into MatMul (a Transpose of the last two dims becomes the
 * GEMM's transpose flag, a Mul by a power-of-two scalar its alpha). One analysis, device-free, for
 * the CUDA executor (kernels/cuda/exec.c, decided at run time) and the code generator
 * (codegen/memplan.c: the views share their input's bytes in the memory plan, and the generated node
 * table carries the folds the runtime applies). frontend/mmfold.c has the rules. */
#ifndef BITPIPE_FRONTEND_MMFOLD_H
#define BITPIPE_FRONTEND_MMFOLD_H

#include "frontend/ir.h"

/* Per-node view kinds */
enum {
  BP_FOLD_RUNS = 0,      /* the node runs */
  BP_FOLD_VIEW = 1,      /* output 0 is input view_in's bytes, unchanged */
  BP_FOLD_VIEW_EVAL = 2, /* the same when the context is not training (Dropout); runs when training */
  BP_FOLD_VIEW_SCALED = 3, /* output 0 is input view_in's bytes; its true value is them x tscale (only
                              MatMuls read it, with the scale in their alpha) */
  BP_FOLD_VIEW_TRANS = 4,  /* output 0 is input 0's bytes, i.e. the output stored transposed (only
                              MatMuls read it, with the transpose flag flipped) */
};

typedef struct bp_fold_plan {
  int nnodes, ntensors;
  signed char *view;      /* [nnodes] BP_FOLD_* */
  signed char *view_in;   /* [nnodes] the input a view shares (0, or 1 for Mul(scalar, x)) */
  unsigned char *is_mm;   /* [nnodes] a float32 MatMul (the node that applies folds) */
  float *oscale;          /* [nnodes] a MatMul's own output scale (a folded Mul after it) */
  float *tscale;          /* [ntensors] true value = stored value x tscale (a folded Mul) */
  unsigned char *ttrans;  /* [ntensors] stored with the last two dims swapped (a folded Transpose) */
} bp_fold_plan;

/* Fills p for g. keep[t] != 0 (keep may be NULL): tensor t must have bytes of its own holding its
 * true value (a graph output handed over, a tensor the caller reads or sends): it is never a view's
 * output, and a MatMul writing it is not scaled. folds == 0: views only (BP_CUDA_FOLD=0). */
int bp_fold_analyse(const bp_graph *g, const unsigned char *keep, int folds, bp_fold_plan *p, bp_err *e);
void bp_fold_free(bp_fold_plan *p);

/* The alpha and transpose flags MatMul node i applies under p (1 and 0 when i is not a MatMul). */
float bp_fold_alpha(const bp_fold_plan *p, const bp_graph *g, int i);
int bp_fold_trans(const bp_fold_plan *p, const bp_graph *g, int i, int k);

#endif
