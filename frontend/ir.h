/* frontend/ir.h — the bitpipe IR: values, tensors, attributes, nodes, graphs, and the op table.
 *
 * A graph holds tensors (by id) and nodes in topological order. Every tensor carries a bp_value:
 * dtype, static shape and, for constants and initializers, its data. Ops are described once, in
 * the op table (frontend/op_table.c): shape inference and CPU evaluation share one signature, so
 * constant folding is "infer, allocate, eval" and the executor is the same loop.
 *
 * dtypes use ONNX's TensorProto numbering so Cast's `to` attribute needs no translation.
 * Errors: functions return 0 on success, -1 on failure with the first error kept in a bp_err.
 */
#ifndef BITPIPE_IR_H
#define BITPIPE_IR_H

#include <stddef.h>
#include <stdint.h>

#define BP_MAX_RANK 8

typedef enum {
  BP_UNDEF = 0,
  BP_F32 = 1,
  BP_U8 = 2,
  BP_I8 = 3,
  BP_U16 = 4,
  BP_I16 = 5,
  BP_I32 = 6,
  BP_I64 = 7,
  BP_STRING = 8,
  BP_BOOL = 9,
  BP_F16 = 10,
  BP_F64 = 11,
  BP_U32 = 12,
  BP_U64 = 13,
  BP_BF16 = 16,
} bp_dtype;

/* ---- errors ------------------------------------------------------------------------------ */
typedef struct bp_err {
  int set;
  char msg[2048];
} bp_err;

/* Records the error unless one is already set (the first error is the one that matters).
 * Always returns -1 so callers can `return bp_errf(e, ...)`. */
int bp_errf(bp_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct bp_node;
/* Prefixes the recorded error with "node 'NAME' (OP): " unless it already names the node.
 * Returns -1. */
int bp_err_prefix_node(bp_err *e, const struct bp_node *n);

/* ---- values: a typed, shaped view of memory ------------------------------------------------ */
typedef struct bp_value {
  bp_dtype dtype;
  int rank;                  /* -1: unknown (before inference) */
  int64_t dims[BP_MAX_RANK];
  void *data;                /* NULL when the value is not known (not constant / not computed) */
} bp_value;

size_t bp_dtype_size(bp_dtype t);   /* bytes per element; 0 for unsupported (string) */
const char *bp_dtype_name(bp_dtype t);
int bp_dtype_is_float(bp_dtype t);  /* F32, F64, F16, BF16 */
int bp_dtype_is_int(bp_dtype t);    /* signed/unsigned integers (not bool) */
int64_t bp_value_numel(const bp_value *v);
size_t bp_value_bytes(const bp_value *v);
/* "[2,3,4]" into buf; returns buf. */
const char *bp_shape_str(const bp_value *v, char *buf, size_t n);
int bp_same_shape(const bp_value *a, const bp_value *b);

/* Generic element access by dtype (slow path for folding and rare dtypes; kernels keep a
 * float32 fast path). Floats convert through double, integers through int64; bool is 0/1. */
double bp_get_f64(const void *data, bp_dtype t, int64_t i);
void bp_set_f64(void *data, bp_dtype t, int64_t i, double x);
int64_t bp_get_i64(const void *data, bp_dtype t, int64_t i);
void bp_set_i64(void *data, bp_dtype t, int64_t i, int64_t x);

/* float16 / bfloat16 conversions (round to nearest even on the way down). */
float bp_f16_to_f32(uint16_t h);
uint16_t bp_f32_to_f16(float f);
float bp_bf16_to_f32(uint16_t h);
uint16_t bp_f32_to_bf16(float f);

/* Multidirectional (numpy) broadcasting of ranks/dims: out = broadcast(a, b). Returns -1 and
 * fills e (naming `who`) when the shapes are incompatible. */
int bp_broadcast_shape(const bp_value *a, const bp_value *b, bp_value *out, const char *who, bp_err *e);
/* Strides (in elements) to walk `in` while iterating `out`'s index space in row-major order:
 * broadcast dimensions get stride 0. `strides` has out->rank entries. */
void bp_broadcast_strides(const bp_value *in, const bp_value *out, int64_t *strides);
/* Normalises a possibly negative axis against rank; -1 with an error naming `who` if out of range. */
int bp_norm_axis(int64_t axis, int rank, int64_t *out, const char *who, bp_err *e);

/* ---- attributes ----------------------------------------------------------------------------- */
typedef enum {
  BP_ATTR_UNDEF = 0,
  BP_ATTR_FLOAT = 1,
  BP_ATTR_INT = 2,
  BP_ATTR_STRING = 3,
  BP_ATTR_TENSOR = 4,
  BP_ATTR_GRAPH = 5,
  BP_ATTR_FLOATS = 6,
  BP_ATTR_INTS = 7,
  BP_ATTR_STRINGS = 8,
} bp_attr_type;

typedef struct bp_attr {
  char *name;
  bp_attr_type type;
  float f;
  int64_t i;
  char *s;           /* STRING (NUL-terminated copy) */
  int n;             /* count for FLOATS / INTS / STRINGS */
  float *floats;
  int64_t *ints;
  char **strings;
  bp_value *t;       /* TENSOR (data owned by the attribute) */
} bp_attr;

/* ---- tensors, nodes, graph ------------------------------------------------------------------ */
typedef enum {
  BP_T_ACTIVATION = 0, /* produced by a node at run time */
  BP_T_INPUT,          /* graph input fed by the user */
  BP_T_INITIALIZER,    /* initializer: a weight that may be trainable; never folded into */
  BP_T_CONSTANT,       /* compile-time constant (Constant node or folded result) */
} bp_tensor_kind;

typedef struct bp_tensor {
  char *name;
  bp_value v;
  char *dim_param[BP_MAX_RANK]; /* symbolic dimension names of graph inputs/outputs, or NULL */
  bp_tensor_kind kind;
  int owns_data;   /* v.data is malloc'ed by the graph (else borrowed: mmap or protobuf) */
  int producer;    /* node index, -1 for inputs/initializers/constants */
  int is_output;   /* a graph output */
  /* Set by folding: a constant computed only from initializers (e.g. Transpose(W)). Later passes
   * treat it as a view of `view_of` (a trainable initializer) rather than a separate constant. */
  int view_of;     /* tensor id or -1 */
} bp_tensor;

struct bp_op_def;

typedef struct bp_node {
  char *name;
  char *op_type;
  char *domain;     /* "" for the default ONNX domain */
  int opset;        /* opset version of the node's domain in the model */
  const struct bp_op_def *op;
  int nin, nout;
  int *in;          /* tensor ids; -1 for an omitted optional input */
  int *out;         /* tensor ids; -1 for an omitted optional output */
  int nattr;
  bp_attr *attrs;
} bp_node;

typedef struct bp_opset {
  char *domain;
  int64_t version;
} bp_opset;

typedef struct bp_graph {
  char *name;
  char *producer;   /* producer_name + version, for reports */
  int64_t ir_version;
  int ntensors, cap_tensors;
  bp_tensor **tensors;
  int nnodes, cap_nodes;
  bp_node **nodes;
  int ninputs, noutputs;
  int *inputs;      /* tensor ids of user-fed graph inputs (initializers excluded) */
  int *outputs;
  int nopsets;
  bp_opset *opsets;
  void *hash;       /* name -> tensor id */
  /* keeps mmapped external-data files and the parsed protobuf alive while tensors borrow them */
  int nmaps;
  struct { void *addr; size_t len; } *maps;
  void *proto;      /* Onnx__ModelProto*, freed with the graph through proto_free */
  void (*proto_free)(void *proto); /* set by the loader, so the IR needs no protobuf-c */
} bp_graph;

bp_graph *bp_graph_new(void);
void bp_graph_free(bp_graph *g);
/* Returns the id of the tensor named `name`, creating an activation tensor if absent. */
int bp_graph_tensor(bp_graph *g, const char *name);
int bp_graph_find(const bp_graph *g, const char *name); /* -1 if absent */
/* Appends a node; copies strings; returns node index. */
int bp_graph_add_node(bp_graph *g, const char *name, const char *op_type, const char *domain,
                      int nin, const int *in, int nout, const int *out);
int64_t bp_graph_opset(const bp_graph *g, const char *domain); /* 0 if not imported */
/* Removes nodes whose flag is set, compacting the node list and fixing producers. */
void bp_graph_remove_nodes(bp_graph *g, const unsigned char *remove);
/* Replaces every use of tensor `from` by `to` (in node inputs and graph outputs). */
void bp_graph_replace_uses(bp_graph *g, int from, int to);
/* Gives tensor t malloc'ed data of its shape (zeroed); returns v.data or NULL on OOM. */
void *bp_tensor_alloc(bp_tensor *t);

/* ---- attribute access ----------------------------------------------------------------------- */
const bp_attr *bp_node_attr(const bp_node *n, const char *name);
int64_t bp_attr_int(const bp_node *n, const char *name, int64_t dflt);
float bp_attr_float(const bp_node *n, const char *name, float dflt);
const char *bp_attr_string(const bp_node *n, const char *name, const char *dflt);
/* INTS / FLOATS: pointer to the array and its count in *count (NULL and 0 when absent). */
const int64_t *bp_attr_ints(const bp_node *n, const char *name, int *count);
const float *bp_attr_floats(const bp_node *n, const char *name, int *count);

/* ---- the op table --------------------------------------------------------------------------- */
/* Evaluation context: training flag, the RNG stream (Dropout) and the device the kernels run on. */
typedef struct bp_ctx {
  int training;
  uint64_t seed;
  uint64_t counter; /* advanced by each random draw so every node/step gets its own stream */
  void *device;     /* the CUDA backend's context (kernels/cuda/cuda.h) when kernels run there */
} bp_ctx;

/* Shape inference: `in[i]` has dtype/rank/dims set (data non-NULL when the value is a known
 * constant, NULL otherwise; in[i] itself NULL for an omitted optional input). Sets dtype, rank
 * and dims of out[0..nout-1]. Errors name the node (n->name) and op. */
typedef int (*bp_infer_fn)(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                           int nout, bp_err *e);
/* CPU evaluation: inputs have data; outputs have dtype/shape from inference and allocated
 * data (out[i] NULL for an omitted optional output). */
typedef int (*bp_eval_fn)(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                          bp_value *const *out, int nout, bp_err *e);
/* Forward FLOPs for the bound shapes (NULL: one per output element). */
typedef double (*bp_flops_fn)(const bp_node *n, bp_value *const *in, int nin, bp_value *const *out,
                              int nout);

/* Gradient builder (reverse mode, frontend/autodiff.c): appends backward nodes for forward node
 * `n` to the graph through the builder context `ad`. dout[k] is the gradient tensor of output k
 * (-1: none reaches it); need[k] says whether input k wants a gradient. Sets din[k] to the
 * gradient tensor of input k (same shape as the input) or leaves it -1. Returns 0 or -1. */
struct bp_ad;
typedef int (*bp_grad_fn)(struct bp_ad *ad, bp_node *n, const int *dout, const unsigned char *need,
                          int *din);

typedef struct bp_op_def {
  const char *name;   /* ONNX op_type (default domain unless `domain` is set) */
  const char *domain; /* NULL or "" for the default domain; "com.microsoft" etc. */
  int min_inputs, max_inputs;   /* max -1: variadic */
  bp_infer_fn infer;
  bp_eval_fn eval;
  bp_flops_fn flops;
  bp_grad_fn grad;    /* NULL: not differentiable (or not yet); attached from bp_grad_rules */
} bp_op_def;

/* Looks up an op by domain and type (domain NULL/"" and "ai.onnx" mean the default domain). */
const bp_op_def *bp_op_find(const char *domain, const char *op_type);
/* All entries, for listing (`bitpipec inspect --ops`). */
const bp_op_def *bp_op_table(int *count);
/* Every node resolved to an op table entry? Else one error listing the unsupported ops. */
int bp_graph_check_ops(const bp_graph *g, bp_err *e);

/* Op groups, one array per file in frontend/ops/, each terminated by an entry with name NULL. */
extern const bp_op_def bp_ops_elementwise[];
extern const bp_op_def bp_ops_shape[];
extern const bp_op_def bp_ops_nn[];
extern const bp_op_def bp_ops_grad[]; /* backward and loss ops (domain "bitpipe") */

/* Gradient builders by op name (frontend/grad_rules.c), attached to the table's entries when it
 * is built; terminated by an entry with name NULL. */
typedef struct bp_grad_rule {
  const char *name;
  bp_grad_fn grad;
} bp_grad_rule;
extern const bp_grad_rule bp_grad_rules[];

#endif
