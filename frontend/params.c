/* frontend/params.c — which initializers are parameters, before and after preparation:
 *   untie: TorchScript merges equal initializers and gives each original name back with an
 *          Identity; each such Identity(initializer) becomes its own parameter (a copy);
 *   retie: an initializer that is the exact transpose of, or identical to, another (and not
 *          constant-filled) is the same weight exported twice (a folded Transpose unties a tied
 *          LM head): its uses are pointed back at the other, through a Transpose node if needed;
 *   dynamo check: a file that looks default-exported by dynamo trains as it is, with a warning. */
#include "frontend/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_float_init(const bp_graph *g, int t) {
  const bp_tensor *tt = g->tensors[t];
  return tt->kind == BP_T_INITIALIZER && tt->v.dtype == BP_F32 && tt->v.data && tt->v.rank >= 0;
}

int bp_params_untie(bp_graph *g, bp_err *e) {
  unsigned char *rm = calloc((size_t)(g->nnodes ? g->nnodes : 1), 1);
  if (!rm) return bp_errf(e, "out of memory");
  int count = 0;
  for (int i = 0; i < g->nnodes; i++) {
    bp_node *n = g->nodes[i];
    if (strcmp(n->op_type, "Identity") || n->nin != 1 || n->nout != 1 || n->in[0] < 0 || n->out[0] < 0) continue;
    if (!is_float_init(g, n->in[0]) || g->tensors[n->out[0]]->is_output) continue;
    bp_tensor *src = g->tensors[n->in[0]], *dst = g->tensors[n->out[0]];
    dst->v = src->v;
    dst->v.data = NULL;
    if (!bp_tensor_alloc(dst)) {
      free(rm);
      return bp_errf(e, "out of memory");
    }
    memcpy(dst->v.data, src->v.data, bp_value_bytes(&src->v));
    dst->kind = BP_T_INITIALIZER;
    dst->producer = -1;
    rm[i] = 1;
    count++;
  }
  bp_graph_remove_nodes(g, rm);
  free(rm);
  return count;
}

static int constant_filled(const bp_value *v) {
  const float *p = v->data;
  int64_t n = bp_value_numel(v);
  for (int64_t i = 1; i < n; i++)
    if (p[i] != p[0]) return 0;
  return 1;
}

/* b == a^T for 2-D a [r, c], b [c, r]. */
static int is_transpose(const bp_value *a, const bp_value *b) {
  if (a->rank != 2 || b->rank != 2 || a->dims[0] != b->dims[1] || a->dims[1] != b->dims[0]) return 0;
  const float *pa = a->data, *pb = b->data;
  int64_t r = a->dims[0], c = a->dims[1];
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < c; j++)
      if (pa[i * c + j] != pb[j * r + i]) return 0;
  return 1;
}

/* Puts the last node first (its output feeds nodes anywhere in the graph). */
static void move_last_node_first(bp_graph *g) {
  bp_node *last = g->nodes[g->nnodes - 1];
  memmove(g->nodes + 1, g->nodes, sizeof(bp_node *) * (size_t)(g->nnodes - 1));
  g->nodes[0] = last;
  for (int i = 0; i < g->nnodes; i++)
    for (int k = 0; k < g->nodes[i]->nout; k++)
      if (g->nodes[i]->out[k] >= 0) g->tensors[g->nodes[i]->out[k]]->producer = i;
}

int bp_params_retie(bp_graph *g, int report, bp_err *e) {
  int count = 0;
  int *used = calloc((size_t)g->ntensors, sizeof(int));
  if (!used) return bp_errf(e, "out of memory");
  for (int i = 0; i < g->nnodes; i++)
    for (int k = 0; k < g->nodes[i]->nin; k++)
      if (g->nodes[i]->in[k] >= 0) used[g->nodes[i]->in[k]] = 1;
  int nt = g->ntensors;
  for (int b = 0; b < nt; b++) {
    if (!used[b] || !is_float_init(g, b) || bp_value_numel(&g->tensors[b]->v) < 2 ||
        constant_filled(&g->tensors[b]->v))
      continue;
    for (int a = 0; a < nt; a++) {
      if (a == b || !used[a] || !is_float_init(g, a)) continue;
      const bp_value *va = &g->tensors[a]->v, *vb = &g->tensors[b]->v;
      int same = bp_same_shape(va, vb) && memcmp(va->data, vb->data, bp_value_bytes(va)) == 0;
      if (same && a > b) continue; /* identical pair: keep the first, retie the second */
      int tr = !same && is_transpose(va, vb);
      if (!same && !tr) continue;
      int to = a;
      if (tr) {
        char name[600];
        snprintf(name, sizeof name, "%s/retied_transpose", g->tensors[a]->name);
        to = bp_graph_tensor(g, name);
        if (to < 0) {
          free(used);
          return bp_errf(e, "out of memory");
        }
        int node = bp_graph_add_node(g, name, "Transpose", "", 1, &a, 1, &to);
        if (node < 0) {
          free(used);
          return bp_errf(e, "out of memory");
        }
        g->nodes[node]->op = bp_op_find("", "Transpose");
        g->nodes[node]->opset = (int)bp_graph_opset(g, "");
        move_last_node_first(g);
      }
      if (report)
        fprintf(stderr, "bitpipec: note: initializer '%s' is %s '%s': retied (one parameter; --no-retie keeps them apart)\n",
                g->tensors[b]->name, tr ? "the transpose of" : "identical to", g->tensors[a]->name);
      bp_graph_replace_uses(g, b, to);
      used[b] = 0;
      count++;
      break;
    }
  }
  free(used);
  return count;
}

int bp_params_looks_dynamo_default(const bp_graph *g) {
  int anon = 0;
  for (int t = 0; t < g->ntensors; t++) {
    const bp_tensor *tt = g->tensors[t];
    if (tt->kind == BP_T_INITIALIZER && bp_dtype_is_float(tt->v.dtype) && tt->v.rank >= 2 &&
        strncmp(tt->name, "val_", 4) == 0)
      anon++;
  }
  return anon > 0;
}
