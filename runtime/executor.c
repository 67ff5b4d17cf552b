/* runtime/executor.c — runs one training step: walks this rank's instruction list
 * (program->rank[r]) once.
 *   compute  FWD / BWD / BWD_INPUT / BWD_WEIGHT: waits for the receives the instruction needs,
 *            writes data inputs and the loss weight (FWD), binds every tensor of the stage to its
 *            arena (PARAM / CONST of the chunk, the micro-batch's SLOT, the rank's WORK), calls
 *            the stage's generated function, and after a weight gradient adds the per-micro-batch
 *            parameter gradients into the chunk's accumulator (before WORK is reused).
 *   p2p      SEND_* / RECV_* are posted at once (non-blocking; tag = the message's identity from
 *            bp_program_msg_key, so messages are matched by identity, and the validator's proof
 *            under rendezvous semantics covers any amount of buffering); receives are completed
 *            just before the compute that reads them, sends before their slot is written again.
 *   local    LOCAL_ACT / LOCAL_GRAD copy the boundary range into the neighbour chunk's slot.
 *   sync     ALLREDUCE_START / _WAIT and OPTIMIZER_STEP go to gradsync.c and update.c.
 * Slots are taken at the first instruction naming (chunk, micro-batch) and given back after the
 * last. The clocks around compute give the measured busy time; waits are traced.
 * bp_rt_run_node, the one call generated stage functions make, is here too: a node the compiler
 * made a view (bp_rt_fold.view: its output is planned at its input's bytes) does not run. */
#include "runtime/rt.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The execution context handed to generated code, with what bp_rt_run_node needs for errors. */
typedef struct rt_exec {
  bp_rt_exec x;
  bp_rt *rt;
  bp_err *e;
} rt_exec;

/* The compiler's views and folds (runtime/plan.h, bp_rt_fold) against the plan: a view's output
 * sits at its input's bytes; folds only on a float MatMul of two inputs, a transposed input of rank
 * >= 2. A program whose table says otherwise would compute garbage: refused at start. */
static int check_fold(const bp_rt_stage *st, int i, bp_err *e) {
  const bp_rt_fold *f = &st->folds[i];
  const bp_node *n = &st->nodes[i];
  int any = f->trans[0] || f->trans[1] || f->in_log2[0] || f->in_log2[1] || f->out_log2;
  if (f->view) {
    int x = f->view_in < n->nin ? n->in[f->view_in] : -1, y = n->nout > 0 ? n->out[0] : -1;
    if (x < 0 || y < 0 || x >= st->ntensors || y >= st->ntensors)
      return bp_errf(e, "plan: stage %d node '%s' is marked a view but has no such input / output", st->index, n->name);
    const bp_rt_tensor *a = &st->tensors[x], *b = &st->tensors[y];
    if (a->mem != b->mem || a->offset != b->offset || b->nbytes > a->nbytes)
      return bp_errf(e, "plan: stage %d node '%s' is marked a view but '%s' is not planned at '%s''s bytes", st->index,
                     n->name, b->name, a->name);
  }
  if (!any) return 0;
  if (strcmp(n->op_type, "MatMul") || (n->domain && *n->domain) || n->nin != 2 || n->nout != 1 || f->view)
    return bp_errf(e, "plan: stage %d node '%s' (%s) carries MatMul folds", st->index, n->name, n->op_type);
  for (int k = 0; k < 2; k++) {
    int t = n->in[k];
    if (t < 0 || t >= st->ntensors || st->tensors[t].dtype != BP_F32 || (f->trans[k] && st->tensors[t].rank < 2))
      return bp_errf(e, "plan: stage %d node '%s': a folded input that is not a float matrix", st->index, n->name);
  }
  return 0;
}

int bp_rt_resolve_ops(const bp_rt_model *m, bp_err *e) {
  for (int s = 0; s < m->n_stages; s++) {
    const bp_rt_stage *st = &m->stages[s];
    for (int i = 0; i < st->nnodes; i++) {
      bp_node *n = &st->nodes[i];
      if (!n->op) n->op = bp_op_find(n->domain, n->op_type);
      if (!n->op || !n->op->eval)
        return bp_errf(e, "stage %d node '%s': op '%s%s%s' is not in this runtime's op table", s, n->name,
                       n->domain && *n->domain ? n->domain : "", n->domain && *n->domain ? "." : "", n->op_type);
      if (st->folds && check_fold(st, i, e) < 0) return -1;
    }
  }
  return 0;
}

int bp_rt_run_node(struct bp_rt_exec *x, int k) {
  rt_exec *ex = (rt_exec *)x;
  const bp_rt_stage *st = x->stage;
  if (k < 0 || k >= st->nnodes)
    return bp_errf(ex->e, "rank %d stage %d micro-batch %d: node %d out of range (%d nodes)", x->rank, st->index, x->mb,
                   k, st->nnodes);
  bp_node *n = &st->nodes[k];
  if (st->folds && st->folds[k].view) return 0; /* its output already holds its value */
  enum { MAXIO = 256 };
  bp_value *in[MAXIO], *out[MAXIO];
  if (n->nin > MAXIO || n->nout > MAXIO)
    return bp_errf(ex->e, "rank %d stage %d: node '%s' has more than %d inputs or outputs", x->rank, st->index,
                   n->name, MAXIO);
  for (int i = 0; i < n->nin; i++) in[i] = n->in[i] >= 0 ? &x->vals[n->in[i]] : NULL;
  for (int i = 0; i < n->nout; i++) out[i] = n->out[i] >= 0 ? &x->vals[n->out[i]] : NULL;
  bp_err err = {0};
  bp_rt *rt = ex->rt;
  /* the device runs it: the CPU kernel, or the CUDA op table's on device arenas */
  if (rt->dev->eval(rt, &rt->chunk[x->chunk], x->ctx, k, in, out, &err) < 0) {
    char layers[64] = "";
    if (st->layers) snprintf(layers, sizeof layers, " (%s)", st->layers);
    return bp_errf(ex->e, "rank %d stage %d%s micro-batch %d: node '%s' (%s): %s", x->rank, st->index, layers, x->mb,
                   n->name, n->op_type, err.set ? err.msg : "failed");
  }
  /* transfers posted before this compute keep moving while it runs */
  ex->rt->tp->impl->progress(ex->rt->tp);
  return 0;
}

static int run_range(bp_rt_exec *x, int a, int b) {
  for (int k = a; k < b; k++)
    if (bp_rt_run_node(x, k) < 0) return -1;
  return 0;
}

static void bind(bp_rt *rt, rt_chunk *c, uint8_t *slot) {
  const bp_rt_stage *st = c->st;
  uint8_t *base[4] = {c->param, c->cnst, slot, rt->work};
  for (int i = 0; i < st->ntensors; i++) c->vals[i].data = base[st->tensors[i].mem] + st->tensors[i].offset;
}

/* splitmix64: the dropout stream of (seed, step, sample, stage) */
static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int global_sample(const bp_rt *rt, int mb) { return rt->replica * rt->N + rt->prog->mb_sample[mb]; }

static int wait_recv(bp_rt *rt, rt_chunk *c, int mb, int *req, int grad, bp_err *e) {
  if (*req < 0) return 0;
  const bp_chunk *ch = bp_program_chunk(rt->prog, rt->r, c->index);
  int s = grad ? ch->stage + 1 : ch->stage - 1;
  int peer = (s >= 0 && s < rt->S) ? rt->prog->stage_rank[ch->pipe * rt->S + s] + rt->replica * rt->D : -1;
  bp_tp_why why = {grad ? "gradient" : "activation", mb, peer};
  double t0 = bp_tp_now();
  if (bp_tp_wait(rt->tp, *req, &why) < 0) return bp_rt_errf(rt, e, "%s", rt->tp->err);
  bp_rt_trace_add(rt, grad ? RT_EV_WAIT_GRAD : RT_EV_WAIT_ACT, c->index, mb, peer, t0, bp_tp_now());
  *req = -1;
  return 0;
}

/* Data inputs and the loss weight of a forward. The CPU writes them into the slot; a GPU fills one
 * staging buffer of the device with all of them and queues their uploads (no wait). */
static int write_inputs(bp_rt *rt, rt_chunk *c, int mb, uint8_t *slot, bp_err *e) {
  const bp_rt_stage *st = c->st;
  int g = global_sample(rt, mb), host = rt->dev->host_memory;
  int64_t total = 0;
  for (int i = 0; i < st->n_data; i++) total += (st->tensors[st->data[i].tensor].nbytes + 15) & ~(int64_t)15;
  if (st->loss_weight >= 0) total += 16;
  uint8_t *buf = NULL;
  if (!host && total > 0 && !(buf = rt->dev->stage(rt, total, e))) return bp_rt_err_wrap(rt, e, "staging data inputs");
  int64_t at = 0;
  for (int i = 0; i < st->n_data; i++) {
    const bp_rt_tensor *t = &st->tensors[st->data[i].tensor];
    uint8_t *dst = host ? slot + t->offset : buf + at;
    if (bp_rt_data_fill(&rt->data, rt->data_pos, g, &st->data[i], t, dst, e) < 0) return -1;
    if (!host && rt->dev->upload(rt, slot + t->offset, dst, t->nbytes, "uploading a data input", e) < 0)
      return bp_rt_err_wrap(rt, e, NULL);
    at += (t->nbytes + 15) & ~(int64_t)15;
  }
  if (st->loss_weight >= 0) {
    const bp_rt_tensor *t = &st->tensors[st->loss_weight];
    if (t->nbytes > 16) return bp_rt_errf(rt, e, "plan: stage %d: the loss weight has %lld bytes (a scalar expected)", c->stage, (long long)t->nbytes);
    uint8_t *dst = host ? slot + t->offset : buf + at;
    bp_set_f64(dst, (bp_dtype)t->dtype, 0, rt->mb_weight[g]);
    if (!host && rt->dev->upload(rt, slot + t->offset, dst, t->nbytes, "uploading the loss weight", e) < 0)
      return bp_rt_err_wrap(rt, e, NULL);
  }
  return 0;
}

static int accumulate_grads(bp_rt *rt, rt_chunk *c, bp_err *e) {
  const bp_rt_stage *st = c->st;
  for (int i = 0; i < st->nparams; i++) {
    const bp_rt_param *p = &st->params[i];
    if (p->grad < 0) continue;
    const float *g = c->vals[p->grad].data;
    float *acc = (float *)(c->grad + st->tensors[p->tensor].offset);
    if (rt->dev->accumulate(rt, acc, g, st->tensors[p->tensor].nbytes / 4, e) < 0)
      return bp_rt_err_wrap(rt, e, "stage %d: accumulating the gradient of '%s'", c->stage, st->tensors[p->tensor].name);
  }
  return 0;
}

static int compute(bp_rt *rt, const bp_instr *in, bp_err *e) {
  rt_chunk *c = &rt->chunk[in->chunk];
  int mb = in->mb, op = in->op;
  rt_slot *sl = &c->slot[c->slot_of[mb]];
  if (wait_recv(rt, c, mb, &sl->recv_act, 0, e) < 0) return -1;
  if (op != BP_OP_FWD && wait_recv(rt, c, mb, &sl->recv_grad, 1, e) < 0) return -1;
  if (op == BP_OP_FWD && write_inputs(rt, c, mb, sl->base, e) < 0) return -1;
  bind(rt, c, sl->base);
  const bp_rt_stage *st = c->st;
  bp_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.training = rt->o.hp.dropout;
  ctx.seed = mix(mix(mix(mix(rt->o.hp.seed) ^ (uint64_t)(rt->step + 1)) ^ (uint64_t)global_sample(rt, mb)) ^
                 (uint64_t)c->stage);
  rt_exec ex;
  memset(&ex, 0, sizeof ex);
  ex.x.stage = st;
  ex.x.vals = c->vals;
  ex.x.ctx = &ctx;
  ex.x.rank = rt->wrank;
  ex.x.chunk = c->index;
  ex.x.mb = mb;
  ex.rt = rt;
  ex.e = e;
  double t0 = bp_tp_now();
  if (rt->dev->begin(rt, c, e) < 0) return bp_rt_err_wrap(rt, e, "stage %d micro-batch %d", c->stage, mb);
  int rc = 0;
  if (op == BP_OP_FWD) rc = st->forward ? st->forward(&ex.x) : run_range(&ex.x, 0, st->n_forward);
  if (rc == 0 && (op == BP_OP_BWD || op == BP_OP_BWD_INPUT))
    rc = st->backward_input ? st->backward_input(&ex.x) : run_range(&ex.x, st->n_forward, st->n_bwd_input);
  if (rc == 0 && (op == BP_OP_BWD || op == BP_OP_BWD_WEIGHT))
    rc = st->backward_weight ? st->backward_weight(&ex.x) : run_range(&ex.x, st->n_bwd_input, st->nnodes);
  if (rc != 0) {
    if (!e->set)
      bp_rt_errf(rt, e, "stage %d micro-batch %d: the generated %s function failed", c->stage, mb,
                 op == BP_OP_FWD ? "forward" : "backward");
    return -1;
  }
  if ((op == BP_OP_BWD || op == BP_OP_BWD_WEIGHT) && accumulate_grads(rt, c, e) < 0) return -1;
  /* the device accounts the instruction's span (a GPU: queued, not waited for) */
  if (rt->dev->finish(rt, c, op, mb, t0, e) < 0) return bp_rt_err_wrap(rt, e, "stage %d micro-batch %d", c->stage, mb);
  if (op == BP_OP_FWD && st->loss >= 0) {
    /* the loss comes back with the step's sync before the optimizer step reads it */
    const bp_rt_tensor *t = &st->tensors[st->loss];
    if (t->nbytes > 16) return bp_rt_errf(rt, e, "plan: stage %d: the loss has %lld bytes (a scalar expected)", c->stage, (long long)t->nbytes);
    if (rt->dev->fetch(rt, rt->mb_loss_raw + 16 * mb, sl->base + t->offset, t->nbytes, "reading the loss back", e) < 0)
      return bp_rt_err_wrap(rt, e, NULL);
    rt->mb_done[mb] = (unsigned char)(1 + t->dtype);
  }
  return 0;
}

static int p2p(bp_rt *rt, const bp_instr *in, bp_err *e) {
  rt_chunk *c = &rt->chunk[in->chunk];
  rt_slot *sl = &c->slot[c->slot_of[in->mb]];
  const bp_rt_stage *st = c->st;
  int tag = bp_program_msg_key(rt->prog, rt->r, in, NULL);
  int *req;
  bp_rt_range rg;
  int send = in->op == BP_OP_SEND_ACT || in->op == BP_OP_SEND_GRAD;
  switch (in->op) {
  case BP_OP_SEND_ACT: rg = st->act_out_range; req = &sl->send[0]; break;
  case BP_OP_SEND_GRAD: rg = st->grad_out_range; req = &sl->send[1]; break;
  case BP_OP_RECV_ACT: rg = st->act_in_range; req = &sl->recv_act; break;
  default: rg = st->grad_in_range; req = &sl->recv_grad; break;
  }
  if (*req >= 0)
    return bp_rt_errf(rt, e, "internal: chunk %d micro-batch %d: a second %s while one is in flight", c->index, in->mb,
                      bp_op_name((bp_op)in->op));
  double t0 = bp_tp_now();
  int rc = send ? rt->tp->impl->isend(rt->tp, rt->pipe_group, sl->base + rg.offset, rg.nbytes, in->peer, tag, req)
                : rt->tp->impl->irecv(rt->tp, rt->pipe_group, sl->base + rg.offset, rg.nbytes, in->peer, tag, req);
  if (rc < 0) return bp_rt_errf(rt, e, "%s", rt->tp->err);
  bp_rt_trace_add(rt, in->op, c->index, in->mb, in->peer + rt->replica * rt->D, t0, bp_tp_now());
  return 0;
}

static int local_copy(bp_rt *rt, const bp_instr *in, bp_err *e) {
  int act = in->op == BP_OP_LOCAL_ACT;
  int c2 = bp_rt_local_peer_chunk(rt->prog, rt->r, in->chunk, act ? 1 : -1);
  if (c2 < 0) return bp_rt_errf(rt, e, "internal: %s of chunk %d has no neighbour", bp_op_name((bp_op)in->op), in->chunk);
  rt_chunk *a = &rt->chunk[in->chunk], *b = &rt->chunk[c2];
  bp_rt_range from = act ? a->st->act_out_range : a->st->grad_out_range;
  bp_rt_range to = act ? b->st->act_in_range : b->st->grad_in_range;
  if (from.nbytes != to.nbytes)
    return bp_rt_errf(rt, e, "plan: stage %d hands %lld bytes to stage %d, which expects %lld", a->stage,
                      (long long)from.nbytes, b->stage, (long long)to.nbytes);
  double t0 = bp_tp_now();
  if (rt->dev->copy(rt, bp_rt_slot_base(b, in->mb) + to.offset, bp_rt_slot_base(a, in->mb) + from.offset, from.nbytes,
                    "a local hand-over", e) < 0)
    return bp_rt_err_wrap(rt, e, NULL);
  bp_rt_trace_add(rt, in->op, in->chunk, in->mb, -1, t0, bp_tp_now());
  return 0;
}

/* Test hook (documented in --help): BITPIPE_FAULT=RANK:STEP:kill|exit|hang makes world rank RANK
 * SIGKILL itself at the start of step STEP, or exit / stop responding halfway through it; STEP
 * "init" (fault_step -1) does it before the GPU transport is chosen (bp_rt_fault_startup), "nccl"
 * (-2, hang only) before the rank joins the NCCL communicator (transport_nccl.c). */
static void fault(bp_rt *rt, int at_start) {
  if (rt->fault_kind == 0 || rt->wrank != rt->fault_rank || rt->step + 1 != rt->fault_step) return;
  if (at_start && rt->fault_kind == 1) raise(SIGKILL);
  if (!at_start && rt->fault_kind == 2) {
    fprintf(stderr, "rank %d: BITPIPE_FAULT: exiting in the middle of step %ld\n", rt->wrank, rt->step + 1);
    fflush(stderr);
    _exit(0);
  }
  if (!at_start && rt->fault_kind == 3) {
    fprintf(stderr, "rank %d: BITPIPE_FAULT: stopping in the middle of step %ld\n", rt->wrank, rt->step + 1);
    fflush(stderr);
    for (;;) pause();
  }
}

void bp_rt_fault_startup(bp_rt *rt, int where) {
  if (rt->fault_kind == 0 || rt->wrank != rt->fault_rank || rt->fault_step != where) return;
  const char *at = where == -1 ? "before the GPU transport is chosen" : "at start-up";
  if (rt->fault_kind == 1) raise(SIGKILL);
  fprintf(stderr, "rank %d: BITPIPE_FAULT: %s %s\n", rt->wrank, rt->fault_kind == 2 ? "exiting" : "stopping", at);
  fflush(stderr);
  if (rt->fault_kind == 2) _exit(0);
  for (;;) pause();
}

static int loss_weights(bp_rt *rt, bp_err *e) {
  int n = rt->N * rt->R;
  int64_t total = 0;
  for (int g = 0; g < n; g++) {
    int64_t k;
    if (bp_rt_data_count(&rt->data, rt->data_pos, g, &k, e) < 0) return -1;
    rt->mb_weight[g] = (double)k;
    total += k;
  }
  if (total == 0) return bp_rt_errf(rt, e, "step %ld: no target of the step counts (all are the ignore index)", rt->step + 1);
  for (int g = 0; g < n; g++) rt->mb_weight[g] /= (double)total;
  return 0;
}

int bp_rt_exec_step(bp_rt *rt, bp_err *e) {
  const bp_rank_program *rp = &rt->prog->rank[rt->r];
  double t0 = bp_tp_now();
  rt->busy_s = 0;
  fault(rt, 1);
  if (rt->dev->step_begin(rt, e) < 0) return bp_rt_err_wrap(rt, e, NULL);
  if (loss_weights(rt, e) < 0) return -1;
  memset(rt->mb_done, 0, (size_t)rt->N);
  for (int i = 0; i < rp->n; i++) {
    const bp_instr *in = &rp->code[i];
    rt->cur_instr = i;
    if (i == rp->n / 2) fault(rt, 0);
    /* a run of joined p2p instructions is posted as one batch */
    rt->tp->hold = bp_op_is_p2p((bp_op)in->op) && i + 1 < rp->n && rp->code[i + 1].joined &&
                   bp_op_is_p2p((bp_op)rp->code[i + 1].op);
    /* the slots this instruction names */
    int cs[2] = {in->chunk, -1};
    if (in->mb >= 0 && (in->op == BP_OP_LOCAL_ACT || in->op == BP_OP_LOCAL_GRAD))
      cs[1] = bp_rt_local_peer_chunk(rt->prog, rt->r, in->chunk, in->op == BP_OP_LOCAL_ACT ? 1 : -1);
    if (in->mb >= 0)
      for (int k = 0; k < 2 && cs[k] >= 0; k++)
        if (bp_rt_slot_acquire(rt, &rt->chunk[cs[k]], in->mb, e) < 0) return -1;
    int rc = 0;
    switch (in->op) {
    case BP_OP_FWD:
    case BP_OP_BWD:
    case BP_OP_BWD_INPUT:
    case BP_OP_BWD_WEIGHT: rc = compute(rt, in, e); break;
    case BP_OP_SEND_ACT:
    case BP_OP_RECV_ACT:
    case BP_OP_SEND_GRAD:
    case BP_OP_RECV_GRAD: rc = p2p(rt, in, e); break;
    case BP_OP_LOCAL_ACT:
    case BP_OP_LOCAL_GRAD: rc = local_copy(rt, in, e); break;
    case BP_OP_ALLREDUCE_START: rc = bp_rt_allreduce_start(rt, &rt->chunk[in->chunk], e); break;
    case BP_OP_ALLREDUCE_WAIT: rc = bp_rt_allreduce_wait(rt, &rt->chunk[in->chunk], e); break;
    case BP_OP_OPTIMIZER_STEP: {
      double ts = bp_tp_now();
      /* the step's compute is done and its losses have come back */
      if (rt->dev->sync(rt, "the step's compute", e) < 0) return bp_rt_err_wrap(rt, e, NULL);
      double local = 0;
      for (int m = 0; m < rt->N; m++)
        if (rt->mb_done[m]) {
          rt->mb_loss[m] = bp_get_f64(rt->mb_loss_raw + 16 * m, (bp_dtype)(rt->mb_done[m] - 1), 0);
          local += rt->mb_weight[global_sample(rt, m)] * rt->mb_loss[m];
        }
      rc = bp_rt_sync_grads(rt, local, e);
      double tu = bp_tp_now();
      bp_rt_trace_add(rt, RT_EV_SYNC, -1, -1, -1, ts, tu);
      if (rc == 0) rc = bp_rt_update(rt, e);
      double tv = bp_tp_now();
      rt->busy_s += tv - tu;
      bp_rt_trace_add(rt, BP_OP_OPTIMIZER_STEP, -1, -1, -1, tu, tv);
      break;
    }
    default: rc = bp_rt_errf(rt, e, "plan: rank %d instruction %d: unknown op %d", rt->r, i, in->op);
    }
    if (rc < 0) return -1;
    /* eager gradient all-reduce the program does not place (data-parallel replicas) */
    for (int c = 0; c < rt->C; c++) {
      rt_chunk *ch = &rt->chunk[c];
      if (ch->last_bwd == i && !ch->ar_in_program && ch->group >= 0 && bp_rt_allreduce_start(rt, ch, e) < 0) return -1;
    }
    if (in->mb >= 0)
      for (int k = 0; k < 2 && cs[k] >= 0; k++)
        if (rt->chunk[cs[k]].last[in->mb] == i && bp_rt_slot_release(rt, &rt->chunk[cs[k]], in->mb, e) < 0) return -1;
  }
  rt->tp->hold = 0;
  /* every message of the step has been received by now (the optimizer step's all-reduce came
   * after every compute): complete the sends so nothing is in flight between steps */
  for (int c = 0; c < rt->C; c++)
    for (int k = 0; k < rt->chunk[c].nslots; k++) {
      rt_slot *sl = &rt->chunk[c].slot[k];
      for (int j = 0; j < 2; j++) {
        if (sl->send[j] < 0) continue;
        bp_tp_why why = {"completion of a send", -1, -1};
        if (bp_tp_wait(rt->tp, sl->send[j], &why) < 0) return bp_rt_errf(rt, e, "%s", rt->tp->err);
        sl->send[j] = -1;
      }
    }
  rt->step_s = bp_tp_now() - t0;
  return 0;
}
