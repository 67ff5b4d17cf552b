/* codegen/memplan.c — the memory plan of a stage: every tensor's arena (runtime/plan.h's PARAM,
 * CONST, SLOT, WORK) and its byte offset there, by liveness.
 *
 * Classes:
 *   PARAM  the stage's trainable parameters (tied ones — held by several stages — last, so the
 *          runtime's eager all-reduce covers one contiguous prefix of untied gradient bytes);
 *   CONST  constants and frozen initializers;
 *   SLOT   what lives across compute instructions of one micro-batch: the inputs (act_in, data,
 *          grad_in, loss_weight), act_out, grad_out, the loss, the stash (forward tensors the
 *          backward reads), what the weight half reads from the input half, and the parameter
 *          gradients produced before the weight half (the runtime accumulates them after it);
 *   WORK   the rest: produced and consumed within one half.
 * Lifetimes are intervals of node positions in the stage's order (forward | input half | weight
 * half), -1 meaning before the first node and nnodes after the last. Transfers are asynchronous
 * (runtime/plan.h): a receive may land in act_in / grad_in whenever the slot is held and a send
 * reads act_out / grad_out until the slot is given back, so the four boundary lists, the data
 * inputs and loss_weight (written by the runtime) live over the whole slot, [-1, nnodes]. The loss
 * and SLOT parameter gradients live from their producer to nnodes (the runtime reads them after
 * the last node); a WORK parameter gradient to the end of its half (accumulated when the
 * instruction ends); everything else from its producer to its last reader.
 * Placement: the boundary lists (act_in, act_out, grad_in, grad_out) are each one block whose
 * members sit in list order at 64-byte aligned offsets (a message is one contiguous range, and the
 * two sides of a boundary lay out the same list the same way). Blocks and single tensors are then
 * placed largest first, each at the best-fitting 64-byte aligned gap among the already placed ones
 * whose lifetimes overlap its own (TFLite's greedy-by-size). The arena's size is the highest end.
 *
 * Views (frontend/mmfold.c): a node that only relabels its input's bytes (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, a Cast to the same dtype; with folds on also a Transpose of the last two
 * dims read only by MatMuls, and a Mul by a power-of-two scalar folded into the MatMuls next to
 * it) does not run: its output is placed at its input's offset, in its input's arena. A chain of
 * views forms one group around its root (the tensor that owns the bytes: an activation, an input,
 * a boundary tensor, or a parameter / constant); the group is placed as one item whose lifetime is
 * the union of its members' (from the root's producer to the last read of any member), so the
 * liveness proof is the same as for one tensor: no other tensor shares those bytes while any
 * member is live. Views are never made of what must hold bytes of its own: the four boundary
 * lists, the loss, parameter gradients and the stage graph's outputs (frontend/mmfold.c's `keep`),
 * and a Dropout is never a view (./train --dropout decides at run time). The decisions go to the
 * generated node table (bp_rt_fold, runtime/plan.h): views do not run, MatMuls apply the folds.
 * BP_CG_FOLD=0 at compile time: no views, no folds (the plan as without them); BP_CUDA_FOLD=0:
 * views only, as the CUDA executor. */
#include "codegen/codegen.h"

#include "frontend/mmfold.h"

#include <math.h>

#include <stdlib.h>
#include <string.h>

#define ALIGN 64
static int64_t align_up(int64_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

typedef struct item {
  int64_t size, offset;
  int begin, end;
  int arena;   /* BP_MEM_SLOT or BP_MEM_WORK */
  int tensor;  /* a single tensor, or -1 for a block */
  int block;   /* 0..3 for a block */
} item;

static int cmp_item(const void *a, const void *b) {
  const item *x = a, *y = b;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->tensor < y->tensor ? -1 : x->tensor > y->tensor;
}

typedef struct placed {
  int64_t offset, size;
} placed;

static int cmp_placed(const void *a, const void *b) {
  const placed *x = a, *y = b;
  return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Places items[0..n) (sorted) of one arena; returns the arena's size. */
static int64_t place(item *it, int n, int arena, bp_err *e, int *fail) {
  placed *ov = malloc(sizeof(placed) * ((size_t)n + 1));
  int64_t top = 0;
  if (!ov) {
    *fail = bp_errf(e, "out of memory");
    return 0;
  }
  for (int i = 0; i < n; i++) {
    item *x = &it[i];
    if (x->arena != arena) continue;
    int k = 0;
    for (int j = 0; j < i; j++) {
      const item *y = &it[j];
      if (y->arena == arena && y->size > 0 && y->begin <= x->end && x->begin <= y->end) ov[k++] = (placed){y->offset, y->size};
    }
    qsort(ov, (size_t)k, sizeof(placed), cmp_placed);
    int64_t cur = 0, best = -1, best_waste = -1;
    for (int j = 0; j < k; j++) {
      if (ov[j].offset >= cur && ov[j].offset - cur >= x->size) {
        int64_t waste = ov[j].offset - cur - x->size;
        if (best < 0 || waste < best_waste) best = cur, best_waste = waste;
      }
      int64_t end = align_up(ov[j].offset + ov[j].size);
      if (end > cur) cur = end;
    }
    x->offset = best >= 0 ? best : cur;
    if (x->offset + x->size > top) top = x->offset + x->size;
  }
  free(ov);
  return align_up(top);
}

/* The most bytes live at once in an arena (what any placement needs at least). */
static int64_t lower_bound(const item *it, int n, int arena, int nn) {
  int64_t best = 0;
  for (int p = -1; p <= nn; p++) {
    int64_t live = 0;
    for (int i = 0; i < n; i++)
      if (it[i].arena == arena && it[i].begin <= p && p <= it[i].end) live += it[i].size;
    if (live > best) best = live;
  }
  return best;
}

/* log2 of a positive power of two (frontend/mmfold.c folds only those) */
static int log2_of(float x) {
  int ex;
  frexpf(x, &ex);
  return ex - 1;
}

/* The views and folds of the stage (see the top): st->folds, root[t] (the tensor whose bytes t
 * shares; t itself when none). keep[t]: t must hold bytes of its own. */
static int plan_views(bp_cg_stage *st, const unsigned char *keep, int *root, bp_err *e) {
  const bp_graph *g = st->g;
  const char *cf = getenv("BP_CG_FOLD"), *cu = getenv("BP_CUDA_FOLD");
  int views = !(cf && !strcmp(cf, "0")), folds = views && !(cu && !strcmp(cu, "0"));
  free(st->folds);
  st->folds = NULL;
  st->n_views = st->n_folds = 0;
  for (int t = 0; t < g->ntensors; t++) root[t] = t;
  if (!views) return 0;
  bp_fold_plan fp;
  if (bp_fold_analyse(g, keep, folds, &fp, e)) return -1;
  bp_rt_fold *f = calloc((size_t)g->nnodes + 1, sizeof *f);
  if (!f) {
    bp_fold_free(&fp);
    return bp_errf(e, "out of memory");
  }
  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    int v = fp.view[i];
    if (v == BP_FOLD_VIEW || v == BP_FOLD_VIEW_SCALED || v == BP_FOLD_VIEW_TRANS) {
      int x = n->in[fp.view_in[i]], y = n->out[0];
      root[y] = root[x];
      f[i].view = 1, f[i].view_in = (uint8_t)fp.view_in[i];
      st->n_views++;
    }
    if (!fp.is_mm[i]) continue;
    int any = 0;
    for (int k = 0; k < 2 && k < n->nin; k++) {
      int t = n->in[k];
      if (t < 0) continue;
      f[i].trans[k] = fp.ttrans[t];
      f[i].in_log2[k] = (int8_t)log2_of(fp.tscale[t]);
      any |= f[i].trans[k] || f[i].in_log2[k];
      if (log2_of(fp.tscale[t]) != f[i].in_log2[k]) any = -1;
    }
    f[i].out_log2 = (int8_t)log2_of(fp.oscale[i]);
    if (log2_of(fp.oscale[i]) != f[i].out_log2) any = -1;
    if (any < 0) {
      bp_fold_free(&fp);
      free(f);
      return bp_errf(e, "stage %d node '%s': a folded scale is out of the plan's range", st->index, n->name);
    }
    st->n_folds += any || f[i].out_log2;
  }
  bp_fold_free(&fp);
  if (st->n_views || st->n_folds) st->folds = f;
  else free(f);
  return 0;
}

int bp_cg_plan_stage(bp_cg_stage *st, bp_err *e) {
  const bp_graph *g = st->g;
  int nt = g->ntensors, nn = g->nnodes, rc = -1;
  free(st->mem), free(st->offset), free(st->nbytes), free(st->live_begin), free(st->live_end);
  st->mem = calloc((size_t)nt + 1, 1);
  st->offset = calloc((size_t)nt + 1, sizeof(int64_t)), st->nbytes = calloc((size_t)nt + 1, sizeof(int64_t));
  st->live_begin = malloc(sizeof(int) * ((size_t)nt + 1)), st->live_end = malloc(sizeof(int) * ((size_t)nt + 1));
  int *last = malloc(sizeof(int) * ((size_t)nt + 1)), *block = malloc(sizeof(int) * ((size_t)nt + 1));
  unsigned char *role = calloc((size_t)nt + 1, 1); /* 1 param, 2 pinned to the end, 4 slot param grad, 8 work param grad */
  item *it = malloc(sizeof(item) * ((size_t)nt + 8));
  int64_t *inner = calloc((size_t)nt + 1, sizeof(int64_t)); /* offset within its block */
  int *root = malloc(sizeof(int) * ((size_t)nt + 1)), *ext = malloc(sizeof(int) * ((size_t)nt + 1));
  unsigned char *keep = calloc((size_t)nt + 1, 1);
  if (!st->mem || !st->offset || !st->nbytes || !st->live_begin || !st->live_end || !last || !block || !role || !it ||
      !inner || !root || !ext || !keep) {
    bp_errf(e, "out of memory");
    goto done;
  }
  for (int t = 0; t < nt; t++) last[t] = -1, block[t] = -1, st->nbytes[t] = (int64_t)bp_value_bytes(&g->tensors[t]->v);
  for (int i = 0; i < nn; i++)
    for (int k = 0; k < g->nodes[i]->nin; k++)
      if (g->nodes[i]->in[k] >= 0) last[g->nodes[i]->in[k]] = i;
  for (int j = 0; j < st->nparams; j++) {
    role[st->params[j].tensor] |= 1;
    int gr = st->params[j].grad;
    if (gr < 0) continue;
    int p = g->tensors[gr]->producer;
    role[gr] |= p < st->n_bwd_input ? 4 : 8;
  }
  for (int k = 0; k < st->n_act_out; k++) role[st->act_out[k]] |= 2;
  for (int k = 0; k < st->n_grad_out; k++) role[st->grad_out[k]] |= 2;
  if (st->loss >= 0) role[st->loss] |= 2;
  const int *lists[4] = {st->act_in, st->act_out, st->grad_in, st->grad_out};
  const int nlist[4] = {st->n_act_in, st->n_act_out, st->n_grad_in, st->n_grad_out};
  for (int b = 0; b < 4; b++)
    for (int k = 0; k < nlist[b]; k++) {
      if (block[lists[b][k]] >= 0) {
        bp_errf(e, "internal: stage %d: '%s' is in two boundary lists", st->index, g->tensors[lists[b][k]]->name);
        goto done;
      }
      block[lists[b][k]] = b;
    }
  /* views: a member of a group (root[t] != t) is placed with its root, which lives until the last
   * read of any member (ext) */
  for (int i = 0; i < g->noutputs; i++) keep[g->outputs[i]] = 1;
  for (int t = 0; t < nt; t++)
    if ((role[t] & (2 | 4 | 8)) || block[t] >= 0) keep[t] = 1;
  if (plan_views(st, keep, root, e)) goto done;
  for (int t = 0; t < nt; t++) ext[t] = -2;
  for (int t = 0; t < nt; t++) {
    if (root[t] == t) continue;
    int def = g->tensors[t]->producer, en = last[t] > def ? last[t] : def;
    if (en > ext[root[t]]) ext[root[t]] = en;
  }
  /* classes and lifetimes */
  int64_t pbytes = 0, cbytes = 0;
  for (int t = 0; t < nt; t++) {
    const bp_tensor *tt = g->tensors[t];
    if (root[t] != t) continue; /* placed with its root (below) */
    int def = tt->kind == BP_T_ACTIVATION ? tt->producer : -1;
    int b = def, en = last[t] > def ? last[t] : def;
    if (ext[t] > en) en = ext[t];
    if (role[t] & 1) {
      st->mem[t] = BP_MEM_PARAM;
      continue; /* laid out below, in the parameter order */
    }
    if (tt->kind == BP_T_INITIALIZER || tt->kind == BP_T_CONSTANT) {
      st->mem[t] = BP_MEM_CONST;
      st->offset[t] = cbytes;
      cbytes = align_up(cbytes + st->nbytes[t]);
      st->live_begin[t] = -1, st->live_end[t] = nn;
      continue;
    }
    if (tt->kind == BP_T_ACTIVATION && def < 0) {
      bp_errf(e, "internal: stage %d: '%s' has no producer", st->index, tt->name);
      goto done;
    }
    int half_def = def < st->n_forward ? 0 : def < st->n_bwd_input ? 1 : 2;
    int half_last = en < st->n_forward ? 0 : en < st->n_bwd_input ? 1 : 2;
    int slot = tt->kind == BP_T_INPUT || (role[t] & (2 | 4)) || half_last != half_def;
    if ((role[t] & (2 | 4)) || tt->kind == BP_T_INPUT) en = nn;
    if (block[t] >= 0) b = -1, en = nn; /* the whole slot: transfers are asynchronous */
    else if (role[t] & 8) {
      int wend = st->n_bwd_input <= def ? nn - 1 : st->n_bwd_input - 1;
      if (wend > en) en = wend;
    }
    st->mem[t] = slot ? BP_MEM_SLOT : BP_MEM_WORK;
    st->live_begin[t] = b, st->live_end[t] = en;
  }
  for (int j = 0; j < st->nparams; j++) {
    int t = st->params[j].tensor;
    st->offset[t] = pbytes;
    pbytes = align_up(pbytes + st->nbytes[t]);
    st->live_begin[t] = -1, st->live_end[t] = nn;
  }
  /* items: four blocks, then single SLOT/WORK tensors */
  int n = 0;
  int64_t bsize[4] = {0};
  for (int b = 0; b < 4; b++) {
    int64_t off = 0;
    for (int k = 0; k < nlist[b]; k++) {
      int t = lists[b][k];
      if (st->mem[t] != BP_MEM_SLOT) {
        bp_errf(e, "internal: stage %d: boundary tensor '%s' is not in the slot", st->index, g->tensors[t]->name);
        goto done;
      }
      off = align_up(off);
      inner[t] = off;
      off += st->nbytes[t];
    }
    bsize[b] = off;
    if (nlist[b]) it[n++] = (item){.size = off, .begin = -1, .end = nn, .arena = BP_MEM_SLOT, .tensor = -1, .block = b};
  }
  for (int t = 0; t < nt; t++)
    if ((st->mem[t] == BP_MEM_SLOT || st->mem[t] == BP_MEM_WORK) && block[t] < 0)
      it[n++] = (item){.size = st->nbytes[t], .begin = st->live_begin[t], .end = st->live_end[t], .arena = st->mem[t],
                       .tensor = t, .block = -1};
  qsort(it, (size_t)n, sizeof(item), cmp_item);
  int fail = 0;
  st->slot_bytes = place(it, n, BP_MEM_SLOT, e, &fail);
  st->work_bytes = place(it, n, BP_MEM_WORK, e, &fail);
  if (fail) goto done;
  st->slot_lower_bound = lower_bound(it, n, BP_MEM_SLOT, nn);
  st->work_lower_bound = lower_bound(it, n, BP_MEM_WORK, nn);
  bp_rt_range *ranges[4] = {&st->act_in_range, &st->act_out_range, &st->grad_in_range, &st->grad_out_range};
  for (int b = 0; b < 4; b++) *ranges[b] = (bp_rt_range){0, 0};
  for (int i = 0; i < n; i++) {
    if (it[i].tensor >= 0) {
      st->offset[it[i].tensor] = it[i].offset;
      continue;
    }
    int b = it[i].block;
    *ranges[b] = (bp_rt_range){it[i].offset, bsize[b]};
    for (int k = 0; k < nlist[b]; k++) st->offset[lists[b][k]] = it[i].offset + inner[lists[b][k]];
  }
  /* the views: their root's arena and bytes; their own lifetime (for the listing) */
  for (int t = 0; t < nt; t++) {
    if (root[t] == t) continue;
    int r = root[t], def = g->tensors[t]->producer;
    st->mem[t] = st->mem[r], st->offset[t] = st->offset[r];
    st->live_begin[t] = def, st->live_end[t] = last[t] > def ? last[t] : def;
  }
  st->param_bytes = pbytes, st->const_bytes = cbytes;
  rc = 0;
done:
  free(last), free(block), free(role), free(it), free(inner), free(root), free(ext), free(keep);
  return rc;
}

/* The runtime's own accounting (runtime/memplan.c), so the planned figure is what it allocates. */
int bp_cg_rank_bytes(bp_cg *cg, bp_err *e) {
  const bp_program *p = &cg->prog;
  int D = p->D, C = p->chunks_per_rank;
  char err[1024];
  free(cg->rank_bytes), free(cg->chunk_slots);
  cg->rank_bytes = calloc((size_t)D, sizeof(int64_t));
  cg->chunk_slots = calloc((size_t)D * C, sizeof(int));
  bp_rt_stage *rs = calloc((size_t)cg->S, sizeof(bp_rt_stage));
  if (!cg->rank_bytes || !cg->chunk_slots || !rs) {
    free(rs);
    return bp_errf(e, "out of memory");
  }
  for (int s = 0; s < cg->S; s++) {
    const bp_cg_stage *st = &cg->stages[s];
    rs[s].index = s;
    rs[s].param_bytes = st->param_bytes, rs[s].const_bytes = st->const_bytes;
    rs[s].slot_bytes = st->slot_bytes, rs[s].work_bytes = st->work_bytes;
  }
  bp_rt_model m = {.n_stages = cg->S, .stages = rs};
  int rc = 0;
  for (int r = 0; r < D && rc == 0; r++) {
    if (bp_rt_chunk_slots(p, r, cg->chunk_slots + (size_t)r * C, err, sizeof err) < 0 ||
        (cg->rank_bytes[r] = bp_rt_rank_bytes(&m, p, r, (int)cg->o.train.optimizer, err, sizeof err)) < 0)
      rc = bp_errf(e, "memory accounting, rank %d: %s", r, err);
  }
  free(rs);
  return rc;
}

int bp_cg_plan_memory(bp_cg *cg, bp_err *e) {
  if (!cg->stages_built) return bp_errf(e, "internal: stages not built");
  bp_graph *G = cg->t->g;
  int64_t off = (int64_t)sizeof(bp_rt_weights_header);
  for (int s = 0; s < cg->S; s++) {
    bp_cg_stage *st = &cg->stages[s];
    if (bp_cg_plan_stage(st, e)) return -1;
    st->weights_offset = off = align_up(off);
    off += st->param_bytes + st->const_bytes;
  }
  cg->weights_bytes = off;
  /* the parameter table and --save-onnx offsets */
  int np = cg->n_params;
  free(cg->param_numel), free(cg->param_onnx_offset);
  cg->param_numel = calloc((size_t)np + 1, sizeof(int64_t));
  cg->param_onnx_offset = calloc((size_t)np + 1, sizeof(int64_t));
  const char **names = calloc((size_t)np + 1, sizeof(char *));
  int64_t *nbytes = calloc((size_t)np + 1, sizeof(int64_t));
  if (!cg->param_numel || !cg->param_onnx_offset || !names || !nbytes) {
    free(names), free(nbytes);
    return bp_errf(e, "out of memory");
  }
  for (int i = 0; i < np; i++) {
    const bp_tensor *pt = G->tensors[cg->t->params[i]];
    names[i] = pt->name;
    cg->param_numel[i] = bp_value_numel(&pt->v);
    nbytes[i] = (int64_t)bp_value_bytes(&pt->v);
  }
  int rc = bp_onnx_raw_offsets(cg->o.model, np, names, nbytes, cg->param_onnx_offset, e);
  /* a parameter other initializers were pointed at (retie) has other copies in the file */
  for (int i = 0; rc == 0 && i < np; i++)
    for (int k = 0; k < cg->t->retie_notes.n; k++)
      if (!strcmp(cg->t->retie_notes.v[k].source, names[i])) cg->param_onnx_offset[i] = -1;
  free(names), free(nbytes);
  if (rc) return -1;
  if (bp_cg_rank_bytes(cg, e)) return -1;
  cg->fingerprint = bp_cg_fingerprint(cg);
  return 0;
}
