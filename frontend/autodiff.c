/* frontend/autodiff.c — reverse-mode autodiff over the IR: the walk that calls each forward node's
 * gradient rule and sums gradient contributions, the activation-stash analysis, and the builder
 * helpers the rules use to append backward nodes (with shape inference as they go). */
#include "frontend/autodiff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_ad_failed(const bp_ad *ad) { return ad->e->set; }

const bp_value *bp_ad_val(const bp_ad *ad, int t) { return &ad->g->tensors[t]->v; }

int bp_ad_node(bp_ad *ad, const char *domain, const char *op, int nin, const int *in, int nout) {
  if (ad->e->set) return -1;
  for (int k = 0; k < nin; k++)
    if (in[k] < -1 || in[k] >= ad->g->ntensors) return bp_errf(ad->e, "autodiff: bad input for %s", op);
  int out[8];
  if (nout > 8) return bp_errf(ad->e, "autodiff: too many outputs for %s", op);
  const char *fwd = ad->cur >= 0 && ad->cur < ad->g->nnodes ? ad->g->nodes[ad->cur]->name : "loss";
  for (int k = 0; k < nout; k++) {
    char name[512];
    do snprintf(name, sizeof name, "grad/%s/%s_%d", fwd, op, ad->counter++);
    while (bp_graph_find(ad->g, name) >= 0); /* fresh: never reuse a tensor */
    out[k] = bp_graph_tensor(ad->g, name);
    if (out[k] < 0) return bp_errf(ad->e, "autodiff: out of memory");
  }
  char nname[512];
  snprintf(nname, sizeof nname, "grad/%s/%s_%d", fwd, op, ad->counter++);
  int idx = bp_graph_add_node(ad->g, nname, op, domain ? domain : "", nin, in, nout, out);
  if (idx < 0) return bp_errf(ad->e, "autodiff: out of memory");
  bp_node *n = ad->g->nodes[idx];
  n->opset = domain ? 1 : 18;
  n->op = bp_op_find(domain, op);
  if (!n->op) return bp_errf(ad->e, "autodiff: op %s%s%s is not in the op table", domain ? domain : "",
                             domain ? "::" : "", op);
  return idx;
}

static bp_attr *new_attr(bp_ad *ad, int node, const char *name, bp_attr_type type) {
  if (ad->e->set || node < 0) return NULL;
  bp_node *n = ad->g->nodes[node];
  bp_attr *na = realloc(n->attrs, sizeof(bp_attr) * (size_t)(n->nattr + 1));
  if (!na) {
    bp_errf(ad->e, "autodiff: out of memory");
    return NULL;
  }
  n->attrs = na;
  bp_attr *a = &na[n->nattr++];
  memset(a, 0, sizeof *a);
  a->name = strdup(name);
  a->type = type;
  return a;
}

void bp_ad_attr_int(bp_ad *ad, int node, const char *name, int64_t v) {
  bp_attr *a = new_attr(ad, node, name, BP_ATTR_INT);
  if (a) a->i = v;
}
void bp_ad_attr_float(bp_ad *ad, int node, const char *name, float v) {
  bp_attr *a = new_attr(ad, node, name, BP_ATTR_FLOAT);
  if (a) a->f = v;
}
void bp_ad_attr_ints(bp_ad *ad, int node, const char *name, int n, const int64_t *v) {
  bp_attr *a = new_attr(ad, node, name, BP_ATTR_INTS);
  if (!a) return;
  a->n = n;
  a->ints = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  if (!a->ints) {
    bp_errf(ad->e, "autodiff: out of memory");
    return;
  }
  if (n) memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
}
void bp_ad_attr_string(bp_ad *ad, int node, const char *name, const char *s) {
  bp_attr *a = new_attr(ad, node, name, BP_ATTR_STRING);
  if (a) a->s = strdup(s);
}

int bp_ad_out(const bp_ad *ad, int node, int k) {
  if (ad->e->set || node < 0) return -1;
  return ad->g->nodes[node]->out[k];
}

int bp_ad_infer(bp_ad *ad, int node) {
  if (ad->e->set || node < 0) return -1;
  bp_node *n = ad->g->nodes[node];
  bp_value *in[64] = {0}, *out[64] = {0};
  for (int k = 0; k < n->nin && k < 64; k++) in[k] = n->in[k] >= 0 ? &ad->g->tensors[n->in[k]]->v : NULL;
  for (int k = 0; k < n->nout && k < 64; k++) out[k] = n->out[k] >= 0 ? &ad->g->tensors[n->out[k]]->v : NULL;
  if (n->op->infer(n, in, n->nin, out, n->nout, ad->e) < 0) return bp_err_prefix_node(ad->e, n);
  return n->out[0];
}

int bp_ad_op1(bp_ad *ad, const char *op, int x) {
  if (x < 0) return -1;
  return bp_ad_infer(ad, bp_ad_node(ad, NULL, op, 1, &x, 1));
}

int bp_ad_op2(bp_ad *ad, const char *op, int a, int b) {
  if (a < 0 || b < 0) return -1;
  int in[2] = {a, b};
  return bp_ad_infer(ad, bp_ad_node(ad, NULL, op, 2, in, 1));
}

static int new_const(bp_ad *ad, bp_dtype t, int rank, const int64_t *dims) {
  if (ad->e->set) return -1;
  char name[128];
  do snprintf(name, sizeof name, "grad/const_%d", ad->counter++);
  while (bp_graph_find(ad->g, name) >= 0);
  int id = bp_graph_tensor(ad->g, name);
  if (id < 0) return bp_errf(ad->e, "autodiff: out of memory");
  bp_tensor *tt = ad->g->tensors[id];
  tt->kind = BP_T_CONSTANT;
  tt->v.dtype = t;
  tt->v.rank = rank;
  for (int i = 0; i < rank; i++) tt->v.dims[i] = dims[i];
  if (!bp_tensor_alloc(tt)) return bp_errf(ad->e, "autodiff: out of memory");
  return id;
}

int bp_ad_const_scalar(bp_ad *ad, double v, bp_dtype t) {
  int id = new_const(ad, t, 0, NULL);
  if (id >= 0) bp_set_f64(ad->g->tensors[id]->v.data, t, 0, v);
  return id;
}

int bp_ad_const_i64(bp_ad *ad, int n, const int64_t *v) {
  int64_t d = n;
  int id = new_const(ad, BP_I64, 1, &d);
  if (id >= 0 && n) memcpy(ad->g->tensors[id]->v.data, v, sizeof(int64_t) * (size_t)n);
  return id;
}

int bp_ad_scale(bp_ad *ad, int x, double s) {
  if (x < 0) return -1;
  if (s == 1.0) return x;
  return bp_ad_op2(ad, "Mul", x, bp_ad_const_scalar(ad, s, bp_ad_val(ad, x)->dtype));
}

int bp_ad_reshape(bp_ad *ad, int x, int rank, const int64_t *dims) {
  if (x < 0) return -1;
  const bp_value *v = bp_ad_val(ad, x);
  if (v->rank == rank && memcmp(v->dims, dims, sizeof(int64_t) * (size_t)rank) == 0) return x;
  return bp_ad_op2(ad, "Reshape", x, bp_ad_const_i64(ad, rank, dims));
}

int bp_ad_reshape_like(bp_ad *ad, int x, int like) {
  if (x < 0 || like < 0) return -1;
  bp_value l = *bp_ad_val(ad, like);
  return bp_ad_reshape(ad, x, l.rank, l.dims);
}

int bp_ad_transpose(bp_ad *ad, int x, int rank, const int64_t *perm) {
  if (x < 0) return -1;
  int ident = 1;
  for (int i = 0; i < rank; i++) ident &= perm[i] == i;
  if (ident) return x;
  int node = bp_ad_node(ad, NULL, "Transpose", 1, &x, 1);
  bp_ad_attr_ints(ad, node, "perm", rank, perm);
  return bp_ad_infer(ad, node);
}

int bp_ad_sum_to(bp_ad *ad, int x, int like) {
  if (x < 0 || like < 0) return -1;
  const bp_value *l = bp_ad_val(ad, like);
  if (bp_same_shape(bp_ad_val(ad, x), l)) return x;
  int node = bp_ad_node(ad, BP_DOMAIN, "SumTo", 1, &x, 1);
  bp_ad_attr_ints(ad, node, "shape", l->rank, l->dims);
  return bp_ad_infer(ad, node);
}

/* ---- analysis ------------------------------------------------------------------------------- */

static int is_float_tensor(const bp_graph *g, int t) { return t >= 0 && bp_dtype_is_float(g->tensors[t]->v.dtype); }

void bp_ad_reachable(const bp_graph *g, int loss, unsigned char *reach) {
  memset(reach, 0, (size_t)g->ntensors);
  reach[loss] = 1;
  for (int i = g->nnodes - 1; i >= 0; i--) {
    const bp_node *n = g->nodes[i];
    int any = 0;
    for (int k = 0; k < n->nout; k++)
      if (n->out[k] >= 0 && reach[n->out[k]]) any = 1;
    if (!any || !n->op || !n->op->grad) continue;
    for (int k = 0; k < n->nin; k++)
      if (is_float_tensor(g, n->in[k])) reach[n->in[k]] = 1;
  }
}

int bp_autodiff(bp_graph *g, int training, bp_ad_result *r, bp_err *e) {
  int nt0 = g->ntensors, nn0 = g->nnodes;
  unsigned char *req = calloc((size_t)nt0, 1), *reach = calloc((size_t)nt0, 1);
  int *grad = malloc(sizeof(int) * (size_t)nt0);
  int rc = 0;
  bp_ad ad = {.g = g, .e = e, .training = training, .cur = -1, .counter = 0, .first_bwd = nn0};
  r->first_bwd = nn0;
  r->stash = NULL;
  if (!req || !reach || !grad) {
    rc = bp_errf(e, "out of memory");
    goto done;
  }
  for (int t = 0; t < nt0; t++) grad[t] = -1;
  const bp_value *lv = &g->tensors[r->loss]->v;
  if (!bp_dtype_is_float(lv->dtype) || bp_value_numel(lv) != 1) {
    rc = bp_errf(e, "autodiff: the loss '%s' must be a float scalar", g->tensors[r->loss]->name);
    goto done;
  }
  /* req: depends on a wrt tensor; reach: the loss depends on it (any op, checked below). */
  for (int i = 0; i < r->nwrt; i++) {
    r->grads[i] = -1;
    if (is_float_tensor(g, r->wrt[i])) req[r->wrt[i]] = 1;
  }
  for (int i = 0; i < nn0; i++) {
    const bp_node *n = g->nodes[i];
    int any = 0;
    for (int k = 0; k < n->nin; k++)
      if (n->in[k] >= 0 && req[n->in[k]]) any = 1;
    for (int k = 0; any && k < n->nout; k++)
      if (is_float_tensor(g, n->out[k])) req[n->out[k]] = 1;
  }
  reach[r->loss] = 1;
  for (int i = nn0 - 1; i >= 0; i--) {
    const bp_node *n = g->nodes[i];
    int any = 0;
    for (int k = 0; k < n->nout; k++)
      if (n->out[k] >= 0 && reach[n->out[k]]) any = 1;
    for (int k = 0; any && k < n->nin; k++)
      if (is_float_tensor(g, n->in[k])) reach[n->in[k]] = 1;
  }
  /* Seed: d loss / d loss = 1. */
  {
    bp_value one = *lv;
    int64_t dims[BP_MAX_RANK];
    memcpy(dims, one.dims, sizeof dims);
    int c = new_const(&ad, one.dtype, one.rank, dims);
    if (c < 0) {
      rc = -1;
      goto done;
    }
    bp_set_f64(g->tensors[c]->v.data, one.dtype, 0, 1.0);
    grad[r->loss] = c;
  }
  for (int i = nn0 - 1; i >= 0 && rc == 0; i--) {
    bp_node *n = g->nodes[i];
    int dout[64], din[64];
    unsigned char need[64];
    int any_out = 0, any_in = 0;
    if (n->nout > 64 || n->nin > 64) continue;
    for (int k = 0; k < n->nout; k++) {
      dout[k] = n->out[k] >= 0 ? grad[n->out[k]] : -1;
      if (dout[k] >= 0) any_out = 1;
    }
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      need[k] = t >= 0 && req[t] && reach[t];
      din[k] = -1;
      if (need[k]) any_in = 1;
    }
    if (!any_out || !any_in) continue;
    if (!n->op->grad) {
      const char *wname = "";
      for (int k = 0; k < n->nin; k++)
        if (need[k]) wname = g->tensors[n->in[k]]->name;
      rc = bp_errf(e, "node '%s' (%s): no gradient rule for this op, but the loss depends on its input '%s' "
                   "through it (freeze the parameters that feed it with --freeze)", n->name, n->op_type, wname);
      break;
    }
    ad.cur = i;
    if (n->op->grad(&ad, n, dout, need, din) < 0 || e->set) {
      rc = bp_err_prefix_node(e, n);
      break;
    }
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      if (!need[k] || din[k] < 0) continue;
      if (!bp_same_shape(&g->tensors[din[k]]->v, &g->tensors[t]->v)) {
        char s1[160], s2[160];
        rc = bp_errf(e, "node '%s' (%s): gradient rule gave input %d a gradient of shape %s, expected %s", n->name,
                     n->op_type, k, bp_shape_str(&g->tensors[din[k]]->v, s1, sizeof s1),
                     bp_shape_str(&g->tensors[t]->v, s2, sizeof s2));
        break;
      }
      grad[t] = grad[t] < 0 ? din[k] : bp_ad_op2(&ad, "Add", grad[t], din[k]);
    }
    if (e->set) rc = -1;
  }
  if (rc == 0)
    for (int i = 0; i < r->nwrt; i++) r->grads[i] = r->wrt[i] >= 0 && r->wrt[i] < nt0 ? grad[r->wrt[i]] : -1;
  /* The stash: forward activations (and inputs) that backward nodes read, including outputs the
   * rules gave forward nodes (the Dropout masks training needs). */
  if (rc == 0) {
    r->stash = calloc((size_t)g->ntensors, 1);
    r->stash_bytes = 0;
    r->stash_tensors = 0;
    if (!r->stash) {
      rc = bp_errf(e, "out of memory");
      goto done;
    }
    /* tensors computed from weights only (views such as Transpose(W)) are per step, not per
     * micro-batch: only what depends on a graph input is stashed */
    unsigned char *dyn = calloc((size_t)g->ntensors, 1);
    if (!dyn) {
      rc = bp_errf(e, "out of memory");
      goto done;
    }
    for (int i = 0; i < g->ninputs; i++) dyn[g->inputs[i]] = 1;
    for (int i = 0; i < nn0; i++) {
      const bp_node *n = g->nodes[i];
      int d = 0;
      for (int k = 0; k < n->nin; k++) d |= n->in[k] >= 0 && dyn[n->in[k]];
      for (int k = 0; d && k < n->nout; k++)
        if (n->out[k] >= 0) dyn[n->out[k]] = 1;
    }
    for (int i = nn0; i < g->nnodes; i++) {
      const bp_node *n = g->nodes[i];
      for (int k = 0; k < n->nin; k++) {
        int t = n->in[k];
        if (t < 0 || r->stash[t] || !dyn[t]) continue;
        bp_tensor_kind kd = g->tensors[t]->kind;
        if (kd == BP_T_INPUT ? 0 : kd != BP_T_ACTIVATION || g->tensors[t]->producer < 0 || g->tensors[t]->producer >= nn0)
          continue;
        r->stash[t] = 1;
        r->stash_tensors++;
        r->stash_bytes += (int64_t)bp_value_bytes(&g->tensors[t]->v);
      }
    }
    free(dyn);
  }
done:
  free(req);
  free(reach);
  free(grad);
  return rc;
}
