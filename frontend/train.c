/* frontend/train.c — the single-process trainer: builds the training graph (parameter passes,
 * preparation, loss, trainable set, autodiff) and runs steps on the CPU executor with the
 * optimizer of frontend/optimizer.c. This is the oracle the pipeline runtime is compared with. */
#include "frontend/train.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bp_train_opts_default(bp_train_opts *o) {
  memset(o, 0, sizeof *o);
  o->ignore_index = -100;
  o->optimizer = BP_OPT_SGD;
  o->lr = 1e-3;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = 1e-8;
  o->dropout = 1;
  o->seed = 0;
}

static int re_match(const char *re, const char *s, int *out, bp_err *e) {
  regex_t r;
  if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB) != 0) return bp_errf(e, "invalid regular expression '%s'", re);
  *out = regexec(&r, s, 0, NULL, 0) == 0;
  regfree(&r);
  return 0;
}

bp_trainer *bp_trainer_new(bp_graph *g, bp_value **given, bp_value *targets, const bp_binding *binds, int nbinds,
                           const bp_train_opts *o, bp_err *e) {
  bp_trainer *t = calloc(1, sizeof *t);
  unsigned char *reach = NULL, *buffer = NULL;
  int *cand = NULL;
  if (!t) {
    bp_graph_free(g);
    bp_errf(e, "out of memory");
    return NULL;
  }
  t->g = g;
  t->o = *o;
  t->ctx.training = o->dropout;
  t->ctx.seed = o->seed;
  t->dynamo_default = bp_params_looks_dynamo_default(g);
  if (t->dynamo_default && !o->quiet)
    fprintf(stderr, "bitpipec: warning: '%s' looks like a default dynamo export (equal parameters merged, zero biases "
                    "dropped, weights folded into anonymous constants 'val_N'): training what the file holds, which drifts from the "
                    "source model. Export for training with torch.onnx.export(..., training=torch.onnx.TrainingMode."
                    "TRAINING, do_constant_folding=False, dynamo=False)\n", g->name ? g->name : "model");
  int ngiven = g->ninputs;
  t->analysis_only = targets == NULL;
  if ((t->untied = bp_params_untie(g, &t->untie_notes, e)) < 0) goto fail;
  if (!o->no_retie && (t->retied = bp_params_retie(g, !o->quiet, &t->retie_notes, e)) < 0) goto fail;
  bp_fold_stats fst;
  if (bp_prepare_graph(g, binds, nbinds, given, &t->ctx, 0, &fst, e) < 0) goto fail;
  if (!o->quiet && fst.fused_gelu_tanh + fst.fused_gelu_erf > 0)
    fprintf(stderr, "bitpipec: note: fused %d GELU chains into Gelu nodes (%d tanh, %d erf; BP_FUSE=0 keeps them)\n",
            fst.fused_gelu_tanh + fst.fused_gelu_erf, fst.fused_gelu_tanh, fst.fused_gelu_erf);
  /* the output the loss is taken on */
  int out = -1;
  for (int i = 0; i < g->noutputs; i++) {
    const bp_tensor *ot = g->tensors[g->outputs[i]];
    if (o->output ? strcmp(ot->name, o->output) == 0 : bp_dtype_is_float(ot->v.dtype)) {
      out = g->outputs[i];
      break;
    }
  }
  if (out < 0) {
    if (o->output) bp_errf(e, "the model has no output named '%s'", o->output);
    else bp_errf(e, "the model has no float output to take a loss on");
    goto fail;
  }
  if ((t->loss = bp_loss_append(g, out, o->loss, o->ignore_index, "targets", &t->targets, e)) < 0) goto fail;
  if (targets && (targets->dtype != g->tensors[t->targets]->v.dtype || !bp_same_shape(targets, &g->tensors[t->targets]->v))) {
    char s1[160], s2[160];
    bp_errf(e, "targets: given %s %s but the loss on '%s' needs %s %s", bp_dtype_name(targets->dtype),
            bp_shape_str(targets, s1, sizeof s1), g->tensors[out]->name,
            bp_dtype_name(g->tensors[t->targets]->v.dtype), bp_shape_str(&g->tensors[t->targets]->v, s2, sizeof s2));
    goto fail;
  }
  if (targets && o->loss == BP_LOSS_CROSS_ENTROPY) {
    int64_t c = g->tensors[out]->v.dims[g->tensors[out]->v.rank - 1], n = bp_value_numel(targets);
    for (int64_t i = 0; i < n; i++) {
      int64_t v = bp_get_i64(targets->data, targets->dtype, i);
      if (v != o->ignore_index && (v < 0 || v >= c)) {
        bp_errf(e, "targets: value %lld at position %lld is outside the %lld classes of '%s' [0, %lld) and is not "
                   "the ignore index %lld", (long long)v, (long long)i, (long long)c, g->tensors[out]->name,
                (long long)c, (long long)o->ignore_index);
        goto fail;
      }
    }
  }
  /* trainable parameters: float initializers the loss depends on differentiably, minus buffers and
   * scalar literals, with --freeze/--train overriding (a buffer --train names is trained) */
  reach = calloc((size_t)g->ntensors, 1);
  cand = malloc(sizeof(int) * (size_t)g->ntensors);
  t->params = malloc(sizeof(int) * (size_t)g->ntensors);
  t->frozen = malloc(sizeof(int) * (size_t)g->ntensors);
  t->frozen_why = malloc((size_t)g->ntensors);
  buffer = malloc((size_t)g->ntensors);
  if (!reach || !cand || !t->params || !t->frozen || !t->frozen_why || !buffer) {
    bp_errf(e, "out of memory");
    goto fail;
  }
  bp_ad_reachable(g, t->loss, reach);
  if (bp_params_find_buffers(g, buffer, e) < 0) goto fail;
  int used_any = 0;
  for (int i = 0; i < g->ntensors; i++) {
    bp_tensor *tt = g->tensors[i];
    if (tt->kind != BP_T_INITIALIZER || !bp_dtype_is_float(tt->v.dtype)) continue;
    int used = 0;
    for (int j = 0; j < g->nnodes && !used; j++)
      for (int k = 0; k < g->nodes[j]->nin; k++) used |= g->nodes[j]->in[k] == i;
    if (!used) continue;
    used_any = 1;
    int why = !reach[i] ? BP_FROZEN_UNREACHED : buffer[i], m;
    if (why != BP_FROZEN_UNREACHED && o->train_re) {
      if (re_match(o->train_re, tt->name, &m, e)) goto fail;
      why = m ? BP_FROZEN_NONE : BP_FROZEN_USER;
    }
    if (why != BP_FROZEN_UNREACHED && o->freeze_re) {
      if (re_match(o->freeze_re, tt->name, &m, e)) goto fail;
      if (m) why = BP_FROZEN_USER;
    }
    if (why == BP_FROZEN_NONE && tt->v.dtype != BP_F32) {
      bp_errf(e, "parameter '%s' is %s; training needs float32 parameters", tt->name, bp_dtype_name(tt->v.dtype));
      goto fail;
    }
    if (why == BP_FROZEN_NONE) t->params[t->nparams++] = i;
    else {
      t->frozen_why[t->nfrozen] = (unsigned char)why;
      t->frozen[t->nfrozen++] = i;
    }
  }
  if (t->nparams == 0) {
    bp_errf(e, "no trainable parameter: %s", !used_any ? "the model has no float initializers in use"
                                                       : "every float initializer is frozen or does not reach the loss");
    goto fail;
  }
  t->grads = malloc(sizeof(int) * (size_t)t->nparams);
  if (!t->grads) {
    bp_errf(e, "out of memory");
    goto fail;
  }
  bp_ad_result r = {.loss = t->loss, .nwrt = t->nparams, .wrt = t->params, .grads = t->grads};
  if (bp_autodiff(g, o->dropout, &r, e) < 0) goto fail;
  t->stash_bytes = r.stash_bytes;
  t->stash_tensors = r.stash_tensors;
  free(r.stash);
  if (t->analysis_only) {
    free(reach);
    free(buffer);
    free(cand);
    return t;
  }
  /* parameters get writable, owned storage and optimizer state */
  t->state1 = calloc((size_t)t->nparams, sizeof(float *));
  t->state2 = calloc((size_t)t->nparams, sizeof(float *));
  int *outs = malloc(sizeof(int) * (size_t)(t->nparams + 1));
  if (!t->state1 || !t->state2 || !outs) {
    free(outs);
    bp_errf(e, "out of memory");
    goto fail;
  }
  outs[0] = t->loss;
  for (int i = 0; i < t->nparams; i++) {
    bp_tensor *pt = g->tensors[t->params[i]];
    int64_t n = bp_value_numel(&pt->v);
    if (t->grads[i] < 0) { /* cannot happen for reachable tensors; keep the graph honest */
      free(outs);
      bp_errf(e, "internal: no gradient for parameter '%s'", pt->name);
      goto fail;
    }
    outs[i + 1] = t->grads[i];
    if (!pt->owns_data) {
      void *copy = malloc(bp_value_bytes(&pt->v));
      if (!copy) {
        free(outs);
        bp_errf(e, "out of memory");
        goto fail;
      }
      memcpy(copy, pt->v.data, bp_value_bytes(&pt->v));
      pt->v.data = copy;
      pt->owns_data = 1;
    }
    t->state1[i] = calloc((size_t)(n ? n : 1), sizeof(float));
    t->state2[i] = o->optimizer == BP_OPT_ADAMW ? calloc((size_t)(n ? n : 1), sizeof(float)) : NULL;
    if (!t->state1[i] || (o->optimizer == BP_OPT_ADAMW && !t->state2[i])) {
      free(outs);
      bp_errf(e, "out of memory");
      goto fail;
    }
  }
  for (int i = 0; i < g->noutputs; i++) g->tensors[g->outputs[i]]->is_output = 0;
  free(g->outputs);
  g->outputs = outs;
  g->noutputs = t->nparams + 1;
  t->ninputs = g->ninputs;
  t->inputs = calloc((size_t)g->ninputs, sizeof(bp_value *));
  if (!t->inputs) {
    bp_errf(e, "out of memory");
    goto fail;
  }
  for (int i = 0; i < g->ninputs; i++) {
    t->inputs[i] = g->inputs[i] == t->targets ? targets : i < ngiven ? given[i] : NULL;
    if (!t->inputs[i]) {
      bp_errf(e, "input '%s' was not given (use --input %s=FILE)", g->tensors[g->inputs[i]]->name,
              g->tensors[g->inputs[i]]->name);
      goto fail;
    }
  }
  free(reach);
  free(buffer);
  free(cand);
  return t;
fail:
  free(reach);
  free(buffer);
  free(cand);
  bp_trainer_free(t);
  return NULL;
}

int bp_trainer_step(bp_trainer *t, double *loss, double *grad_norm, bp_err *e) {
  bp_graph *g = t->g;
  if (t->analysis_only) return bp_errf(e, "internal: this trainer was built without targets (analysis only)");
  if (t->backend) return t->backend->step(t, loss, grad_norm, e);
  bp_value *outs = calloc((size_t)g->noutputs, sizeof(bp_value));
  if (!outs) return bp_errf(e, "out of memory");
  int step = t->step + 1, rc = 0;
  if (bp_execute(g, &t->ctx, t->inputs, outs, e) < 0) {
    free(outs);
    return -1;
  }
  double l = bp_get_f64(outs[0].data, outs[0].dtype, 0), sq = 0;
  for (int i = 0; i < t->nparams; i++) {
    int64_t n = bp_value_numel(&outs[i + 1]);
    const float *gr = outs[i + 1].data;
    for (int64_t k = 0; k < n; k++) sq += (double)gr[k] * gr[k];
  }
  double norm = sqrt(sq);
  *loss = l;
  *grad_norm = norm;
  if (!isfinite(l)) rc = bp_errf(e, "step %d: the loss is %s; stopping (parameters keep their values from step %d)",
                                 step, isnan(l) ? "NaN" : "infinite", step - 1);
  else if (!isfinite(norm)) rc = bp_errf(e, "step %d: the gradient norm is not finite; stopping", step);
  if (rc == 0) {
    /* torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when below 1 */
    double coef = t->o.clip > 0 ? t->o.clip / (norm + 1e-6) : 1.0;
    double gscale = coef < 1.0 ? coef : 1.0;
    for (int i = 0; i < t->nparams; i++) {
      bp_tensor *pt = g->tensors[t->params[i]];
      int64_t n = bp_value_numel(&pt->v);
      if (t->o.optimizer == BP_OPT_ADAMW)
        bp_adamw_update(pt->v.data, outs[i + 1].data, t->state1[i], t->state2[i], n, step, t->o.lr, t->o.beta1,
                        t->o.beta2, t->o.eps, t->o.weight_decay, gscale);
      else
        bp_sgd_update(pt->v.data, outs[i + 1].data, t->state1[i], n, step == 1, t->o.lr, t->o.momentum,
                      t->o.weight_decay, gscale);
    }
    t->step = step;
  }
  for (int i = 0; i < g->noutputs; i++) free(outs[i].data);
  free(outs);
  return rc;
}

void bp_trainer_free(bp_trainer *t) {
  if (!t) return;
  if (t->backend && t->backend->free) t->backend->free(t);
  for (int i = 0; t->state1 && i < t->nparams; i++) free(t->state1[i]);
  for (int i = 0; t->state2 && i < t->nparams; i++) free(t->state2[i]);
  free(t->state1);
  free(t->state2);
  free(t->params);
  free(t->grads);
  free(t->frozen);
  free(t->frozen_why);
  free(t->inputs);
  bp_param_notes_free(&t->untie_notes);
  bp_param_notes_free(&t->retie_notes);
  bp_graph_free(t->g);
  free(t);
}
