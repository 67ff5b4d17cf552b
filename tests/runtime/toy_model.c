/* tests/runtime/toy_model.c — builds the toy model's stage graphs and converts them into a
 * runtime plan (see toy_model.h). */
#include "tests/runtime/toy_model.h"
#include "frontend/autodiff.h"
#include "frontend/train.h"
#include "partitioner/simulate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN(x) (((x) + 63) & ~(int64_t)63)

void toy_cfg_default(toy_cfg *c) {
  memset(c, 0, sizeof *c);
  c->V = 32;
  c->H = 16;
  c->L = 8;
  c->B = 2;
  c->T = 8;
  c->schedule = "1f1b";
  c->D = 2;
  c->N = 4;
  c->init_seed = 1;
  c->hp.optimizer = 0;
  c->hp.lr = 0.1;
  c->hp.beta1 = 0.9;
  c->hp.beta2 = 0.999;
  c->hp.eps = 1e-8;
}

static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double urand(uint64_t *s) {
  *s = mix(*s);
  return (double)(*s >> 11) * (1.0 / 9007199254740992.0);
}

void toy_param_init(const toy_cfg *c, int gid, float *dst, int64_t n) {
  uint64_t s = c->init_seed * 1000003ull + (uint64_t)gid;
  double scale = gid == 0 ? 1.0 : gid == c->L + 1 ? 0.3 : 1.5 / sqrt((double)c->H);
  for (int64_t i = 0; i < n; i++) dst[i] = (float)((2 * urand(&s) - 1) * scale);
}

static void const_init(const toy_cfg *c, int layer, float *dst, int64_t n) {
  uint64_t s = c->init_seed * 7919ull + 100000ull + (uint64_t)layer;
  for (int64_t i = 0; i < n; i++) dst[i] = (float)(0.6 + 0.8 * urand(&s));
}

typedef struct toy_ids {
  int tokens, h_in, tok_in, h_out, tok_out, g_in, loss, lw, targets, logits, pseudo;
  int nparams, params[64], gids[64];
} toy_ids;

static int new_tensor(bp_graph *g, const char *name, bp_tensor_kind kind, bp_dtype dt, int rank, const int64_t *dims,
                      bp_err *e) {
  int t = bp_graph_tensor(g, name);
  if (t < 0) return bp_errf(e, "out of memory");
  bp_tensor *x = g->tensors[t];
  x->kind = kind;
  x->v.dtype = dt;
  x->v.rank = rank;
  for (int k = 0; k < rank; k++) x->v.dims[k] = dims[k];
  if (kind == BP_T_INPUT) {
    int *ni = realloc(g->inputs, sizeof(int) * (size_t)(g->ninputs + 1));
    if (!ni) return bp_errf(e, "out of memory");
    g->inputs = ni;
    g->inputs[g->ninputs++] = t;
  }
  return t;
}

static int new_param(bp_graph *g, const toy_cfg *c, int gid, const char *name, int rank, const int64_t *dims,
                     toy_ids *id, bp_err *e) {
  int t = new_tensor(g, name, BP_T_INITIALIZER, BP_F32, rank, dims, e);
  if (t < 0) return -1;
  float *d = bp_tensor_alloc(g->tensors[t]);
  if (!d) return bp_errf(e, "out of memory");
  toy_param_init(c, gid, d, bp_value_numel(&g->tensors[t]->v));
  id->params[id->nparams] = t;
  id->gids[id->nparams++] = gid;
  return t;
}

/* Layers [l0, l1) of the model; `first` / `last`: the stage holds the embedding / the head;
 * full: the whole model with logits as output (no loss). */
static bp_graph *build(const toy_cfg *c, int l0, int l1, int first, int last, int batch, int full, toy_ids *id,
                       bp_err *e) {
  bp_graph *g = bp_graph_new();
  if (!g) {
    bp_errf(e, "out of memory");
    return NULL;
  }
  memset(id, -1, sizeof *id);
  id->nparams = 0;
  bp_ad ad = {.g = g, .e = e, .cur = -1};
  int64_t bt[2] = {batch, c->T}, bth[3] = {batch, c->T, c->H}, vh[2] = {c->V, c->H}, hh[2] = {c->H, c->H},
          h1[1] = {c->H};
  int x, tok, E = -1;
  char name[64];
  if (first) {
    tok = id->tokens = new_tensor(g, "tokens", BP_T_INPUT, BP_I64, 2, bt, e);
    E = new_param(g, c, 0, "E", 2, vh, id, e);
    x = E < 0 || tok < 0 ? -1 : bp_ad_op2(&ad, "Gather", E, tok);
  } else {
    x = id->h_in = new_tensor(g, "h_in", BP_T_INPUT, BP_F32, 3, bth, e);
    tok = id->tok_in = new_tensor(g, "tok_in", BP_T_INPUT, BP_I64, 2, bt, e);
  }
  for (int l = l0; l < l1 && !e->set; l++) {
    snprintf(name, sizeof name, "W%d", l);
    int W = new_param(g, c, 1 + l, name, 2, hh, id, e);
    x = bp_ad_op1(&ad, "Tanh", bp_ad_op2(&ad, "MatMul", x, W));
    if (l % 2 == 1) {
      snprintf(name, sizeof name, "c%d", l);
      int k = new_tensor(g, name, BP_T_CONSTANT, BP_F32, 1, h1, e);
      float *d = k < 0 ? NULL : bp_tensor_alloc(g->tensors[k]);
      if (!d) {
        bp_errf(e, "out of memory");
        break;
      }
      const_init(c, l, d, c->H);
      x = bp_ad_op2(&ad, "Mul", x, k);
    }
  }
  if (last && !e->set) {
    int P = new_param(g, c, c->L + 1, "P", 2, vh, id, e);
    x = bp_ad_op2(&ad, "Add", x, bp_ad_op2(&ad, "Gather", P, tok));
    int E2 = first ? E : new_param(g, c, 0, "E", 2, vh, id, e);
    int logits = id->logits = bp_ad_op2(&ad, "MatMul", x, bp_ad_op1(&ad, "Transpose", E2));
    if (full && !e->set) {
      g->outputs = malloc(sizeof(int));
      if (!g->outputs) bp_errf(e, "out of memory");
      else {
        g->outputs[g->noutputs++] = logits;
        g->tensors[logits]->is_output = 1;
      }
    } else if (!e->set) {
      id->loss = bp_loss_append(g, logits, BP_LOSS_CROSS_ENTROPY, -100, "targets", &id->targets, e);
      id->lw = new_tensor(g, "loss_weight", BP_T_INPUT, BP_F32, 0, NULL, e);
      id->pseudo = bp_ad_op2(&ad, "Mul", id->loss, id->lw);
    }
  } else if (!e->set) {
    id->h_out = x;
    id->tok_out = bp_ad_op1(&ad, "Identity", tok);
    id->g_in = new_tensor(g, "grad_in", BP_T_INPUT, BP_F32, 3, bth, e);
    int prod = bp_ad_op2(&ad, "Mul", id->h_out, id->g_in);
    int node = prod < 0 ? -1 : bp_ad_node(&ad, NULL, "ReduceSum", 1, &prod, 1);
    bp_ad_attr_int(&ad, node, "keepdims", 0);
    id->pseudo = node < 0 ? -1 : bp_ad_infer(&ad, node);
  }
  if (e->set) {
    bp_graph_free(g);
    return NULL;
  }
  return g;
}

bp_graph *toy_full_graph(const toy_cfg *c, int batch, bp_err *e) {
  toy_ids id;
  return build(c, 0, c->L, 1, 1, batch, 1, &id, e);
}

static void *own(toy_plan *tp, size_t bytes) {
  if (tp->nowned == tp->capowned) {
    int cap = tp->capowned ? tp->capowned * 2 : 64;
    void **n = realloc(tp->owned, sizeof(void *) * (size_t)cap);
    if (!n) return NULL;
    tp->owned = n;
    tp->capowned = cap;
  }
  void *p = calloc(1, bytes ? bytes : 1);
  if (p) tp->owned[tp->nowned++] = p;
  return p;
}

static int stage_fn_fwd(bp_rt_exec *x) {
  for (int k = 0; k < x->stage->n_forward; k++)
    if (bp_rt_run_node(x, k) < 0) return -1;
  return 0;
}
static int stage_fn_bwd_in(bp_rt_exec *x) {
  for (int k = x->stage->n_forward; k < x->stage->n_bwd_input; k++)
    if (bp_rt_run_node(x, k) < 0) return -1;
  return 0;
}
static int stage_fn_bwd_w(bp_rt_exec *x) {
  for (int k = x->stage->n_bwd_input; k < x->stage->nnodes; k++)
    if (bp_rt_run_node(x, k) < 0) return -1;
  return 0;
}

/* One stage graph -> bp_rt_stage (tensors, reordered nodes, boundaries, arenas, initial bytes). */
static int convert(toy_plan *tp, int s, bp_graph *g, const toy_ids *id, const bp_ad_result *r,
                   const unsigned char *tied_gid, bp_err *e) {
  bp_rt_stage *st = &tp->stages[s];
  int first = s == 0, last = s == tp->S - 1;
  int nt = g->ntensors, nn = g->nnodes, nf0 = r->first_bwd;
  st->index = s;
  st->ntensors = nt;
  bp_rt_tensor *ts = own(tp, sizeof *ts * (size_t)nt);
  unsigned char *keep = own(tp, (size_t)nn), *need = own(tp, (size_t)nt), *half = own(tp, (size_t)nn);
  int *pgrad = own(tp, sizeof(int) * (size_t)nt);
  if (!ts || !keep || !need || !half || !pgrad) return bp_errf(e, "out of memory");
  int grad_out = first ? -1 : r->grads[r->nwrt - 1];
  for (int t = 0; t < nt; t++) pgrad[t] = 0;
  for (int i = 0; i < id->nparams; i++)
    if (r->grads[i] >= 0) pgrad[r->grads[i]] = 1;
  /* backward halves: the nodes grad_out needs are the input half */
  if (grad_out >= 0) need[grad_out] = 1;
  for (int i = nn - 1; i >= nf0; i--) {
    const bp_node *n = g->nodes[i];
    for (int k = 0; k < n->nout; k++)
      if (n->out[k] >= 0 && need[n->out[k]]) half[i] = 1;
    for (int k = 0; half[i] && k < n->nin; k++)
      if (n->in[k] >= 0) need[n->in[k]] = 1;
  }
  /* forward nodes kept: what the boundary, the loss and the backward read (not the pseudo-loss) */
  memset(need, 0, (size_t)nt);
  if (last) need[id->loss] = 1;
  else need[id->h_out] = need[id->tok_out] = 1;
  for (int i = nf0; i < nn; i++)
    for (int k = 0; k < g->nodes[i]->nin; k++)
      if (g->nodes[i]->in[k] >= 0) need[g->nodes[i]->in[k]] = 1;
  for (int i = nf0 - 1; i >= 0; i--) {
    const bp_node *n = g->nodes[i];
    for (int k = 0; k < n->nout; k++)
      if (n->out[k] >= 0 && need[n->out[k]]) keep[i] = 1;
    for (int k = 0; keep[i] && k < n->nin; k++)
      if (n->in[k] >= 0) need[n->in[k]] = 1;
  }
  bp_node *nodes = own(tp, sizeof(bp_node) * (size_t)nn);
  if (!nodes) return bp_errf(e, "out of memory");
  int k = 0;
  for (int i = 0; i < nf0; i++)
    if (keep[i]) nodes[k++] = *g->nodes[i];
  st->n_forward = k;
  for (int i = nf0; i < nn; i++)
    if (half[i]) nodes[k++] = *g->nodes[i];
  st->n_bwd_input = k;
  for (int i = nf0; i < nn; i++)
    if (!half[i]) nodes[k++] = *g->nodes[i];
  st->nnodes = k;
  st->nodes = nodes;
  /* stage functions: generated-style on even stages, the runtime's default loop on odd ones */
  if (s % 2 == 0) {
    st->forward = stage_fn_fwd;
    st->backward_input = stage_fn_bwd_in;
    st->backward_weight = stage_fn_bwd_w;
  }
  /* tensors: memory kind and offsets; boundary lists first in the slot, in order */
  int64_t slot = 0, work = 0, cst = 0, par = 0;
  unsigned char *placed = own(tp, (size_t)nt);
  if (!placed) return bp_errf(e, "out of memory");
  for (int t = 0; t < nt; t++) {
    const bp_tensor *x = g->tensors[t];
    bp_rt_tensor *y = &ts[t];
    y->name = x->name;
    y->dtype = (uint8_t)x->v.dtype;
    y->rank = (uint8_t)x->v.rank;
    for (int d = 0; d < x->v.rank; d++) y->dims[d] = x->v.dims[d];
    y->nbytes = (int64_t)bp_value_bytes(&x->v);
    y->mem = x->kind == BP_T_INITIALIZER ? BP_MEM_PARAM
             : x->kind == BP_T_CONSTANT  ? BP_MEM_CONST
             : pgrad[t]                  ? BP_MEM_WORK
                                         : BP_MEM_SLOT;
  }
  int lists[8] = {id->h_in, id->tok_in, id->h_out, id->tok_out, id->g_in, grad_out, -1, -1};
  for (int i = 0; i < 6; i++)
    if (lists[i] >= 0) {
      ts[lists[i]].offset = slot;
      slot = ALIGN(slot + ts[lists[i]].nbytes);
      placed[lists[i]] = 1;
    }
  /* parameters: non-tied first, tied last (the eager all-reduce covers the prefix) */
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < id->nparams; i++)
      if (tied_gid[id->gids[i]] == pass) {
        ts[id->params[i]].offset = par;
        par = ALIGN(par + ts[id->params[i]].nbytes);
        placed[id->params[i]] = 1;
      }
  for (int t = 0; t < nt; t++) {
    if (placed[t]) continue;
    int64_t *at = ts[t].mem == BP_MEM_CONST ? &cst : ts[t].mem == BP_MEM_WORK ? &work : &slot;
    ts[t].offset = *at;
    *at = ALIGN(*at + ts[t].nbytes);
  }
  st->tensors = ts;
  st->param_bytes = par;
  st->const_bytes = cst;
  st->slot_bytes = slot;
  st->work_bytes = work;
  /* boundary lists */
  int *l = own(tp, sizeof(int) * 8);
  if (!l) return bp_errf(e, "out of memory");
  if (!first) {
    l[0] = id->h_in;
    l[1] = id->tok_in;
    l[2] = grad_out;
    st->n_act_in = 2;
    st->act_in = l;
    st->act_in_range = (bp_rt_range){ts[id->h_in].offset, ts[id->tok_in].offset + ts[id->tok_in].nbytes - ts[id->h_in].offset};
    st->n_grad_out = 1;
    st->grad_out = l + 2;
    st->grad_out_range = (bp_rt_range){ts[grad_out].offset, ts[grad_out].nbytes};
  }
  if (!last) {
    l[3] = id->h_out;
    l[4] = id->tok_out;
    l[5] = id->g_in;
    st->n_act_out = 2;
    st->act_out = l + 3;
    st->act_out_range =
        (bp_rt_range){ts[id->h_out].offset, ts[id->tok_out].offset + ts[id->tok_out].nbytes - ts[id->h_out].offset};
    st->n_grad_in = 1;
    st->grad_in = l + 5;
    st->grad_in_range = (bp_rt_range){ts[id->g_in].offset, ts[id->g_in].nbytes};
  }
  bp_rt_data_input *din = own(tp, sizeof *din * 2);
  if (!din) return bp_errf(e, "out of memory");
  if (first) din[st->n_data++] = (bp_rt_data_input){id->tokens, BP_DATA_TOKENS, "tokens"};
  if (last) din[st->n_data++] = (bp_rt_data_input){id->targets, BP_DATA_TARGETS, "targets"};
  st->data = din;
  st->loss = last ? id->loss : -1;
  st->loss_weight = last ? id->lw : -1;
  bp_rt_param *pp = own(tp, sizeof *pp * (size_t)id->nparams);
  if (!pp) return bp_errf(e, "out of memory");
  for (int i = 0; i < id->nparams; i++) pp[i] = (bp_rt_param){id->params[i], r->grads[i], id->gids[i]};
  st->nparams = id->nparams;
  st->params = pp;
  /* initial arena contents for the weights file */
  tp->param_bytes[s] = own(tp, (size_t)par);
  tp->const_bytes[s] = own(tp, (size_t)cst);
  if (!tp->param_bytes[s] || !tp->const_bytes[s]) return bp_errf(e, "out of memory");
  for (int t = 0; t < nt; t++) {
    const bp_tensor *x = g->tensors[t];
    if (ts[t].mem == BP_MEM_PARAM) memcpy(tp->param_bytes[s] + ts[t].offset, x->v.data, (size_t)ts[t].nbytes);
    if (ts[t].mem == BP_MEM_CONST) memcpy(tp->const_bytes[s] + ts[t].offset, x->v.data, (size_t)ts[t].nbytes);
  }
  char *layers = own(tp, 32);
  if (!layers) return bp_errf(e, "out of memory");
  st->layers = layers;
  return 0;
}

int toy_build(const toy_cfg *c, toy_plan *tp, bp_err *e) {
  memset(tp, 0, sizeof *tp);
  char err[512];
  bp_sched_params sp = {c->D, c->N, c->chunks};
  if (bp_schedule_generate(c->schedule, &sp, &tp->prog, err, sizeof err) < 0) return bp_errf(e, "%s", err);
  int S = tp->S = tp->prog.n_stages, L = c->L;
  if (L % S != 0) return bp_errf(e, "toy: %d layers do not split into %d stages", L, S);
  int np = L + 2;
  tp->stages = own(tp, sizeof(bp_rt_stage) * (size_t)S);
  tp->graphs = own(tp, sizeof(bp_graph *) * (size_t)S);
  tp->param_names = own(tp, sizeof(char *) * (size_t)np);
  tp->param_numel = own(tp, sizeof(int64_t) * (size_t)np);
  tp->param_offset = own(tp, sizeof(int64_t) * (size_t)np);
  tp->param_bytes = own(tp, sizeof(uint8_t *) * (size_t)S);
  tp->const_bytes = own(tp, sizeof(uint8_t *) * (size_t)S);
  tp->bubble = own(tp, sizeof(double) * (size_t)c->D);
  tp->planned = own(tp, sizeof(int64_t) * (size_t)c->D);
  unsigned char *tied = own(tp, (size_t)np);
  if (!tp->stages || !tp->graphs || !tp->param_names || !tp->param_numel || !tp->param_offset || !tp->param_bytes || !tp->const_bytes ||
      !tp->bubble || !tp->planned || !tied)
    return bp_errf(e, "out of memory");
  tied[0] = S > 1; /* E: held by the first and the last stage */
  for (int gid = 0; gid < np; gid++) {
    char *n = own(tp, 16);
    if (!n) return bp_errf(e, "out of memory");
    if (gid == 0) snprintf(n, 16, "E");
    else if (gid == np - 1) snprintf(n, 16, "P");
    else snprintf(n, 16, "W%d", gid - 1);
    tp->param_names[gid] = n;
    tp->param_numel[gid] = gid == 0 || gid == np - 1 ? (int64_t)c->V * c->H : (int64_t)c->H * c->H;
    tp->param_offset[gid] = gid == 0 ? 100 : tp->param_offset[gid - 1] + 4 * tp->param_numel[gid - 1] + 16;
  }
  for (int s = 0; s < S; s++) {
    toy_ids id;
    int l0 = s * L / S, l1 = (s + 1) * L / S;
    bp_graph *g = tp->graphs[s] = build(c, l0, l1, s == 0, s == S - 1, c->B, 0, &id, e);
    if (!g) return -1;
    int wrt[66], grads[66];
    int nw = 0;
    for (int i = 0; i < id.nparams; i++) wrt[nw++] = id.params[i];
    if (s > 0) wrt[nw++] = id.h_in;
    bp_ad_result r = {.loss = id.pseudo, .nwrt = nw, .wrt = wrt, .grads = grads};
    if (bp_autodiff(g, 0, &r, e) < 0) return -1;
    free(r.stash);
    if (convert(tp, s, g, &id, &r, tied, e) < 0) return -1;
    snprintf((char *)tp->stages[s].layers, 32, "layers %d-%d", l0, l1 - 1);
  }
  /* fingerprint: the configuration that shapes the plan */
  uint64_t h = mix(0x70791234);
  int64_t v[] = {c->V, c->H, c->L, c->B, c->T, c->D, c->N, c->chunks, (int64_t)c->init_seed};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) h = mix(h ^ (uint64_t)v[i]);
  for (const char *p = c->schedule; *p; p++) h = mix(h ^ (uint64_t)(unsigned char)*p);
  bp_rt_model *m = &tp->model;
  m->model_path = c->model_path;
  m->param_onnx_offset = tp->param_offset;
  m->weights_file = "toy.weights";
  m->fingerprint = h;
  m->n_stages = S;
  m->stages = tp->stages;
  m->n_params = np;
  m->param_names = (const char *const *)tp->param_names;
  m->param_numel = tp->param_numel;
  m->batch = c->B;
  m->seq = c->T;
  m->vocab = c->V;
  m->loss_kind = 0;
  m->ignore_index = -100;
  int64_t off = sizeof(bp_rt_weights_header);
  for (int s = 0; s < S; s++) {
    off = ALIGN(off);
    tp->stages[s].weights_offset = off;
    off += tp->stages[s].param_bytes + tp->stages[s].const_bytes;
  }
  /* the plan's predictions: the simulator with uniform costs (unit-less), memory from memplan */
  bp_sim_config sc;
  bp_sim_config_default(&sc);
  bp_sim_result sr;
  memset(&sr, 0, sizeof sr);
  if (bp_simulate(&tp->prog, &sc, &sr, err, sizeof err) < 0) return bp_errf(e, "%s", err);
  for (int r = 0; r < c->D; r++) tp->bubble[r] = sr.bubble[r];
  bp_sim_result_free(&sr);
  for (int r = 0; r < c->D; r++)
    if ((tp->planned[r] = bp_rt_rank_bytes(m, &tp->prog, r, c->hp.optimizer, err, sizeof err)) < 0)
      return bp_errf(e, "%s", err);
  tp->plan.model = m;
  tp->plan.program = &tp->prog;
  tp->plan.hp = c->hp;
  tp->plan.predicted_step_s = 0;
  tp->plan.predicted_bubble = tp->bubble;
  tp->plan.planned_rank_bytes = tp->planned;
  return 0;
}

void toy_free(toy_plan *tp) {
  for (int s = 0; tp->graphs && s < tp->S; s++) bp_graph_free(tp->graphs[s]);
  bp_program_free(&tp->prog);
  for (int i = 0; i < tp->nowned; i++) free(tp->owned[i]);
  free(tp->owned);
  memset(tp, 0, sizeof *tp);
}

int toy_write_weights(const toy_plan *tp, const char *path, bp_err *e) {
  const bp_rt_model *m = &tp->model;
  const bp_rt_stage *lastst = &m->stages[m->n_stages - 1];
  int64_t total = lastst->weights_offset + lastst->param_bytes + lastst->const_bytes;
  bp_rt_weights_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, BP_RT_WEIGHTS_MAGIC, 8);
  h.version = BP_RT_WEIGHTS_VERSION;
  h.n_stages = (uint32_t)m->n_stages;
  h.fingerprint = m->fingerprint;
  h.total_bytes = (uint64_t)total;
  FILE *f = fopen(path, "wb");
  if (!f) return bp_errf(e, "cannot write '%s'", path);
  uint8_t *buf = calloc(1, (size_t)total);
  if (!buf) {
    fclose(f);
    return bp_errf(e, "out of memory");
  }
  memcpy(buf, &h, sizeof h);
  for (int s = 0; s < m->n_stages; s++) {
    const bp_rt_stage *st = &m->stages[s];
    memcpy(buf + st->weights_offset, tp->param_bytes[s], (size_t)st->param_bytes);
    memcpy(buf + st->weights_offset + st->param_bytes, tp->const_bytes[s], (size_t)st->const_bytes);
  }
  int ok = fwrite(buf, 1, (size_t)total, f) == (size_t)total;
  free(buf);
  if (fclose(f) != 0 || !ok) return bp_errf(e, "error writing '%s'", path);
  return 0;
}

int toy_write_model(const toy_plan *tp, const toy_cfg *c, const char *path, bp_err *e) {
  const bp_rt_model *m = &tp->model;
  int64_t end = m->param_onnx_offset[m->n_params - 1] + 4 * m->param_numel[m->n_params - 1] + 16;
  uint8_t *buf = malloc((size_t)end);
  if (!buf) return bp_errf(e, "out of memory");
  for (int64_t i = 0; i < end; i++) buf[i] = (uint8_t)(i * 37 + 11);
  for (int g = 0; g < m->n_params; g++)
    toy_param_init(c, g, (float *)(buf + m->param_onnx_offset[g]), m->param_numel[g]);
  FILE *f = fopen(path, "wb");
  int ok = f && fwrite(buf, 1, (size_t)end, f) == (size_t)end;
  if (f && fclose(f) != 0) ok = 0;
  free(buf);
  return ok ? 0 : bp_errf(e, "cannot write '%s'", path);
}
