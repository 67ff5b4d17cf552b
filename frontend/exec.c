/* frontend/exec.c — the CPU executor for a prepared graph: walks the nodes in order, allocates
 * each output from its inferred shape, calls the op's eval, and frees every intermediate after
 * its last use. This is the oracle the pipeline runtime is compared with. */
#include "frontend/passes.h"
#include "frontend/onnx_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every graph input given, with the dtype and shape the graph was prepared for. */
int bp_check_inputs(const bp_graph *g, bp_value *const *inputs, bp_err *e) {
  for (int i = 0; i < g->ninputs; i++) {
    const bp_tensor *t = g->tensors[g->inputs[i]];
    if (!inputs[i]) return bp_errf(e, "input '%s' was not given", t->name);
    if (inputs[i]->dtype != t->v.dtype || !bp_same_shape(inputs[i], &t->v)) {
      char s1[160], s2[160];
      return bp_errf(e, "input '%s': given %s %s but the graph was prepared for %s %s", t->name,
                     bp_dtype_name(inputs[i]->dtype), bp_shape_str(inputs[i], s1, sizeof s1),
                     bp_dtype_name(t->v.dtype), bp_shape_str(&t->v, s2, sizeof s2));
    }
  }
  return 0;
}

int bp_execute(const bp_graph *g, bp_ctx *ctx, bp_value *const *inputs, bp_value *outputs, bp_err *e) {
  int nt = g->ntensors;
  bp_value *vals = calloc((size_t)nt, sizeof(bp_value));
  int *last_use = malloc(sizeof(int) * (size_t)nt);
  unsigned char *owned = calloc((size_t)nt, 1);
  int rc = 0;
  if (!vals || !last_use || !owned) {
    free(vals); free(last_use); free(owned);
    return bp_errf(e, "out of memory");
  }
  for (int t = 0; t < nt; t++) {
    last_use[t] = -1;
    const bp_tensor *tt = g->tensors[t];
    if (tt->kind == BP_T_CONSTANT || tt->kind == BP_T_INITIALIZER) vals[t] = tt->v;
  }
  if (bp_check_inputs(g, inputs, e)) {
    rc = -1;
    goto done;
  }
  for (int i = 0; i < g->ninputs; i++) vals[g->inputs[i]] = *inputs[i];
  for (int i = 0; i < g->nnodes; i++)
    for (int k = 0; k < g->nodes[i]->nin; k++)
      if (g->nodes[i]->in[k] >= 0) last_use[g->nodes[i]->in[k]] = i;
  for (int i = 0; i < g->noutputs; i++) last_use[g->outputs[i]] = g->nnodes;

  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    bp_value *in[64] = {0}, *out[64] = {0};
    for (int k = 0; k < n->nin; k++) in[k] = n->in[k] >= 0 ? &vals[n->in[k]] : NULL;
    for (int k = 0; k < n->nout; k++) {
      out[k] = NULL;
      if (n->out[k] < 0) continue;
      int t = n->out[k];
      vals[t] = g->tensors[t]->v;
      size_t bytes = bp_value_bytes(&vals[t]);
      vals[t].data = calloc(bytes ? bytes : 1, 1);
      if (!vals[t].data) {
        rc = bp_errf(e, "node '%s' (%s): out of memory for output '%s' (%zu bytes)", n->name, n->op_type,
                     g->tensors[t]->name, bytes);
        goto done;
      }
      owned[t] = 1;
      out[k] = &vals[t];
    }
    if (n->op->eval(ctx, n, in, n->nin, out, n->nout, e) < 0) {
      rc = bp_err_prefix_node(e, n);
      goto done;
    }
    /* Free what this node used for the last time, and outputs nobody reads. */
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      if (t >= 0 && owned[t] && last_use[t] == i) {
        free(vals[t].data);
        vals[t].data = NULL;
        owned[t] = 0;
      }
    }
    for (int k = 0; k < n->nout; k++) {
      int t = n->out[k];
      if (t >= 0 && owned[t] && last_use[t] < 0) {
        free(vals[t].data);
        vals[t].data = NULL;
        owned[t] = 0;
      }
    }
  }
  for (int i = 0; i < g->noutputs; i++) {
    int t = g->outputs[i];
    outputs[i] = vals[t];
    size_t bytes = bp_value_bytes(&vals[t]);
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy) {
      rc = bp_errf(e, "out of memory copying output '%s'", g->tensors[t]->name);
      for (int j = 0; j < i; j++) free(outputs[j].data);
      goto done;
    }
    if (bytes) memcpy(copy, vals[t].data, bytes);
    outputs[i].data = copy;
  }
done:
  for (int t = 0; t < nt; t++)
    if (owned[t]) free(vals[t].data);
  free(vals);
  free(last_use);
  free(owned);
  return rc;
}

double bp_graph_flops(const bp_graph *g) {
  double total = 0;
  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    bp_value *in[64] = {0}, *out[64] = {0};
    for (int k = 0; k < n->nin; k++) in[k] = n->in[k] >= 0 ? &g->tensors[n->in[k]]->v : NULL;
    for (int k = 0; k < n->nout; k++) out[k] = n->out[k] >= 0 ? &g->tensors[n->out[k]]->v : NULL;
    if (n->op && n->op->flops) total += n->op->flops(n, in, n->nin, out, n->nout);
    else if (n->nout > 0 && out[0]) total += (double)bp_value_numel(out[0]);
  }
  return total;
}

int bp_prepare_graph(bp_graph *g, const bp_binding *binds, int nbinds, bp_value *const *given, bp_ctx *ctx,
                     int specialize_int_inputs, bp_fold_stats *stats, bp_err *e) {
  if (bp_graph_check_ops(g, e) < 0) return -1;
  if (bp_bind_inputs(g, binds, nbinds, given, e) < 0) return -1;
  for (int i = 0; specialize_int_inputs && given && i < g->ninputs; i++) {
    bp_tensor *t = g->tensors[g->inputs[i]];
    if (given[i] && (!bp_dtype_is_float(t->v.dtype) || bp_value_numel(&t->v) == 1)) {
      t->kind = BP_T_CONSTANT;
      t->v.data = given[i]->data; /* borrowed: the caller keeps `given` alive with the graph */
      t->owns_data = 0;
    }
  }
  if (bp_infer_and_fold(g, ctx, stats, e) < 0) return -1;
  bp_cleanup(g);
  bp_fuse_stats fs = {0, 0};
  if (bp_fuse_enabled() && bp_fuse_gelu(g, &fs, e) < 0) return -1;
  if (stats) stats->fused_gelu_tanh = fs.gelu_tanh, stats->fused_gelu_erf = fs.gelu_erf;
  return 0;
}

int bp_err_needs_constant(const bp_err *e) { return e->set && strstr(e->msg, "is not a compile-time constant") != NULL; }
