/* codegen/fingerprint.c — the plan's fingerprint: a 64-bit FNV-1a hash of everything the program,
 * its weights file and its checkpoints must agree on (the schedule program, every stage's tensors
 * with their arenas and offsets, its nodes, its parameters, the arena sizes and weights offsets,
 * the parameter table). Weight values are not hashed: training changes them. */
#include "codegen/codegen.h"

#include <string.h>

static uint64_t h_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
  return h;
}
static uint64_t h_i64(uint64_t h, int64_t v) { return h_bytes(h, &v, sizeof v); }
static uint64_t h_str(uint64_t h, const char *s) { return h_bytes(h, s ? s : "", s ? strlen(s) + 1 : 1); }

uint64_t bp_cg_fingerprint(const bp_cg *cg) {
  uint64_t h = 1469598103934665603ull;
  const bp_program *p = &cg->prog;
  h = h_str(h, p->schedule);
  h = h_i64(h, p->D), h = h_i64(h, p->N), h = h_i64(h, p->n_stages), h = h_i64(h, p->n_pipes);
  h = h_i64(h, p->chunks_per_rank), h = h_i64(h, p->split_backward);
  for (int i = 0; i < p->D * p->chunks_per_rank; i++) h = h_i64(h, p->chunk[i].pipe), h = h_i64(h, p->chunk[i].stage);
  for (int m = 0; m < p->N; m++) h = h_i64(h, p->mb_pipe[m]), h = h_i64(h, p->mb_sample[m]);
  for (int r = 0; r < p->D; r++)
    for (int i = 0; i < p->rank[r].n; i++) {
      const bp_instr *x = &p->rank[r].code[i];
      h = h_i64(h, x->op), h = h_i64(h, x->joined), h = h_i64(h, x->chunk), h = h_i64(h, x->mb), h = h_i64(h, x->peer);
    }
  for (int s = 0; s < cg->S; s++) {
    const bp_cg_stage *st = &cg->stages[s];
    const bp_graph *g = st->g;
    h = h_i64(h, g->ntensors);
    for (int t = 0; t < g->ntensors; t++) {
      const bp_tensor *tt = g->tensors[t];
      h = h_str(h, tt->name);
      h = h_i64(h, tt->v.dtype), h = h_i64(h, tt->v.rank);
      for (int d = 0; d < tt->v.rank; d++) h = h_i64(h, tt->v.dims[d]);
      h = h_i64(h, st->mem[t]), h = h_i64(h, st->offset[t]), h = h_i64(h, st->nbytes[t]);
    }
    h = h_i64(h, g->nnodes), h = h_i64(h, st->n_forward), h = h_i64(h, st->n_bwd_input);
    for (int i = 0; i < g->nnodes; i++) {
      const bp_node *n = g->nodes[i];
      h = h_str(h, n->op_type), h = h_str(h, n->domain);
      for (int k = 0; k < n->nin; k++) h = h_i64(h, n->in[k]);
      for (int k = 0; k < n->nout; k++) h = h_i64(h, n->out[k]);
      if (st->folds) { /* views and folds (memplan.c) */
        const bp_rt_fold *f = &st->folds[i];
        h = h_i64(h, f->view), h = h_i64(h, f->view_in), h = h_i64(h, f->trans[0]), h = h_i64(h, f->trans[1]);
        h = h_i64(h, f->in_log2[0]), h = h_i64(h, f->in_log2[1]), h = h_i64(h, f->out_log2);
      }
    }
    for (int j = 0; j < st->nparams; j++)
      h = h_i64(h, st->params[j].tensor), h = h_i64(h, st->params[j].grad), h = h_i64(h, st->params[j].global_id);
    h = h_i64(h, st->param_bytes), h = h_i64(h, st->const_bytes), h = h_i64(h, st->slot_bytes);
    h = h_i64(h, st->work_bytes), h = h_i64(h, st->weights_offset);
  }
  for (int i = 0; i < cg->n_params; i++) h = h_str(h, cg->t->g->tensors[cg->t->params[i]]->name), h = h_i64(h, cg->param_numel[i]);
  return h;
}
