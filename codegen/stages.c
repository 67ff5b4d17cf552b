/* codegen/stages.c — the model cut: from the training graph G and the partition (layer ranges per
 * stage), one self-contained graph per stage with its own backward.
 *
 * For stage s:
 *   forward   the live forward nodes of G whose layer is in the stage, plus every floating weight
 *             view (Transpose(W) and the like, computed from weights only) that they read, each
 *             duplicated into every stage that reads it;
 *   act_in    activations produced by an earlier stage and read by this stage or a later one (a
 *             tensor that only passes through is received and sent on: an Identity node makes the
 *             copy, so act_in and act_out are distinct tensors);
 *   act_out   activations produced here or earlier and read by a later stage; the same list, in the
 *             same order (G's tensor order), as stage s+1's act_in;
 *   data      the graph inputs the stage reads (token ids, targets, other --input tensors);
 *   pseudo-loss  the scalar whose gradient is the stage's vector-Jacobian product: on the last stage
 *             loss * loss_weight (loss_weight an input the runtime writes), elsewhere
 *             sum_k ReduceSum(act_out_k * grad_in_k) over the float act_out (grad_in_k inputs: the
 *             gradients received from the next stage);
 *   backward  frontend/autodiff.c with respect to the stage's trainable parameters and its float
 *             act_in (their gradients are grad_out, sent to the previous stage).
 * The backward is split: the nodes grad_out needs form the input half (ZB's "B"), the rest the
 * weight half ("W"). The pseudo-loss nodes run only where the backward reads them (at the start of
 * the input half): in the forward the received gradients do not exist yet.
 * Finally the stage graph is compacted into a fresh graph whose tensor order reads well in the
 * generated C: boundaries and data first, then parameters, constants, and the nodes' outputs. */
#include "codegen/codegen.h"

#include <stdlib.h>
#include <string.h>

/* ---- graph building helpers ----------------------------------------------------------------- */

static int attr_copy(bp_attr *d, const bp_attr *s) {
  memset(d, 0, sizeof *d);
  d->type = s->type, d->f = s->f, d->i = s->i, d->n = s->n;
  d->name = strdup(s->name ? s->name : "");
  if (!d->name) return -1;
  if (s->s && !(d->s = strdup(s->s))) return -1;
  if (s->floats) {
    d->floats = malloc(sizeof(float) * (size_t)(s->n ? s->n : 1));
    if (!d->floats) return -1;
    if (s->n) memcpy(d->floats, s->floats, sizeof(float) * (size_t)s->n);
  }
  if (s->ints) {
    d->ints = malloc(sizeof(int64_t) * (size_t)(s->n ? s->n : 1));
    if (!d->ints) return -1;
    if (s->n) memcpy(d->ints, s->ints, sizeof(int64_t) * (size_t)s->n);
  }
  if (s->strings) {
    d->strings = calloc((size_t)(s->n ? s->n : 1), sizeof(char *));
    if (!d->strings) return -1;
    for (int i = 0; i < s->n; i++)
      if (s->strings[i] && !(d->strings[i] = strdup(s->strings[i]))) return -1;
  }
  if (s->t) {
    d->t = malloc(sizeof(bp_value));
    if (!d->t) return -1;
    *d->t = *s->t;
    d->t->data = NULL;
    size_t b = bp_value_bytes(s->t);
    if (s->t->data) {
      d->t->data = malloc(b ? b : 1);
      if (!d->t->data) return -1;
      if (b) memcpy(d->t->data, s->t->data, b);
    }
  }
  return 0;
}

/* Copies node n into dst with inputs/outputs mapped through map[] (a -1 stays -1). */
static int copy_node(bp_graph *dst, const bp_node *n, const int *map, bp_err *e) {
  int in[64], out[64];
  if (n->nin > 64 || n->nout > 64) return bp_errf(e, "node '%s' (%s): too many inputs or outputs", n->name, n->op_type);
  for (int k = 0; k < n->nin; k++) in[k] = n->in[k] >= 0 ? map[n->in[k]] : -1;
  for (int k = 0; k < n->nout; k++) out[k] = n->out[k] >= 0 ? map[n->out[k]] : -1;
  for (int k = 0; k < n->nin; k++)
    if (n->in[k] >= 0 && in[k] < 0) return bp_errf(e, "internal: node '%s' input %d is not in the stage", n->name, k);
  int idx = bp_graph_add_node(dst, n->name, n->op_type, n->domain, n->nin, in, n->nout, out);
  if (idx < 0) return bp_errf(e, "out of memory");
  bp_node *c = dst->nodes[idx];
  c->opset = n->opset;
  c->op = n->op;
  if (n->nattr) {
    c->attrs = calloc((size_t)n->nattr, sizeof(bp_attr));
    if (!c->attrs) return bp_errf(e, "out of memory");
    for (int a = 0; a < n->nattr; a++, c->nattr++)
      if (attr_copy(&c->attrs[a], &n->attrs[a])) {
        c->nattr++;
        return bp_errf(e, "out of memory");
      }
  }
  return idx;
}

/* A fresh tensor named `name` (made unique with a suffix) shaped like v. */
static int new_tensor(bp_graph *g, const char *name, const bp_value *v, bp_tensor_kind kind, bp_err *e) {
  char buf[600];
  snprintf(buf, sizeof buf, "%s", name);
  for (int k = 1; bp_graph_find(g, buf) >= 0; k++) snprintf(buf, sizeof buf, "%s_%d", name, k);
  int id = bp_graph_tensor(g, buf);
  if (id < 0) return bp_errf(e, "out of memory");
  bp_tensor *t = g->tensors[id];
  t->v = *v;
  t->v.data = NULL;
  t->kind = kind;
  return id;
}

static int add_input(bp_graph *g, int id, bp_err *e) {
  int *ni = realloc(g->inputs, sizeof(int) * (size_t)(g->ninputs + 1));
  if (!ni) return bp_errf(e, "out of memory");
  g->inputs = ni;
  g->inputs[g->ninputs++] = id;
  return 0;
}

/* Appends `op` (ONNX domain, opset 18) on in[] with one output named out_name; keepdims >= 0 sets
 * that attribute. Infers the output's shape. Returns the output tensor id. */
static int add_op(bp_graph *g, const char *node_name, const char *op, int nin, const int *in, const char *out_name,
                  int keepdims, bp_err *e) {
  bp_value v = {.rank = -1};
  int o = new_tensor(g, out_name, &v, BP_T_ACTIVATION, e);
  if (o < 0) return -1;
  int idx = bp_graph_add_node(g, node_name, op, "", nin, in, 1, &o);
  if (idx < 0) return bp_errf(e, "out of memory");
  bp_node *n = g->nodes[idx];
  n->opset = 18;
  n->op = bp_op_find("", op);
  if (!n->op) return bp_errf(e, "internal: op %s is not in the op table", op);
  if (keepdims >= 0) {
    n->attrs = calloc(1, sizeof(bp_attr));
    if (!n->attrs || !(n->attrs[0].name = strdup("keepdims"))) return bp_errf(e, "out of memory");
    n->nattr = 1;
    n->attrs[0].type = BP_ATTR_INT;
    n->attrs[0].i = keepdims;
  }
  bp_value *iv[8] = {0}, *ov[1] = {&g->tensors[o]->v};
  for (int k = 0; k < nin && k < 8; k++) iv[k] = in[k] >= 0 ? &g->tensors[in[k]]->v : NULL;
  if (n->op->infer(n, iv, nin, ov, 1, e) < 0) return bp_err_prefix_node(e, n);
  return o;
}

/* Zeros shaped like tensor x: ConstantOfShape(shape) (float32). */
static int add_zeros(bp_graph *g, int x, const char *name, bp_err *e) {
  const bp_value *xv = &g->tensors[x]->v;
  if (xv->dtype != BP_F32)
    return bp_errf(e, "'%s': a zero gradient of dtype %s is not supported", g->tensors[x]->name, bp_dtype_name(xv->dtype));
  bp_value sv = {.dtype = BP_I64, .rank = 1, .dims = {xv->rank}};
  char cname[640];
  snprintf(cname, sizeof cname, "%s/shape", name);
  int c = new_tensor(g, cname, &sv, BP_T_CONSTANT, e);
  if (c < 0) return -1;
  if (!bp_tensor_alloc(g->tensors[c])) return bp_errf(e, "out of memory");
  memcpy(g->tensors[c]->v.data, xv->dims, sizeof(int64_t) * (size_t)xv->rank);
  return add_op(g, name, "ConstantOfShape", 1, &c, name, -1, e);
}

/* ---- the cut -------------------------------------------------------------------------------- */

typedef struct cut {
  bp_cg *cg;
  const bp_graph *G;
  int nf, nt, S;
  unsigned char *floating, *live; /* [nf] */
  int *node_stage;                /* [nf]: stage of a non-floating node, -1 floating / dead */
  int *prod_stage, *last_stage;   /* [nt]: activations of non-floating nodes; -1 otherwise */
  unsigned char *in_stage;        /* [S * nf]: node i runs in stage s (floating copies included) */
  int *global_id;                 /* [nt]: index into the trainer's params, or -1 */
} cut;

static void cut_free(cut *c) {
  free(c->floating), free(c->live), free(c->node_stage), free(c->prod_stage), free(c->last_stage);
  free(c->in_stage), free(c->global_id);
}

static int cut_init(cut *c, bp_cg *cg, bp_err *e) {
  memset(c, 0, sizeof *c);
  c->cg = cg;
  const bp_graph *G = c->G = cg->t->g;
  int nf = c->nf = cg->n_fwd, nt = c->nt = G->ntensors, S = c->S = cg->S;
  c->floating = calloc((size_t)nf + 1, 1), c->live = calloc((size_t)nf + 1, 1);
  c->node_stage = malloc(sizeof(int) * ((size_t)nf + 1));
  c->prod_stage = malloc(sizeof(int) * ((size_t)nt + 1)), c->last_stage = malloc(sizeof(int) * ((size_t)nt + 1));
  c->in_stage = calloc((size_t)S * nf + 1, 1);
  c->global_id = malloc(sizeof(int) * ((size_t)nt + 1));
  unsigned char *need = calloc((size_t)nt + 1, 1);
  int *layer_stage = malloc(sizeof(int) * ((size_t)cg->L + 1));
  if (!c->floating || !c->live || !c->node_stage || !c->prod_stage || !c->last_stage || !c->in_stage ||
      !c->global_id || !need || !layer_stage) {
    free(need), free(layer_stage);
    return bp_errf(e, "out of memory");
  }
  for (int s = 0; s < S; s++)
    for (int l = cg->first[s]; l < cg->first[s + 1]; l++) layer_stage[l] = s;
  for (int t = 0; t < nt; t++) c->global_id[t] = -1, c->prod_stage[t] = c->last_stage[t] = -1;
  for (int i = 0; i < cg->t->nparams; i++) c->global_id[cg->t->params[i]] = i;
  /* live: the loss depends on the node */
  need[cg->t->loss] = 1;
  for (int i = nf - 1; i >= 0; i--) {
    const bp_node *n = G->nodes[i];
    for (int k = 0; k < n->nout && !c->live[i]; k++) c->live[i] = n->out[k] >= 0 && need[n->out[k]];
    for (int k = 0; c->live[i] && k < n->nin; k++)
      if (n->in[k] >= 0) need[n->in[k]] = 1;
  }
  /* floating: computed from weights and constants only (partitioner/layers.c's rule) */
  for (int i = 0; i < nf; i++) {
    const bp_node *n = G->nodes[i];
    int fl = 1;
    for (int k = 0; k < n->nin && fl; k++) {
      int t = n->in[k];
      if (t < 0) continue;
      const bp_tensor *tt = G->tensors[t];
      if (tt->kind == BP_T_INITIALIZER || tt->kind == BP_T_CONSTANT) continue;
      if (tt->kind == BP_T_ACTIVATION && tt->producer >= 0 && tt->producer < i && c->floating[tt->producer]) continue;
      fl = 0;
    }
    c->floating[i] = (unsigned char)fl;
    c->node_stage[i] = -1;
    if (fl || !c->live[i]) continue;
    int l = cg->ml.node_layer[i];
    if (l < 0 || l >= cg->L) {
      free(need), free(layer_stage);
      return bp_errf(e, "internal: forward node '%s' (%s) has no layer", n->name, n->op_type);
    }
    c->node_stage[i] = layer_stage[l];
  }
  free(layer_stage);
  /* producer and last reader stages of the activations that cross */
  for (int i = 0; i < nf; i++) {
    const bp_node *n = G->nodes[i];
    int s = c->node_stage[i];
    if (s < 0) continue;
    for (int k = 0; k < n->nout; k++)
      if (n->out[k] >= 0) c->prod_stage[n->out[k]] = s;
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      if (t >= 0 && s > c->last_stage[t]) c->last_stage[t] = s;
    }
  }
  for (int t = 0; t < nt; t++)
    if (c->prod_stage[t] >= 0 && c->last_stage[t] >= 0 && c->last_stage[t] < c->prod_stage[t]) {
      free(need);
      return bp_errf(e, "internal: '%s' is read before the stage that computes it", G->tensors[t]->name);
    }
  /* the nodes of each stage: its own, then the floating views they read (transitively) */
  for (int s = 0; s < S; s++) {
    unsigned char *ins = c->in_stage + (size_t)s * nf;
    memset(need, 0, (size_t)nt);
    for (int i = nf - 1; i >= 0; i--) {
      const bp_node *n = G->nodes[i];
      int take = c->node_stage[i] == s;
      if (!take && c->floating[i] && c->live[i])
        for (int k = 0; k < n->nout && !take; k++) take = n->out[k] >= 0 && need[n->out[k]];
      if (!take) continue;
      ins[i] = 1;
      for (int k = 0; k < n->nin; k++)
        if (n->in[k] >= 0) need[n->in[k]] = 1;
    }
  }
  free(need);
  /* how many stages hold each parameter (tied when more than one) */
  for (int i = 0; i < cg->t->nparams; i++) cg->param_stages[i] = 0;
  unsigned char *seen = calloc((size_t)nt + 1, 1);
  if (!seen) return bp_errf(e, "out of memory");
  for (int s = 0; s < S; s++) {
    memset(seen, 0, (size_t)nt);
    for (int i = 0; i < nf; i++) {
      if (!c->in_stage[(size_t)s * nf + i]) continue;
      const bp_node *n = G->nodes[i];
      for (int k = 0; k < n->nin; k++) {
        int t = n->in[k];
        if (t >= 0 && c->global_id[t] >= 0 && !seen[t]) seen[t] = 1, cg->param_stages[c->global_id[t]]++;
      }
    }
  }
  free(seen);
  return 0;
}

/* Appends x to a growing int list. */
static int push(int **v, int *n, int x, bp_err *e) {
  int *nv = realloc(*v, sizeof(int) * (size_t)(*n + 1));
  if (!nv) return bp_errf(e, "out of memory");
  *v = nv;
  (*v)[(*n)++] = x;
  return 0;
}

/* Appends (x, y) to two parallel growing lists of length *n. */
static int push2(int **a, int **b, int *n, int x, int y, bp_err *e) {
  int m = *n;
  if (push(a, &m, x, e)) return -1;
  m = *n;
  if (push(b, &m, y, e)) return -1;
  *n = m;
  return 0;
}

/* The working stage graph (W) before compaction, with its lists in W's ids. */
typedef struct wstage {
  bp_graph *W;
  int *map;                 /* [G nt]: G id -> W id */
  int *act_in, *act_out, *grad_in, *grad_out, n_act_in, n_act_out, n_grad_in, n_grad_out;
  int *data, *data_kind, n_data;
  int *params, *param_gid, *param_grad, nparams;
  int loss, loss_weight;
  int n_fwd, first_bwd;     /* real forward nodes; first backward node (after the pseudo-loss) */
} wstage;

static void wstage_free(wstage *w) {
  bp_graph_free(w->W);
  free(w->map), free(w->act_in), free(w->act_out), free(w->grad_in), free(w->grad_out), free(w->data);
  free(w->data_kind), free(w->params), free(w->param_gid), free(w->param_grad);
}

static int build_work(cut *c, int s, wstage *w, bp_err *e) {
  bp_cg *cg = c->cg;
  const bp_graph *G = c->G;
  int nf = c->nf, nt = c->nt, last = s == c->S - 1;
  const unsigned char *ins = c->in_stage + (size_t)s * nf;
  memset(w, 0, sizeof *w);
  w->loss = w->loss_weight = -1;
  w->W = bp_graph_new();
  w->map = malloc(sizeof(int) * ((size_t)nt + 1));
  if (!w->W || !w->map) return bp_errf(e, "out of memory");
  bp_graph *W = w->W;
  for (int t = 0; t < nt; t++) w->map[t] = -1;
  /* act_in: produced earlier, read here or later */
  for (int t = 0; t < nt; t++) {
    if (c->prod_stage[t] < 0 || c->prod_stage[t] >= s || c->last_stage[t] < s) continue;
    int id = new_tensor(W, G->tensors[t]->name, &G->tensors[t]->v, BP_T_INPUT, e);
    if (id < 0 || add_input(W, id, e) || push(&w->act_in, &w->n_act_in, id, e)) return -1;
    w->map[t] = id;
  }
  /* the stage's forward nodes, with the weights, constants and data inputs they read */
  for (int i = 0; i < nf; i++) {
    if (!ins[i]) continue;
    const bp_node *n = G->nodes[i];
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      if (t < 0 || w->map[t] >= 0) continue;
      const bp_tensor *tt = G->tensors[t];
      if (tt->kind == BP_T_INITIALIZER || tt->kind == BP_T_CONSTANT) {
        int id = new_tensor(W, tt->name, &tt->v, tt->kind, e);
        if (id < 0) return -1;
        size_t b = bp_value_bytes(&tt->v);
        if (!bp_tensor_alloc(W->tensors[id])) return bp_errf(e, "out of memory copying '%s' (%zu bytes)", tt->name, b);
        if (b && tt->v.data) memcpy(W->tensors[id]->v.data, tt->v.data, b);
        if (!tt->v.data) return bp_errf(e, "internal: '%s' has no data", tt->name);
        w->map[t] = id;
        if (c->global_id[t] >= 0 && push2(&w->params, &w->param_gid, &w->nparams, id, c->global_id[t], e)) return -1;
      } else if (tt->kind == BP_T_INPUT) {
        int id = new_tensor(W, tt->name, &tt->v, BP_T_INPUT, e);
        int kind = t == cg->targets ? BP_DATA_TARGETS : t == cg->token_input ? BP_DATA_TOKENS : BP_DATA_FIXED;
        if (id < 0 || add_input(W, id, e) || push2(&w->data, &w->data_kind, &w->n_data, id, kind, e)) return -1;
        w->map[t] = id;
      } else {
        return bp_errf(e, "internal: node '%s' (%s) reads '%s', which stage %d neither computes nor receives", n->name,
                       n->op_type, tt->name, s);
      }
    }
    for (int k = 0; k < n->nout; k++) {
      int t = n->out[k];
      if (t < 0) continue;
      if (w->map[t] >= 0) return bp_errf(e, "internal: '%s' computed twice in stage %d", G->tensors[t]->name, s);
      int id = new_tensor(W, G->tensors[t]->name, &G->tensors[t]->v, BP_T_ACTIVATION, e);
      if (id < 0) return -1;
      w->map[t] = id;
    }
    if (copy_node(W, n, w->map, e) < 0) return -1;
  }
  /* act_out: computed here or passing through, read later */
  for (int t = 0; t < nt; t++) {
    if (c->prod_stage[t] < 0 || c->prod_stage[t] > s || c->last_stage[t] <= s) continue;
    int id = w->map[t];
    if (c->prod_stage[t] < s) { /* passes through: an explicit copy */
      char nm[600];
      snprintf(nm, sizeof nm, "pass%d/%s", s, G->tensors[t]->name);
      if ((id = add_op(W, nm, "Identity", 1, &w->map[t], nm, -1, e)) < 0) return -1;
    }
    if (push(&w->act_out, &w->n_act_out, id, e)) return -1;
  }
  w->n_fwd = W->nnodes;
  /* the pseudo-loss */
  int pl = -1;
  if (last) {
    int L = w->map[cg->t->loss];
    if (L < 0) return bp_errf(e, "internal: the loss is not computed in the last stage");
    w->loss = L;
    w->loss_weight = new_tensor(W, "loss_weight", &W->tensors[L]->v, BP_T_INPUT, e);
    if (w->loss_weight < 0 || add_input(W, w->loss_weight, e)) return -1;
    int in[2] = {L, w->loss_weight};
    if ((pl = add_op(W, "pseudo_loss", "Mul", 2, in, "pseudo_loss", -1, e)) < 0) return -1;
  } else {
    for (int k = 0; k < w->n_act_out; k++) {
      int a = w->act_out[k];
      if (!bp_dtype_is_float(W->tensors[a]->v.dtype)) continue;
      char nm[600], nm2[600];
      snprintf(nm, sizeof nm, "grad_in/%s", W->tensors[a]->name);
      int seed = new_tensor(W, nm, &W->tensors[a]->v, BP_T_INPUT, e);
      if (seed < 0 || add_input(W, seed, e) || push(&w->grad_in, &w->n_grad_in, seed, e)) return -1;
      int in[2] = {a, seed};
      snprintf(nm, sizeof nm, "pseudo_loss/mul%d", k);
      snprintf(nm2, sizeof nm2, "pseudo_loss/sum%d", k);
      int m = add_op(W, nm, "Mul", 2, in, nm, -1, e);
      int r = m < 0 ? -1 : add_op(W, nm2, "ReduceSum", 1, &m, nm2, 0, e);
      if (r < 0) return -1;
      if (pl < 0) pl = r;
      else {
        int in2[2] = {pl, r};
        snprintf(nm, sizeof nm, "pseudo_loss/add%d", k);
        if ((pl = add_op(W, nm, "Add", 2, in2, nm, -1, e)) < 0) return -1;
      }
    }
  }
  w->first_bwd = W->nnodes;
  /* the stage's backward */
  int nfa = 0;
  for (int k = 0; k < w->n_act_in; k++) nfa += bp_dtype_is_float(W->tensors[w->act_in[k]]->v.dtype);
  int nwrt = w->nparams + nfa;
  int *wrt = malloc(sizeof(int) * (size_t)(nwrt + 1)), *grads = malloc(sizeof(int) * (size_t)(nwrt + 1));
  w->param_grad = malloc(sizeof(int) * (size_t)(w->nparams + 1));
  if (!wrt || !grads || !w->param_grad) {
    free(wrt), free(grads);
    return bp_errf(e, "out of memory");
  }
  for (int j = 0; j < w->nparams; j++) wrt[j] = w->params[j], grads[j] = -1;
  for (int k = 0, j = w->nparams; k < w->n_act_in; k++)
    if (bp_dtype_is_float(W->tensors[w->act_in[k]]->v.dtype)) wrt[j] = w->act_in[k], grads[j++] = -1;
  if (pl >= 0) {
    bp_ad_result r = {.loss = pl, .nwrt = nwrt, .wrt = wrt, .grads = grads};
    if (bp_autodiff(W, cg->o.train.dropout, &r, e) < 0) {
      free(wrt), free(grads);
      return -1;
    }
    free(r.stash);
  }
  /* gradients as distinct tensors computed by the stage's backward: a copy where autodiff handed
   * back an existing tensor (an input, a constant, one already used), zeros where none reaches */
  unsigned char *used = calloc((size_t)W->ntensors + (size_t)nwrt * 3 + 8, 1);
  if (!used) {
    free(wrt), free(grads);
    return bp_errf(e, "out of memory");
  }
  int rc = 0;
  for (int j = w->nparams; j < nwrt && rc == 0; j++) {
    int a = wrt[j], gid = grads[j];
    char nm[600];
    snprintf(nm, sizeof nm, "grad_out/%s", W->tensors[a]->name);
    if (gid < 0) gid = add_zeros(W, a, nm, e);
    else if (W->tensors[gid]->producer < w->first_bwd || used[gid]) gid = add_op(W, nm, "Identity", 1, &gid, nm, -1, e);
    if (gid < 0) rc = -1;
    else used[gid] = 1, rc = push(&w->grad_out, &w->n_grad_out, gid, e);
  }
  for (int j = 0; j < w->nparams && rc == 0; j++) {
    int gid = grads[j];
    if (gid >= 0 && W->tensors[gid]->producer < w->first_bwd) {
      char nm[600];
      snprintf(nm, sizeof nm, "grad/%s", W->tensors[w->params[j]]->name);
      if ((gid = add_op(W, nm, "Identity", 1, &gid, nm, -1, e)) < 0) rc = -1;
    }
    w->param_grad[j] = gid;
  }
  free(used), free(wrt), free(grads);
  return rc;
}

/* Orders W's nodes (forward | input half | weight half), drops what nothing needs, and copies the
 * result into a fresh graph with a readable tensor order. */
static int compact(cut *c, int s, wstage *w, bp_cg_stage *st, bp_err *e) {
  bp_cg *cg = c->cg;
  bp_graph *W = w->W;
  int nn = W->nnodes, nt = W->ntensors, rc = -1;
  unsigned char *need = calloc((size_t)nt + 1, 1), *half = calloc((size_t)nn + 1, 1); /* 1 input, 2 weight */
  int *order = malloc(sizeof(int) * ((size_t)nn + 1)), *tord = malloc(sizeof(int) * ((size_t)nt + 1));
  int *map = malloc(sizeof(int) * ((size_t)nt + 1));
  bp_graph *F = bp_graph_new();
  if (!need || !half || !order || !tord || !map || !F) {
    bp_errf(e, "out of memory");
    goto done;
  }
  /* input half: what grad_out needs; weight half: what the parameter gradients need besides */
  for (int pass = 1; pass <= 2; pass++) {
    memset(need, 0, (size_t)nt);
    if (pass == 1)
      for (int k = 0; k < w->n_grad_out; k++) need[w->grad_out[k]] = 1;
    else
      for (int j = 0; j < w->nparams; j++)
        if (w->param_grad[j] >= 0) need[w->param_grad[j]] = 1;
    for (int i = nn - 1; i >= w->n_fwd; i--) {
      const bp_node *n = W->nodes[i];
      int any = 0;
      for (int k = 0; k < n->nout && !any; k++) any = n->out[k] >= 0 && need[n->out[k]];
      if (!any) continue;
      if (!half[i]) half[i] = (unsigned char)pass;
      for (int k = 0; k < n->nin; k++)
        if (n->in[k] >= 0) need[n->in[k]] = 1;
    }
  }
  int no = 0;
  for (int i = 0; i < w->n_fwd; i++) order[no++] = i;
  st->n_forward = no;
  for (int i = w->n_fwd; i < w->first_bwd; i++) /* the pseudo-loss nodes the backward reads */
    if (half[i]) order[no++] = i;
  for (int i = w->first_bwd; i < nn; i++)
    if (half[i] == 1) order[no++] = i;
  st->n_bwd_input = no;
  for (int i = w->first_bwd; i < nn; i++)
    if (half[i] == 2) order[no++] = i;
  /* tensor order: boundaries and data, parameters (untied first, tied last), constants, outputs */
  int ntk = 0;
  for (int t = 0; t < nt; t++) map[t] = -1;
#define TAKE(x)                                                                                                        \
  do {                                                                                                                 \
    int x_ = (x);                                                                                                      \
    if (x_ >= 0 && map[x_] < 0) map[x_] = ntk, tord[ntk++] = x_;                                                       \
  } while (0)
  for (int k = 0; k < w->n_act_in; k++) TAKE(w->act_in[k]);
  for (int k = 0; k < w->n_data; k++) TAKE(w->data[k]);
  for (int k = 0; k < w->n_grad_in; k++) TAKE(w->grad_in[k]);
  TAKE(w->loss_weight);
  int *pord = malloc(sizeof(int) * ((size_t)w->nparams + 1));
  if (!pord) {
    bp_errf(e, "out of memory");
    goto done;
  }
  int np = 0;
  for (int tied = 0; tied <= 1; tied++)
    for (int j = 0; j < w->nparams; j++)
      if ((cg->param_stages[w->param_gid[j]] > 1) == tied) pord[np++] = j;
  for (int j = 0; j < np; j++) TAKE(w->params[pord[j]]);
  for (int q = 0; q < no; q++) {
    const bp_node *n = W->nodes[order[q]];
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      if (t >= 0 && (W->tensors[t]->kind == BP_T_CONSTANT || W->tensors[t]->kind == BP_T_INITIALIZER)) TAKE(t);
    }
  }
  for (int q = 0; q < no; q++) {
    const bp_node *n = W->nodes[order[q]];
    for (int k = 0; k < n->nout; k++) TAKE(n->out[k]);
  }
#undef TAKE
  for (int q = 0; q < no; q++) {
    const bp_node *n = W->nodes[order[q]];
    for (int k = 0; k < n->nin; k++)
      if (n->in[k] >= 0 && map[n->in[k]] < 0) {
        free(pord);
        bp_errf(e, "internal: stage %d node '%s' reads '%s', which nothing computes", s, n->name,
                W->tensors[n->in[k]]->name);
        goto done;
      }
  }
  for (int q = 0; q < ntk; q++) {
    bp_tensor *src = W->tensors[tord[q]];
    int id = bp_graph_tensor(F, src->name);
    if (id != q) {
      free(pord);
      bp_errf(e, id < 0 ? "out of memory" : "internal: tensor name '%s' twice in stage %d", src->name, s);
      goto done;
    }
    bp_tensor *d = F->tensors[id];
    d->v = src->v, d->kind = src->kind, d->owns_data = src->owns_data;
    src->owns_data = 0; /* the data moves to F */
    if (src->kind == BP_T_INPUT && add_input(F, id, e)) {
      free(pord);
      goto done;
    }
  }
  for (int q = 0; q < no; q++)
    if (copy_node(F, W->nodes[order[q]], map, e) < 0) {
      free(pord);
      goto done;
    }
  /* the stage's lists in F's ids */
  st->g = F;
  F = NULL;
  st->loss = w->loss >= 0 ? map[w->loss] : -1;
  st->loss_weight = w->loss_weight >= 0 ? map[w->loss_weight] : -1;
  st->n_act_in = w->n_act_in, st->n_act_out = w->n_act_out, st->n_grad_in = w->n_grad_in, st->n_grad_out = w->n_grad_out;
  st->n_data = w->n_data, st->nparams = w->nparams;
  st->act_in = malloc(sizeof(int) * ((size_t)w->n_act_in + 1));
  st->act_out = malloc(sizeof(int) * ((size_t)w->n_act_out + 1));
  st->grad_in = malloc(sizeof(int) * ((size_t)w->n_grad_in + 1));
  st->grad_out = malloc(sizeof(int) * ((size_t)w->n_grad_out + 1));
  st->data = malloc(sizeof(bp_cg_data) * ((size_t)w->n_data + 1));
  st->params = malloc(sizeof(bp_cg_param) * ((size_t)w->nparams + 1));
  if (!st->act_in || !st->act_out || !st->grad_in || !st->grad_out || !st->data || !st->params) {
    free(pord);
    bp_errf(e, "out of memory");
    goto done;
  }
  for (int k = 0; k < w->n_act_in; k++) st->act_in[k] = map[w->act_in[k]];
  for (int k = 0; k < w->n_act_out; k++) st->act_out[k] = map[w->act_out[k]];
  for (int k = 0; k < w->n_grad_in; k++) st->grad_in[k] = map[w->grad_in[k]];
  for (int k = 0; k < w->n_grad_out; k++) st->grad_out[k] = map[w->grad_out[k]];
  for (int k = 0; k < w->n_data; k++) st->data[k] = (bp_cg_data){map[w->data[k]], w->data_kind[k]};
  for (int q = 0; q < np; q++) {
    int j = pord[q];
    st->params[q] = (bp_cg_param){map[w->params[j]], w->param_grad[j] >= 0 ? map[w->param_grad[j]] : -1, w->param_gid[j]};
  }
  free(pord);
  /* graph outputs (for bp_execute): act_out, loss, grad_out, parameter gradients */
  int nout = w->n_act_out + (st->loss >= 0) + w->n_grad_out + w->nparams;
  st->g->outputs = malloc(sizeof(int) * ((size_t)nout + 1));
  if (!st->g->outputs) {
    bp_errf(e, "out of memory");
    goto done;
  }
  for (int k = 0; k < w->n_act_out; k++) st->g->outputs[st->g->noutputs++] = st->act_out[k];
  if (st->loss >= 0) st->g->outputs[st->g->noutputs++] = st->loss;
  for (int k = 0; k < w->n_grad_out; k++) st->g->outputs[st->g->noutputs++] = st->grad_out[k];
  for (int j = 0; j < w->nparams; j++)
    if (st->params[j].grad >= 0) st->g->outputs[st->g->noutputs++] = st->params[j].grad;
  for (int i = 0; i < st->g->noutputs; i++) st->g->tensors[st->g->outputs[i]]->is_output = 1;
  rc = 0;
done:
  bp_graph_free(F);
  free(need), free(half), free(order), free(tord), free(map);
  return rc;
}

static void layer_names(const bp_cg *cg, int s, char *buf, size_t n) {
  int a = cg->first[s], b = cg->first[s + 1] - 1;
  if (a == b) snprintf(buf, n, "%s", cg->ml.layer[a].name);
  else snprintf(buf, n, "%s-%s", cg->ml.layer[a].name, cg->ml.layer[b].name);
}

int bp_cg_build_stages(bp_cg *cg, bp_err *e) {
  cut c;
  cg->n_params = cg->t->nparams;
  free(cg->param_stages);
  cg->param_stages = calloc((size_t)cg->n_params + 1, sizeof(int));
  cg->stages = calloc((size_t)cg->S, sizeof(bp_cg_stage));
  if (!cg->param_stages || !cg->stages) return bp_errf(e, "out of memory");
  if (cut_init(&c, cg, e)) {
    cut_free(&c);
    return -1;
  }
  int rc = 0;
  for (int s = 0; s < cg->S && rc == 0; s++) {
    bp_cg_stage *st = &cg->stages[s];
    st->index = s;
    st->layer_begin = cg->first[s], st->layer_end = cg->first[s + 1];
    layer_names(cg, s, st->layers, sizeof st->layers);
    wstage w;
    rc = build_work(&c, s, &w, e);
    if (rc == 0) rc = compact(&c, s, &w, st, e);
    wstage_free(&w);
  }
  cut_free(&c);
  if (rc == 0) cg->stages_built = 1;
  return rc;
}
