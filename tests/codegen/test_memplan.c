/* tests/codegen/test_memplan.c — the memory plan, checked exhaustively.
 *
 * usage: test_codegen_memplan MODEL SCHEDULE D N
 *
 * For every stage, lifetimes are re-derived here from the stage graph and runtime/plan.h's rules
 * (inputs and the four boundary lists live over the whole slot; the loss and the parameter
 * gradients until the runtime reads them; everything else from its producer to its last reader),
 * then every pair of tensors of an arena is checked: SLOT and WORK tensors that are live at the
 * same time must not share a byte, PARAM and CONST tensors never. Also: every tensor inside its
 * arena and 64-byte aligned; WORK tensors produced and read within one half; the boundary lists
 * contiguous in list order and laid out the same on both sides of every cut; the arena sizes equal
 * the highest planned end and are at least the most bytes live at once (the lower bound any
 * placement needs), printed side by side. Finally the checker itself is shown to catch an overlap:
 * one WORK tensor moved onto another that is live with it must be reported.
 *
 * Views (bp_rt_fold.view: the node does not run, its output shares its input's bytes) form groups
 * around a root; the members of a group may share bytes (nothing writes a member: its node does
 * not run), a member must sit exactly at its root's bytes, and a WORK group must live within one
 * half. Everything else is checked per tensor as before, with each member's own lifetime, so no
 * tensor outside the group may touch its bytes while any member is live. */
#include "cg_util.h"

static int half_of(const bp_cg_stage *st, int pos) { return pos < st->n_forward ? 0 : pos < st->n_bwd_input ? 1 : 2; }

/* Lifetimes by the rules above, independent of memplan.c's code. */
static void lifetimes(const bp_cg_stage *st, int *b, int *en) {
  const bp_graph *g = st->g;
  int nt = g->ntensors, nn = g->nnodes;
  for (int t = 0; t < nt; t++) {
    const bp_tensor *tt = g->tensors[t];
    b[t] = tt->kind == BP_T_ACTIVATION ? tt->producer : -1;
    en[t] = b[t];
    if (tt->kind != BP_T_ACTIVATION) en[t] = nn; /* inputs, weights, constants */
  }
  for (int i = 0; i < nn; i++)
    for (int k = 0; k < g->nodes[i]->nin; k++) {
      int t = g->nodes[i]->in[k];
      if (t >= 0 && i > en[t]) en[t] = i;
    }
  const int *lists[4] = {st->act_in, st->act_out, st->grad_in, st->grad_out};
  const int nlist[4] = {st->n_act_in, st->n_act_out, st->n_grad_in, st->n_grad_out};
  for (int l = 0; l < 4; l++)
    for (int k = 0; k < nlist[l]; k++) b[lists[l][k]] = -1, en[lists[l][k]] = nn;
  if (st->loss >= 0) en[st->loss] = nn;
  for (int j = 0; j < st->nparams; j++) {
    int gr = st->params[j].grad;
    if (gr < 0) continue;
    int p = g->tensors[gr]->producer;
    int end = p < st->n_bwd_input ? nn : nn - 1;
    if (end > en[gr]) en[gr] = end;
  }
}

/* grp[t]: the root of t's view group (t itself when t is no view's output), from the fold table. */
static void groups(const bp_cg_stage *st, int *grp) {
  const bp_graph *g = st->g;
  for (int t = 0; t < g->ntensors; t++) grp[t] = t;
  for (int i = 0; st->folds && i < g->nnodes; i++)
    if (st->folds[i].view) grp[g->nodes[i]->out[0]] = grp[g->nodes[i]->in[st->folds[i].view_in]];
}

/* Returns the number of problems found (printing the first few). */
static int check_stage(const bp_cg_stage *st, int verbose) {
  const bp_graph *g = st->g;
  int nt = g->ntensors, bad = 0;
  int *b = malloc(sizeof(int) * (size_t)nt), *en = malloc(sizeof(int) * (size_t)nt), *grp = malloc(sizeof(int) * (size_t)nt);
  lifetimes(st, b, en);
  groups(st, grp);
#define BAD(...)                                                                                                       \
  do {                                                                                                                 \
    if (verbose && bad < 5) printf("  stage %d: ", st->index), printf(__VA_ARGS__), printf("\n");                      \
    bad++;                                                                                                             \
  } while (0)
  const int64_t size[4] = {st->param_bytes, st->const_bytes, st->slot_bytes, st->work_bytes};
  int64_t top[4] = {0};
  for (int t = 0; t < nt; t++) {
    int m = st->mem[t];
    if (st->offset[t] % 64) BAD("'%s' at offset %lld is not 64-byte aligned", g->tensors[t]->name, (long long)st->offset[t]);
    if (st->offset[t] < 0 || st->offset[t] + st->nbytes[t] > size[m])
      BAD("'%s' [%lld, +%lld) is outside its arena of %lld bytes", g->tensors[t]->name, (long long)st->offset[t],
          (long long)st->nbytes[t], (long long)size[m]);
    if (st->nbytes[t] > 0 && st->offset[t] + st->nbytes[t] > top[m]) top[m] = st->offset[t] + st->nbytes[t];
    if (m == BP_MEM_WORK) {
      int h = half_of(st, b[t]);
      if (b[t] < 0 || half_of(st, en[t]) != h) BAD("WORK tensor '%s' lives across halves [%d, %d]", g->tensors[t]->name, b[t], en[t]);
    }
    if (g->tensors[t]->kind == BP_T_INPUT && m != BP_MEM_SLOT) BAD("input '%s' is not in the slot", g->tensors[t]->name);
    int r = grp[t];
    if (r != t && (st->mem[r] != m || st->offset[r] != st->offset[t] || st->nbytes[t] > st->nbytes[r]))
      BAD("view '%s' is not at its root '%s''s bytes", g->tensors[t]->name, g->tensors[r]->name);
    if (r != t && m == BP_MEM_WORK && half_of(st, b[t]) != half_of(st, b[r]))
      BAD("WORK view '%s' is read in another half than its root '%s' was made", g->tensors[t]->name, g->tensors[r]->name);
  }
  for (int m = 0; m < 4; m++)
    if ((top[m] + 63) / 64 * 64 != size[m])
      BAD("arena %d is %lld bytes but its tensors end at %lld", m, (long long)size[m], (long long)top[m]);
  /* the exhaustive pairwise check */
  for (int i = 0; i < nt; i++)
    for (int j = i + 1; j < nt; j++) {
      if (st->mem[i] != st->mem[j] || !st->nbytes[i] || !st->nbytes[j] || grp[i] == grp[j]) continue;
      int m = st->mem[i];
      int live = m == BP_MEM_PARAM || m == BP_MEM_CONST || (b[i] <= en[j] && b[j] <= en[i]);
      if (m == BP_MEM_WORK && live && half_of(st, b[i]) != half_of(st, b[j])) live = 0; /* different instructions */
      if (!live) continue;
      if (st->offset[i] < st->offset[j] + st->nbytes[j] && st->offset[j] < st->offset[i] + st->nbytes[i])
        BAD("'%s' [%lld, +%lld) live [%d, %d] overlaps '%s' [%lld, +%lld) live [%d, %d]", g->tensors[i]->name,
            (long long)st->offset[i], (long long)st->nbytes[i], b[i], en[i], g->tensors[j]->name,
            (long long)st->offset[j], (long long)st->nbytes[j], b[j], en[j]);
    }
  /* boundary lists: contiguous, in list order */
  const int *lists[4] = {st->act_in, st->act_out, st->grad_in, st->grad_out};
  const int nlist[4] = {st->n_act_in, st->n_act_out, st->n_grad_in, st->n_grad_out};
  const bp_rt_range *rg[4] = {&st->act_in_range, &st->act_out_range, &st->grad_in_range, &st->grad_out_range};
  for (int l = 0; l < 4; l++) {
    int64_t prev_end = rg[l]->offset;
    for (int k = 0; k < nlist[l]; k++) {
      int t = lists[l][k];
      if (st->mem[t] != BP_MEM_SLOT) BAD("boundary tensor '%s' is not in the slot", g->tensors[t]->name);
      if (st->offset[t] < prev_end || st->offset[t] - prev_end >= 64 || (k == 0 && st->offset[t] != rg[l]->offset))
        BAD("boundary list %d: '%s' at %lld does not follow the previous end %lld", l, g->tensors[t]->name,
            (long long)st->offset[t], (long long)prev_end);
      prev_end = st->offset[t] + st->nbytes[t];
    }
    if (prev_end != rg[l]->offset + rg[l]->nbytes) BAD("boundary list %d: the range does not end at its last tensor", l);
  }
  free(b), free(en), free(grp);
  return bad;
}

static int same_layout(const bp_cg_stage *a, const int *la, int na, const bp_rt_range *ra, const bp_cg_stage *b,
                       const int *lb, int nb, const bp_rt_range *rb) {
  if (na != nb || ra->nbytes != rb->nbytes) return 0;
  for (int k = 0; k < na; k++) {
    const bp_value *x = &a->g->tensors[la[k]]->v, *y = &b->g->tensors[lb[k]]->v;
    if (x->dtype != y->dtype || !bp_same_shape(x, y) || a->offset[la[k]] - ra->offset != b->offset[lb[k]] - rb->offset)
      return 0;
  }
  return 1;
}

/* The most bytes live at once in an arena, from the lifetimes above (a view group counted once,
 * over the union of its members' lifetimes). */
static int64_t live_peak(const bp_cg_stage *st, int arena) {
  const bp_graph *g = st->g;
  int nt = g->ntensors, nn = g->nnodes;
  int *b = malloc(sizeof(int) * (size_t)nt), *en = malloc(sizeof(int) * (size_t)nt), *grp = malloc(sizeof(int) * (size_t)nt);
  lifetimes(st, b, en);
  groups(st, grp);
  for (int t = 0; t < nt; t++) {
    int r = grp[t];
    if (r == t) continue;
    if (b[t] < b[r]) b[r] = b[t];
    if (en[t] > en[r]) en[r] = en[t];
    b[t] = 0, en[t] = -1; /* counted with the root */
  }
  int64_t best = 0;
  for (int p = -1; p <= nn; p++) {
    int64_t live = 0;
    for (int t = 0; t < nt; t++)
      if (st->mem[t] == arena && b[t] <= p && p <= en[t] &&
          (arena != BP_MEM_WORK || half_of(st, b[t]) == half_of(st, p)))
        live += st->nbytes[t];
    if (live > best) best = live;
  }
  free(b), free(en), free(grp);
  return best;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s MODEL SCHEDULE D N\n", argv[0]);
    return 2;
  }
  bp_cg cg;
  if (cg_build(&cg, BP_MODELS_DIR, argv[1], argv[2], atoi(argv[3]), atoi(argv[4]), 1, "uniform", BP_OPT_ADAMW)) return 1;
  int fails = 0;
  printf("%s %s D=%s N=%s: memory plan per stage (bytes; lower bound = most bytes live at once)\n", argv[1], argv[2],
         argv[3], argv[4]);
  printf("stage  layers                 tensors  nodes  fwd/in/w      PARAM     CONST   SLOT (bound)      WORK (bound)\n");
  for (int s = 0; s < cg.S; s++) {
    const bp_cg_stage *st = &cg.stages[s];
    int bad = check_stage(st, 1);
    int64_t sl = live_peak(st, BP_MEM_SLOT), wl = live_peak(st, BP_MEM_WORK);
    printf("%5d  %-22s %7d %6d  %3d/%3d/%3d %9lld %9lld %7lld (%7lld) %7lld (%7lld)  views %d, folded MatMuls %d\n", s,
           st->layers, st->g->ntensors, st->g->nnodes, st->n_forward, st->n_bwd_input - st->n_forward,
           st->g->nnodes - st->n_bwd_input, (long long)st->param_bytes, (long long)st->const_bytes,
           (long long)st->slot_bytes, (long long)sl, (long long)st->work_bytes, (long long)wl, st->n_views, st->n_folds);
    if (st->slot_bytes < sl || st->work_bytes < wl) printf("  stage %d: an arena is smaller than the bytes live at once\n", s), bad++;
    if (s + 1 < cg.S) {
      const bp_cg_stage *nx = &cg.stages[s + 1];
      if (!same_layout(st, st->act_out, st->n_act_out, &st->act_out_range, nx, nx->act_in, nx->n_act_in, &nx->act_in_range))
        printf("  stage %d act_out and stage %d act_in differ in layout\n", s, s + 1), bad++;
      if (!same_layout(st, st->grad_in, st->n_grad_in, &st->grad_in_range, nx, nx->grad_out, nx->n_grad_out,
                       &nx->grad_out_range))
        printf("  stage %d grad_in and stage %d grad_out differ in layout\n", s, s + 1), bad++;
    }
    fails += bad;
  }
  printf("planned bytes per rank (AdamW):");
  for (int r = 0; r < cg.prog.D; r++) printf(" %lld", (long long)cg.rank_bytes[r]);
  printf("\n");
  /* the checker catches an overlap: move a WORK tensor onto another one live with it */
  int caught = -1;
  for (int s = 0; s < cg.S && caught < 0; s++) {
    bp_cg_stage *st = &cg.stages[s];
    const bp_graph *g = st->g;
    for (int i = 0; i < g->nnodes && caught < 0; i++) {
      const bp_node *n = g->nodes[i];
      int a = n->in[0], o = n->out[0];
      if (n->nin < 1 || a < 0 || o < 0 || (st->folds && st->folds[i].view) || st->mem[a] != BP_MEM_WORK || st->mem[o] != BP_MEM_WORK || !st->nbytes[a] ||
          !st->nbytes[o])
        continue;
      int64_t keep = st->offset[o];
      st->offset[o] = st->offset[a];
      caught = check_stage(st, 0) > 0;
      st->offset[o] = keep;
    }
  }
  printf("checker on a planted overlap (a node's output on its input): %s\n",
         caught == 1 ? "reported" : caught == 0 ? "NOT reported" : "no WORK pair found");
  if (caught != 1) fails++;
  bp_cg_free(&cg);
  printf("%s\n", fails ? "FAIL" : "ok");
  return fails ? 1 : 0;
}
