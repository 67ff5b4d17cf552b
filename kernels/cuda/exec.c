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
 * Folds into MatMul (off with BP_CUDA_FOLD=0), decided once from the prepared graph by
 * frontend/mmfold.c (the analysis the compiled program's memory plan uses too):
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

#include "frontend/mmfold.h"
#include "frontend/passes.h"

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
  bp_fold_plan fp;          /* views and folds (frontend/mmfold.h): fp.view per node is 0 (runs), 1 its
                               output 0 is a view of input fp.view_in, 2 the same when not training
                               (Dropout), 3 a view with a pending scale (folded Mul), 4 a view stored
                               transposed (folded Transpose) */
  int fold;                 /* folds into MatMul on (BP_CUDA_FOLD != 0) */
  bp_cuda_prof *prof;       /* per-node timing (BP_CUDA_PROFILE=1, or bp_cuda_exec_time_nodes), or NULL */
  int prof_report;          /* print the profile when freed (BP_CUDA_PROFILE=1) */
};

bp_cuda_prof *bp_cuda_exec_prof(const bp_cuda_exec *x) { return x ? x->prof : NULL; }

int bp_cuda_exec_time_nodes(bp_cuda_exec *x, bp_err *e) {
  if (!x->prof && !(x->prof = bp_cuda_prof_new(x->g, e))) return -1;
  return 0;
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
  bp_fold_free(&x->fp);
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
  if (!x->dev || !x->ops || !x->last_use) {
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
  {
    const char *f = getenv("BP_CUDA_FOLD");
    x->fold = !(f && !strcmp(f, "0"));
    unsigned char *keep = calloc((size_t)(g->ntensors ? g->ntensors : 1), 1); /* graph outputs: handed over */
    if (!keep) {
      bp_errf(e, "out of memory");
      goto fail;
    }
    for (int i = 0; i < g->noutputs; i++) keep[g->outputs[i]] = 1;
    int frc = bp_fold_analyse(g, keep, x->fold, &x->fp, e);
    free(keep);
    if (frc) goto fail;
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
  dc->bf16_lo = dc->bf16_hi = NULL; /* every operand may be kept (forgotten when released) */
  for (int t = 0; t < nt; t++) {
    if (!x->dev[t]) continue;
    vals[t] = g->tensors[t]->v;
    vals[t].data = x->dev[t];
  }
  if (bp_check_inputs(g, inputs, e)) {
    rc = -1;
    goto done;
  }
  for (int i = 0; i < g->ninputs; i++) vals[g->inputs[i]] = *inputs[i];
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
    int vk = x->fp.view[i];
    if (vk == BP_FOLD_VIEW || vk == BP_FOLD_VIEW_SCALED || vk == BP_FOLD_VIEW_TRANS ||
        (vk == BP_FOLD_VIEW_EVAL && !ctx->training)) {
      int ti = n->in[x->fp.view_in[i]], to = n->out[0];
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
    if (x->fp.is_mm[i]) { /* the folds this MatMul applies (all 1 / 0 with folds off) */
      dc->mm_alpha = bp_fold_alpha(&x->fp, g, i);
      dc->mm_trans[0] = bp_fold_trans(&x->fp, g, i, 0);
      dc->mm_trans[1] = bp_fold_trans(&x->fp, g, i, 1);
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
