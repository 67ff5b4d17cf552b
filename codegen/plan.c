/* codegen/plan.c — writes the plan file (JSON) next to the program: the model, the schedule, the
 * partition (layers per stage and where each stage's chunks sit), the costs it was made with, the
 * simulator's predicted step time and bubble per rank, and the planned memory per rank and per
 * stage. Every figure says how it was obtained (simulated, analytic, profiled, planned). */
#include "codegen/codegen.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

static void json_num(FILE *f, double x) {
  if (isfinite(x)) fprintf(f, "%.9g", x);
  else fputs("null", f);
}

int bp_cg_write_plan(const bp_cg *cg, const char *path, bp_err *e) {
  FILE *f = fopen(path, "w");
  if (!f) return bp_errf(e, "%s: cannot open for writing", path);
  const bp_program *p = &cg->prog;
  const bp_graph *G = cg->t->g;
  const bp_train_opts *to = &cg->o.train;
  int S = cg->S, D = p->D, C = p->chunks_per_rank;
  char buf[1024];
  fputs("{\n  \"model\": ", f);
  json_str(f, cg->o.model);
  fputs(",\n  \"producer\": ", f);
  json_str(f, G->producer);
  fprintf(f, ",\n  \"fingerprint\": \"%016" PRIx64 "\",\n", cg->fingerprint);
  int T = cg->token_input >= 0 ? (int)(bp_value_numel(&G->tensors[cg->token_input]->v) / cg->o.micro_batch) : 0;
  fprintf(f, "  \"D\": %d, \"N\": %d, \"micro_batch\": %d, \"seq\": %d,\n", D, p->N, cg->o.micro_batch, T);
  fputs("  \"schedule\": ", f);
  json_str(f, p->schedule);
  fprintf(f, ", \"n_stages\": %d, \"n_pipes\": %d, \"chunks_per_rank\": %d, \"split_backward\": %s,\n", S, p->n_pipes, C,
          p->split_backward ? "true" : "false");
  fprintf(f, "  \"loss\": \"%s\", \"optimizer\": \"%s\", \"lr\": ", to->loss == BP_LOSS_MSE ? "mse" : "ce",
          to->optimizer == BP_OPT_ADAMW ? "adamw" : "sgd");
  json_num(f, to->lr);
  fprintf(f, ", \"dropout\": %s,\n", to->dropout ? "true" : "false");
  fprintf(f, "  \"trainable_parameters\": %d, \"parameter_elements\": ", cg->n_params);
  int64_t pel = 0;
  for (int i = 0; i < cg->n_params; i++) pel += cg->param_numel[i];
  fprintf(f, "%" PRId64 ", \"flops_per_token\": ", pel);
  json_num(f, cg->flops_per_token);
  fputs(",\n  \"costs\": {\"source\": ", f);
  json_str(f, cg->lc.source);
  fprintf(f, ", \"layer_granularity\": \"%s\", \"layers\": [", cg->gran == BP_LAYERS_FINE ? "fine" : "block");
  for (int l = 0; l < cg->L; l++) {
    const bp_lcost *x = &cg->lc.l[l];
    fprintf(f, "%s\n    {\"name\": ", l ? "," : "");
    json_str(f, x->name);
    fputs(", \"fwd_s\": ", f), json_num(f, x->fwd);
    fputs(", \"bwd_s\": ", f), json_num(f, x->bwd);
    fputs(", \"param_bytes\": ", f), json_num(f, x->param_bytes);
    fputs(", \"act_bytes\": ", f), json_num(f, x->act_bytes);
    fputs(", \"out_bytes\": ", f), json_num(f, x->out_bytes);
    fputs("}", f);
  }
  fputs("]},\n  \"partition\": {\"method\": ", f);
  json_str(f, cg->o.partition ? cg->o.partition : "auto");
  fputs(", \"layers_per_stage\": ", f);
  json_str(f, bp_part_format(cg->first, S, buf, sizeof buf));
  if (cg->used_ilp) {
    fputs(", \"solver\": {\"name\": \"glpk glp_intopt\", \"proxy_s\": ", f);
    json_num(f, cg->ilp.obj);
    fputs(", \"bound_s\": ", f), json_num(f, cg->ilp.bound);
    fprintf(f, ", \"timed_out\": %s}", cg->ilp.timed_out ? "true" : "false");
  }
  fputs(", \"proxy_s\": ", f);
  json_num(f, cg->ev.proxy);
  fputs(", \"stages\": [", f);
  for (int s = 0; s < S; s++) {
    const bp_cg_stage *st = &cg->stages[s];
    fprintf(f, "%s\n    {\"stage\": %d, \"layers\": [%d, %d], \"names\": ", s ? "," : "", s, st->layer_begin,
            st->layer_end - 1);
    json_str(f, st->layers);
    fputs(", \"ranks\": [", f);
    for (int q = 0; q < p->n_pipes; q++)
      fprintf(f, "%s{\"pipe\": %d, \"rank\": %d, \"chunk\": %d}", q ? ", " : "", q, p->stage_rank[q * S + s],
              p->stage_chunk[q * S + s]);
    fprintf(f, "], \"tensors\": %d, \"nodes\": %d, \"forward_nodes\": %d, \"input_half_nodes\": %d, "
               "\"weight_half_nodes\": %d,\n     \"act_in\": %d, \"act_out\": %d, \"params\": %d, \"param_bytes\": %" PRId64
               ", \"const_bytes\": %" PRId64 ", \"slot_bytes\": %" PRId64 ", \"slot_bytes_lower_bound\": %" PRId64
               ", \"work_bytes\": %" PRId64 ", \"work_bytes_lower_bound\": %" PRId64 ", \"act_out_bytes\": %" PRId64
               ",\n     \"view_nodes\": %d, \"folded_matmuls\": %d}",
            st->g->ntensors, st->g->nnodes, st->n_forward, st->n_bwd_input - st->n_forward,
            st->g->nnodes - st->n_bwd_input, st->n_act_in, st->n_act_out, st->nparams, st->param_bytes, st->const_bytes,
            st->slot_bytes, st->slot_lower_bound, st->work_bytes, st->work_lower_bound, st->act_out_range.nbytes,
            st->n_views, st->n_folds);
  }
  fputs("]},\n  \"predicted\": {\"how\": \"simulated (partitioner/simulate.h) with the costs above, one cost row per stage\", "
        "\"step_time_s\": ", f);
  json_num(f, cg->pred_step_s);
  fputs(", \"bubble_per_rank\": [", f);
  for (int r = 0; r < D; r++) fputs(r ? ", " : "", f), json_num(f, cg->pred_bubble[r]);
  fputs("], \"load_per_rank_s\": [", f);
  for (int r = 0; r < D; r++) fputs(r ? ", " : "", f), json_num(f, cg->ev.load[r]);
  fputs("]},\n  \"memory\": {\"how\": \"planned: per chunk param_bytes x (2 + optimizer states) + const_bytes + slots x "
        "slot_bytes, plus the largest work_bytes (runtime/plan.h)\", \"bytes_per_rank\": [", f);
  for (int r = 0; r < D; r++) fprintf(f, "%s%" PRId64, r ? ", " : "", cg->rank_bytes[r]);
  fputs("], \"chunks\": [", f);
  for (int r = 0; r < D; r++) {
    fprintf(f, "%s\n    [", r ? "," : "");
    for (int c = 0; c < C; c++) {
      const bp_chunk *ch = bp_program_chunk(p, r, c);
      fprintf(f, "%s{\"chunk\": %d, \"pipe\": %d, \"stage\": %d, \"slots\": %d}", c ? ", " : "", c, ch->pipe, ch->stage,
              cg->chunk_slots[r * C + c]);
    }
    fputs("]", f);
  }
  fprintf(f, "], \"weights_file_bytes\": %" PRId64 "}\n}\n", cg->weights_bytes);
  int rc = ferror(f) ? -1 : 0;
  if (fclose(f) != 0) rc = -1;
  return rc ? bp_errf(e, "%s: write error", path) : 0;
}
