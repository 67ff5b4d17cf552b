/* runtime/update.c — the optimizer step on this rank's chunks, after gradsync.c made the gradients
 * global: checks the loss and norm are finite, clips by the global norm as
 * torch.nn.utils.clip_grad_norm_ does (scale C / (norm + 1e-6) when below 1), applies SGD or
 * AdamW with frontend/optimizer.c (the functions the single-process trainer uses, so both update
 * alike; on a GPU kernels/cuda's bit-identical versions, through rt->dev), and zeroes the
 * accumulators. Every holder of a stage applies the same update to the same values, so the copies
 * of a stage in both pipes and all replicas stay identical. */
#include "runtime/rt.h"
#include "frontend/train.h"

#include <math.h>

int bp_rt_update(bp_rt *rt, bp_err *e) {
  long step = rt->step + 1;
  const bp_rt_hparams *hp = &rt->o.hp;
  if (!isfinite(rt->loss) || !isfinite(rt->grad_norm)) {
    rt->err_everywhere = 1; /* every rank saw the same sums */
    if (!isfinite(rt->loss))
      return bp_errf(e, "step %ld: the loss is %s; stopping (parameters keep their values from step %ld)", step,
                     isnan(rt->loss) ? "NaN" : "infinite", step - 1);
    return bp_errf(e, "step %ld: the gradient norm is not finite; stopping (parameters keep their values from step %ld)",
                   step, step - 1);
  }
  double coef = hp->clip > 0 ? hp->clip / (rt->grad_norm + 1e-6) : 1.0;
  double gscale = coef < 1.0 ? coef : 1.0;
  const bp_rt_dev *d = rt->dev;
  for (int c = 0; c < rt->C; c++) {
    rt_chunk *ch = &rt->chunk[c];
    const bp_rt_stage *st = ch->st;
    for (int i = 0; i < st->nparams; i++) {
      const bp_rt_tensor *t = &st->tensors[st->params[i].tensor];
      int64_t off = t->offset, n = t->nbytes / 4;
      float *p = (float *)(ch->param + off), *g = (float *)(ch->grad + off), *s1 = (float *)(ch->state1 + off);
      int rc = hp->optimizer == BP_OPT_ADAMW ? d->adamw(rt, p, g, s1, (float *)(ch->state2 + off), n, (int)step, gscale, e)
                                             : d->sgd(rt, p, g, s1, n, step == 1, gscale, e);
      if (rc < 0) return bp_rt_err_wrap(rt, e, "the optimizer step of '%s'", t->name);
    }
    if (d->zero(rt, ch->grad, st->param_bytes, "clearing the gradient accumulators", e) < 0) return bp_rt_err_wrap(rt, e, NULL);
  }
  if (d->sync(rt, "the optimizer step", e) < 0) return bp_rt_err_wrap(rt, e, NULL);
  return 0;
}
