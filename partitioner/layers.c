/* partitioner/layers.c — cut points and layers of a forward graph (method in layers.h), and the
 * per-layer figures the costs start from: FLOPs, bytes moved, parameters, stash, boundary. */
#include "partitioner/layers.h"

#include "frontend/autodiff.h"
#include "frontend/onnx_load.h"
#include "frontend/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bp_model_layers_free(bp_model_layers *m) {
  if (m->g) bp_graph_free(m->g);
  free(m->node_layer), free(m->stash), free(m->layer);
  memset(m, 0, sizeof *m);
}

static double tensor_bytes(const bp_graph *g, int t) {
  return t < 0 ? 0 : (double)bp_value_bytes(&g->tensors[t]->v);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

/* The best repetition among segment signatures: start, period, reps maximising the nodes covered. */
static void find_repeat(int ns, const uint64_t *sig, const int *seg_nodes, int *best_start, int *best_p,
                        int *best_reps, long *best_cov) {
  *best_start = *best_p = *best_reps = 0, *best_cov = 0;
  for (int p = 1; 2 * p <= ns; p++) {
    int i = 0;
    while (i + p < ns) {
      if (sig[i] != sig[i + p]) {
        i++;
        continue;
      }
      int len = 0;
      while (i + len + p < ns && sig[i + len] == sig[i + len + p]) len++;
      int reps = (len + p) / p;
      if (reps >= 2) {
        long cov = 0;
        for (int k = i; k < i + reps * p; k++) cov += seg_nodes[k];
        if (cov > *best_cov) *best_start = i, *best_p = p, *best_reps = reps, *best_cov = cov;
      }
      i += len;
    }
  }
}

int bp_layers_find(bp_graph *g, int n_fwd, const unsigned char *stash, const unsigned char *trainable,
                   bp_layers_granularity gran, bp_model_layers *m, bp_err *e) {
  int nt = g->ntensors, nn = g->nnodes, rc = -1;
  unsigned char *floating = calloc((size_t)nn + 1, 1);
  int *pos_node = malloc(sizeof(int) * ((size_t)n_fwd + 1)), *node_pos = malloc(sizeof(int) * ((size_t)nn + 1));
  int *last_pos = malloc(sizeof(int) * ((size_t)nt + 1)), *mark = malloc(sizeof(int) * ((size_t)nt + 1));
  double *cross = calloc((size_t)n_fwd + 2, sizeof(double));
  int *cross_n = calloc((size_t)n_fwd + 2, sizeof(int));
  int *cut = malloc(sizeof(int) * ((size_t)n_fwd + 2)), *seg_nodes = malloc(sizeof(int) * ((size_t)n_fwd + 2));
  unsigned char *readers = NULL;
  uint64_t *sig = malloc(sizeof(uint64_t) * ((size_t)n_fwd + 2));
  double *xs = malloc(sizeof(double) * ((size_t)n_fwd + 2));
  m->node_layer = malloc(sizeof(int) * ((size_t)nn + 1));
  if (!floating || !pos_node || !node_pos || !last_pos || !mark || !cross || !cross_n || !cut || !seg_nodes || !sig ||
      !xs || !m->node_layer) {
    bp_errf(e, "layers: out of memory");
    goto done;
  }
  /* floating nodes: computed from weights and constants only */
  int npos = 0;
  for (int i = 0; i < n_fwd; i++) {
    const bp_node *n = g->nodes[i];
    int fl = 1;
    for (int k = 0; k < n->nin && fl; k++) {
      int t = n->in[k];
      if (t < 0) continue;
      const bp_tensor *tt = g->tensors[t];
      if (tt->kind == BP_T_INITIALIZER || tt->kind == BP_T_CONSTANT) continue;
      if (tt->kind == BP_T_ACTIVATION && tt->producer >= 0 && tt->producer < i && floating[tt->producer]) continue;
      fl = 0;
    }
    floating[i] = (unsigned char)fl;
    node_pos[i] = -1;
    if (!fl) node_pos[i] = npos, pos_node[npos++] = i;
  }
  if (npos < 1) {
    bp_errf(e, "layers: the forward graph has no node that depends on the model's inputs");
    goto done;
  }
  /* crossing activations per cut position k (between positions k-1 and k) */
  for (int t = 0; t < nt; t++) last_pos[t] = -1;
  for (int i = 0; i < n_fwd; i++) {
    if (floating[i]) continue;
    const bp_node *n = g->nodes[i];
    for (int k = 0; k < n->nin; k++)
      if (n->in[k] >= 0 && node_pos[i] > last_pos[n->in[k]]) last_pos[n->in[k]] = node_pos[i];
  }
  for (int t = 0; t < nt; t++) {
    const bp_tensor *tt = g->tensors[t];
    if (tt->kind != BP_T_ACTIVATION || tt->producer < 0 || tt->producer >= n_fwd || floating[tt->producer]) continue;
    int a = node_pos[tt->producer], b = last_pos[t];
    if (b <= a) continue;
    double by = tensor_bytes(g, t);
    cross[a + 1] += by, cross[b + 1] -= by; /* cuts a+1..b */
    cross_n[a + 1]++, cross_n[b + 1]--;
  }
  for (int k = 1; k <= npos; k++) cross[k] += cross[k - 1], cross_n[k] += cross_n[k - 1];
  /* thresholds: the distinct crossing sizes, ascending */
  int nx = 0;
  for (int k = 1; k < npos; k++) {
    int seen = 0;
    for (int j = 0; j < nx && !seen; j++) seen = xs[j] == cross[k];
    if (!seen) xs[nx++] = cross[k];
  }
  for (int i = 1; i < nx; i++)
    for (int j = i; j > 0 && xs[j - 1] > xs[j]; j--) {
      double tmp = xs[j];
      xs[j] = xs[j - 1], xs[j - 1] = tmp;
    }
  int found = 0, ns = 0, bstart = 0, bp = 0, breps = 0;
  double X = 0;
  for (int xi = 0; xi < nx && !found; xi++) {
    X = xs[xi];
    ns = 0;
    cut[ns] = 0;
    for (int k = 1; k < npos; k++)
      if (cross[k] <= X) cut[++ns] = k;
    cut[++ns] = npos; /* segments s: positions [cut[s], cut[s+1]) */
    for (int s = 0; s < ns; s++) {
      uint64_t h = 1469598103934665603ull;
      for (int q = cut[s]; q < cut[s + 1]; q++) {
        const bp_node *n = g->nodes[pos_node[q]];
        h = fnv(h, n->op_type, strlen(n->op_type) + 1);
        if (n->nout > 0 && n->out[0] >= 0) {
          const bp_value *v = &g->tensors[n->out[0]]->v;
          h = fnv(h, &v->rank, sizeof v->rank);
          if (v->rank > 0) h = fnv(h, v->dims, sizeof(int64_t) * (size_t)v->rank);
        }
      }
      sig[s] = h, seg_nodes[s] = cut[s + 1] - cut[s];
    }
    long cov;
    find_repeat(ns, sig, seg_nodes, &bstart, &bp, &breps, &cov);
    if (breps >= 2 && 2 * cov >= npos) found = 1;
  }
  if (!found) {
    /* no repeated block: every segment at the smallest threshold that gives at least two */
    X = nx ? xs[0] : 0;
    ns = 0;
    cut[0] = 0;
    for (int k = 1; k < npos; k++)
      if (cross[k] <= X) cut[++ns] = k;
    cut[++ns] = npos;
    bstart = 0, bp = 1, breps = 0;
    gran = BP_LAYERS_FINE;
  }
  m->threshold = X, m->n_segments = ns, m->period = bp, m->reps = breps, m->n_positions = npos;
  /* layers as ranges of segments */
  int nl = 0, cap = ns + 2;
  m->layer = calloc((size_t)cap, sizeof(bp_layer_info));
  if (!m->layer) {
    bp_errf(e, "layers: out of memory");
    goto done;
  }
  int bend = bstart + bp * breps;
  for (int s = 0; s < ns;) {
    int s_end;
    bp_layer_info *L = &m->layer[nl];
    if (s < bstart) {
      s_end = gran == BP_LAYERS_FINE ? s + 1 : bstart;
      L->kind = BP_LAYER_PREFIX;
      if (gran == BP_LAYERS_FINE) snprintf(L->name, sizeof L->name, "embed.%d", s);
      else snprintf(L->name, sizeof L->name, "embed");
    } else if (s < bend) {
      int b = (s - bstart) / bp;
      s_end = gran == BP_LAYERS_FINE ? s + 1 : bstart + (b + 1) * bp;
      L->kind = BP_LAYER_BLOCK;
      if (gran == BP_LAYERS_FINE) snprintf(L->name, sizeof L->name, "block%d.%d", b, (s - bstart) % bp);
      else snprintf(L->name, sizeof L->name, "block%d", b);
    } else {
      s_end = gran == BP_LAYERS_FINE ? s + 1 : ns;
      L->kind = BP_LAYER_SUFFIX;
      if (gran == BP_LAYERS_FINE) snprintf(L->name, sizeof L->name, "head.%d", s - bend);
      else snprintf(L->name, sizeof L->name, "head");
    }
    if (!found) L->kind = BP_LAYER_SEGMENT, snprintf(L->name, sizeof L->name, "seg%d", s);
    L->pos_begin = cut[s], L->pos_end = cut[s_end];
    nl++, s = s_end;
  }
  m->n = nl;
  /* node -> layer: positioned nodes by range, floating nodes by their first reader */
  for (int i = 0; i < nn; i++) m->node_layer[i] = -1;
  for (int l = 0; l < nl; l++)
    for (int q = m->layer[l].pos_begin; q < m->layer[l].pos_end; q++) m->node_layer[pos_node[q]] = l;
  /* readers[i*nl + l]: floating node i is read (directly or through other floating nodes) by layer
   * l; its cost is duplicated into each such layer, and node_layer says the first */
  readers = calloc((size_t)n_fwd * nl + 1, 1);
  if (!readers) {
    bp_errf(e, "layers: out of memory");
    goto done;
  }
  for (int i = n_fwd - 1; i >= 0; i--) {
    if (!floating[i]) continue;
    for (int j = i + 1; j < n_fwd; j++) {
      const bp_node *r = g->nodes[j];
      int reads = 0;
      for (int k = 0; k < r->nin && !reads; k++)
        for (int o = 0; o < g->nodes[i]->nout; o++) reads |= r->in[k] >= 0 && r->in[k] == g->nodes[i]->out[o];
      if (!reads) continue;
      if (!floating[j]) {
        if (m->node_layer[j] >= 0) readers[(size_t)i * nl + m->node_layer[j]] = 1;
      } else {
        for (int l = 0; l < nl; l++) readers[(size_t)i * nl + l] |= readers[(size_t)j * nl + l];
      }
    }
    for (int l = nl - 1; l >= 0; l--)
      if (readers[(size_t)i * nl + l]) m->node_layer[i] = l;
  }
  /* backward nodes (for profiling): reads of forward activations/weights say which layer */
  int *tlayer = last_pos; /* reuse: layer of a tensor (producer's, or first reader's for sources) */
  for (int t = 0; t < nt; t++) tlayer[t] = -1;
  for (int i = 0; i < n_fwd; i++) {
    const bp_node *n = g->nodes[i];
    int l = m->node_layer[i];
    for (int o = 0; o < n->nout; o++)
      if (n->out[o] >= 0) tlayer[n->out[o]] = l;
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      if (t >= 0 && g->tensors[t]->producer < 0 && tlayer[t] < 0) tlayer[t] = l;
    }
  }
  for (int i = n_fwd; i < nn; i++) {
    const bp_node *n = g->nodes[i];
    int fwd_l = -1, bwd_l = -1;
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      if (t < 0 || t >= nt) continue;
      const bp_tensor *tt = g->tensors[t];
      int from_bwd = tt->producer >= n_fwd;
      if (!from_bwd && tlayer[t] >= 0 && tlayer[t] > fwd_l) fwd_l = tlayer[t];
      if (from_bwd && m->node_layer[tt->producer] >= 0 && (bwd_l < 0 || m->node_layer[tt->producer] < bwd_l))
        bwd_l = m->node_layer[tt->producer];
    }
    m->node_layer[i] = fwd_l >= 0 ? fwd_l : bwd_l >= 0 ? bwd_l : nl - 1;
  }
  /* figures per layer */
  for (int t = 0; t < nt; t++) mark[t] = -1;
  for (int i = 0; i < n_fwd; i++)
    for (int l = 0; l < nl; l++) {
    if (floating[i] ? !readers[(size_t)i * nl + l] : m->node_layer[i] != l) continue;
    bp_layer_info *L = &m->layer[l];
    const bp_node *n = g->nodes[i];
    bp_value *in[64] = {0}, *out[64] = {0};
    double by = 0;
    for (int k = 0; k < n->nin && k < 64; k++)
      if (n->in[k] >= 0) in[k] = &g->tensors[n->in[k]]->v, by += tensor_bytes(g, n->in[k]);
    for (int k = 0; k < n->nout && k < 64; k++)
      if (n->out[k] >= 0) out[k] = &g->tensors[n->out[k]]->v, by += tensor_bytes(g, n->out[k]);
    double f = n->op && n->op->flops ? n->op->flops(n, in, n->nin, out, n->nout)
               : n->nout > 0 && out[0] ? (double)bp_value_numel(out[0])
                                       : 0;
    L->flops_fwd += f, L->bytes_fwd += by, L->nnodes++;
    if (!strcmp(n->op_type, "MatMul") || !strcmp(n->op_type, "Gemm")) L->matmul_flops += f, L->matmul_bytes += by;
    for (int k = 0; k < n->nin; k++) {
      int t = n->in[k];
      if (t < 0 || mark[t] == l) continue;
      const bp_tensor *tt = g->tensors[t];
      if (tt->kind == BP_T_INITIALIZER && bp_dtype_is_float(tt->v.dtype) && (!trainable || trainable[t])) {
        mark[t] = l;
        L->param_bytes += tensor_bytes(g, t);
      }
    }
    }
  if (stash)
    for (int t = 0; t < nt; t++)
      if (stash[t] && tlayer[t] >= 0) m->layer[tlayer[t]].act_bytes += tensor_bytes(g, t);
  for (int l = 0; l < nl; l++) {
    int k = m->layer[l].pos_end;
    if (k < npos) m->layer[l].out_bytes = cross[k], m->layer[l].out_tensors = cross_n[k];
  }
  rc = 0;
done:
  free(floating), free(pos_node), free(node_pos), free(last_pos), free(mark), free(cross), free(cross_n);
  free(cut), free(seg_nodes), free(sig), free(xs), free(readers);
  return rc;
}

int bp_model_layers_build(const char *path, const bp_binding *binds, int nbinds, bp_layers_granularity gran,
                          bp_model_layers *m, bp_err *e) {
  memset(m, 0, sizeof *m);
  snprintf(m->model, sizeof m->model, "%s", path);
  bp_graph *g = bp_onnx_load(path, e);
  if (!g) return -1;
  m->g = g;
  unsigned char *reach = NULL, *trainable = NULL;
  int *wrt = NULL, *grads = NULL, rc = -1;
  bp_ctx ctx = {.training = 1, .seed = 0, .counter = 0};
  if (bp_prepare_graph(g, binds, nbinds, NULL, &ctx, 0, NULL, e) < 0) goto done;
  int out = -1;
  for (int i = 0; i < g->noutputs && out < 0; i++)
    if (bp_dtype_is_float(g->tensors[g->outputs[i]]->v.dtype)) out = g->outputs[i];
  if (out < 0) {
    bp_errf(e, "%s: the model has no float output to take a loss on", path);
    goto done;
  }
  int targets;
  int loss = bp_loss_append(g, out, BP_LOSS_CROSS_ENTROPY, -100, "targets", &targets, e);
  if (loss < 0) goto done;
  reach = calloc((size_t)g->ntensors, 1);
  trainable = calloc((size_t)g->ntensors, 1);
  wrt = malloc(sizeof(int) * (size_t)g->ntensors);
  grads = malloc(sizeof(int) * (size_t)g->ntensors);
  if (!reach || !trainable || !wrt || !grads) {
    bp_errf(e, "out of memory");
    goto done;
  }
  bp_ad_reachable(g, loss, reach);
  int nwrt = 0;
  for (int t = 0; t < g->ntensors; t++) {
    const bp_tensor *tt = g->tensors[t];
    if (tt->kind == BP_T_INITIALIZER && tt->v.dtype == BP_F32 && reach[t]) trainable[t] = 1, wrt[nwrt++] = t;
  }
  bp_ad_result r = {.loss = loss, .nwrt = nwrt, .wrt = wrt, .grads = grads};
  int nfwd0 = g->nnodes, nt0 = g->ntensors;
  if (nwrt > 0) {
    if (bp_autodiff(g, 1, &r, e) < 0) goto done;
    m->stash = r.stash;
    m->n_fwd = r.first_bwd;
  } else {
    m->n_fwd = nfwd0;
  }
  unsigned char *tr = realloc(trainable, (size_t)g->ntensors);
  if (!tr) {
    bp_errf(e, "out of memory");
    goto done;
  }
  trainable = tr;
  if (g->ntensors > nt0) memset(trainable + nt0, 0, (size_t)(g->ntensors - nt0));
  rc = bp_layers_find(g, m->n_fwd, m->stash, trainable, gran, m, e);
done:
  free(reach), free(trainable), free(wrt), free(grads);
  if (rc) {
    bp_model_layers_free(m);
    snprintf(m->model, sizeof m->model, "%s", path);
  }
  return rc;
}
