/* codegen/prepare.c — the compiler's front half for code generation: the frontend's training graph
 * (analysis only: untie/retie, prepare, loss, trainable set), the layers, their costs, the schedule
 * program (validated) and the partition of layers onto the program's stages; the simulator's
 * prediction for that partition. Every step reuses the frontend and partitioner as
 * `bitpipec train` and `bitpipec partition` use them, so the three commands agree. */
#include "codegen/codegen.h"

#include "frontend/onnx_load.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void bp_cg_opts_default(bp_cg_opts *o) {
  memset(o, 0, sizeof *o);
  o->D = 4, o->N = 8, o->micro_batch = 1;
  o->schedule = "bitpipe";
  o->partition = "auto";
  bp_train_opts_default(&o->train);
}

static void stage_free(bp_cg_stage *st) {
  bp_graph_free(st->g);
  free(st->act_in), free(st->act_out), free(st->grad_in), free(st->grad_out), free(st->data), free(st->params);
  free(st->mem), free(st->offset), free(st->nbytes), free(st->live_begin), free(st->live_end), free(st->folds);
  memset(st, 0, sizeof *st);
}

void bp_cg_free(bp_cg *cg) {
  for (int s = 0; cg->stages && s < cg->S; s++) stage_free(&cg->stages[s]);
  free(cg->stages);
  cg->ml.g = NULL; /* borrowed from the trainer */
  bp_model_layers_free(&cg->ml);
  bp_trainer_free(cg->t);
  if (cg->have_costs) bp_lcosts_free(&cg->lc);
  if (cg->have_prog) bp_program_free(&cg->prog);
  bp_part_problem_free(&cg->pp);
  if (cg->have_eval) bp_part_eval_free(&cg->ev);
  free(cg->first), free(cg->pred_bubble), free(cg->param_numel), free(cg->param_onnx_offset), free(cg->param_stages);
  free(cg->rank_bytes), free(cg->chunk_slots);
  memset(cg, 0, sizeof *cg);
}

/* Forward tensors the backward of G reads that depend on the model's inputs (the stash, as
 * frontend/autodiff.c counts it), for the layers' activation bytes. */
static unsigned char *stash_of(const bp_graph *g, int n_fwd) {
  unsigned char *dyn = calloc((size_t)g->ntensors + 1, 1), *stash = calloc((size_t)g->ntensors + 1, 1);
  if (!dyn || !stash) {
    free(dyn), free(stash);
    return NULL;
  }
  for (int i = 0; i < g->ninputs; i++) dyn[g->inputs[i]] = 1;
  for (int i = 0; i < n_fwd; i++) {
    const bp_node *n = g->nodes[i];
    int d = 0;
    for (int k = 0; k < n->nin; k++) d |= n->in[k] >= 0 && dyn[n->in[k]];
    for (int k = 0; d && k < n->nout; k++)
      if (n->out[k] >= 0) dyn[n->out[k]] = 1;
  }
  for (int i = n_fwd; i < g->nnodes; i++)
    for (int k = 0; k < g->nodes[i]->nin; k++) {
      int t = g->nodes[i]->in[k];
      if (t >= 0 && dyn[t] && (g->tensors[t]->kind == BP_T_INPUT || (g->tensors[t]->producer >= 0 &&
                                                                      g->tensors[t]->producer < n_fwd)))
        stash[t] = 1;
    }
  free(dyn);
  return stash;
}

static int find_layers(bp_cg *cg, bp_layers_granularity gran, bp_err *e) {
  bp_graph *g = cg->t->g;
  cg->ml.g = NULL;
  bp_model_layers_free(&cg->ml);
  snprintf(cg->ml.model, sizeof cg->ml.model, "%s", cg->o.model);
  cg->ml.g = g;
  cg->ml.n_fwd = cg->n_fwd;
  cg->ml.stash = stash_of(g, cg->n_fwd);
  unsigned char *trainable = calloc((size_t)g->ntensors + 1, 1);
  if (!cg->ml.stash || !trainable) {
    free(trainable);
    return bp_errf(e, "out of memory");
  }
  for (int i = 0; i < cg->t->nparams; i++) trainable[cg->t->params[i]] = 1;
  int rc = bp_layers_find(g, cg->n_fwd, cg->ml.stash, trainable, gran, &cg->ml, e);
  free(trainable);
  cg->gran = gran;
  return rc;
}

/* The simulator with one cost row per stage (as the partition evaluator builds it): the plan's
 * predicted step time and bubble, and the timeline the compiler draws (TRAIN.svg). */
int bp_cg_simulate(const bp_cg *cg, bp_sim_result *res, bp_err *e) {
  int S = cg->S;
  bp_costs table = {.n = S, .layer = calloc((size_t)S, sizeof(bp_layer_cost))};
  if (!table.layer) return bp_errf(e, "out of memory");
  for (int s = 0; s < S; s++) {
    bp_layer_cost *c = &table.layer[s];
    for (int l = cg->first[s]; l < cg->first[s + 1]; l++) {
      const bp_lcost *x = &cg->lc.l[l];
      c->fwd += x->fwd, c->bwd += x->bwd, c->act_bytes += x->act_bytes, c->param_bytes += x->param_bytes;
    }
    c->out_bytes = cg->lc.l[cg->first[s + 1] - 1].out_bytes;
  }
  bp_sim_config cfg;
  bp_sim_config_default(&cfg);
  cfg.costs = &table;
  cfg.latency = cg->lc.link_lat, cfg.bandwidth = cg->lc.link_bw;
  char err[1024];
  int rc = bp_simulate(&cg->prog, &cfg, res, err, sizeof err);
  free(table.layer);
  if (rc) return bp_errf(e, "simulator: %s", err);
  return 0;
}

static int simulate_partition(bp_cg *cg, bp_err *e) {
  int D = cg->prog.D;
  cg->pred_bubble = calloc((size_t)D, sizeof(double));
  if (!cg->pred_bubble) return bp_errf(e, "out of memory");
  bp_sim_result res;
  if (bp_cg_simulate(cg, &res, e)) return -1;
  cg->pred_step_s = res.step_time;
  for (int r = 0; r < D; r++) cg->pred_bubble[r] = res.bubble[r];
  bp_sim_result_free(&res);
  return 0;
}

static int is_int_input(const bp_graph *g, int t) { return bp_dtype_is_int(g->tensors[t]->v.dtype); }

int bp_cg_prepare(bp_cg *cg, const bp_cg_opts *o, FILE *log, bp_err *e) {
  memset(cg, 0, sizeof *cg);
  cg->o = *o;
  char err[2048];
  if (o->D <= 0 || o->N <= 0 || o->micro_batch <= 0)
    return bp_errf(e, "-D, -N and --micro-batch must be positive (got %d, %d, %d)", o->D, o->N, o->micro_batch);
  /* 1. the training graph */
  bp_binding binds[72];
  int nb = 0, has_batch = 0, has_seq = 0;
  if (o->nbinds > 64) return bp_errf(e, "too many --bind options (at most 64)");
  for (int i = 0; i < o->nbinds; i++) {
    binds[nb++] = o->binds[i];
    has_batch |= !strcmp(o->binds[i].name, "batch");
    has_seq |= !strcmp(o->binds[i].name, "sequence");
  }
  if (has_batch) return bp_errf(e, "bind the micro-batch with --micro-batch B, not --bind batch=...");
  binds[nb++] = (bp_binding){"batch", o->micro_batch};
  if (o->seq > 0) {
    if (has_seq) return bp_errf(e, "--seq and --bind sequence=... both given");
    binds[nb++] = (bp_binding){"sequence", o->seq};
  }
  bp_graph *g = bp_onnx_load(o->model, e);
  if (!g) return -1;
  int nodes_loaded = g->nnodes;
  cg->t = bp_trainer_new(g, NULL, NULL, binds, nb, &o->train, e); /* takes g */
  if (!cg->t) return -1;
  g = cg->t->g;
  bp_trainer *t = cg->t;
  cg->targets = t->targets;
  int lp = g->tensors[t->loss]->producer;
  if (lp < 0) return bp_errf(e, "internal: the loss has no producer node");
  cg->n_fwd = lp + 1;
  cg->token_input = -1;
  for (int i = 0; i < g->ninputs; i++) {
    int id = g->inputs[i];
    if (id == t->targets || !is_int_input(g, id)) continue;
    if (cg->token_input < 0 || !strcmp(g->tensors[id]->name, "input_ids")) cg->token_input = id;
  }
  const bp_node *ln = g->nodes[lp];
  if (o->train.loss == BP_LOSS_CROSS_ENTROPY) {
    const bp_value *lv = &g->tensors[ln->in[0]]->v;
    cg->vocab = (int)lv->dims[lv->rank - 1];
  }
  double fl = 0;
  for (int i = 0; i < cg->n_fwd; i++) {
    const bp_node *n = g->nodes[i];
    bp_value *in[64] = {0}, *out[64] = {0};
    if (n->nin > 64 || n->nout > 64) continue;
    for (int k = 0; k < n->nin; k++) in[k] = n->in[k] >= 0 ? &g->tensors[n->in[k]]->v : NULL;
    for (int k = 0; k < n->nout; k++) out[k] = n->out[k] >= 0 ? &g->tensors[n->out[k]]->v : NULL;
    fl += n->op && n->op->flops ? n->op->flops(n, in, n->nin, out, n->nout) : out[0] ? (double)bp_value_numel(out[0]) : 0;
  }
  int64_t tokens = o->micro_batch;
  if (cg->token_input >= 0) tokens = bp_value_numel(&g->tensors[cg->token_input]->v);
  /* forward + backward per token: the backward of a matmul is two matmuls of the same size, so the
   * usual 3 x forward (the convention of MFU figures) */
  cg->flops_per_token = tokens > 0 ? 3.0 * fl / (double)tokens : 0;
  int64_t pel = 0;
  for (int i = 0; i < t->nparams; i++) pel += bp_value_numel(&g->tensors[t->params[i]]->v);
  if (log)
    fprintf(log, "load      %s: %d nodes, %d after folding (forward + loss); %d trainable parameter tensors "
                 "(%lld elements), %d frozen; untied %d, retied %d\n",
            o->model, nodes_loaded, cg->n_fwd, t->nparams, (long long)pel, t->nfrozen, t->untied, t->retied);
  /* 2. the schedule program, validated */
  bp_sched_params sp = {.D = o->D, .N = o->N, .chunks = o->chunks};
  cg->have_prog = 1;
  if (bp_schedule_generate(o->schedule, &sp, &cg->prog, err, sizeof err))
    return bp_errf(e, "--schedule %s: %s", o->schedule, err);
  if (bp_validate(&cg->prog, err, sizeof err))
    return bp_errf(e, "--schedule %s: the generated program does not validate: %s", o->schedule, err);
  cg->S = cg->prog.n_stages;
  /* 3. layers: one per block, or finer when the schedule has more stages than blocks */
  if (find_layers(cg, BP_LAYERS_BLOCK, e)) return -1;
  if (cg->ml.n < cg->S && find_layers(cg, BP_LAYERS_FINE, e)) return -1;
  cg->L = cg->ml.n;
  if (log) {
    fprintf(log, "layers    %d (%s):", cg->L, cg->gran == BP_LAYERS_FINE ? "blocks split at inner cut points" : "one per block");
    for (int l = 0; l < cg->L; l++) fprintf(log, " %s", cg->ml.layer[l].name);
    fprintf(log, "\n");
  }
  if (cg->L < cg->S)
    return bp_errf(e, "%s has %d layers at its finest cut points but schedule '%s' with D=%d has %d stages: every "
                      "stage needs a layer; use fewer ranks (-D) or a schedule with fewer chunks per rank",
                   o->model, cg->L, o->schedule, o->D, cg->S);
  /* 4. costs */
  const char *dev = o->device_model;
  int gpu = dev && (!strcmp(dev, "gpu-profile") || !strcmp(dev, "cuda-profile"));
  if (!dev || !strcmp(dev, "cpu-profile") || gpu) {
    char extra[512];
    size_t k = 0;
    for (int i = 0; i < nb && k < sizeof extra; i++)
      k += (size_t)snprintf(extra + k, sizeof extra - k, "%s%s=%lld", i ? "," : "", binds[i].name, (long long)binds[i].value);
    if (k < sizeof extra)
      snprintf(extra + k, sizeof extra - k, " gran=%s train-graph", cg->gran == BP_LAYERS_FINE ? "fine" : "block");
    if (gpu && !o->profile_device)
      return bp_errf(e, "--device-model %s: no GPU node timer was given (internal: the caller opens the GPU)", dev);
    bp_profile_opts po = {.repeats = o->profile_repeats, .cache_path = o->profile_cache, .key_extra = extra,
                          .device = gpu ? o->profile_device : NULL};
    if (bp_lcosts_profile(&cg->ml, &po, &cg->lc, e)) return -1;
  } else {
    const bp_device_model *dm = bp_device_model_find(dev);
    if (!dm) return bp_errf(e, "unknown --device-model '%s' (cpu-profile, gpu-profile, h100, h200, a100)", dev);
    if (bp_lcosts_analytic(&cg->ml, dm, &cg->lc, e)) return -1;
  }
  cg->have_costs = 1;
  if (log) fprintf(log, "costs     %s: %s\n", gpu ? "gpu-profile" : dev ? dev : "cpu-profile", cg->lc.source);
  if (log)
    fprintf(log, "schedule  %s D=%d N=%d: %d stages, %d pipe(s), %d chunk(s) per rank%s — valid\n", o->schedule, o->D,
            o->N, cg->S, cg->prog.n_pipes, cg->prog.chunks_per_rank, cg->prog.split_backward ? ", split backward" : "");
  /* 5. partition */
  if (bp_part_problem_init(&cg->pp, &cg->prog, &cg->lc, cg->lc.mem_bytes, err, sizeof err)) return bp_errf(e, "%s", err);
  cg->first = calloc((size_t)cg->S + 1, sizeof(int));
  if (!cg->first) return bp_errf(e, "out of memory");
  const char *part = o->partition ? o->partition : "auto";
  if (!strcmp(part, "auto")) {
    bp_ilp_opts io = {.time_limit_s = o->ilp_time_limit, .warm_start = 1};
    int r = bp_part_ilp(&cg->pp, &io, cg->first, &cg->ilp, err, sizeof err);
    if (r < 0) return bp_errf(e, "--partition auto: %s", err);
    if (r == 1) {
      double need = 0;
      if (bp_part_min_memory(&cg->pp, &need, cg->first, err, sizeof err) == 0)
        return bp_errf(e, "--partition auto: no partition of the %d layers fits the device memory (%.2f GiB) on every "
                          "rank; the smallest that fits is %.2f GiB", cg->L, cg->lc.mem_bytes / 1073741824.0,
                       need / 1073741824.0);
      return bp_errf(e, "--partition auto: no partition fits the device memory (%s)", err);
    }
    cg->used_ilp = 1;
  } else if (!strcmp(part, "uniform")) {
    bp_part_uniform(cg->L, cg->S, cg->first);
  } else if (bp_part_parse(part, cg->L, cg->S, cg->first, err, sizeof err)) {
    return bp_errf(e, "%s", err);
  }
  if (bp_part_evaluate(&cg->pp, cg->first, 1, &cg->ev, err, sizeof err)) return bp_errf(e, "partition: %s", err);
  cg->have_eval = 1;
  if (simulate_partition(cg, e)) return -1;
  if (log) {
    char buf[1024];
    fprintf(log, "partition %s%s: layers per stage %s\n", part,
            cg->used_ilp ? (cg->ilp.timed_out        ? " (GLPK, stopped at the time limit)"
                            : cg->ilp.from_incumbent ? " (the heuristic's partition: GLPK's LP rejected its tight bounds numerically)"
                                                     : " (GLPK, optimal)")
                         : "",
            bp_part_format(cg->first, cg->S, buf, sizeof buf));
  }
  return 0;
}
