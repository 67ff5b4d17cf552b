/* frontend/params.c — which initializers are parameters, before and after preparation:
 *   untie: TorchScript merges equal initializers and gives each original name back with an
 *          Identity; each such Identity(initializer) becomes its own parameter (a copy);
 *   retie: an initializer that is the exact transpose of, or identical to, another (and not
 *          constant-filled) is the same weight exported twice (a folded Transpose unties a tied
 *          LM head): its uses are pointed back at the other, through a Transpose node if needed;
 *   buffers: initializers that only feed constant tables (rotary inv_freq, masks) and rank-0
 *          literals (dynamo's Python scalars) are not trained unless --train/--freeze say so;
 *   dynamo check: a file that looks default-exported by dynamo trains as it is, with a warning. */
#include "frontend/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_float_init(const bp_graph *g, int t) {
  const bp_tensor *tt = g->tensors[t];
  return tt->kind == BP_T_INITIALIZER && tt->v.dtype == BP_F32 && tt->v.data && tt->v.rank >= 0;
}

void bp_param_notes_free(bp_param_notes *l) {
  for (int i = 0; i < l->n; i++) {
    free(l->v[i].name);
    free(l->v[i].source);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int note_add(bp_param_notes *l, const char *name, const char *source, int transpose, bp_err *e) {
  if (!l) return 0;
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 8;
    bp_param_note *nv = realloc(l->v, sizeof *nv * (size_t)cap);
    if (!nv) return bp_errf(e, "out of memory");
    l->v = nv;
    l->cap = cap;
  }
  bp_param_note *nt = &l->v[l->n];
  nt->name = strdup(name);
  nt->source = strdup(source);
  nt->transpose = transpose;
  if (!nt->name || !nt->source) {
    free(nt->name);
    free(nt->source);
    return bp_errf(e, "out of memory");
  }
  l->n++;
  return 0;
}

int bp_params_untie(bp_graph *g, bp_param_notes *notes, bp_err *e) {
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
    if (note_add(notes, dst->name, src->name, 0, e) < 0) {
      free(rm);
      return -1;
    }
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

/* Names exporters invent for folded weights ("onnx::MatMul_538", dynamo's "val_12"). */
static int is_anonymous(const char *name) { return strncmp(name, "onnx::", 6) == 0 || strncmp(name, "val_", 4) == 0; }

/* Puts the last node first (its output feeds nodes anywhere in the graph). */
static void move_last_node_first(bp_graph *g) {
  bp_node *last = g->nodes[g->nnodes - 1];
  memmove(g->nodes + 1, g->nodes, sizeof(bp_node *) * (size_t)(g->nnodes - 1));
  g->nodes[0] = last;
  for (int i = 0; i < g->nnodes; i++)
    for (int k = 0; k < g->nodes[i]->nout; k++)
      if (g->nodes[i]->out[k] >= 0) g->tensors[g->nodes[i]->out[k]]->producer = i;
}

int bp_params_retie(bp_graph *g, int report, bp_param_notes *notes, bp_err *e) {
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
      /* keep the named one as the parameter: the exporter's anonymous copy is what gets retied */
      if (tr && is_anonymous(g->tensors[a]->name) && !is_anonymous(g->tensors[b]->name)) continue;
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
      if (note_add(notes, g->tensors[b]->name, g->tensors[a]->name, tr, e) < 0) {
        free(used);
        return -1;
      }
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
    if (tt->kind == BP_T_INITIALIZER && bp_dtype_is_float(tt->v.dtype) && strncmp(tt->name, "val_", 4) == 0)
      anon++;
  }
  return anon > 0;
}

const char *bp_frozen_reason_str(bp_frozen_reason r) {
  switch (r) {
  case BP_FROZEN_NONE: return "trainable";
  case BP_FROZEN_UNREACHED: return "no differentiable path to the loss";
  case BP_FROZEN_BUFFER: return "buffer (feeds only constant tables)";
  case BP_FROZEN_SCALAR: return "scalar literal";
  case BP_FROZEN_USER: return "--freeze/--train";
  }
  return "?";
}

/* Constant functions after which a value is a table, not a weight: a path from an initializer
 * through one of these (with no model input involved) ends there. */
static int is_table_op(const bp_node *n) {
  static const char *ops[] = {"Cos", "Sin", "Tan", "Range", "Equal", "Less", "LessOrEqual", "Greater",
                              "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf", "Floor",
                              "Ceil", "Round", "Sign", "ArgMax", "ArgMin", "Shape", "Size",
                              "ConstantOfShape", "Trilu", "CumSum", "EyeLike", "OneHot", NULL};
  if (n->domain && *n->domain) return 0;
  for (int i = 0; ops[i]; i++)
    if (!strcmp(n->op_type, ops[i])) return 1;
  return 0;
}

int bp_params_find_buffers(const bp_graph *g, unsigned char *reason, bp_err *e) {
  int nt = g->ntensors;
  memset(reason, 0, (size_t)nt);
  /* dyn[t]: t depends on a graph input (computed in node order: nodes are topological). */
  unsigned char *dyn = calloc((size_t)nt, 1), *reach = malloc((size_t)nt);
  if (!dyn || !reach) {
    free(dyn);
    free(reach);
    return bp_errf(e, "out of memory");
  }
  for (int i = 0; i < g->ninputs; i++) dyn[g->inputs[i]] = 1;
  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    int d = 0;
    for (int k = 0; k < n->nin; k++) d |= n->in[k] >= 0 && dyn[n->in[k]];
    for (int k = 0; d && k < n->nout; k++)
      if (n->out[k] >= 0) dyn[n->out[k]] = 1;
  }
  for (int t = 0; t < nt; t++) {
    const bp_tensor *tt = g->tensors[t];
    if (tt->kind != BP_T_INITIALIZER || !bp_dtype_is_float(tt->v.dtype)) continue;
    if (tt->v.rank == 0) {
      reason[t] = BP_FROZEN_SCALAR;
      continue;
    }
    /* forward walk over constant computations from t; it is a weight if a node it reaches (not
     * through a table op) also reads input-dependent data */
    memset(reach, 0, (size_t)nt);
    reach[t] = 1;
    int meets = 0, used = 0;
    for (int i = 0; i < g->nnodes && !meets; i++) {
      const bp_node *n = g->nodes[i];
      int from = 0;
      for (int k = 0; k < n->nin; k++) from |= n->in[k] >= 0 && reach[n->in[k]];
      if (!from) continue;
      used = 1;
      int d = 0;
      for (int k = 0; k < n->nout; k++) d |= n->out[k] >= 0 && dyn[n->out[k]];
      if (d) {
        meets = 1;
        break;
      }
      if (is_table_op(n)) continue;
      for (int k = 0; k < n->nout; k++)
        if (n->out[k] >= 0 && bp_dtype_is_float(g->tensors[n->out[k]]->v.dtype)) reach[n->out[k]] = 1;
    }
    if (used && !meets) reason[t] = BP_FROZEN_BUFFER;
  }
  free(dyn);
  free(reach);
  return 0;
}
