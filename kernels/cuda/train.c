/* kernels/cuda/train.c — the GPU trainer backend (kernels/cuda/cuda_train.h): one step is the
 * training graph on the GPU executor, the loss and the global gradient norm brought back to the
 * host, the same finite checks and clipping coefficient as frontend/train.c's bp_trainer_step, and
 * the optimizer updates on the device buffers of the parameters. */
#include "kernels/cuda/cuda_train.h"
#include "kernels/cuda/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  bp_train_backend b;  /* first: t->backend points here */
  bp_cuda *dc;
  bp_cuda_exec *x;
  bp_value *din;       /* device copies of the trainer's inputs (the fixed batch) */
  bp_value **pin;
  float **s1, **s2;    /* optimizer state per parameter (momentum / AdamW moments) */
  double *acc;         /* device: sum of squares of the gradients */
  cudaEvent_t ev[2];   /* around the work outside the graph, when profiling */
} gpu_state;

static void gpu_free(bp_trainer *t) {
  gpu_state *s = t->backend ? t->backend->state : NULL;
  if (!s) return;
  if (s->dc) {
    for (int i = 0; s->s1 && i < t->nparams; i++) bp_cuda_release(s->dc, s->s1[i]);
    for (int i = 0; s->s2 && i < t->nparams; i++) bp_cuda_release(s->dc, s->s2[i]);
    for (int i = 0; s->din && i < t->ninputs; i++) bp_cuda_release(s->dc, s->din[i].data);
    bp_cuda_release(s->dc, s->acc);
    for (int k = 0; k < 2; k++)
      if (s->ev[k]) cudaEventDestroy(s->ev[k]);
    bp_cuda_exec_free(s->x);
    bp_cuda_free(s->dc);
  }
  free(s->s1);
  free(s->s2);
  free(s->din);
  free(s->pin);
  free(s);
  t->backend = NULL;
}

static int prof_call(cudaError_t rc, const char *call, bp_err *e) {
  return rc == cudaSuccess ? 0 : bp_cuda_fail(e, NULL, "profiling (BP_CUDA_PROFILE)", call, cudaGetErrorString(rc), __FILE__, __LINE__);
}

static int gpu_step(bp_trainer *t, double *loss, double *grad_norm, bp_err *e) {
  gpu_state *s = t->backend->state;
  bp_graph *g = t->g;
  bp_value *outs = calloc((size_t)g->noutputs, sizeof(bp_value));
  if (!outs) return bp_errf(e, "out of memory");
  int step = t->step + 1, rc = 0;
  if (bp_cuda_execute(s->x, &t->ctx, s->pin, outs, e) < 0) {
    free(outs);
    return -1;
  }
  unsigned char lbuf[8] = {0};
  double sq = 0;
  bp_cuda_prof *prof = bp_cuda_exec_prof(s->x);
  if (prof && s->ev[0]) rc = prof_call(cudaEventRecord(s->ev[0], s->dc->stream), "cudaEventRecord(ev[0], stream)", e);
  if (bp_value_bytes(&outs[0]) > sizeof lbuf) rc = bp_errf(e, "internal: the loss is not a scalar");
  if (!rc) rc = bp_cuda_download(s->dc, lbuf, outs[0].data, bp_value_bytes(&outs[0]), "the loss", e);
  if (!rc) rc = bp_cuda_memset(s->dc, s->acc, 0, sizeof(double), "the gradient norm", e);
  for (int i = 0; !rc && i < t->nparams; i++)
    rc = bp_cuda_sumsq(s->dc, outs[i + 1].data, bp_value_numel(&outs[i + 1]), s->acc, e);
  if (!rc) rc = bp_cuda_download(s->dc, &sq, s->acc, sizeof sq, "the gradient norm", e);
  if (!rc) {
    double l = bp_get_f64(lbuf, outs[0].dtype, 0), norm = sqrt(sq);
    *loss = l;
    *grad_norm = norm;
    if (!isfinite(l)) rc = bp_errf(e, "step %d: the loss is %s; stopping (parameters keep their values from step %d)",
                                   step, isnan(l) ? "NaN" : "infinite", step - 1);
    else if (!isfinite(norm)) rc = bp_errf(e, "step %d: the gradient norm is not finite; stopping", step);
    if (rc == 0) {
      double coef = t->o.clip > 0 ? t->o.clip / (norm + 1e-6) : 1.0;
      double gscale = coef < 1.0 ? coef : 1.0;
      for (int i = 0; !rc && i < t->nparams; i++) {
        float *p = bp_cuda_exec_tensor(s->x, t->params[i]);
        int64_t n = bp_value_numel(&g->tensors[t->params[i]]->v);
        if (t->o.optimizer == BP_OPT_ADAMW)
          rc = bp_cuda_adamw_update(s->dc, p, outs[i + 1].data, s->s1[i], s->s2[i], n, step, t->o.lr, t->o.beta1,
                                    t->o.beta2, t->o.eps, t->o.weight_decay, gscale, e);
        else
          rc = bp_cuda_sgd_update(s->dc, p, outs[i + 1].data, s->s1[i], n, step == 1, t->o.lr, t->o.momentum,
                                  t->o.weight_decay, gscale, e);
      }
      if (!rc && prof && s->ev[1]) rc = prof_call(cudaEventRecord(s->ev[1], s->dc->stream), "cudaEventRecord(ev[1], stream)", e);
      if (!rc) rc = bp_cuda_sync(s->dc, "the optimizer step", e);
      if (!rc && prof && s->ev[1]) {
        float ms = 0;
        rc = prof_call(cudaEventElapsedTime(&ms, s->ev[0], s->ev[1]), "cudaEventElapsedTime(&ms, ev[0], ev[1])", e);
        if (!rc) bp_cuda_prof_add(prof, "(loss, norm, optimizer)", ms);
      }
      if (!rc) t->step = step;
    }
  }
  for (int i = 0; i < g->noutputs; i++) bp_cuda_release(s->dc, outs[i].data);
  free(outs);
  return rc;
}

int bp_cuda_trainer_attach(bp_trainer *t, bp_precision prec, bp_err *e) {
  if (t->analysis_only) return bp_errf(e, "internal: this trainer was built without targets (analysis only)");
  if (t->backend) return bp_errf(e, "internal: the trainer already has a %s backend", t->backend->name);
  gpu_state *s = calloc(1, sizeof *s);
  if (!s) return bp_errf(e, "out of memory");
  s->b.name = "cuda";
  s->b.step = gpu_step;
  s->b.free = gpu_free;
  s->b.state = s;
  t->backend = &s->b;
  s->din = calloc((size_t)(t->ninputs ? t->ninputs : 1), sizeof(bp_value));
  s->pin = calloc((size_t)(t->ninputs ? t->ninputs : 1), sizeof(bp_value *));
  s->s1 = calloc((size_t)t->nparams, sizeof(float *));
  s->s2 = calloc((size_t)t->nparams, sizeof(float *));
  if (!s->din || !s->pin || !s->s1 || !s->s2) {
    bp_errf(e, "out of memory");
    goto fail;
  }
  if (!(s->dc = bp_cuda_new(0, prec, e))) goto fail;
  if (!(s->x = bp_cuda_exec_new(s->dc, t->g, e))) goto fail;
  for (int i = 0; i < t->ninputs; i++) {
    size_t bytes = bp_value_bytes(t->inputs[i]);
    s->din[i] = *t->inputs[i];
    s->din[i].data = NULL;
    if (!(s->din[i].data = bp_cuda_alloc(s->dc, bytes, "a training input", e)) ||
        bp_cuda_upload(s->dc, s->din[i].data, t->inputs[i]->data, bytes, "a training input", e))
      goto fail;
    s->pin[i] = &s->din[i];
  }
  for (int i = 0; i < t->nparams; i++) {
    size_t bytes = sizeof(float) * (size_t)bp_value_numel(&t->g->tensors[t->params[i]]->v);
    if (!(s->s1[i] = bp_cuda_alloc(s->dc, bytes, "optimizer state", e)) ||
        bp_cuda_memset(s->dc, s->s1[i], 0, bytes, "optimizer state", e))
      goto fail;
    if (t->o.optimizer == BP_OPT_ADAMW &&
        (!(s->s2[i] = bp_cuda_alloc(s->dc, bytes, "optimizer state", e)) ||
         bp_cuda_memset(s->dc, s->s2[i], 0, bytes, "optimizer state", e)))
      goto fail;
  }
  if (!(s->acc = bp_cuda_alloc(s->dc, sizeof(double), "the gradient norm", e))) goto fail;
  if (bp_cuda_exec_prof(s->x))
    for (int k = 0; k < 2; k++) {
      cudaError_t crc = cudaEventCreate(&s->ev[k]);
      if (crc != cudaSuccess) {
        bp_cuda_fail(e, NULL, "profiling", "cudaEventCreate(&ev)", cudaGetErrorString(crc), __FILE__, __LINE__);
        goto fail;
      }
    }
  if (bp_cuda_sync(s->dc, "moving the trainer to the GPU", e)) goto fail;
  return 0;
fail:
  gpu_free(t);
  return -1;
}

bp_cuda *bp_cuda_trainer_device(const bp_trainer *t) {
  return t->backend && t->backend->step == gpu_step ? ((gpu_state *)t->backend->state)->dc : NULL;
}

int bp_cuda_trainer_download_params(bp_trainer *t, bp_err *e) {
  if (!bp_cuda_trainer_device(t)) return bp_errf(e, "internal: the trainer is not on the GPU");
  gpu_state *s = t->backend->state;
  for (int i = 0; i < t->nparams; i++) {
    bp_tensor *pt = t->g->tensors[t->params[i]];
    if (bp_cuda_download(s->dc, pt->v.data, bp_cuda_exec_tensor(s->x, t->params[i]), bp_value_bytes(&pt->v),
                         pt->name, e))
      return -1;
  }
  return 0;
}
