/* frontend/passes.h — the passes that turn a loaded ONNX graph into static-shaped tensor work:
 * bind symbolic dimensions, infer shapes while folding constant subgraphs, remove Identity and
 * dead nodes; and the CPU executor that runs what is left. */
#ifndef BITPIPE_PASSES_H
#define BITPIPE_PASSES_H

#include "frontend/ir.h"

typedef struct bp_binding {
  const char *name;
  int64_t value;
} bp_binding;

/* Gives every graph input a static shape. Symbolic dimensions come from `binds` (NAME=VALUE)
 * or from the shapes of given input values (given[i] for graph input i, NULL if not given);
 * an unbound dimension is an error naming it and the input. Given values must match the
 * declared dtype and static dims. */
int bp_bind_inputs(bp_graph *g, const bp_binding *binds, int nbinds, bp_value *const *given, bp_err *e);

typedef struct bp_fold_stats {
  int folded_nodes;   /* nodes evaluated at compile time and turned into constants */
  int weight_views;   /* nodes computing only from initializers (kept, outputs marked view_of) */
  int fused_gelu_tanh, fused_gelu_erf; /* set by bp_prepare_graph: chains bp_fuse_gelu replaced */
} bp_fold_stats;

/* Infers every tensor's dtype and static shape in node order and evaluates every node whose
 * inputs are all compile-time constants (Shape/Size need only the input's shape). Computations
 * on initializers only are kept as nodes (weights may train) and their outputs marked view_of.
 * Dropout is never folded in training mode. Checks the declared static dims of graph outputs. */
int bp_infer_and_fold(bp_graph *g, bp_ctx *ctx, bp_fold_stats *stats, bp_err *e);

/* Removes folded nodes, Identity nodes (uses rewired to the Identity's input, except where the
 * output is a graph output) and nodes that no graph output depends on. */
void bp_cleanup(bp_graph *g);

typedef struct bp_fuse_stats {
  int gelu_tanh, gelu_erf; /* chains replaced by Gelu(approximate="tanh") / Gelu(approximate="none") */
} bp_fuse_stats;

/* On a prepared graph (shapes inferred, constants folded, cleaned up): replaces each elementwise
 * GELU chain of an exporter (0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))), 0.5x(1 + erf(x/sqrt(2))),
 * in their operand orders) by one Gelu node; chains whose intermediate values are read elsewhere
 * or whose constants differ are left alone (frontend/fuse_gelu.c). `stats` may be NULL. */
int bp_fuse_gelu(bp_graph *g, bp_fuse_stats *stats, bp_err *e);
/* The environment's say on fusions: 0 when BP_FUSE=0 (every fusion off, for comparisons), else 1. */
int bp_fuse_enabled(void);

/* The full front half: check ops, bind, infer+fold, cleanup and (unless BP_FUSE=0) the GELU
 * fusion, whose counts land in `stats`. With `specialize_int_inputs`, given integer and bool
 * inputs (and scalars of any type) become compile-time constants (their data borrowed from
 * `given`), so a graph whose shapes depend on input values (a Reshape fed a shape input) still
 * compiles. */
int bp_prepare_graph(bp_graph *g, const bp_binding *binds, int nbinds, bp_value *const *given, bp_ctx *ctx,
                     int specialize_int_inputs, bp_fold_stats *stats, bp_err *e);
/* True when a preparation error says a shape-determining value was not a compile-time constant
 * (the case specialize_int_inputs can resolve). */
int bp_err_needs_constant(const bp_err *e);

/* Checks that every graph input is given (inputs[i] non-NULL) with the dtype and static shape the
 * graph was prepared for; the error names the input. Both executors (CPU and CUDA) call it. */
int bp_check_inputs(const bp_graph *g, bp_value *const *inputs, bp_err *e);

/* Runs the graph on the CPU: inputs[i] feeds graph input i; outputs[i] receives graph output i
 * (malloc'ed data, caller frees). Intermediate buffers are freed after their last use. */
int bp_execute(const bp_graph *g, bp_ctx *ctx, bp_value *const *inputs, bp_value *outputs, bp_err *e);

/* Forward FLOPs of the remaining (non-constant) nodes for the bound shapes. */
double bp_graph_flops(const bp_graph *g);

#endif
