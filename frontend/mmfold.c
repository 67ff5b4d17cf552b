/* frontend/mmfold.c — views and folds into MatMul (frontend/mmfold.h), decided once from a graph.
 *
 * Views: nodes that only relabel their input's bytes — Reshape, Flatten, Squeeze, Unsqueeze,
 * Identity, a Cast to the same dtype, and Dropout when not training with its mask unused (kind
 * BP_FOLD_VIEW_EVAL: the caller decides) — need not run: their output can share the input's
 * bytes. Readers treat their inputs as read-only, so sharing is safe.
 *
 * Folds into MatMul (float32 only):
 *  - a Transpose swapping the last two dims whose output only MatMul nodes read, each with every
 *    batch entry in both operands (no broadcasting): it does not run; the MatMul reads its input
 *    with the GEMM's transpose flag flipped (attention's K^T, and the backward's P^T, V^T, Q^T,
 *    X^T of a weight gradient);
 *  - a Mul by a scalar constant that is a positive power of two (attention's 1/sqrt(head_dim)): when its
 *    input is a MatMul output read by nothing else, that MatMul scales its product (alpha) and the
 *    Mul is a plain view; when only MatMul nodes read its output, it does not run and they scale
 *    theirs. A power of two commutes with every rounding (fp32, tf32, bf16), so results are
 *    unchanged (barring results in the subnormal range).
 * A tensor carries at most one fold (scaled or transposed), and a folded tensor is never folded
 * again, so a reader sees either the stored bytes, their transpose, or them times a power of two.
 * Tensors the caller marks `keep` (graph outputs, sent or read by the caller) keep true values. */
#include "frontend/mmfold.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Whether node n's output 0 can share input 0's buffer: BP_FOLD_VIEW, BP_FOLD_VIEW_EVAL (Dropout)
 * or 0. */
static int view_kind(const bp_graph *g, const bp_node *n, const unsigned char *keep, const int *reads) {
  static const char *const relabel[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast", "Dropout"};
  int k = -1;
  if (n->domain && n->domain[0]) return 0;
  for (int j = 0; j < (int)(sizeof relabel / sizeof relabel[0]); j++)
    if (!strcmp(n->op_type, relabel[j])) k = j;
  if (k < 0 || n->nin < 1 || n->nout < 1 || n->in[0] < 0 || n->out[0] < 0) return 0;
  const bp_value *xi = &g->tensors[n->in[0]]->v, *yo = &g->tensors[n->out[0]]->v;
  int to = n->out[0];
  if (xi->dtype != yo->dtype || !bp_dtype_size(xi->dtype) || bp_value_numel(xi) != bp_value_numel(yo)) return 0;
  if (keep && keep[to]) return 0; /* it needs bytes of its own */
  for (int j = 1; j < n->nout; j++) /* other outputs (Dropout's mask) must be unused */
    if (n->out[j] >= 0 && (reads[n->out[j]] > 0 || (keep && keep[n->out[j]]))) return 0;
  if (!strcmp(n->op_type, "Dropout")) return bp_same_shape(xi, yo) ? BP_FOLD_VIEW_EVAL : 0;
  return BP_FOLD_VIEW;
}

/* A float32 scalar constant that is a positive power of two (or NULL). */
static const float *pow2_scalar(const bp_graph *g, int t) {
  if (t < 0) return NULL;
  const bp_tensor *tt = g->tensors[t];
  if ((tt->kind != BP_T_CONSTANT && tt->kind != BP_T_INITIALIZER) || tt->v.dtype != BP_F32 ||
      bp_value_numel(&tt->v) != 1 || !tt->v.data)
    return NULL;
  const float *v = (const float *)tt->v.data;
  int ex;
  float m = frexpf(*v, &ex);
  return isfinite(*v) && m == 0.5f ? v : NULL;
}

/* A MatMul on float32 operands of equal rank >= 2 with equal batch dims (no broadcasting). */
static int mm_full(const bp_graph *g, const bp_node *n) {
  if (strcmp(n->op_type, "MatMul") || (n->domain && n->domain[0]) || n->nin != 2 || n->in[0] < 0 || n->in[1] < 0)
    return 0;
  const bp_value *a = &g->tensors[n->in[0]]->v, *b = &g->tensors[n->in[1]]->v;
  if (a->dtype != BP_F32 || b->dtype != BP_F32 || a->rank < 2 || a->rank != b->rank) return 0;
  for (int d = 0; d < a->rank - 2; d++)
    if (a->dims[d] != b->dims[d]) return 0;
  return 1;
}

static void plan_folds(bp_fold_plan *x, const bp_graph *g, const unsigned char *keep, const int *reads,
                       const int *reads_mm, const int *reads_mm_full, const int *producer) {
  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    if (n->domain && n->domain[0]) continue;
    if (!strcmp(n->op_type, "Transpose") && n->nin == 1 && n->nout == 1 && n->in[0] >= 0 && n->out[0] >= 0) {
      int ti = n->in[0], to = n->out[0], c, r = g->tensors[ti]->v.rank, swap = r >= 2;
      const int64_t *p = bp_attr_ints(n, "perm", &c);
      if (!p || c != r) swap = 0;
      for (int d = 0; swap && d < r; d++)
        if (p[d] != (d < r - 2 ? d : d == r - 2 ? r - 1 : r - 2)) swap = 0;
      if (swap && g->tensors[ti]->v.dtype == BP_F32 && x->tscale[ti] == 1.0f && !x->ttrans[ti] &&
          !(keep && keep[to]) && reads[to] > 0 && reads[to] == reads_mm_full[to]) {
        x->view[i] = BP_FOLD_VIEW_TRANS;
        x->ttrans[to] = 1;
      }
      continue;
    }
    if (!strcmp(n->op_type, "Mul") && n->nin == 2 && n->nout == 1 && n->out[0] >= 0) {
      int k = pow2_scalar(g, n->in[1]) ? 0 : pow2_scalar(g, n->in[0]) ? 1 : -1; /* k: the tensor input */
      if (k < 0 || n->in[k] < 0) continue;
      int ti = n->in[k], to = n->out[0];
      float sc = *pow2_scalar(g, n->in[1 - k]);
      const bp_value *xv = &g->tensors[ti]->v, *yv = &g->tensors[to]->v;
      if (xv->dtype != BP_F32 || yv->dtype != BP_F32 || !bp_same_shape(xv, yv) || x->tscale[ti] != 1.0f ||
          x->ttrans[ti] || (keep && keep[to]))
        continue;
      int j = producer[ti];
      if (j >= 0 && x->is_mm[j] && reads[ti] == 1 && !(keep && keep[ti])) {
        x->oscale[j] *= sc; /* the MatMul writes the scaled product; the Mul is a plain view */
        x->view[i] = BP_FOLD_VIEW;
        x->view_in[i] = (signed char)k;
      } else if (reads[to] > 0 && reads[to] == reads_mm[to]) {
        x->view[i] = BP_FOLD_VIEW_SCALED;
        x->view_in[i] = (signed char)k;
        x->tscale[to] = sc;
      }
    }
  }
}

void bp_fold_free(bp_fold_plan *p) {
  if (!p) return;
  free(p->view), free(p->view_in), free(p->is_mm), free(p->oscale), free(p->tscale), free(p->ttrans);
  memset(p, 0, sizeof *p);
}

int bp_fold_analyse(const bp_graph *g, const unsigned char *keep, int folds, bp_fold_plan *x, bp_err *e) {
  memset(x, 0, sizeof *x);
  size_t nt1 = (size_t)(g->ntensors ? g->ntensors : 1), nn1 = (size_t)(g->nnodes ? g->nnodes : 1);
  x->nnodes = g->nnodes, x->ntensors = g->ntensors;
  x->view = calloc(nn1, 1);
  x->view_in = calloc(nn1, 1);
  x->is_mm = calloc(nn1, 1);
  x->oscale = malloc(sizeof(float) * nn1);
  x->tscale = malloc(sizeof(float) * nt1);
  x->ttrans = calloc(nt1, 1);
  int *cnt = calloc(4 * nt1, sizeof(int)); /* reads, reads by MatMul, by full-batch MatMul, producer */
  if (!x->view || !x->view_in || !x->is_mm || !x->oscale || !x->tscale || !x->ttrans || !cnt) {
    free(cnt);
    bp_fold_free(x);
    return bp_errf(e, "out of memory");
  }
  int *reads = cnt, *reads_mm = cnt + nt1, *reads_full = cnt + 2 * nt1, *producer = cnt + 3 * nt1;
  for (size_t t = 0; t < nt1; t++) x->tscale[t] = 1.0f, producer[t] = -1;
  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    int mm = !strcmp(n->op_type, "MatMul") && !(n->domain && n->domain[0]) && n->nout == 1 && n->out[0] >= 0 &&
             g->tensors[n->out[0]]->v.dtype == BP_F32;
    int full = mm && mm_full(g, n);
    x->oscale[i] = 1.0f;
    x->is_mm[i] = (unsigned char)mm;
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      if (t < 0) continue;
      reads[t]++;
      if (mm && k < 2 && g->tensors[t]->v.dtype == BP_F32) reads_mm[t]++;
      if (full && k < 2) reads_full[t]++;
    }
    for (int k = 0; k < n->nout; k++)
      if (n->out[k] >= 0) producer[n->out[k]] = i;
  }
  for (int i = 0; i < g->nnodes; i++) x->view[i] = (signed char)view_kind(g, g->nodes[i], keep, reads);
  if (folds) plan_folds(x, g, keep, reads, reads_mm, reads_full, producer);
  free(cnt);
  return 0;
}

float bp_fold_alpha(const bp_fold_plan *p, const bp_graph *g, int i) {
  if (!p->is_mm[i]) return 1.0f;
  const bp_node *n = g->nodes[i];
  int a = n->in[0], b = n->nin > 1 ? n->in[1] : -1;
  return p->oscale[i] * (a >= 0 ? p->tscale[a] : 1.0f) * (b >= 0 ? p->tscale[b] : 1.0f);
}

int bp_fold_trans(const bp_fold_plan *p, const bp_graph *g, int i, int k) {
  if (!p->is_mm[i] || k >= g->nodes[i]->nin) return 0;
  int t = g->nodes[i]->in[k];
  return t >= 0 && p->ttrans[t];
}
