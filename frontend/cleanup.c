/* frontend/cleanup.c — after folding: drop nodes whose outputs are all constants, bypass Identity
 * nodes, and drop nodes that no graph output depends on. Only real tensor work is left. */
#include "frontend/passes.h"

#include <stdlib.h>
#include <string.h>

void bp_cleanup(bp_graph *g) {
  unsigned char *remove = calloc((size_t)(g->nnodes ? g->nnodes : 1), 1);
  unsigned char *live = calloc((size_t)(g->ntensors ? g->ntensors : 1), 1);
  if (!remove || !live) { /* cleanup is an optimisation: on OOM leave the graph as it is */
    free(remove);
    free(live);
    return;
  }
  for (int i = 0; i < g->nnodes; i++) {
    bp_node *n = g->nodes[i];
    int all_const = 1;
    for (int k = 0; k < n->nout; k++)
      if (n->out[k] >= 0 && g->tensors[n->out[k]]->kind != BP_T_CONSTANT) all_const = 0;
    if (all_const) {
      remove[i] = 1;
      continue;
    }
    if (strcmp(n->op_type, "Identity") == 0 && n->nin == 1 && n->nout == 1 && n->in[0] >= 0 && n->out[0] >= 0 &&
        !g->tensors[n->out[0]]->is_output) {
      /* Keep a record of the alias for the parameter passes (a named Identity of an initializer). */
      g->tensors[n->out[0]]->view_of = n->in[0];
      bp_graph_replace_uses(g, n->out[0], n->in[0]);
      remove[i] = 1;
    }
  }
  /* Liveness from the graph outputs backwards (nodes are in topological order). */
  for (int i = 0; i < g->noutputs; i++) live[g->outputs[i]] = 1;
  for (int i = g->nnodes - 1; i >= 0; i--) {
    bp_node *n = g->nodes[i];
    if (remove[i]) continue;
    int used = 0;
    for (int k = 0; k < n->nout; k++)
      if (n->out[k] >= 0 && live[n->out[k]]) used = 1;
    if (!used) {
      remove[i] = 1;
      continue;
    }
    for (int k = 0; k < n->nin; k++)
      if (n->in[k] >= 0) live[n->in[k]] = 1;
  }
  bp_graph_remove_nodes(g, remove);
  free(remove);
  free(live);
}
