/* runtime/memory.c — the arenas of runtime/plan.h and their bookkeeping: per chunk PARAM, its
 * gradient accumulator and optimizer states (same layout), CONST, and the slot arenas (as many as
 * bp_rt_chunk_slots counts); per rank one WORK arena. Slots are handed to (chunk, micro-batch)
 * pairs at their first instruction and taken back after their last; a slot whose sends are still
 * in flight is reused only once they completed. Also the plan's consistency check, run before
 * anything is allocated, so a mismatched compile gives one clear line instead of a crash. */
#include "runtime/rt.h"

#include <stdlib.h>
#include <string.h>

static int64_t mem_size(const bp_rt_stage *st, int mem) {
  switch (mem) {
  case BP_MEM_PARAM: return st->param_bytes;
  case BP_MEM_CONST: return st->const_bytes;
  case BP_MEM_SLOT: return st->slot_bytes;
  case BP_MEM_WORK: return st->work_bytes;
  default: return -1;
  }
}

static const char *mem_name(int mem) {
  static const char *n[] = {"PARAM", "CONST", "SLOT", "WORK"};
  return mem >= 0 && mem < 4 ? n[mem] : "?";
}

/* The tensors of a boundary list lie, in order, inside its slot range. */
static int check_range(const bp_rt_stage *st, const char *what, int n, const int *ids, bp_rt_range rg, bp_err *e) {
  if (n > 0 && !ids) return bp_errf(e, "plan: stage %d: %s lists %d tensors but no ids", st->index, what, n);
  if (rg.offset < 0 || rg.nbytes < 0 || rg.offset + rg.nbytes > st->slot_bytes)
    return bp_errf(e, "plan: stage %d: %s range [%lld, +%lld) outside the %lld-byte slot", st->index, what,
                   (long long)rg.offset, (long long)rg.nbytes, (long long)st->slot_bytes);
  int64_t prev = rg.offset;
  for (int i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= st->ntensors)
      return bp_errf(e, "plan: stage %d: %s tensor id %d out of range", st->index, what, ids[i]);
    const bp_rt_tensor *t = &st->tensors[ids[i]];
    if (t->mem != BP_MEM_SLOT || t->offset < prev || t->offset + t->nbytes > rg.offset + rg.nbytes)
      return bp_errf(e, "plan: stage %d: %s tensor '%s' is not in order inside the %s range", st->index, what,
                     t->name, what);
    prev = t->offset + t->nbytes;
  }
  return 0;
}

/* Stage a's out list/range and stage b's in list/range carry the same bytes. */
static int check_match(const bp_rt_stage *a, const char *wa, int na, const int *ia, bp_rt_range ra,
                       const bp_rt_stage *b, const char *wb, int nb, const int *ib, bp_rt_range rb, bp_err *e) {
  if (na != nb || ra.nbytes != rb.nbytes)
    return bp_errf(e, "plan: stage %d's %s (%d tensors, %lld bytes) does not match stage %d's %s (%d tensors, %lld bytes)",
                   a->index, wa, na, (long long)ra.nbytes, b->index, wb, nb, (long long)rb.nbytes);
  for (int i = 0; i < na; i++) {
    const bp_rt_tensor *x = &a->tensors[ia[i]], *y = &b->tensors[ib[i]];
    int same = x->dtype == y->dtype && x->rank == y->rank && x->nbytes == y->nbytes &&
               x->offset - ra.offset == y->offset - rb.offset;
    for (int k = 0; same && k < x->rank && k < BP_MAX_RANK; k++) same = x->dims[k] == y->dims[k];
    if (!same)
      return bp_errf(e, "plan: stage %d's %s tensor '%s' and stage %d's %s tensor '%s' differ in type, shape or place",
                     a->index, wa, x->name, b->index, wb, y->name);
  }
  return 0;
}

static int check_scalar(const bp_rt_stage *st, int id, const char *what, bp_err *e) {
  if (id < 0 || id >= st->ntensors) return bp_errf(e, "plan: stage %d: %s tensor id %d out of range", st->index, what, id);
  const bp_rt_tensor *t = &st->tensors[id];
  if (t->mem != BP_MEM_SLOT || !bp_dtype_is_float((bp_dtype)t->dtype) || t->nbytes != (int64_t)bp_dtype_size((bp_dtype)t->dtype))
    return bp_errf(e, "plan: stage %d: %s '%s' must be a float scalar in the slot", st->index, what, t->name);
  return 0;
}

int bp_rt_plan_check(const bp_rt_plan *plan, bp_err *e) {
  const bp_rt_model *m = plan->model;
  const bp_program *p = plan->program;
  if (!m || !p || !m->stages) return bp_errf(e, "plan: no model or program");
  if (m->n_stages != p->n_stages)
    return bp_errf(e, "plan: the model has %d stages but the program %d", m->n_stages, p->n_stages);
  if (p->D < 1 || p->N < 1 || p->chunks_per_rank < 1) return bp_errf(e, "plan: empty program");
  for (int s = 0; s < m->n_stages; s++) {
    const bp_rt_stage *st = &m->stages[s];
    if (st->index != s) return bp_errf(e, "plan: stage %d has index %d", s, st->index);
    if (st->param_bytes < 0 || st->const_bytes < 0 || st->slot_bytes < 0 || st->work_bytes < 0)
      return bp_errf(e, "plan: stage %d: negative arena size", s);
    for (int i = 0; i < st->ntensors; i++) {
      const bp_rt_tensor *t = &st->tensors[i];
      int64_t cap = mem_size(st, t->mem), numel = 1;
      if (cap < 0) return bp_errf(e, "plan: stage %d tensor '%s': unknown memory kind %d", s, t->name, t->mem);
      if (t->rank > BP_MAX_RANK) return bp_errf(e, "plan: stage %d tensor '%s': rank %d", s, t->name, t->rank);
      for (int k = 0; k < t->rank; k++) numel *= t->dims[k];
      size_t es = bp_dtype_size((bp_dtype)t->dtype);
      if (!es || t->nbytes != numel * (int64_t)es)
        return bp_errf(e, "plan: stage %d tensor '%s': %lld bytes for %lld elements of %s", s, t->name,
                       (long long)t->nbytes, (long long)numel, bp_dtype_name((bp_dtype)t->dtype));
      if (t->offset < 0 || t->offset + t->nbytes > cap)
        return bp_errf(e, "plan: stage %d tensor '%s': bytes [%lld, +%lld) outside its %s arena of %lld bytes", s,
                       t->name, (long long)t->offset, (long long)t->nbytes, mem_name(t->mem), (long long)cap);
    }
    if (st->n_forward < 0 || st->n_forward > st->n_bwd_input || st->n_bwd_input > st->nnodes)
      return bp_errf(e, "plan: stage %d: node ranges %d/%d/%d out of order", s, st->n_forward, st->n_bwd_input,
                     st->nnodes);
    for (int i = 0; i < st->nnodes; i++) {
      const bp_node *n = &st->nodes[i];
      for (int k = 0; k < n->nin; k++)
        if (n->in[k] < -1 || n->in[k] >= st->ntensors)
          return bp_errf(e, "plan: stage %d node '%s': input %d out of range", s, n->name, k);
      for (int k = 0; k < n->nout; k++)
        if (n->out[k] < -1 || n->out[k] >= st->ntensors)
          return bp_errf(e, "plan: stage %d node '%s': output %d out of range", s, n->name, k);
    }
    if (check_range(st, "act_in", st->n_act_in, st->act_in, st->act_in_range, e) ||
        check_range(st, "act_out", st->n_act_out, st->act_out, st->act_out_range, e) ||
        check_range(st, "grad_in", st->n_grad_in, st->grad_in, st->grad_in_range, e) ||
        check_range(st, "grad_out", st->n_grad_out, st->grad_out, st->grad_out_range, e))
      return -1;
    for (int i = 0; i < st->n_data; i++) {
      int id = st->data[i].tensor;
      if (id < 0 || id >= st->ntensors || st->tensors[id].mem != BP_MEM_SLOT)
        return bp_errf(e, "plan: stage %d: data input %d is not a slot tensor", s, i);
      if (st->data[i].kind > BP_DATA_FIXED) return bp_errf(e, "plan: stage %d: data input %d of unknown kind", s, i);
    }
    int lastst = s == m->n_stages - 1;
    if (lastst && (check_scalar(st, st->loss, "loss", e) || check_scalar(st, st->loss_weight, "loss_weight", e)))
      return -1;
    if (!lastst && (st->loss >= 0 || st->loss_weight >= 0))
      return bp_errf(e, "plan: stage %d is not the last but has a loss", s);
    for (int i = 0; i < st->nparams; i++) {
      const bp_rt_param *pa = &st->params[i];
      if (pa->tensor < 0 || pa->tensor >= st->ntensors || st->tensors[pa->tensor].mem != BP_MEM_PARAM ||
          st->tensors[pa->tensor].dtype != BP_F32)
        return bp_errf(e, "plan: stage %d parameter %d is not a float32 PARAM tensor", s, i);
      const bp_rt_tensor *t = &st->tensors[pa->tensor];
      if (pa->global_id < 0 || pa->global_id >= m->n_params || m->param_numel[pa->global_id] * 4 != t->nbytes)
        return bp_errf(e, "plan: stage %d parameter '%s': global id %d or its size does not match the table", s,
                       t->name, pa->global_id);
      if (pa->grad >= 0) {
        if (pa->grad >= st->ntensors) return bp_errf(e, "plan: stage %d parameter '%s': gradient id out of range", s, t->name);
        const bp_rt_tensor *g = &st->tensors[pa->grad];
        if ((g->mem != BP_MEM_SLOT && g->mem != BP_MEM_WORK) || g->dtype != BP_F32 || g->nbytes != t->nbytes)
          return bp_errf(e, "plan: stage %d parameter '%s': gradient '%s' is not a float32 SLOT/WORK tensor of its size",
                         s, t->name, g->name);
      }
    }
  }
  for (int s = 0; s + 1 < m->n_stages; s++) {
    const bp_rt_stage *a = &m->stages[s], *b = &m->stages[s + 1];
    if (check_match(a, "act_out", a->n_act_out, a->act_out, a->act_out_range, b, "act_in", b->n_act_in, b->act_in,
                    b->act_in_range, e) ||
        check_match(b, "grad_out", b->n_grad_out, b->grad_out, b->grad_out_range, a, "grad_in", a->n_grad_in,
                    a->grad_in, a->grad_in_range, e))
      return -1;
  }
  char err[512];
  if (bp_validate(p, err, sizeof err) < 0) return bp_errf(e, "plan: the program is not valid: %s", err);
  return 0;
}

/* An arena of n bytes on the rank's device (zeroed), counted in *total. */
static uint8_t *arena(bp_rt *rt, int64_t n, int64_t *total, const char *what, bp_err *e) {
  uint8_t *p = rt->dev->alloc(rt, n, what, e);
  if (p) *total += n;
  else
    bp_rt_err_wrap(rt, e, NULL);
  return p;
}

int bp_rt_memory_init(bp_rt *rt, bp_err *e) {
  const bp_program *p = rt->prog;
  int C = rt->C, N = rt->N;
  rt->chunk = calloc((size_t)C, sizeof *rt->chunk);
  int *slots = calloc((size_t)C, sizeof(int));
  if (!rt->chunk || !slots) {
    free(slots);
    return bp_rt_errf(rt, e, "out of memory");
  }
  char err[512];
  if (bp_rt_chunk_slots(p, rt->r, slots, err, sizeof err) < 0) {
    free(slots);
    return bp_rt_errf(rt, e, "plan: %s", err);
  }
  int64_t total = 0;
  int adam = rt->o.hp.optimizer == 1;
  for (int c = 0; c < C; c++) {
    rt_chunk *ch = &rt->chunk[c];
    const bp_chunk *pc = bp_program_chunk(p, rt->r, c);
    ch->index = c;
    ch->pipe = pc->pipe;
    ch->stage = pc->stage;
    ch->st = &rt->model->stages[pc->stage];
    ch->group = -1;
    ch->ar_req = -1;
    ch->last_bwd = -1;
    const bp_rt_stage *st = ch->st;
    char what[96];
    snprintf(what, sizeof what, "the arenas of chunk %d (stage %d)", c, ch->stage);
    if (!(ch->param = arena(rt, st->param_bytes, &total, what, e)) || !(ch->grad = arena(rt, st->param_bytes, &total, what, e)) ||
        !(ch->state1 = arena(rt, st->param_bytes, &total, what, e)) ||
        (adam && !(ch->state2 = arena(rt, st->param_bytes, &total, what, e))) ||
        !(ch->cnst = arena(rt, st->const_bytes, &total, what, e))) {
      free(slots);
      return -1;
    }
    /* the GPU's kernels read shapes and axes from CONST inputs on the host */
    if (!rt->dev->host_memory && !(ch->cnst_host = calloc(1, (size_t)(st->const_bytes > 0 ? st->const_bytes : 1)))) {
      free(slots);
      return bp_rt_errf(rt, e, "out of memory for the host copy of chunk %d's constants", c);
    }
    ch->nslots = slots[c];
    ch->slot = calloc((size_t)(slots[c] ? slots[c] : 1), sizeof(rt_slot));
    ch->slot_of = malloc(sizeof(int) * (size_t)N * 3);
    ch->vals = calloc((size_t)(st->ntensors ? st->ntensors : 1), sizeof(bp_value));
    if (!ch->slot || !ch->slot_of || !ch->vals) {
      free(slots);
      return bp_rt_errf(rt, e, "out of memory allocating chunk %d (stage %d)", c, ch->stage);
    }
    ch->first = ch->slot_of + N;
    ch->last = ch->slot_of + 2 * N;
    for (int m = 0; m < N; m++) ch->slot_of[m] = ch->first[m] = ch->last[m] = -1;
    for (int k = 0; k < ch->nslots; k++) {
      rt_slot *sl = &ch->slot[k];
      snprintf(what, sizeof what, "slot %d of chunk %d (stage %d)", k, c, ch->stage);
      sl->base = arena(rt, st->slot_bytes, &total, what, e);
      if (!sl->base) {
        free(slots);
        return -1;
      }
      sl->mb = -1;
      sl->recv_act = sl->recv_grad = sl->send[0] = sl->send[1] = -1;
    }
    for (int i = 0; i < st->ntensors; i++) {
      const bp_rt_tensor *t = &st->tensors[i];
      bp_value *v = &ch->vals[i];
      v->dtype = (bp_dtype)t->dtype;
      v->rank = t->rank;
      for (int k = 0; k < t->rank; k++) v->dims[k] = t->dims[k];
    }
    if (st->work_bytes > rt->work_bytes) rt->work_bytes = st->work_bytes;
  }
  free(slots);
  rt->work = arena(rt, rt->work_bytes, &total, "the work arena", e);
  if (!rt->work) return -1;
  rt->allocated_bytes = total;
  /* first / last instruction naming each (chunk, micro-batch), as bp_rt_chunk_slots counts them */
  const bp_rank_program *rp = &p->rank[rt->r];
  for (int i = 0; i < rp->n; i++) {
    const bp_instr *x = &rp->code[i];
    if (x->chunk < 0 || x->mb < 0) continue;
    int cs[2] = {x->chunk, -1};
    if (x->op == BP_OP_LOCAL_ACT || x->op == BP_OP_LOCAL_GRAD)
      cs[1] = bp_rt_local_peer_chunk(p, rt->r, x->chunk, x->op == BP_OP_LOCAL_ACT ? 1 : -1);
    for (int k = 0; k < 2 && cs[k] >= 0; k++) {
      rt_chunk *ch = &rt->chunk[cs[k]];
      if (ch->first[x->mb] < 0) ch->first[x->mb] = i;
      ch->last[x->mb] = i;
    }
  }
  return 0;
}

void bp_rt_memory_free(bp_rt *rt) {
  for (int c = 0; rt->chunk && c < rt->C; c++) {
    rt_chunk *ch = &rt->chunk[c];
    const bp_rt_dev *d = rt->dev;
    d->release(rt, ch->param);
    d->release(rt, ch->grad);
    d->release(rt, ch->state1);
    d->release(rt, ch->state2);
    d->release(rt, ch->cnst);
    free(ch->cnst_host);
    for (int k = 0; ch->slot && k < ch->nslots; k++) d->release(rt, ch->slot[k].base);
    free(ch->slot);
    free(ch->slot_of);
    free(ch->vals);
  }
  free(rt->chunk);
  rt->chunk = NULL;
  if (rt->work) rt->dev->release(rt, rt->work);
  rt->work = NULL;
}

uint8_t *bp_rt_slot_base(rt_chunk *c, int mb) {
  int k = c->slot_of[mb];
  return k >= 0 ? c->slot[k].base : NULL;
}

/* Completes the sends still reading slot k (needed before it is written again). */
static int drain_sends(bp_rt *rt, rt_chunk *c, int k, int block, int *clear, bp_err *e) {
  rt_slot *sl = &c->slot[k];
  *clear = 1;
  for (int i = 0; i < 2; i++) {
    if (sl->send[i] < 0) continue;
    int done = 0;
    if (block) {
      double t0 = bp_tp_now();
      bp_tp_why why = {"completion of a send", -1, -1};
      if (bp_tp_wait(rt->tp, sl->send[i], &why) < 0) return bp_rt_errf(rt, e, "%s", rt->tp->err);
      bp_rt_trace_add(rt, RT_EV_WAIT_SEND, c->index, -1, -1, t0, bp_tp_now());
      done = 1;
    } else if (bp_tp_test(rt->tp, sl->send[i], &done) < 0)
      return bp_rt_errf(rt, e, "%s", rt->tp->err);
    if (done) sl->send[i] = -1;
    else *clear = 0;
  }
  return 0;
}

int bp_rt_slot_acquire(bp_rt *rt, rt_chunk *c, int mb, bp_err *e) {
  if (c->slot_of[mb] >= 0) return 0;
  int pick = -1, busy = -1;
  for (int k = 0; k < c->nslots && pick < 0; k++) {
    if (c->slot[k].mb >= 0) continue;
    int clear;
    if (drain_sends(rt, c, k, 0, &clear, e) < 0) return -1;
    if (clear) pick = k;
    else if (busy < 0) busy = k;
  }
  if (pick < 0 && busy >= 0) {
    int clear;
    if (drain_sends(rt, c, busy, 1, &clear, e) < 0) return -1;
    pick = busy;
  }
  if (pick < 0)
    return bp_rt_errf(rt, e, "internal: chunk %d (stage %d) has no free slot for micro-batch %d (%d slots)", c->index,
                      c->stage, mb, c->nslots);
  c->slot[pick].mb = mb;
  c->slot_of[mb] = pick;
  return 0;
}

int bp_rt_slot_release(bp_rt *rt, rt_chunk *c, int mb, bp_err *e) {
  int k = c->slot_of[mb];
  if (k < 0) return 0;
  rt_slot *sl = &c->slot[k];
  if (sl->recv_act >= 0 || sl->recv_grad >= 0)
    return bp_rt_errf(rt, e, "internal: chunk %d micro-batch %d released with a receive in flight", c->index, mb);
  sl->mb = -1;
  c->slot_of[mb] = -1;
  return 0;
}
