/* frontend/fold.c — shape inference and constant folding in one walk over the nodes.
 *
 * Each tensor is classed as CONST (value known at compile time), WEIGHT (computed only from
 * initializers and constants: a float initializer may be trained, so it is never folded into a
 * constant, but its pure computations such as Transpose(W) are marked as views of it) or DYN
 * (depends on a graph input). A node whose inputs are all CONST is evaluated now. */
#include "frontend/passes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CLS_DYN = 0, CLS_CONST, CLS_WEIGHT };

#define BP_FOLD_MAX_BYTES (1ull << 30)

static int is_random(const bp_node *n, const bp_ctx *ctx) {
  if (strcmp(n->op_type, "Dropout") == 0) return ctx->training;
  return strncmp(n->op_type, "Random", 6) == 0 || strcmp(n->op_type, "Bernoulli") == 0 ||
         strcmp(n->op_type, "Multinomial") == 0;
}

/* Shape and Size read only their input's shape, so they fold even on run-time tensors. */
static int needs_only_shape(const bp_node *n) {
  return strcmp(n->op_type, "Shape") == 0 || strcmp(n->op_type, "Size") == 0;
}

int bp_infer_and_fold(bp_graph *g, bp_ctx *ctx, bp_fold_stats *stats, bp_err *e) {
  bp_fold_stats st = {0};
  unsigned char *cls = calloc((size_t)g->ntensors, 1);
  bp_value *declared = calloc((size_t)(g->noutputs ? g->noutputs : 1), sizeof(bp_value));
  if (!cls || !declared) {
    free(cls);
    free(declared);
    return bp_errf(e, "out of memory");
  }
  for (int i = 0; i < g->noutputs; i++) {
    bp_tensor *t = g->tensors[g->outputs[i]];
    declared[i] = t->v;
    for (int d = 0; d < t->v.rank && d < BP_MAX_RANK; d++)
      if (t->dim_param[d]) declared[i].dims[d] = -1; /* symbolic: any value */
  }
  for (int t = 0; t < g->ntensors; t++) {
    bp_tensor *tt = g->tensors[t];
    if (tt->kind == BP_T_INITIALIZER) {
      /* Only float initializers can be weights; integer ones are shapes/indices: constants. */
      if (bp_dtype_is_float(tt->v.dtype)) cls[t] = CLS_WEIGHT;
      else {
        cls[t] = CLS_CONST;
        tt->kind = BP_T_CONSTANT;
      }
    } else if (tt->kind == BP_T_CONSTANT) {
      cls[t] = CLS_CONST;
    }
  }
  int rc = 0;
  for (int i = 0; i < g->nnodes && rc == 0; i++) {
    bp_node *n = g->nodes[i];
    if (!n->op) {
      rc = bp_errf(e, "node '%s': op '%s%s%s' is not supported", n->name, *n->domain ? n->domain : "",
                   *n->domain ? "::" : "", n->op_type);
      break;
    }
    if (n->nin < n->op->min_inputs || (n->op->max_inputs >= 0 && n->nin > n->op->max_inputs)) {
      rc = bp_errf(e, "node '%s' (%s): has %d inputs; the op takes %d to %d", n->name, n->op_type, n->nin,
                   n->op->min_inputs, n->op->max_inputs);
      break;
    }
    /* Every supported op has a required first output; ops may rely on out[0] and on in[k] == NULL
     * past nin (the op table contract), so both are enforced here once. */
    if (n->nout < 1 || n->out[0] < 0) {
      rc = bp_errf(e, "node '%s' (%s): has no (first) output", n->name, n->op_type);
      break;
    }
    bp_value *in[64] = {0}, *out[64] = {0};
    int all_const = 1, any_weight = 0, any_dyn = 0, weight_root = -1;
    for (int k = 0; k < n->nin; k++) {
      if (n->in[k] < 0) {
        in[k] = NULL;
        continue;
      }
      bp_tensor *t = g->tensors[n->in[k]];
      if (t->v.rank < 0 || t->v.dtype == BP_UNDEF) {
        rc = bp_errf(e, "node '%s' (%s): input '%s' has no known type or shape", n->name, n->op_type, t->name);
        break;
      }
      in[k] = &t->v;
      if (cls[n->in[k]] != CLS_CONST) all_const = 0;
      if (cls[n->in[k]] == CLS_WEIGHT) {
        any_weight = 1;
        if (weight_root < 0) weight_root = t->view_of >= 0 ? t->view_of : n->in[k];
      }
      if (cls[n->in[k]] == CLS_DYN) any_dyn = 1;
    }
    if (rc) break;
    for (int k = 0; k < n->nout; k++) {
      out[k] = n->out[k] >= 0 ? &g->tensors[n->out[k]]->v : NULL;
      if (out[k]) {
        out[k]->dtype = BP_UNDEF;
        out[k]->rank = -1;
      }
    }
    if (n->op->infer(n, in, n->nin, out, n->nout, e) < 0) {
      rc = bp_err_prefix_node(e, n);
      break;
    }
    for (int k = 0; k < n->nout; k++)
      if (out[k] && (out[k]->rank < 0 || out[k]->dtype == BP_UNDEF)) {
        rc = bp_errf(e, "node '%s' (%s): shape inference left output %d unknown", n->name, n->op_type, k);
        break;
      }
    if (rc) break;
    int fold = !is_random(n, ctx) && (all_const || needs_only_shape(n));
    if (fold) {
      /* A folded constant lives in the compiled program: refuse absurd sizes (a corrupt or
       * adversarial shape) with a message rather than exhausting memory. */
      for (int k = 0; k < n->nout && rc == 0; k++)
        if (out[k] && bp_value_bytes(out[k]) > BP_FOLD_MAX_BYTES) {
          char s1[160];
          rc = bp_errf(e, "node '%s' (%s): folding would create a %s constant of %zu bytes (limit %llu)", n->name,
                       n->op_type, bp_shape_str(out[k], s1, sizeof s1), bp_value_bytes(out[k]),
                       (unsigned long long)BP_FOLD_MAX_BYTES);
        }
      for (int k = 0; k < n->nout && rc == 0; k++)
        if (n->out[k] >= 0 && !bp_tensor_alloc(g->tensors[n->out[k]]))
          rc = bp_errf(e, "node '%s' (%s): out of memory folding a constant", n->name, n->op_type);
      if (rc) break;
      if (n->op->eval(ctx, n, in, n->nin, out, n->nout, e) < 0) {
        rc = bp_err_prefix_node(e, n);
        break;
      }
      for (int k = 0; k < n->nout; k++)
        if (n->out[k] >= 0) {
          cls[n->out[k]] = CLS_CONST;
          g->tensors[n->out[k]]->kind = BP_T_CONSTANT;
        }
      st.folded_nodes++;
    } else if (any_weight && !any_dyn) {
      for (int k = 0; k < n->nout; k++)
        if (n->out[k] >= 0) {
          cls[n->out[k]] = CLS_WEIGHT;
          g->tensors[n->out[k]]->view_of = weight_root;
        }
      st.weight_views++;
    }
  }
  for (int i = 0; i < g->noutputs && rc == 0; i++) {
    bp_tensor *t = g->tensors[g->outputs[i]];
    const bp_value *d = &declared[i];
    char s1[160], s2[160];
    if (d->dtype != BP_UNDEF && d->dtype != t->v.dtype)
      rc = bp_errf(e, "graph output '%s': the model declares %s but the graph computes %s", t->name,
                   bp_dtype_name(d->dtype), bp_dtype_name(t->v.dtype));
    else if (d->rank >= 0 && d->rank != t->v.rank)
      rc = bp_errf(e, "graph output '%s': the model declares shape %s but the graph computes %s", t->name,
                   bp_shape_str(d, s1, sizeof s1), bp_shape_str(&t->v, s2, sizeof s2));
    for (int k = 0; rc == 0 && d->rank >= 0 && k < d->rank; k++)
      if (d->dims[k] >= 0 && d->dims[k] != t->v.dims[k])
        rc = bp_errf(e, "graph output '%s': the model declares shape %s but the graph computes %s", t->name,
                     bp_shape_str(d, s1, sizeof s1), bp_shape_str(&t->v, s2, sizeof s2));
  }
  free(cls);
  free(declared);
  if (stats) *stats = st;
  return rc;
}
