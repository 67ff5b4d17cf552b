/* partitioner/layers.h — cutting a model's forward graph into layers at narrow cut points.
 *
 * A cut point is a position k in the topological order of the forward nodes (between node k-1
 * and node k). The tensors crossing it are the activations produced before k and read at or after
 * k. Graph inputs do not cross (every rank that reads one is fed it by the data loader), nor do
 * constants and initializers (duplicated on each side), nor nodes that compute only from weights
 * and constants ("weight views" such as Transpose(W)): those float to the layer of their first
 * reader and are duplicated into every other layer that reads them.
 *
 * Finding the layers, with no model-specific rule:
 *   1. For each threshold X over the distinct crossing sizes, ascending, the positions crossed by
 *      at most X bytes cut the node list into segments. Each segment gets a signature (its ops
 *      and output shapes).
 *   2. The longest run of segments that repeats with some period p at least twice is looked for;
 *      it must cover at least half of the nodes. The first X that gives one wins: each repetition
 *      is a layer (a transformer block), everything before it one layer (the embedding part),
 *      everything after it one layer (head + loss).
 *   With BP_LAYERS_FINE every segment is its own layer instead (blocks split at their inner narrow
 *   points: attention and MLP halves), for pipelines with more chunks than blocks.
 * A tensor read by several later layers (a mask that could not be folded, a skip connection over
 * blocks) crosses every cut on its way: it is forwarded along the pipeline, and counted in every
 * boundary it crosses.
 */
#ifndef BITPIPE_LAYERS_H
#define BITPIPE_LAYERS_H

#include "frontend/ir.h"
#include "frontend/passes.h"

typedef enum { BP_LAYER_PREFIX = 0, BP_LAYER_BLOCK, BP_LAYER_SUFFIX, BP_LAYER_SEGMENT } bp_layer_kind;
typedef enum { BP_LAYERS_BLOCK = 0, BP_LAYERS_FINE } bp_layers_granularity;

typedef struct bp_layer_info {
  char name[32];          /* "embed", "block0", ..., "head"; "seg7" at fine granularity */
  bp_layer_kind kind;
  int pos_begin, pos_end; /* positions in the cut order (non-floating forward nodes) [begin, end) */
  int nnodes;             /* forward nodes, floating weight views included */
  double flops_fwd;       /* forward FLOPs (op table) */
  double bytes_fwd;       /* bytes read + written by the forward nodes */
  double matmul_flops;    /* the part of flops_fwd in MatMul/Gemm (tensor cores on a GPU) */
  double matmul_bytes;    /* the part of bytes_fwd in MatMul/Gemm */
  double param_bytes;     /* trainable float initializers read (a tied weight in each layer) */
  double act_bytes;       /* stashed for backward, per micro-batch */
  double out_bytes;       /* activations crossing the cut after this layer, per micro-batch */
  int out_tensors;
} bp_layer_info;

typedef struct bp_model_layers {
  bp_graph *g;            /* the training graph: forward [0, n_fwd), loss included, then backward */
  int n_fwd;
  int *node_layer;        /* [g->nnodes]: layer of a forward node (a floating node: its first
                             reader's), of a backward node (attributed, for profiling), or -1 */
  unsigned char *stash;   /* [g->ntensors] */
  int n;                  /* layers */
  bp_layer_info *layer;   /* [n] */
  int n_positions;        /* non-floating forward nodes */
  int n_segments, period, reps; /* what the search found (period in segments) */
  double threshold;       /* crossing bytes that made a cut point */
  char model[256];
} bp_model_layers;

/* Loads MODEL, binds (e.g. batch=B, sequence=T), prepares it in training mode, appends the
 * cross-entropy loss on the first float output, builds the backward graph (for the stash) and
 * finds the layers. */
int bp_model_layers_build(const char *path, const bp_binding *binds, int nbinds, bp_layers_granularity gran,
                          bp_model_layers *out, bp_err *e);
void bp_model_layers_free(bp_model_layers *m);

/* The layer search alone, on a graph whose forward nodes are [0, n_fwd) (shapes inferred).
 * stash (or NULL) marks tensors backward reads; trainable (or NULL: every float initializer)
 * marks parameters. Fills m->n, m->layer, m->node_layer and the search fields. */
int bp_layers_find(bp_graph *g, int n_fwd, const unsigned char *stash, const unsigned char *trainable,
                   bp_layers_granularity gran, bp_model_layers *m, bp_err *e);

#endif
