/* frontend/onnx_seq.c — ONNX sequences read back at constant positions, rewritten at load into
 * tensor ops (the IR has no sequence values).
 *
 * PyTorch's dynamo exporter without its optimizer (torch.onnx.export(..., dynamo=True,
 * optimize=False)) writes torch.split / chunk as SplitToSequence followed by one SequenceAt per
 * chunk, the positions constants: GPT-2's q/k/v split, GPT-NeoX's. Each such SequenceAt is the
 * chunk it reads, so it becomes
 *   split given (1-D sizes s, or a scalar size s):  Slice(x, [start], [end], [axis])
 *   split omitted (chunks of one):                   Gather(x, k, axis), k a scalar with keepdims=0
 *                                                    and [k] otherwise (the axis kept, size 1)
 * and the SplitToSequence goes. A sequence used any other way (a graph output, SequenceLength,
 * ConcatFromSequence, a position computed at run time, a negative position with a scalar size
 * and so an unknown chunk count) is left alone: bp_graph_check_ops then names the op. */
#include "frontend/onnx_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of tensor t when it is known at load: an initializer or a Constant node's output
 * ('value' tensor or 'value_int(s)'). NULL otherwise. */
static const bp_value *const_value(const bp_graph *g, int t, bp_value *tmp) {
  const bp_tensor *tt = g->tensors[t];
  if ((tt->kind == BP_T_INITIALIZER || tt->kind == BP_T_CONSTANT) && tt->v.data) return &tt->v;
  if (tt->producer < 0) return NULL;
  const bp_node *c = g->nodes[tt->producer];
  if (strcmp(c->op_type, "Constant") != 0 || (c->domain && *c->domain)) return NULL;
  for (int a = 0; a < c->nattr; a++) {
    const bp_attr *at = &c->attrs[a];
    if (!strcmp(at->name, "value") && at->type == BP_ATTR_TENSOR && at->t) return at->t;
    if (!strcmp(at->name, "value_int") && at->type == BP_ATTR_INT) {
      memset(tmp, 0, sizeof *tmp);
      tmp->dtype = BP_I64;
      tmp->data = (void *)&at->i;
      return tmp;
    }
    if (!strcmp(at->name, "value_ints") && at->type == BP_ATTR_INTS) {
      memset(tmp, 0, sizeof *tmp);
      tmp->dtype = BP_I64;
      tmp->rank = 1;
      tmp->dims[0] = at->n;
      tmp->data = at->ints;
      return tmp;
    }
  }
  return NULL;
}

static int is_int_value(const bp_value *v, int rank) {
  return v && v->rank == rank && (v->dtype == BP_I64 || v->dtype == BP_I32);
}

/* A new int64 constant [n] (rank 1) or scalar (rank 0) named after `node`. */
static int new_const(bp_graph *g, const char *node, const char *what, int rank, int n, const int64_t *v) {
  char name[600];
  snprintf(name, sizeof name, "%s/%s", node, what);
  for (int u = 1; bp_graph_find(g, name) >= 0; u++) /* node names need not be unique */
    snprintf(name, sizeof name, "%s/%s_%d", node, what, u);
  int id = bp_graph_tensor(g, name);
  if (id < 0) return -1;
  bp_tensor *t = g->tensors[id];
  t->kind = BP_T_CONSTANT;
  t->v.dtype = BP_I64;
  t->v.rank = rank;
  if (rank) t->v.dims[0] = n;
  if (!bp_tensor_alloc(t)) return -1;
  memcpy(t->v.data, v, sizeof(int64_t) * (size_t)(rank ? n : 1));
  return id;
}

/* Turns SequenceAt node c into `op` over inputs in[0..nin) (axis attribute for Gather). */
static int morph(bp_node *c, const char *op, int nin, const int *in, int64_t axis) {
  char *ot = strdup(op);
  int *ni = malloc(sizeof(int) * (size_t)nin);
  if (!ot || !ni) {
    free(ot);
    free(ni);
    return -1;
  }
  free(c->op_type);
  c->op_type = ot;
  free(c->in);
  c->in = ni;
  memcpy(ni, in, sizeof(int) * (size_t)nin);
  c->nin = nin;
  c->op = bp_op_find(c->domain, op);
  if (!strcmp(op, "Gather")) {
    bp_attr *na = realloc(c->attrs, sizeof(bp_attr) * (size_t)(c->nattr + 1));
    if (!na) return -1;
    c->attrs = na;
    bp_attr *a = &na[c->nattr];
    memset(a, 0, sizeof *a);
    a->name = strdup("axis");
    if (!a->name) return -1;
    a->type = BP_ATTR_INT;
    a->i = axis;
    c->nattr++;
  }
  return 0;
}

/* Rewrites SequenceAt node c (position k) of a SplitToSequence over x (the caller has checked that
 * a scalar split size comes with k >= 0). */
static int rewrite_one(bp_graph *g, bp_node *c, int x, const bp_value *split, int64_t axis, int keepdims,
                       int64_t k, bp_err *e) {
  int in[4];
  if (!split) {
    int64_t kk = k;
    if ((in[1] = new_const(g, c->name, "index", keepdims ? 1 : 0, 1, &kk)) < 0) return bp_errf(e, "out of memory");
    in[0] = x;
    if (morph(c, "Gather", 2, in, axis) < 0) return bp_errf(e, "out of memory");
    return 0;
  }
  int64_t start, end;
  if (split->rank == 0) {
    int64_t s = bp_get_i64(split->data, split->dtype, 0);
    if (s <= 0) return bp_errf(e, "node '%s' (SequenceAt): the split size %lld is not positive", c->name, (long long)s);
    start = k * s;
    end = start + s; /* Slice clamps: the last chunk may be shorter, as SplitToSequence's is */
  } else {
    int64_t n = split->dims[0];
    if (k < 0) k += n;
    if (k < 0 || k >= n)
      return bp_errf(e, "node '%s' (SequenceAt): position %lld is outside the %lld chunks of the split", c->name,
                     (long long)k, (long long)n);
    start = 0;
    for (int64_t j = 0; j < k; j++) start += bp_get_i64(split->data, split->dtype, j);
    end = start + bp_get_i64(split->data, split->dtype, k);
  }
  in[0] = x;
  if ((in[1] = new_const(g, c->name, "starts", 1, 1, &start)) < 0 ||
      (in[2] = new_const(g, c->name, "ends", 1, 1, &end)) < 0 || (in[3] = new_const(g, c->name, "axes", 1, 1, &axis)) < 0)
    return bp_errf(e, "out of memory");
  if (morph(c, "Slice", 4, in, axis) < 0) return bp_errf(e, "out of memory");
  return 0;
}

int bp_onnx_rewrite_sequences(bp_graph *g, bp_err *e) {
  unsigned char *remove = NULL;
  int any = 0;
  for (int i = 0; i < g->nnodes; i++) {
    bp_node *s = g->nodes[i];
    if (strcmp(s->op_type, "SplitToSequence") != 0 || (s->domain && *s->domain) || s->nin < 1 || s->nout != 1 ||
        s->in[0] < 0 || s->out[0] < 0)
      continue;
    int seq = s->out[0];
    if (g->tensors[seq]->is_output) continue;
    bp_value tmp, ptmp;
    const bp_value *split = s->nin > 1 && s->in[1] >= 0 ? const_value(g, s->in[1], &tmp) : NULL;
    if (s->nin > 1 && s->in[1] >= 0 && !(is_int_value(split, 0) || is_int_value(split, 1))) continue;
    int64_t axis = bp_attr_int(s, "axis", 0);
    int keepdims = (int)bp_attr_int(s, "keepdims", 1);
    /* every use must be a SequenceAt at a constant position */
    int ok = 1;
    for (int j = i + 1; j < g->nnodes && ok; j++) {
      const bp_node *c = g->nodes[j];
      for (int k = 0; k < c->nin && ok; k++) {
        if (c->in[k] != seq) continue;
        const bp_value *p;
        ok = !strcmp(c->op_type, "SequenceAt") && (!c->domain || !*c->domain) && k == 0 && c->nin == 2 &&
             c->in[1] >= 0 && is_int_value(p = const_value(g, c->in[1], &ptmp), 0) &&
             !(split && split->rank == 0 && bp_get_i64(p->data, p->dtype, 0) < 0);
      }
    }
    if (!ok) continue;
    for (int j = i + 1; j < g->nnodes; j++) {
      bp_node *c = g->nodes[j];
      if (strcmp(c->op_type, "SequenceAt") != 0 || c->nin != 2 || c->in[0] != seq) continue;
      const bp_value *p = const_value(g, c->in[1], &ptmp);
      int64_t k = bp_get_i64(p->data, p->dtype, 0);
      if (rewrite_one(g, c, s->in[0], split, axis, keepdims, k, e) < 0) {
        free(remove);
        return -1;
      }
    }
    if (!remove && !(remove = calloc((size_t)g->nnodes, 1))) return bp_errf(e, "out of memory");
    remove[i] = 1;
    any = 1;
  }
  if (any) bp_graph_remove_nodes(g, remove);
  free(remove);
  return 0;
}
