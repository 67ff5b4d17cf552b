/* tests/codegen/test_stage_cut.c — the model cut and the per-stage autodiff, checked against the
 * single-graph training graph (the independent reference: `bitpipec train`'s trainer).
 *
 * usage: test_codegen_stage_cut MODEL SCHEDULE D N
 *
 * Reference: the whole batch (N sequences) through bp_trainer's training graph: loss and every
 * parameter gradient. Pipeline: the same batch as N micro-batches of one sequence; per micro-batch
 * the stage graphs run one after another in this process with the frontend executor (bp_execute):
 * the forward chain (act_out of stage s feeds act_in of s+1), then the backward chain seeded with
 * the received gradients (grad_out of s+1 feeds grad_in of s; the last stage gets loss_weight =
 * this micro-batch's share of the counted tokens). Loss = sum of weight * loss; each parameter's
 * gradient = sum over micro-batches and over the stages holding it (tied weights). Both must equal
 * the reference to 1e-5 relative (max |diff| / max |ref| per tensor).
 *
 * Second, the memory plan in action: the same micro-batches run again the way the runtime runs
 * them — every tensor at its planned offset in PARAM/CONST/SLOT/WORK arenas, nodes in the three
 * ranges (forward, input half, weight half) as separate instructions, the WORK arena shared by
 * all stages and poisoned with NaN bytes before every instruction, every slot poisoned when taken,
 * boundaries moved as one byte range (act_out range -> next act_in range, grad_out -> grad_in),
 * all forwards of all micro-batches before the backwards. Its results must equal the executor's. */
#include "cg_util.h"

#include "frontend/onnx_load.h"

#define TOL 1e-5

static bp_value scalar_f32(float x) {
  bp_value v = {.dtype = BP_F32, .rank = 0};
  v.data = malloc(sizeof(float));
  *(float *)v.data = x;
  return v;
}

static bp_value zeros_like(const bp_value *t) {
  bp_value v = *t;
  size_t b = bp_value_bytes(t);
  v.data = calloc(b ? b : 1, 1);
  return v;
}

typedef struct run {
  bp_value *out;  /* [S][outputs of the stage graph] after the backward run */
  bp_value **act; /* [S]: act_out values after the forward run */
} run;

static int out_index(const bp_graph *g, int t) {
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i] == t) return i;
  return -1;
}

/* Runs node n on the arenas with the compiler's folds (runtime/plan.h, bp_rt_fold) applied as the
 * unfolded nodes would have computed them: an input stored transposed is transposed back, a scaled
 * one multiplied by its power of two, the product multiplied after the MatMul. */
static int eval_folded(bp_ctx *ctx, const bp_node *n, const bp_rt_fold *fo, bp_value **in, bp_value **out, bp_err *e) {
  if (!fo || !(fo->trans[0] || fo->trans[1] || fo->in_log2[0] || fo->in_log2[1] || fo->out_log2))
    return n->op->eval(ctx, n, in, n->nin, out, n->nout, e);
  bp_value v[2];
  bp_value *args[2] = {in[0], in[1]};
  float *tmp[2] = {NULL, NULL};
  for (int k = 0; k < 2; k++) {
    if (!fo->trans[k] && !fo->in_log2[k]) continue;
    const bp_value *x = in[k];
    int64_t cnt = bp_value_numel(x), R = x->rank >= 2 ? x->dims[x->rank - 2] : 1, C = x->dims[x->rank - 1];
    const float *src = x->data;
    tmp[k] = malloc(sizeof(float) * (size_t)(cnt + 1));
    for (int64_t j = 0; j < cnt; j++) {
      int64_t b = j / (R * C), r = j / C % R, q = j % C;
      tmp[k][j] = fo->trans[k] ? src[b * R * C + q * R + r] : src[j];
      if (fo->in_log2[k]) tmp[k][j] *= ldexpf(1.0f, fo->in_log2[k]);
    }
    v[k] = *x, v[k].data = tmp[k], args[k] = &v[k];
  }
  int rc = n->op->eval(ctx, n, args, n->nin, out, n->nout, e);
  if (rc == 0 && fo->out_log2)
    for (int64_t j = 0; j < bp_value_numel(out[0]); j++) ((float *)out[0]->data)[j] *= ldexpf(1.0f, fo->out_log2);
  free(tmp[0]), free(tmp[1]);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s MODEL SCHEDULE D N\n", argv[0]);
    return 2;
  }
  const char *model = argv[1], *sched = argv[2];
  int D = atoi(argv[3]), N = atoi(argv[4]), fails = 0;
  char path[1024], ids_path[1024], tg_path[1024];
  snprintf(path, sizeof path, "%s/%s/train.onnx", BP_MODELS_DIR, model);
  snprintf(ids_path, sizeof ids_path, "%s/%s/%sinput_ids.npy", BP_MODELS_DIR, model, N == 2 ? "" : "pipeline_");
  snprintf(tg_path, sizeof tg_path, "%s/%s/%stargets.npy", BP_MODELS_DIR, model, N == 2 ? "" : "pipeline_");
  bp_err e = {0};
  bp_value ids = {0}, tg = {0};
  if (bp_npy_read(ids_path, &ids, &e) || bp_npy_read(tg_path, &tg, &e)) {
    fprintf(stderr, "%s\n", e.msg);
    return 1;
  }
  if (ids.dims[0] != N) {
    fprintf(stderr, "%s has %lld sequences, the test wants N=%d\n", ids_path, (long long)ids.dims[0], N);
    return 1;
  }
  /* the reference: one training graph over the whole batch */
  bp_graph *g = bp_onnx_load(path, &e);
  bp_train_opts to;
  bp_train_opts_default(&to);
  to.dropout = 0, to.quiet = 1;
  bp_value *given[1] = {&ids};
  bp_trainer *ref = g ? bp_trainer_new(g, given, &tg, NULL, 0, &to, &e) : NULL;
  bp_value *ref_out = ref ? calloc((size_t)ref->g->noutputs, sizeof(bp_value)) : NULL;
  if (!ref || !ref_out || bp_execute(ref->g, &ref->ctx, ref->inputs, ref_out, &e)) {
    fprintf(stderr, "reference: %s\n", e.msg);
    return 1;
  }
  double ref_loss = *(float *)ref_out[0].data;
  /* the stages */
  bp_cg cg;
  if (cg_build(&cg, BP_MODELS_DIR, model, sched, D, N, 1, "uniform", BP_OPT_SGD)) return 1;
  int S = cg.S, np = cg.n_params;
  if (np != ref->nparams) {
    fprintf(stderr, "FAIL: %d parameters in the stages' model, %d in the reference\n", np, ref->nparams);
    return 1;
  }
  double **acc = calloc((size_t)np, sizeof(double *)), **acc2 = calloc((size_t)np, sizeof(double *));
  for (int i = 0; i < np; i++) {
    acc[i] = calloc((size_t)cg.param_numel[i] + 1, sizeof(double));
    acc2[i] = calloc((size_t)cg.param_numel[i] + 1, sizeof(double));
    if (strcmp(cg.t->g->tensors[cg.t->params[i]]->name, ref->g->tensors[ref->params[i]]->name)) {
      fprintf(stderr, "FAIL: parameter %d is '%s' in the stages' model but '%s' in the reference\n", i,
              cg.t->g->tensors[cg.t->params[i]]->name, ref->g->tensors[ref->params[i]]->name);
      return 1;
    }
  }
  int64_t counted_total = 0, *counted = calloc((size_t)N, sizeof(int64_t));
  int64_t T = bp_value_numel(&tg) / N;
  for (int m = 0; m < N; m++)
    for (int64_t k = 0; k < T; k++) counted[m] += ((int64_t *)tg.data)[m * T + k] != -100;
  for (int m = 0; m < N; m++) counted_total += counted[m];
  bp_ctx ctx = {.training = 0};
  double loss = 0;
  run *runs = calloc((size_t)N, sizeof(run));
  printf("%s %s D=%d N=%d: %d stages (layers per stage", model, sched, D, N, S);
  for (int s = 0; s < S; s++) printf(" %s", cg.stages[s].layers);
  printf(")\n");
  for (int m = 0; m < N; m++) {
    bp_value mids = cg_rows(&ids, m, 1), mtg = cg_rows(&tg, m, 1), lw = scalar_f32((float)counted[m] / (float)counted_total);
    bp_value **act = calloc((size_t)S + 1, sizeof(bp_value *)), **gout = calloc((size_t)S + 1, sizeof(bp_value *));
    bp_value *outs = calloc((size_t)S, sizeof(bp_value *));
    (void)outs;
    runs[m].act = act;
    runs[m].out = NULL;
    bp_value **bouts = calloc((size_t)S, sizeof(bp_value *));
    for (int pass = 0; pass < 2; pass++) { /* 0: forward chain (zero seeds), 1: backward chain */
      for (int q = 0; q < S; q++) {
        int s = pass == 0 ? q : S - 1 - q;
        const bp_cg_stage *st = &cg.stages[s];
        const bp_graph *sg = st->g;
        bp_value **in = calloc((size_t)sg->ninputs, sizeof(bp_value *));
        bp_value *zeros = calloc((size_t)sg->ninputs, sizeof(bp_value));
        bp_value *o = calloc((size_t)sg->noutputs, sizeof(bp_value));
        for (int i = 0; i < sg->ninputs; i++) {
          int t = sg->inputs[i];
          for (int k = 0; k < st->n_act_in; k++)
            if (st->act_in[k] == t) in[i] = &act[s - 1][k];
          for (int k = 0; k < st->n_grad_in; k++)
            if (st->grad_in[k] == t) {
              if (pass == 0) zeros[i] = zeros_like(&sg->tensors[t]->v), in[i] = &zeros[i];
              else in[i] = &gout[s + 1][k];
            }
          for (int k = 0; k < st->n_data; k++)
            if (st->data[k].tensor == t) in[i] = st->data[k].kind == BP_DATA_TARGETS ? &mtg : &mids;
          if (t == st->loss_weight) in[i] = &lw;
          if (!in[i]) {
            fprintf(stderr, "FAIL: stage %d input '%s' has no value\n", s, sg->tensors[t]->name);
            return 1;
          }
        }
        if (bp_execute(sg, &ctx, in, o, &e)) {
          fprintf(stderr, "FAIL: stage %d: %s\n", s, e.msg);
          return 1;
        }
        if (pass == 0) {
          act[s] = calloc((size_t)st->n_act_out + 1, sizeof(bp_value));
          for (int k = 0; k < st->n_act_out; k++) act[s][k] = o[out_index(sg, st->act_out[k])], o[out_index(sg, st->act_out[k])].data = NULL;
          for (int i = 0; i < sg->noutputs; i++) free(o[i].data);
          free(o);
        } else {
          gout[s] = calloc((size_t)st->n_grad_out + 1, sizeof(bp_value));
          for (int k = 0; k < st->n_grad_out; k++) {
            int oi = out_index(sg, st->grad_out[k]);
            gout[s][k] = o[oi];
            gout[s][k].data = malloc(bp_value_bytes(&o[oi]) + 1);
            memcpy(gout[s][k].data, o[oi].data, bp_value_bytes(&o[oi]));
          }
          if (st->loss >= 0) loss += (double)*(float *)lw.data * *(float *)o[out_index(sg, st->loss)].data;
          for (int j = 0; j < st->nparams; j++) {
            if (st->params[j].grad < 0) continue;
            const float *gr = o[out_index(sg, st->params[j].grad)].data;
            int gid = st->params[j].global_id;
            for (int64_t x = 0; x < cg.param_numel[gid]; x++) acc[gid][x] += gr[x];
          }
          bouts[s] = o;
        }
        for (int i = 0; i < sg->ninputs; i++) free(zeros[i].data);
        free(zeros), free(in);
      }
    }
    /* keep this micro-batch's executor results for the arena run */
    runs[m].out = (bp_value *)bouts;
    for (int s = 0; s <= S; s++) {
      if (!gout[s]) continue;
      for (int k = 0; k < (s < S ? cg.stages[s].n_grad_out : 0); k++) free(gout[s][k].data);
      free(gout[s]);
    }
    free(gout), free(outs), free(mids.data), free(mtg.data), free(lw.data);
  }
  /* Each gradient relative to its own largest element, except gradients that are zero in exact
   * arithmetic and only rounding noise in float (BERT's key biases: softmax does not change when
   * every score of a row shifts by the same amount): those are measured against a floor of 1e-5
   * of the model's largest gradient element. */
  double dl = fabs(loss - ref_loss) / fabs(ref_loss), worst = 0, gmax = 0;
  const char *worst_name = "";
  int floored = 0;
  for (int i = 0; i < np; i++)
    for (int64_t x = 0; x < cg.param_numel[i]; x++) gmax = fmax(gmax, fabs(((float *)ref_out[i + 1].data)[x]));
  for (int i = 0; i < np; i++) {
    const float *rv = ref_out[i + 1].data;
    int64_t n = cg.param_numel[i];
    double md = 0, mr = 0;
    for (int64_t x = 0; x < n; x++) {
      double dd = fabs(acc[i][x] - (double)rv[x]);
      if (!(dd <= md)) md = dd;
      mr = fmax(mr, fabs((double)rv[x]));
    }
    if (mr < 1e-5 * gmax) mr = 1e-5 * gmax, floored++;
    double d = mr > 0 ? md / mr : md;
    if (!(d <= worst)) worst = d, worst_name = cg.t->g->tensors[cg.t->params[i]]->name;
  }
  printf("  loss %.9g (reference %.9g): relative difference %.3g\n", loss, ref_loss, dl);
  printf("  %d parameter gradients: max relative difference %.3g (%s); %d at the noise floor (1e-5 x %.3g)\n", np,
         worst, worst_name, floored, gmax);
  if (!(dl <= TOL) || !(worst <= TOL)) {
    printf("FAIL: the stages differ from the single training graph by more than %g\n", TOL);
    fails++;
  }
  /* ---- the same micro-batches on the planned arenas ---- */
  int64_t work_bytes = 0;
  for (int s = 0; s < S; s++)
    if (cg.stages[s].work_bytes > work_bytes) work_bytes = cg.stages[s].work_bytes;
  unsigned char *work = malloc((size_t)work_bytes + 64);
  unsigned char **param = calloc((size_t)S, sizeof(void *)), **cnst = calloc((size_t)S, sizeof(void *));
  unsigned char **slot = calloc((size_t)S * N, sizeof(void *));
  for (int s = 0; s < S; s++) {
    const bp_cg_stage *st = &cg.stages[s];
    param[s] = calloc((size_t)st->param_bytes + 64, 1), cnst[s] = calloc((size_t)st->const_bytes + 64, 1);
    for (int t = 0; t < st->g->ntensors; t++) {
      const bp_tensor *tt = st->g->tensors[t];
      if (tt->kind == BP_T_ACTIVATION) continue; /* a view of a parameter / constant shares its bytes */
      if (st->mem[t] == BP_MEM_PARAM) memcpy(param[s] + st->offset[t], tt->v.data, (size_t)st->nbytes[t]);
      if (st->mem[t] == BP_MEM_CONST) memcpy(cnst[s] + st->offset[t], tt->v.data, (size_t)st->nbytes[t]);
    }
    for (int m = 0; m < N; m++) {
      slot[s * N + m] = malloc((size_t)st->slot_bytes + 64);
      memset(slot[s * N + m], 0xff, (size_t)st->slot_bytes + 64); /* NaN: a slot is not zeroed */
    }
  }
  for (int s = 0; s + 1 < S; s++)
    if (cg.stages[s].act_out_range.nbytes != cg.stages[s + 1].act_in_range.nbytes ||
        cg.stages[s].grad_in_range.nbytes != cg.stages[s + 1].grad_out_range.nbytes) {
      printf("FAIL: stage %d's boundary ranges do not match stage %d's\n", s, s + 1);
      return 1;
    }
  double arena_worst = 0;
  long views_skipped = 0, folded_runs = 0;
  /* FWD of every micro-batch, then BWD_INPUT + BWD_WEIGHT of every micro-batch, last stage first */
  for (int phase = 0; phase < 2; phase++)
    for (int m = 0; m < N; m++)
      for (int q = 0; q < S; q++) {
        int s = phase == 0 ? q : S - 1 - q;
        const bp_cg_stage *st = &cg.stages[s];
        const bp_graph *sg = st->g;
        unsigned char *sl = slot[s * N + m];
        bp_value *vals = calloc((size_t)sg->ntensors, sizeof(bp_value));
        for (int t = 0; t < sg->ntensors; t++) {
          unsigned char *base = st->mem[t] == BP_MEM_PARAM ? param[s] : st->mem[t] == BP_MEM_CONST ? cnst[s]
                                : st->mem[t] == BP_MEM_SLOT ? sl : work;
          vals[t] = sg->tensors[t]->v;
          vals[t].data = base + st->offset[t];
        }
        if (phase == 0) { /* the data loader and the receive */
          for (int k = 0; k < st->n_data; k++) {
            bp_value src = cg_rows(st->data[k].kind == BP_DATA_TARGETS ? &tg : &ids, m, 1);
            memcpy(vals[st->data[k].tensor].data, src.data, bp_value_bytes(&src));
            free(src.data);
          }
          if (s > 0)
            memcpy(sl + st->act_in_range.offset, slot[(s - 1) * N + m] + cg.stages[s - 1].act_out_range.offset,
                   (size_t)st->act_in_range.nbytes);
          if (st->loss_weight >= 0) *(float *)vals[st->loss_weight].data = (float)counted[m] / (float)counted_total;
        } else if (s + 1 < S) {
          memcpy(sl + st->grad_in_range.offset, slot[(s + 1) * N + m] + cg.stages[s + 1].grad_out_range.offset,
                 (size_t)st->grad_in_range.nbytes);
        }
        int ranges[3][2] = {{0, st->n_forward}, {st->n_forward, st->n_bwd_input}, {st->n_bwd_input, sg->nnodes}};
        for (int h = phase == 0 ? 0 : 1; h <= (phase == 0 ? 0 : 2); h++) {
          memset(work, 0xff, (size_t)work_bytes + 64); /* a new instruction: WORK holds garbage */
          for (int i = ranges[h][0]; i < ranges[h][1]; i++) {
            const bp_node *n = sg->nodes[i];
            const bp_rt_fold *fo = st->folds ? &st->folds[i] : NULL;
            if (fo && fo->view) { /* planned at its input's bytes: does not run */
              views_skipped++;
              continue;
            }
            bp_value *in[64] = {0}, *out[64] = {0};
            for (int k = 0; k < n->nin; k++) in[k] = n->in[k] >= 0 ? &vals[n->in[k]] : NULL;
            for (int k = 0; k < n->nout; k++)
              if (n->out[k] >= 0) out[k] = &vals[n->out[k]], memset(out[k]->data, 0, bp_value_bytes(out[k]));
            if (fo && (fo->trans[0] || fo->trans[1] || fo->in_log2[0] || fo->in_log2[1] || fo->out_log2)) folded_runs++;
            if (eval_folded(&ctx, n, fo, in, out, &e) < 0) {
              fprintf(stderr, "FAIL: arena run, stage %d node '%s': %s\n", s, n->name, e.msg);
              return 1;
            }
          }
          if (h == 2) /* the runtime accumulates the per-micro-batch gradients after the weight half */
            for (int j = 0; j < st->nparams; j++) {
              if (st->params[j].grad < 0) continue;
              const float *gr = vals[st->params[j].grad].data;
              int gid = st->params[j].global_id;
              for (int64_t x = 0; x < cg.param_numel[gid]; x++) acc2[gid][x] += gr[x];
            }
        }
        if (phase == 1) { /* compare what stays in the slot with the executor's values */
          bp_value *o = ((bp_value **)runs[m].out)[s];
          for (int i = 0; i < sg->noutputs; i++) {
            int t = sg->outputs[i];
            if (st->mem[t] != BP_MEM_SLOT) continue;
            double d = cg_rel_diff(vals[t].data, o[i].data, bp_value_numel(&o[i]));
            if (!(d <= arena_worst)) arena_worst = d;
            if (!(d <= 1e-6)) printf("  arena run: stage %d micro-batch %d output '%s' differs by %.3g\n", s, m,
                                     sg->tensors[t]->name, d);
          }
        }
        free(vals);
      }
  double acc_worst = 0;
  for (int i = 0; i < np; i++)
    for (int64_t x = 0; x < cg.param_numel[i]; x++) {
      double d = fabs(acc[i][x] - acc2[i][x]) / (fabs(acc[i][x]) + 1e-12);
      if (!(d <= acc_worst) && fabs(acc[i][x] - acc2[i][x]) > 1e-9) acc_worst = d;
    }
  printf("  planned arenas (WORK %lld B shared, poisoned per instruction; %ld view runs skipped, %ld folded MatMul "
         "runs): outputs differ by %.3g, gradients by %.3g\n",
         (long long)work_bytes, views_skipped, folded_runs, arena_worst, acc_worst);
  if (!(arena_worst <= 1e-6) || !(acc_worst <= 1e-6)) {
    printf("FAIL: the planned arenas change the results\n");
    fails++;
  }
  for (int s = 0; s < S; s++) {
    free(param[s]), free(cnst[s]);
    for (int m = 0; m < N; m++) free(slot[s * N + m]);
  }
  free(param), free(cnst), free(slot), free(work);
  for (int m = 0; m < N; m++) {
    bp_value **o = (bp_value **)runs[m].out;
    for (int s = 0; s < S; s++) {
      for (int i = 0; i < cg.stages[s].g->noutputs; i++) free(o[s][i].data);
      free(o[s]);
      for (int k = 0; runs[m].act[s] && k < cg.stages[s].n_act_out; k++) free(runs[m].act[s][k].data);
      free(runs[m].act[s]);
    }
    free(o), free(runs[m].act);
  }
  free(runs);
  for (int i = 0; i < np; i++) free(acc[i]), free(acc2[i]);
  free(acc), free(acc2), free(counted);
  for (int i = 0; i < ref->g->noutputs; i++) free(ref_out[i].data);
  free(ref_out);
  bp_trainer_free(ref);
  bp_cg_free(&cg);
  free(ids.data), free(tg.data);
  printf("%s\n", fails ? "FAIL" : "ok");
  return fails ? 1 : 0;
}
