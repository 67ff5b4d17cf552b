/* kernels/cuda/exec.c — the GPU executor of a prepared graph: frontend/exec.c's walk (nodes in
 * order, each output allocated from its inferred shape, intermediates released after their last
 * use) with device buffers and the CUDA op table. Initializers and constants are uploaded once
 * when the executor is made and stay on the device (parameters are updated there in place); the
 * host copies of compile-time constants are handed to the kernels that read parameters from their
 * inputs (bp_cuda_set_host_inputs), so those never wait for a download.
 *
 * Views: nodes that only relabel their input's bytes (Reshape, Flatten, Squeeze, Unsqueeze,
 * Identity, a Cast to the same dtype, and Dropout when the context is not training and its mask is
 * unused) do not run: their output shares the input's buffer. Buffers are counted: a buffer is
 * released when the last tensor sharing it is past its last use. A graph output is never such a
 * view (it is handed over to the caller, so it gets its own buffer). Kernels treat their inputs as
 * read-only, so sharing is safe.
 *
 * Folds into MatMul (off with BP_CUDA_FOLD=0), decided once from the prepared graph:
 *  - a Transpose swapping the last two dims whose output only MatMul nodes read (float32, every
 *    batch entry in both operands): it does not run; the MatMul reads its input with the GEMM's
 *    transpose flag flipped (attention's P^T, K^T, V^T, Q^T in the backward pass);
 *  - a Mul by a scalar constant that is a power of two (attention's 1/sqrt(head_dim)): when its
 *    input is a MatMul output read by nothing else, that MatMul scales its product (alpha) and the
 *    Mul is a view; when only MatMul nodes read its output, it does not run and they scale theirs.
 *    A power of two commutes with every rounding (fp32, tf32, bf16), so results are unchanged.
 * The executor hands a MatMul its folds through the context (dc->mm_alpha, dc->mm_trans).
 * Also with folds on, in bf16 precision the GEMMs keep their operands' bf16 copies for the rest
 * of the run (dc->bf16_cache_on): the executor forgets a copy when it releases the buffer. */
#include "kernels/cuda/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bp_cuda_exec {
  bp_cuda *dc;
  const bp_graph *g;
  void **dev;               /* per tensor: device copy of an initializer/constant, or NULL */
  const bp_cuda_op **ops;   /* per node */
  int *last_use;            /* per tensor: index of the last node reading it (nnodes: a graph output) */
  signed char *view;        /* per node: 1 its output 0 is a view of input 0, 2 the same when not training
                               (Dropout), 3 a view with a pending scale (folded Mul), 4 a view stored
                               transposed (folded Transpose), 0 it runs */
  int fold;                 /* folds into MatMul on (BP_CUDA_FOLD != 0) */
  float *oscale;            /* per node: a MatMul's own output scale (a folded Mul after it) */
  float *tscale;            /* per tensor: true value = stored value * tscale (folded Mul) */
  unsigned char *ttrans;    /* per tensor: stored with the last two dims swapped (folded Transpose) */
  unsigned char *is_mm;     /* per node: a MatMul */
  signed char *view_in;     /* per node: the input a view shares (0, or 1 for Mul(scalar, x)) */
  bp_cuda_prof *prof;       /* per-node timing (BP_CUDA_PROFILE=1, or bp_cuda_exec_time_nodes), or NULL */
  int prof_report;          /* print the profile when freed (BP_CUDA_PROFILE=1) */
};

bp_cuda_prof *bp_cuda_exec_prof(const bp_cuda_exec *x) { return x ? x->prof : NULL; }

int bp_cuda_exec_time_nodes(bp_cuda_exec *x, bp_err *e) {
  if (!x->prof && !(x->prof = bp_cuda_prof_new(x->g, e))) return -1;
  return 0;
}

/* Whether node n's output 0 can share input 0's buffer (see the top of the file): 1 always, 2 when
 * the context is not training (Dropout), 0 no. */
static int view_kind(const bp_graph *g, const bp_node *n, const int *last_use) {
  static const char *const relabel[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast", "Dropout"};
  int k = -1;
  if (n->domain && n->domain[0]) return 0;
  for (int j = 0; j < (int)(sizeof relabel / sizeof relabel[0]); j++)
    if (!strcmp(n->op_type, relabel[j])) k = j;
  if (k < 0 || n->nin < 1 || n->nout < 1 || n->in[0] < 0 || n->out[0] < 0) return 0;
  const bp_value *xi = &g->tensors[n->in[0]]->v, *yo = &g->tensors[n->out[0]]->v;
  int to = n->out[0];
  if (xi->dtype != yo->dtype || !bp_dtype_size(xi->dtype) || bp_value_numel(xi) != bp_value_numel(yo)) return 0;
  if (last_use[to] == g->nnodes) return 0; /* a graph output gets its own buffer */
  for (int j = 1; j < n->nout; j++) /* other outputs (Dropout's mask) must be unused */
    if (n->out[j] >= 0 && last_use[n->out[j]] >= 0) return 0;
  if (!strcmp(n->op_type, "Dropout")) return bp_same_shape(xi, yo) ? 2 : 0;
  return 1;
}

/* A float32 scalar constant that is a power of two (or NULL). */
static const float *pow2_scalar(const bp_graph *g, int t) {
  if (t < 0) return NULL;
  const bp_tensor *tt = g->tensors[t];
  if ((tt->kind != BP_T_CONSTANT && tt->kind != BP_T_INITIALIZER) || tt->v.dtype != BP_F32 ||
      bp_value_numel(&tt->v) != 1 || !tt->v.data)
    return NULL;
  const float *v = (const float *)tt->v.data;
  int ex;
  float m = frexpf(*v, &ex);
  return isfinite(*v) && (m == 0.5f || m == -0.5f) ? v : NULL;
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

/* The folds (see the top of the file); x->view, oscale, tscale, ttrans filled in. */
static void plan_folds(bp_cuda_exec *x, const int *reads, const int *reads_mm, const int *reads_mm_full,
                       const int *producer) {
  const bp_graph *g = x->g;
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
          x->last_use[to] != g->nnodes && reads[to] > 0 && reads[to] == reads_mm_full[to]) {
        x->view[i] = 4;
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
          x->ttrans[ti] || x->last_use[to] == g->nnodes)
        continue;
      int j = producer[ti];
      if (j >= 0 && x->is_mm[j] && reads[ti] == 1 && x->last_use[ti] != g->nnodes) {
        x->oscale[j] *= sc; /* the MatMul writes the scaled product; the Mul is a plain view */
        x->view[i] = 1;
        x->view_in[i] = (signed char)k;
      } else if (reads[to] > 0 && reads[to] == reads_mm[to]) {
        x->view[i] = 3;
        x->view_in[i] = (signed char)k;
        x->tscale[to] = sc;
      }
    }
  }
}

void bp_cuda_exec_free(bp_cuda_exec *x) {
  if (!x) return;
  if (x->prof) {
    if (x->prof_report) bp_cuda_prof_report(x->prof, stderr);
    bp_cuda_prof_free(x->prof);
  }
  for (int t = 0; x->dev && t < x->g->ntensors; t++) bp_cuda_release(x->dc, x->dev[t]);
  if (x->dev) cudaStreamSynchronize(x->dc->stream);
  free(x->dev);
  free(x->ops);
  free(x->last_use);
  free(x->view);
  free(x->oscale);
  free(x->tscale);
  free(x->ttrans);
  free(x->is_mm);
  free(x->view_in);
  free(x);
}

bp_cuda_exec *bp_cuda_exec_new(bp_cuda *dc, const bp_graph *g, bp_err *e) {
  bp_cuda_exec *x = calloc(1, sizeof *x);
  if (!x) {
    bp_errf(e, "out of memory");
    return NULL;
  }
  x->dc = dc;
  x->g = g;
  x->dev = calloc((size_t)(g->ntensors ? g->ntensors : 1), sizeof(void *));
  x->ops = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof(*x->ops));
  x->last_use = malloc(sizeof(int) * (size_t)(g->ntensors ? g->ntensors : 1));
  x->view = calloc((size_t)(g->nnodes ? g->nnodes : 1), 1);
  if (!x->dev || !x->ops || !x->last_use || !x->view) {
    bp_errf(e, "out of memory");
    goto fail;
  }
  for (int t = 0; t < g->ntensors; t++) x->last_use[t] = -1;
  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    x->ops[i] = bp_cuda_op_find(n->domain, n->op_type);
    if (!x->ops[i]) {
      bp_errf(e, "node '%s' (%s): the op has no CUDA entry", n->name, n->op_type);
      goto fail;
    }
    for (int k = 0; k < n->nin; k++)
      if (n->in[k] >= 0) x->last_use[n->in[k]] = i;
  }
  for (int i = 0; i < g->noutputs; i++) x->last_use[g->outputs[i]] = g->nnodes;
  for (int i = 0; i < g->nnodes; i++) x->view[i] = (signed char)view_kind(g, g->nodes[i], x->last_use);
  {
    const char *f = getenv("BP_CUDA_FOLD");
    x->fold = !(f && !strcmp(f, "0"));
    size_t nt1 = (size_t)(g->ntensors ? g->ntensors : 1), nn1 = (size_t)(g->nnodes ? g->nnodes : 1);
    x->oscale = malloc(sizeof(float) * nn1);
    x->tscale = malloc(sizeof(float) * nt1);
    x->ttrans = calloc(nt1, 1);
    x->is_mm = calloc(nn1, 1);
    x->view_in = calloc(nn1, 1);
    int *cnt = calloc(4 * nt1, sizeof(int)); /* reads, reads by MatMul, by full-batch MatMul, producer */
    if (!x->oscale || !x->tscale || !x->ttrans || !x->is_mm || !x->view_in || !cnt) {
      free(cnt);
      bp_errf(e, "out of memory");
      goto fail;
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
    if (x->fold) plan_folds(x, reads, reads_mm, reads_full, producer);
    free(cnt);
  }
  for (int t = 0; t < g->ntensors; t++) {
    const bp_tensor *tt = g->tensors[t];
    if ((tt->kind != BP_T_CONSTANT && tt->kind != BP_T_INITIALIZER) || x->last_use[t] < 0) continue;
    size_t bytes = bp_value_bytes(&tt->v);
    if (bytes && !tt->v.data) {
      bp_errf(e, "tensor '%s' has no data to upload", tt->name);
      goto fail;
    }
    char what[300];
    snprintf(what, sizeof what, "tensor '%s'", tt->name);
    if (!(x->dev[t] = bp_cuda_alloc(dc, bytes, what, e)) || bp_cuda_upload(dc, x->dev[t], tt->v.data, bytes, what, e))
      goto fail;
  }
  if (bp_cuda_sync(dc, "uploading the graph's constants", e)) goto fail;
  if (bp_cuda_prof_enabled() && !(x->prof = bp_cuda_prof_new(g, e))) goto fail;
  x->prof_report = x->prof != NULL;
  return x;
fail:
  bp_cuda_exec_free(x);
  return NULL;
}

void *bp_cuda_exec_tensor(const bp_cuda_exec *x, int t) { return t >= 0 && t < x->g->ntensors ? x->dev[t] : NULL; }

int bp_cuda_execute(bp_cuda_exec *x, bp_ctx *ctx, bp_value *const *inputs, bp_value *outputs, bp_err *e) {
  const bp_graph *g = x->g;
  bp_cuda *dc = x->dc;
  int nt = g->ntensors, rc = 0;
  bp_value *vals = calloc((size_t)(nt ? nt : 1), sizeof(bp_value));
  /* owned[t]: t holds a reference on the buffer allocated for tensor base[t]; refs[b]: references
   * on the buffer of tensor b (views share it) */
  unsigned char *owned = calloc((size_t)(nt ? nt : 1), 1);
  int *base = calloc((size_t)(nt ? nt : 1), sizeof(int)), *refs = calloc((size_t)(nt ? nt : 1), sizeof(int));
  void *saved_device = ctx->device;
  if (!vals || !owned || !base || !refs) {
    free(vals);
    free(owned);
    free(base);
    free(refs);
    return bp_errf(e, "out of memory");
  }
#define DROP(t)                                                                                    \
  do {                                                                                             \
    owned[t] = 0;                                                                                  \
    if (--refs[base[t]] == 0) {                                                                    \
      if (dc->nbf16) bp_cuda_bf16_forget(dc, vals[t].data, bp_value_bytes(&vals[t]));              \
      bp_cuda_release(dc, vals[t].data);                                                           \
    }                                                                                              \
    vals[t].data = NULL;                                                                           \
  } while (0)
  ctx->device = dc;
  bp_cuda_bf16_clear(dc);
  dc->bf16_cache_on = x->fold && dc->prec == BP_PREC_BF16;
  for (int t = 0; t < nt; t++) {
    if (!x->dev[t]) continue;
    vals[t] = g->tensors[t]->v;
    vals[t].data = x->dev[t];
  }
  for (int i = 0; i < g->ninputs; i++) {
    const bp_tensor *t = g->tensors[g->inputs[i]];
    if (!inputs[i]) {
      rc = bp_errf(e, "input '%s' was not given", t->name);
      goto done;
    }
    if (inputs[i]->dtype != t->v.dtype || !bp_same_shape(inputs[i], &t->v)) {
      char s1[160], s2[160];
      rc = bp_errf(e, "input '%s': given %s %s but the graph was prepared for %s %s", t->name,
                   bp_dtype_name(inputs[i]->dtype), bp_shape_str(inputs[i], s1, sizeof s1), bp_dtype_name(t->v.dtype),
                   bp_shape_str(&t->v, s2, sizeof s2));
      goto done;
    }
    vals[g->inputs[i]] = *inputs[i];
  }
  if (x->prof && bp_cuda_prof_mark(x->prof, dc, 0, e)) {
    rc = -1;
    goto done;
  }
  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    bp_value *in[64] = {0}, *out[64] = {0};
    const void *host[64] = {0};
    if (n->nin > 64 || n->nout > 64) {
      rc = bp_errf(e, "node '%s' (%s): too many inputs or outputs", n->name, n->op_type);
      goto done;
    }
    if (x->view[i] == 1 || x->view[i] == 3 || x->view[i] == 4 || (x->view[i] == 2 && !ctx->training)) {
      int ti = n->in[x->view_in[i]], to = n->out[0];
      vals[to] = g->tensors[to]->v;
      vals[to].data = vals[ti].data;
      if (owned[ti]) {
        base[to] = base[ti];
        refs[base[to]]++;
        owned[to] = 1;
      }
      for (int k = 0; k < n->nin; k++) { /* the data input, and parameter inputs (shape, ratio) */
        int t = n->in[k];
        if (t >= 0 && owned[t] && x->last_use[t] == i) DROP(t);
      }
      if (owned[to] && x->last_use[to] < 0) DROP(to);
      if (x->prof && bp_cuda_prof_mark(x->prof, dc, i + 1, e)) {
        rc = -1;
        goto done;
      }
      continue;
    }
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      in[k] = t >= 0 ? &vals[t] : NULL;
      if (t >= 0 && g->tensors[t]->kind == BP_T_CONSTANT) host[k] = g->tensors[t]->v.data;
    }
    for (int k = 0; k < n->nout; k++) {
      int t = n->out[k];
      if (t < 0) continue;
      vals[t] = g->tensors[t]->v;
      char what[300];
      snprintf(what, sizeof what, "node '%s' (%s): output '%s'", n->name, n->op_type, g->tensors[t]->name);
      if (!(vals[t].data = bp_cuda_alloc(dc, bp_value_bytes(&vals[t]), what, e))) {
        rc = -1;
        goto done;
      }
      owned[t] = 1;
      base[t] = t;
      refs[t] = 1;
      out[k] = &vals[t];
    }
    bp_cuda_set_host_inputs(dc, host, n->nin);
    bp_cuda_set_tag(dc, i);
    if (x->is_mm[i]) { /* the folds this MatMul applies (all 1 / 0 with folds off) */
      int a = n->in[0], b = n->nin > 1 ? n->in[1] : -1;
      dc->mm_alpha = x->oscale[i] * (a >= 0 ? x->tscale[a] : 1.0f) * (b >= 0 ? x->tscale[b] : 1.0f);
      dc->mm_trans[0] = a >= 0 && x->ttrans[a];
      dc->mm_trans[1] = b >= 0 && x->ttrans[b];
    }
    int erc = x->ops[i]->eval(ctx, n, in, n->nin, out, n->nout, e);
    dc->mm_alpha = 1.0f;
    dc->mm_trans[0] = dc->mm_trans[1] = 0;
    if (erc < 0) {
      rc = bp_err_prefix_node(e, n);
      goto done;
    }
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      if (t >= 0 && owned[t] && x->last_use[t] == i) DROP(t);
    }
    for (int k = 0; k < n->nout; k++) {
      int t = n->out[k];
      if (t >= 0 && owned[t] && x->last_use[t] < 0) DROP(t);
    }
    if (x->prof && bp_cuda_prof_mark(x->prof, dc, i + 1, e)) {
      rc = -1;
      goto done;
    }
  }
  for (int i = 0; i < g->noutputs; i++) {
    int t = g->outputs[i];
    outputs[i] = vals[t];
    if (owned[t] && refs[base[t]] == 1) { /* hand the buffer over (an output listed twice gets a copy the second time) */
      owned[t] = 0;
      refs[base[t]] = 0;
      continue;
    }
    size_t bytes = bp_value_bytes(&vals[t]);
    void *copy = bp_cuda_alloc(dc, bytes, "graph output", e);
    if (!copy || (bytes && vals[t].data == NULL)) {
      if (copy) bp_cuda_release(dc, copy);
      rc = copy ? bp_errf(e, "graph output '%s' has no value", g->tensors[t]->name) : -1;
      for (int j = 0; j < i; j++) bp_cuda_release(dc, outputs[j].data);
      goto done;
    }
    if (bytes) {
      cudaError_t crc = cudaMemcpyAsync(copy, vals[t].data, bytes, cudaMemcpyDeviceToDevice, dc->stream);
      if (crc != cudaSuccess) {
        rc = bp_cuda_fail(e, NULL, "copying a graph output", "cudaMemcpyAsync(copy, value, bytes, cudaMemcpyDeviceToDevice)",
                          cudaGetErrorString(crc), __FILE__, __LINE__);
        bp_cuda_release(dc, copy);
        for (int j = 0; j < i; j++) bp_cuda_release(dc, outputs[j].data);
        goto done;
      }
    }
    outputs[i].data = copy;
  }
  /* asynchronous faults and kernels' data checks surface here, naming the node when they can */
  if (bp_cuda_check_flags(dc, g->nodes, g->nnodes, e) < 0 || (x->prof && bp_cuda_prof_collect(x->prof, e) < 0)) {
    for (int j = 0; j < g->noutputs; j++) bp_cuda_release(dc, outputs[j].data);
    rc = -1;
  }
done:
  bp_cuda_set_host_inputs(dc, NULL, 0);
  for (int t = 0; t < nt; t++)
    if (owned[t]) DROP(t);
#undef DROP
  bp_cuda_bf16_clear(dc); /* parameters change after the run: no copy outlives it */
  dc->bf16_cache_on = 0;
  free(vals);
  free(owned);
  free(base);
  free(refs);
  ctx->device = saved_device;
  return rc;
}
