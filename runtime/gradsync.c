/* runtime/gradsync.c — everything that makes the gradients of one step global before the
 * optimizer runs:
 *   groups     the replica's pipeline group (p2p), and per stage the group of every world rank
 *              holding that stage (in any pipe, in any data-parallel replica);
 *   eager      ALLREDUCE_START(c): a non-blocking sum of the chunk's accumulated gradients over
 *              its stage group, started as soon as its last backward is done (by the program, or
 *              by the executor for data-parallel replicas the program does not know about);
 *              ALLREDUCE_WAIT(c) completes it. Tied parameters (one global id in several stages:
 *              the embedding and the LM head) are laid out last in the PARAM arena and left out;
 *   tied       at the optimizer step every rank adds its chunks' raw gradients of each tied id
 *              into one buffer, a world all-reduce sums them, and every holder takes the sum;
 *   norm/loss  the global gradient norm counts each unique parameter once (on its designated
 *              holder: replica 0, pipe 0, lowest stage holding it); one world all-reduce sums the
 *              squares and the weighted losses of the micro-batches.
 * Every wait is under the transport's watchdog. */
#include "runtime/rt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bp_rt_groups_init(bp_rt *rt, bp_err *e) {
  const bp_program *p = rt->prog;
  const bp_rt_model *m = rt->model;
  bp_tp *tp = rt->tp;
  if (tp->impl->split(tp, rt->replica, rt->r, &rt->pipe_group) < 0) return bp_rt_errf(rt, e, "%s", tp->err);
  for (int s = 0; s < rt->S; s++) {
    int held = -1;
    for (int c = 0; c < rt->C; c++)
      if (rt->chunk[c].stage == s) {
        if (held >= 0)
          return bp_rt_errf(rt, e, "plan: pipeline rank %d holds stage %d twice (chunks %d and %d); the runtime needs "
                                   "one chunk per stage and rank", rt->r, s, held, c);
        held = c;
      }
    int g;
    if (tp->impl->split(tp, held >= 0 ? s : -1, rt->wrank, &g) < 0) return bp_rt_errf(rt, e, "%s", tp->err);
    if (held >= 0) {
      int size = 1;
      if (tp->impl->group_size(tp, g, &size) < 0) return bp_rt_errf(rt, e, "%s", tp->err);
      rt->chunk[held].group = size > 1 ? g : -1;
    }
  }
  /* tied ids: held by more than one stage */
  int np = m->n_params;
  rt->tied = calloc((size_t)(np ? np : 1), 1);
  int *first_stage = malloc(sizeof(int) * (size_t)(np ? np : 1));
  rt->holder_rank = malloc(sizeof(int) * (size_t)(np ? np : 1) * 3);
  int64_t *tied_off = rt->tied_off = malloc(sizeof(int64_t) * (size_t)(np ? np : 1));
  if (!rt->tied || !first_stage || !rt->holder_rank || !tied_off) {
    free(first_stage);
    return bp_rt_errf(rt, e, "out of memory");
  }
  rt->holder_chunk = rt->holder_rank + np;
  rt->holder_index = rt->holder_rank + 2 * np;
  for (int g = 0; g < np; g++) first_stage[g] = rt->holder_rank[g] = -1;
  for (int s = 0; s < rt->S; s++)
    for (int i = 0; i < m->stages[s].nparams; i++) {
      int g = m->stages[s].params[i].global_id;
      if (first_stage[g] < 0) {
        first_stage[g] = s;
        rt->holder_rank[g] = p->stage_rank[s]; /* pipe 0, replica 0: world rank = pipeline rank */
        rt->holder_chunk[g] = p->stage_chunk[s];
        rt->holder_index[g] = i;
      } else if (first_stage[g] != s)
        rt->tied[g] = 1;
    }
  rt->tied_floats = 0;
  for (int g = 0; g < np; g++) {
    tied_off[g] = rt->tied_floats;
    if (rt->tied[g]) rt->tied_floats += m->param_numel[g];
    if (first_stage[g] < 0) {
      free(first_stage);
      return bp_rt_errf(rt, e, "plan: parameter '%s' is held by no stage", m->param_names[g]);
    }
  }
  free(first_stage);
  rt->norm_x = malloc(sizeof(float *) * (size_t)(np ? np : 1));
  rt->norm_n = malloc(sizeof(int64_t) * (size_t)(np ? np : 1));
  if (!rt->norm_x || !rt->norm_n) return bp_rt_errf(rt, e, "out of memory");
  if (rt->tied_floats > 0 && !(rt->tied_buf = malloc(sizeof(float) * (size_t)rt->tied_floats)))
    return bp_rt_errf(rt, e, "out of memory");
  /* the eager all-reduce covers the PARAM arena up to the first tied parameter */
  for (int c = 0; c < rt->C; c++) {
    rt_chunk *ch = &rt->chunk[c];
    const bp_rt_stage *st = ch->st;
    int64_t end = st->param_bytes;
    for (int i = 0; i < st->nparams; i++)
      if (rt->tied[st->params[i].global_id] && st->tensors[st->params[i].tensor].offset < end)
        end = st->tensors[st->params[i].tensor].offset;
    for (int i = 0; i < st->nparams; i++) {
      const bp_rt_tensor *t = &st->tensors[st->params[i].tensor];
      if (!rt->tied[st->params[i].global_id] && t->offset + t->nbytes > end)
        return bp_rt_errf(rt, e, "plan: stage %d: parameter '%s' lies after the tied parameters (tied ones must be "
                                 "laid out last in the PARAM arena)", st->index, t->name);
    }
    ch->ar_floats = end / 4;
  }
  /* where the program starts each all-reduce, and where the chunk's last backward is */
  const bp_rank_program *rp = &p->rank[rt->r];
  for (int i = 0; i < rp->n; i++) {
    const bp_instr *x = &rp->code[i];
    if (x->chunk < 0) continue;
    if (x->op == BP_OP_ALLREDUCE_START) rt->chunk[x->chunk].ar_in_program = 1;
    if (x->op == BP_OP_BWD || x->op == BP_OP_BWD_WEIGHT) rt->chunk[x->chunk].last_bwd = i;
  }
  return 0;
}

int bp_rt_allreduce_start(bp_rt *rt, rt_chunk *c, bp_err *e) {
  if (c->group < 0) return 0;
  if (c->ar_req >= 0) return bp_rt_errf(rt, e, "internal: a second all-reduce of chunk %d in one step", c->index);
  double t0 = bp_tp_now();
  if (rt->tp->impl->iallreduce(rt->tp, c->group, c->grad, c->ar_floats, BP_TP_F32, &c->ar_req) < 0)
    return bp_rt_errf(rt, e, "%s", rt->tp->err);
  bp_rt_trace_add(rt, BP_OP_ALLREDUCE_START, c->index, -1, -1, t0, bp_tp_now());
  return 0;
}

int bp_rt_allreduce_wait(bp_rt *rt, rt_chunk *c, bp_err *e) {
  if (c->ar_req < 0) return 0;
  char what[64];
  snprintf(what, sizeof what, "the gradient all-reduce of stage %d", c->stage);
  bp_tp_why why = {what, -1, -1};
  double t0 = bp_tp_now();
  if (bp_tp_wait(rt->tp, c->ar_req, &why) < 0) return bp_rt_errf(rt, e, "%s", rt->tp->err);
  c->ar_req = -1;
  bp_rt_trace_add(rt, RT_EV_WAIT_ALLREDUCE, c->index, -1, -1, t0, bp_tp_now());
  return 0;
}

int bp_rt_sync_grads(bp_rt *rt, double local_loss, bp_err *e) {
  const bp_rt_model *m = rt->model;
  for (int c = 0; c < rt->C; c++)
    if (bp_rt_allreduce_wait(rt, &rt->chunk[c], e) < 0) return -1;
  if (rt->tied_floats > 0) {
    /* offsets of tied ids in the buffer, in global id order; on a GPU each raw gradient comes to
     * the host, is summed there in the CPU's order, and the sum goes back */
    memset(rt->tied_buf, 0, sizeof(float) * (size_t)rt->tied_floats);
    float *tmp = NULL;
    for (int pass = 0; pass < 2; pass++) {
      for (int c = 0; c < rt->C; c++) {
        const bp_rt_stage *st = rt->chunk[c].st;
        for (int i = 0; i < st->nparams; i++) {
          int g = st->params[i].global_id;
          if (!rt->tied[g]) continue;
          float *grad = (float *)(rt->chunk[c].grad + st->tensors[st->params[i].tensor].offset);
          float *sum = rt->tied_buf + rt->tied_off[g];
          int64_t n = m->param_numel[g];
          const float *add = grad;
          if (pass == 0 && !rt->dev->host_memory) {
            float *t2 = realloc(tmp, sizeof(float) * (size_t)(n > 0 ? n : 1));
            if (!t2) {
              free(tmp);
              return bp_rt_errf(rt, e, "out of memory summing tied gradients");
            }
            tmp = t2;
            if (rt->dev->get(rt, tmp, grad, 4 * n, "the gradient of a tied parameter", e) < 0) {
              free(tmp);
              return bp_rt_err_wrap(rt, e, NULL);
            }
            add = tmp;
          }
          if (pass == 0)
            for (int64_t k = 0; k < n; k++) sum[k] += add[k];
          else if (rt->dev->put(rt, grad, sum, 4 * n, "the summed gradient of a tied parameter", e) < 0) {
            free(tmp);
            return bp_rt_err_wrap(rt, e, NULL);
          }
        }
      }
      if (pass == 0 && bp_tp_allreduce(rt->tp, 0, rt->tied_buf, rt->tied_floats, BP_TP_F32,
                                       "the all-reduce of tied parameters' gradients") < 0) {
        free(tmp);
        return bp_rt_errf(rt, e, "%s", rt->tp->err);
      }
    }
    free(tmp);
    if (rt->dev->sync(rt, "the tied parameters' gradients", e) < 0) return bp_rt_err_wrap(rt, e, NULL);
  }
  /* the squares of every unique parameter's gradient, on its designated holder */
  int cnt = 0;
  for (int g = 0; g < m->n_params; g++)
    if (rt->holder_rank[g] == rt->wrank) {
      rt_chunk *c = &rt->chunk[rt->holder_chunk[g]];
      const bp_rt_stage *st = c->st;
      rt->norm_x[cnt] = (const float *)(c->grad + st->tensors[st->params[rt->holder_index[g]].tensor].offset);
      rt->norm_n[cnt++] = m->param_numel[g];
    }
  double sq = 0;
  if (rt->dev->sumsq(rt, rt->norm_x, rt->norm_n, cnt, &sq, e) < 0) return bp_rt_err_wrap(rt, e, "the gradient norm");
  double buf[2] = {local_loss, sq};
  if (bp_tp_allreduce(rt->tp, 0, buf, 2, BP_TP_F64, "the all-reduce of the loss and gradient norm") < 0)
    return bp_rt_errf(rt, e, "%s", rt->tp->err);
  rt->loss = buf[0];
  rt->grad_norm = sqrt(buf[1]);
  return 0;
}
