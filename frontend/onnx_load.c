/* frontend/onnx_load.c — ONNX ModelProto (protobuf-c) to the IR.
 *
 * The file is mmapped and unpacked once; initializer bytes are borrowed from the unpacked message
 * (kept alive by the graph) or from mmapped external-data files, so a multi-GB model is not held
 * twice in memory. */
#include "frontend/onnx_load.h"
#include "frontend/tensor_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void bp_onnx_proto_free(void *proto) {
  if (proto) onnx__model_proto__free_unpacked(proto, NULL);
}

/* mmaps a whole file read-only; *len 0 for an empty file (addr NULL). */
static void *map_file(const char *path, size_t *len, bp_err *e) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    bp_errf(e, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    bp_errf(e, "%s: not a regular file", path);
    return NULL;
  }
  *len = (size_t)st.st_size;
  if (*len == 0) {
    close(fd);
    bp_errf(e, "%s: file is empty", path);
    return NULL;
  }
  void *addr = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (addr == MAP_FAILED) {
    bp_errf(e, "%s: mmap failed: %s", path, strerror(errno));
    return NULL;
  }
  return addr;
}

static int add_mapping(bp_graph *g, void *addr, size_t len) {
  void *nm = realloc(g->maps, sizeof(*g->maps) * (size_t)(g->nmaps + 1));
  if (!nm) return -1;
  g->maps = nm;
  g->maps[g->nmaps].addr = addr;
  g->maps[g->nmaps].len = len;
  g->nmaps++;
  return 0;
}

/* Sets dtype/shape/dim_params of a graph input/output from its ValueInfoProto. */
static int read_value_info(bp_tensor *t, const Onnx__ValueInfoProto *vi, bp_err *e) {
  const Onnx__TypeProto *tp = vi->type;
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
    return bp_errf(e, "graph value '%s': only tensor types are supported", t->name);
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  t->v.dtype = tt->has_elem_type ? (bp_dtype)tt->elem_type : BP_UNDEF;
  if (!tt->shape) {
    t->v.rank = -1;
    return 0;
  }
  if (tt->shape->n_dim > BP_MAX_RANK)
    return bp_errf(e, "graph value '%s': rank %zu exceeds the supported %d", t->name, tt->shape->n_dim, BP_MAX_RANK);
  t->v.rank = (int)tt->shape->n_dim;
  for (size_t i = 0; i < tt->shape->n_dim; i++) {
    const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
    t->v.dims[i] = -1;
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
      t->v.dims[i] = d->dim_value;
    } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param) {
      free(t->dim_param[i]);
      t->dim_param[i] = strdup(d->dim_param);
      if (!t->dim_param[i]) return bp_errf(e, "out of memory");
    }
  }
  return 0;
}

static int copy_attr(bp_attr *a, const Onnx__AttributeProto *ap, const char *node, bp_err *e) {
  memset(a, 0, sizeof *a);
  a->name = strdup(ap->name ? ap->name : "");
  if (!a->name) return bp_errf(e, "out of memory");
  a->type = ap->has_type ? (bp_attr_type)ap->type : BP_ATTR_UNDEF;
  switch ((int)a->type) {
  case BP_ATTR_FLOAT: a->f = ap->f; break;
  case BP_ATTR_INT: a->i = ap->i; break;
  case BP_ATTR_STRING:
    a->s = malloc(ap->s.len + 1);
    if (!a->s) return bp_errf(e, "out of memory");
    if (ap->s.len) memcpy(a->s, ap->s.data, ap->s.len);
    a->s[ap->s.len] = 0;
    break;
  case BP_ATTR_FLOATS:
    a->n = (int)ap->n_floats;
    a->floats = malloc(sizeof(float) * (ap->n_floats ? ap->n_floats : 1));
    if (!a->floats) return bp_errf(e, "out of memory");
    if (ap->n_floats) memcpy(a->floats, ap->floats, sizeof(float) * ap->n_floats);
    break;
  case BP_ATTR_INTS:
    a->n = (int)ap->n_ints;
    a->ints = malloc(sizeof(int64_t) * (ap->n_ints ? ap->n_ints : 1));
    if (!a->ints) return bp_errf(e, "out of memory");
    if (ap->n_ints) memcpy(a->ints, ap->ints, sizeof(int64_t) * ap->n_ints);
    break;
  case BP_ATTR_STRINGS:
    a->n = (int)ap->n_strings;
    a->strings = calloc(ap->n_strings ? ap->n_strings : 1, sizeof(char *));
    if (!a->strings) return bp_errf(e, "out of memory");
    for (size_t i = 0; i < ap->n_strings; i++) {
      a->strings[i] = malloc(ap->strings[i].len + 1);
      if (!a->strings[i]) return bp_errf(e, "out of memory");
      if (ap->strings[i].len) memcpy(a->strings[i], ap->strings[i].data, ap->strings[i].len);
      a->strings[i][ap->strings[i].len] = 0;
    }
    break;
  case BP_ATTR_TENSOR: {
    if (!ap->t) return bp_errf(e, "node '%s': attribute '%s' has no tensor", node, a->name);
    a->t = calloc(1, sizeof(bp_value));
    if (!a->t) return bp_errf(e, "out of memory");
    int owns = 0;
    bp_value v;
    if (bp_tensor_proto_decode(ap->t, NULL, 1, &v, &owns, NULL, e) < 0) {
      char msg[sizeof e->msg];
      memcpy(msg, e->msg, sizeof msg);
      e->set = 0;
      return bp_errf(e, "node '%s': attribute '%s': %s", node, a->name, msg);
    }
    *a->t = v;
    if (!owns) { /* the attribute owns its data: copy borrowed protobuf bytes */
      size_t b = bp_value_bytes(&v);
      a->t->data = malloc(b ? b : 1);
      if (!a->t->data) return bp_errf(e, "out of memory");
      if (b) memcpy(a->t->data, v.data, b);
    }
    break;
  }
  default: break; /* graphs, sparse tensors, type protos: kept by name only; no supported op uses them */
  }
  return 0;
}

static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  size_t n = (size_t)(slash - path);
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, path, n);
  d[n] = 0;
  return d;
}

static int push_id(int **arr, int *n, int id) {
  int *na = realloc(*arr, sizeof(int) * (size_t)(*n + 1));
  if (!na) return -1;
  na[(*n)++] = id;
  *arr = na;
  return 0;
}

/* *nhalf: how many initializers the file holds in float16/bfloat16 (widened to float32 here). */
static int build_graph(bp_graph *g, const Onnx__ModelProto *mp, const char *path, const char *base_dir, int *nhalf,
                       bp_err *e) {
  const Onnx__GraphProto *gp = mp->graph;
  if (!gp) return bp_errf(e, "%s: model has no graph", path);
  g->ir_version = mp->has_ir_version ? mp->ir_version : 0;
  g->name = strdup(gp->name ? gp->name : "");
  char prod[512];
  snprintf(prod, sizeof prod, "%s %s", mp->producer_name ? mp->producer_name : "?", mp->producer_version ? mp->producer_version : "");
  g->producer = strdup(prod);
  g->opsets = calloc(mp->n_opset_import ? mp->n_opset_import : 1, sizeof(bp_opset));
  if (!g->name || !g->producer || !g->opsets) return bp_errf(e, "out of memory");
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    g->opsets[i].domain = strdup(mp->opset_import[i]->domain ? mp->opset_import[i]->domain : "");
    g->opsets[i].version = mp->opset_import[i]->has_version ? mp->opset_import[i]->version : 0;
    g->nopsets++;
  }
  for (size_t i = 0; i < gp->n_initializer; i++) {
    const Onnx__TensorProto *tp = gp->initializer[i];
    if (!tp->name || !*tp->name) return bp_errf(e, "%s: initializer %zu has no name", path, i);
    int id = bp_graph_tensor(g, tp->name);
    if (id < 0) return bp_errf(e, "out of memory");
    bp_tensor *t = g->tensors[id];
    if (t->kind == BP_T_INITIALIZER) return bp_errf(e, "%s: initializer '%s' is defined twice", path, tp->name);
    bp_tensor_mapping m;
    int owns = 0;
    if (bp_tensor_proto_decode(tp, base_dir, 1, &t->v, &owns, &m, e) < 0) return -1;
    if (m.addr && add_mapping(g, m.addr, m.len) < 0) return bp_errf(e, "out of memory");
    t->owns_data = owns;
    t->kind = BP_T_INITIALIZER;
    if (tp->data_type == BP_F16 || tp->data_type == BP_BF16) (*nhalf)++;
  }
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    int id = bp_graph_tensor(g, vi->name ? vi->name : "");
    if (id < 0) return bp_errf(e, "out of memory");
    bp_tensor *t = g->tensors[id];
    if (t->kind == BP_T_INITIALIZER) continue; /* old-style models list initializers as inputs */
    if (read_value_info(t, vi, e) < 0) return -1;
    t->kind = BP_T_INPUT;
    if (push_id(&g->inputs, &g->ninputs, id) < 0) return bp_errf(e, "out of memory");
  }
  for (size_t i = 0; i < gp->n_node; i++) {
    const Onnx__NodeProto *np = gp->node[i];
    const char *nname = np->name && *np->name ? np->name : NULL;
    char fallback[64];
    if (!nname) {
      snprintf(fallback, sizeof fallback, "%s_%zu", np->op_type ? np->op_type : "node", i);
      nname = fallback;
    }
    if (!np->op_type || !*np->op_type) return bp_errf(e, "%s: node '%s' has no op_type", path, nname);
    int in[64], out[64];
    if (np->n_input > 64 || np->n_output > 64)
      return bp_errf(e, "node '%s' (%s): more than 64 inputs or outputs", nname, np->op_type);
    for (size_t k = 0; k < np->n_input; k++) {
      in[k] = np->input[k] && *np->input[k] ? bp_graph_tensor(g, np->input[k]) : -1;
      if (np->input[k] && *np->input[k] && in[k] < 0) return bp_errf(e, "out of memory");
    }
    for (size_t k = 0; k < np->n_output; k++) {
      out[k] = np->output[k] && *np->output[k] ? bp_graph_tensor(g, np->output[k]) : -1;
      if (out[k] >= 0 && (g->tensors[out[k]]->producer >= 0 || g->tensors[out[k]]->kind != BP_T_ACTIVATION))
        return bp_errf(e, "node '%s' (%s): output '%s' is already defined elsewhere", nname, np->op_type, np->output[k]);
    }
    int idx = bp_graph_add_node(g, nname, np->op_type, np->domain, (int)np->n_input, in, (int)np->n_output, out);
    if (idx < 0) return bp_errf(e, "out of memory");
    bp_node *n = g->nodes[idx];
    n->opset = (int)bp_graph_opset(g, n->domain);
    n->op = bp_op_find(n->domain, n->op_type);
    n->attrs = calloc(np->n_attribute ? np->n_attribute : 1, sizeof(bp_attr));
    if (!n->attrs) return bp_errf(e, "out of memory");
    for (size_t a = 0; a < np->n_attribute; a++) {
      n->nattr++;
      if (copy_attr(&n->attrs[a], np->attribute[a], nname, e) < 0) return -1;
    }
  }
  for (size_t i = 0; i < gp->n_output; i++) {
    const Onnx__ValueInfoProto *vi = gp->output[i];
    int id = bp_graph_tensor(g, vi->name ? vi->name : "");
    if (id < 0) return bp_errf(e, "out of memory");
    bp_tensor *t = g->tensors[id];
    /* Declared output types are checked against inference later; keep their dim_params. */
    bp_value declared = t->v;
    if (t->producer >= 0 || t->kind == BP_T_ACTIVATION) {
      if (read_value_info(t, vi, e) < 0) return -1;
      if (t->producer < 0 && t->kind == BP_T_ACTIVATION)
        return bp_errf(e, "%s: graph output '%s' is produced by no node", path, t->name);
      (void)declared;
    }
    t->is_output = 1;
    if (push_id(&g->outputs, &g->noutputs, id) < 0) return bp_errf(e, "out of memory");
  }
  /* Every used tensor must be defined: an input, an initializer or some node's output. */
  for (int i = 0; i < g->nnodes; i++) {
    bp_node *n = g->nodes[i];
    for (int k = 0; k < n->nin; k++) {
      if (n->in[k] < 0) continue;
      bp_tensor *t = g->tensors[n->in[k]];
      if (t->kind == BP_T_ACTIVATION && t->producer < 0)
        return bp_errf(e, "node '%s' (%s): input '%s' is not a graph input, an initializer or any node's output",
                       n->name, n->op_type, t->name);
      if (t->producer >= i)
        return bp_errf(e, "node '%s' (%s): input '%s' is produced later (graph not in topological order)",
                       n->name, n->op_type, t->name);
    }
  }
  return 0;
}

bp_graph *bp_onnx_load_buffer(const void *buf, size_t len, const char *path, const char *base_dir, bp_err *e) {
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
  if (!mp) {
    bp_errf(e, "%s: not a valid ONNX model (protobuf parse failed: truncated or corrupt file)", path);
    return NULL;
  }
  bp_graph *g = bp_graph_new();
  if (!g) {
    onnx__model_proto__free_unpacked(mp, NULL);
    bp_errf(e, "out of memory");
    return NULL;
  }
  g->proto = mp;
  g->proto_free = bp_onnx_proto_free;
  int nhalf = 0, widened = 0;
  if (build_graph(g, mp, path, base_dir, &nhalf, e) < 0 || bp_onnx_rewrite_sequences(g, e) < 0) {
    bp_graph_free(g);
    return NULL;
  }
  /* A half-precision export (its weights are float16/bfloat16) runs in float32: see onnx_half.c. */
  if (nhalf > 0 && bp_onnx_widen_half(g, &widened) == 0 && widened > 0)
    fprintf(stderr, "bitpipec: note: %s: %d float16/bfloat16 initializers; the model is computed in float32 (%d half "
            "casts and outputs widened)\n", path, nhalf, widened);
  return g;
}

bp_graph *bp_onnx_load(const char *path, bp_err *e) {
  size_t len = 0;
  void *buf = map_file(path, &len, e);
  if (!buf) return NULL;
  char *base = dir_of(path);
  bp_graph *g = base ? bp_onnx_load_buffer(buf, len, path, base, e) : NULL;
  if (!base) bp_errf(e, "out of memory");
  munmap(buf, len);
  free(base);
  return g;
}

int bp_tensor_pb_read(const char *path, bp_value *out, char **name, int to_f32, bp_err *e) {
  size_t len = 0;
  void *buf = map_file(path, &len, e);
  if (!buf) return -1;
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
  munmap(buf, len);
  if (!tp) return bp_errf(e, "%s: not a valid TensorProto file", path);
  int owns = 0;
  int rc = bp_tensor_proto_decode(tp, NULL, to_f32, out, &owns, NULL, e);
  if (rc == 0 && !owns) { /* copy out of the message before freeing it */
    size_t b = bp_value_bytes(out);
    void *d = malloc(b ? b : 1);
    if (!d) rc = bp_errf(e, "out of memory");
    else {
      if (b) memcpy(d, out->data, b);
      out->data = d;
    }
  }
  if (rc == 0 && name) *name = strdup(tp->name ? tp->name : "");
  onnx__tensor_proto__free_unpacked(tp, NULL);
  if (rc < 0) {
    char m[sizeof e->msg];
    memcpy(m, e->msg, sizeof m);
    e->set = 0;
    return bp_errf(e, "%s: %s", path, m);
  }
  return 0;
}
