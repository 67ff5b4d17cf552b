/* frontend/ir.c — graph construction and editing: tensors by name (hashed), nodes in order,
 * node removal and use replacement for the cleanup passes, and freeing everything. */
#include "frontend/ir.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- name -> id hash (open addressing, power-of-two capacity) ---- */
typedef struct {
  int cap;
  int *slots; /* tensor id or -1 */
} name_hash;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int hash_lookup(const bp_graph *g, const char *name) {
  const name_hash *h = g->hash;
  if (!h || !h->cap) return -1;
  for (uint64_t i = hash_str(name) & (uint64_t)(h->cap - 1);; i = (i + 1) & (uint64_t)(h->cap - 1)) {
    int id = h->slots[i];
    if (id < 0) return -1;
    if (strcmp(g->tensors[id]->name, name) == 0) return id;
  }
}

static int hash_insert(bp_graph *g, int id) {
  name_hash *h = g->hash;
  if ((g->ntensors + 1) * 2 > h->cap) {
    int ncap = h->cap ? h->cap * 2 : 1024;
    int *ns = malloc(sizeof(int) * (size_t)ncap);
    if (!ns) return -1;
    memset(ns, 0xff, sizeof(int) * (size_t)ncap);
    free(h->slots);
    h->slots = ns;
    h->cap = ncap;
    for (int t = 0; t < g->ntensors; t++)
      if (t != id) {
        uint64_t i = hash_str(g->tensors[t]->name) & (uint64_t)(ncap - 1);
        while (ns[i] >= 0) i = (i + 1) & (uint64_t)(ncap - 1);
        ns[i] = t;
      }
  }
  uint64_t i = hash_str(g->tensors[id]->name) & (uint64_t)(h->cap - 1);
  while (h->slots[i] >= 0) i = (i + 1) & (uint64_t)(h->cap - 1);
  h->slots[i] = id;
  return 0;
}

bp_graph *bp_graph_new(void) {
  bp_graph *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->hash = calloc(1, sizeof(name_hash));
  if (!g->hash) {
    free(g);
    return NULL;
  }
  return g;
}

static void free_attr(bp_attr *a) {
  free(a->name);
  free(a->s);
  free(a->floats);
  free(a->ints);
  for (int i = 0; a->strings && i < a->n; i++) free(a->strings[i]);
  free(a->strings);
  if (a->t) free(a->t->data);
  free(a->t);
}

void bp_graph_free(bp_graph *g) {
  if (!g) return;
  for (int i = 0; i < g->ntensors; i++) {
    bp_tensor *t = g->tensors[i];
    free(t->name);
    for (int d = 0; d < BP_MAX_RANK; d++) free(t->dim_param[d]);
    if (t->owns_data) free(t->v.data);
    free(t);
  }
  free(g->tensors);
  for (int i = 0; i < g->nnodes; i++) {
    bp_node *n = g->nodes[i];
    free(n->name);
    free(n->op_type);
    free(n->domain);
    free(n->in);
    free(n->out);
    for (int a = 0; a < n->nattr; a++) free_attr(&n->attrs[a]);
    free(n->attrs);
    free(n);
  }
  free(g->nodes);
  free(g->inputs);
  free(g->outputs);
  for (int i = 0; i < g->nopsets; i++) free(g->opsets[i].domain);
  free(g->opsets);
  name_hash *h = g->hash;
  if (h) free(h->slots);
  free(h);
  for (int i = 0; i < g->nmaps; i++) munmap(g->maps[i].addr, g->maps[i].len);
  free(g->maps);
  if (g->proto && g->proto_free) g->proto_free(g->proto);
  free(g->name);
  free(g->producer);
  free(g);
}

int bp_graph_find(const bp_graph *g, const char *name) { return hash_lookup(g, name); }

int bp_graph_tensor(bp_graph *g, const char *name) {
  int id = hash_lookup(g, name);
  if (id >= 0) return id;
  if (g->ntensors == g->cap_tensors) {
    int ncap = g->cap_tensors ? g->cap_tensors * 2 : 256;
    bp_tensor **nt = realloc(g->tensors, sizeof(*nt) * (size_t)ncap);
    if (!nt) return -1;
    g->tensors = nt;
    g->cap_tensors = ncap;
  }
  bp_tensor *t = calloc(1, sizeof *t);
  if (!t) return -1;
  t->name = strdup(name);
  if (!t->name) {
    free(t);
    return -1;
  }
  t->v.rank = -1;
  t->producer = -1;
  t->view_of = -1;
  id = g->ntensors;
  g->tensors[g->ntensors++] = t;
  if (hash_insert(g, id) < 0) return -1;
  return id;
}

int bp_graph_add_node(bp_graph *g, const char *name, const char *op_type, const char *domain,
                      int nin, const int *in, int nout, const int *out) {
  if (g->nnodes == g->cap_nodes) {
    int ncap = g->cap_nodes ? g->cap_nodes * 2 : 256;
    bp_node **nn = realloc(g->nodes, sizeof(*nn) * (size_t)ncap);
    if (!nn) return -1;
    g->nodes = nn;
    g->cap_nodes = ncap;
  }
  bp_node *n = calloc(1, sizeof *n);
  if (!n) return -1;
  n->name = strdup(name ? name : "");
  n->op_type = strdup(op_type);
  n->domain = strdup(domain ? domain : "");
  n->in = malloc(sizeof(int) * (size_t)(nin ? nin : 1));
  n->out = malloc(sizeof(int) * (size_t)(nout ? nout : 1));
  if (!n->name || !n->op_type || !n->domain || !n->in || !n->out) {
    free(n->name); free(n->op_type); free(n->domain); free(n->in); free(n->out); free(n);
    return -1;
  }
  n->nin = nin;
  n->nout = nout;
  if (nin) memcpy(n->in, in, sizeof(int) * (size_t)nin);
  if (nout) memcpy(n->out, out, sizeof(int) * (size_t)nout);
  int idx = g->nnodes;
  g->nodes[g->nnodes++] = n;
  for (int i = 0; i < nout; i++)
    if (out[i] >= 0) g->tensors[out[i]]->producer = idx;
  return idx;
}

int64_t bp_graph_opset(const bp_graph *g, const char *domain) {
  const char *d = domain ? domain : "";
  if (strcmp(d, "ai.onnx") == 0) d = "";
  for (int i = 0; i < g->nopsets; i++) {
    const char *od = g->opsets[i].domain ? g->opsets[i].domain : "";
    if (strcmp(od, "ai.onnx") == 0) od = "";
    if (strcmp(od, d) == 0) return g->opsets[i].version;
  }
  return 0;
}

void bp_graph_remove_nodes(bp_graph *g, const unsigned char *remove) {
  int k = 0;
  for (int i = 0; i < g->nnodes; i++) {
    bp_node *n = g->nodes[i];
    if (remove[i]) {
      free(n->name); free(n->op_type); free(n->domain); free(n->in); free(n->out);
      for (int a = 0; a < n->nattr; a++) free_attr(&n->attrs[a]);
      free(n->attrs);
      free(n);
      continue;
    }
    g->nodes[k++] = n;
  }
  g->nnodes = k;
  for (int t = 0; t < g->ntensors; t++) g->tensors[t]->producer = -1;
  for (int i = 0; i < g->nnodes; i++)
    for (int o = 0; o < g->nodes[i]->nout; o++)
      if (g->nodes[i]->out[o] >= 0) g->tensors[g->nodes[i]->out[o]]->producer = i;
}

void bp_graph_replace_uses(bp_graph *g, int from, int to) {
  for (int i = 0; i < g->nnodes; i++)
    for (int k = 0; k < g->nodes[i]->nin; k++)
      if (g->nodes[i]->in[k] == from) g->nodes[i]->in[k] = to;
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i] == from) g->outputs[i] = to;
}

void *bp_tensor_alloc(bp_tensor *t) {
  if (t->owns_data) free(t->v.data);
  size_t bytes = bp_value_bytes(&t->v);
  t->v.data = calloc(bytes ? bytes : 1, 1);
  t->owns_data = t->v.data != NULL;
  return t->v.data;
}
