/* frontend/autodiff.h — reverse-mode autodiff over the IR, and the builder API the gradient rules
 * (frontend/grad_rules.c) use to append backward nodes.
 *
 * bp_autodiff walks the forward nodes of a prepared graph (shapes inferred, constants folded) in
 * reverse, calls each op's gradient rule and sums the contributions of tensors used more than once
 * (tied weights get one gradient). Backward nodes live in the same graph, after the forward ones,
 * with shapes inferred as they are appended. Backward-only ops (SoftmaxGrad, LayerNormGrad,
 * GatherGrad, SumTo, ...) are in domain "bitpipe" (frontend/ops/ops_grad.c).
 *
 * Builder helpers share one sticky error: once a helper fails, every later helper returns -1 and
 * does nothing, so a rule can chain calls and check once (bp_ad_failed) at the end. */
#ifndef BITPIPE_AUTODIFF_H
#define BITPIPE_AUTODIFF_H

#include "frontend/ir.h"

#define BP_DOMAIN "bitpipe"

typedef struct bp_ad {
  bp_graph *g;
  bp_err *e;
  int training;      /* Dropout draws masks (its gradient needs them) */
  int cur;           /* index of the forward node whose rule runs */
  int counter;       /* fresh tensor names */
  int first_bwd;     /* index of the first backward node */
} bp_ad;

typedef struct bp_ad_result {
  int loss;          /* the loss tensor (input) */
  int nwrt;
  const int *wrt;    /* tensors to differentiate with respect to (input) */
  int *grads;        /* nwrt gradient tensor ids (output; -1: the loss does not depend on it) */
  int first_bwd;     /* first backward node */
  int64_t stash_bytes;   /* forward activations backward reads, per micro-batch */
  int stash_tensors;
  unsigned char *stash;  /* per tensor id (ntensors on return): backward reads it; caller frees */
} bp_ad_result;

/* Appends the backward graph of `loss` (a float scalar) for the tensors r->wrt. A non-differentiable
 * op on a path from a wrt tensor to the loss is an error naming the node and the tensor. */
int bp_autodiff(bp_graph *g, int training, bp_ad_result *r, bp_err *e);

/* Which tensors the loss depends on through float tensors and ops with gradient rules, walking
 * from `wrt` candidates: reach[t] = 1 for tensors on such a path (caller allocates ntensors). */
void bp_ad_reachable(const bp_graph *g, int loss, unsigned char *reach);

/* ---- builder helpers (for gradient rules and the loss) -------------------------------------- */
int bp_ad_failed(const bp_ad *ad);
/* Appends node `op` (domain NULL: ONNX, opset 18) on `in`; creates nout fresh outputs. Returns the
 * node index; attributes are set with bp_ad_attr_* and shapes inferred by bp_ad_infer. */
int bp_ad_node(bp_ad *ad, const char *domain, const char *op, int nin, const int *in, int nout);
void bp_ad_attr_int(bp_ad *ad, int node, const char *name, int64_t v);
void bp_ad_attr_float(bp_ad *ad, int node, const char *name, float v);
void bp_ad_attr_ints(bp_ad *ad, int node, const char *name, int n, const int64_t *v);
void bp_ad_attr_string(bp_ad *ad, int node, const char *name, const char *s);
/* Infers the node's output shapes; returns its first output's tensor id or -1. */
int bp_ad_infer(bp_ad *ad, int node);
int bp_ad_out(const bp_ad *ad, int node, int k);

/* One-output conveniences returning the output tensor id (or -1). */
int bp_ad_op1(bp_ad *ad, const char *op, int x);
int bp_ad_op2(bp_ad *ad, const char *op, int a, int b);
int bp_ad_const_scalar(bp_ad *ad, double v, bp_dtype t);   /* rank 0 */
int bp_ad_const_i64(bp_ad *ad, int n, const int64_t *v);   /* 1-D int64 */
int bp_ad_scale(bp_ad *ad, int x, double s);                /* x * s in x's dtype */
int bp_ad_reshape(bp_ad *ad, int x, int rank, const int64_t *dims);
int bp_ad_reshape_like(bp_ad *ad, int x, int like);
int bp_ad_transpose(bp_ad *ad, int x, int rank, const int64_t *perm);
/* Sums x (broadcast result) back to tensor `like`'s shape; x itself when shapes agree. */
int bp_ad_sum_to(bp_ad *ad, int x, int like);
const bp_value *bp_ad_val(const bp_ad *ad, int t);

#endif
