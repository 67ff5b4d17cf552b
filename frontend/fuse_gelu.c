/* frontend/fuse_gelu.c — recognises the elementwise GELU chains that exporters emit and replaces
 * each with one ONNX Gelu node (approximate "tanh" or "none"), which has one CPU/GPU kernel and one
 * gradient node (GeluGrad) instead of ~8 forward and ~13 backward elementwise nodes.
 *
 * The chains (x the GELU's input; any operand order of Add and Mul, any nesting of the products):
 *   tanh  0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))   transformers' gelu_new,
 *         torch's gelu(approximate='tanh') below opset 20, gelu_fast (x * k * (1 + 0.044715 x^2));
 *         x^3 as Pow(x, 3) or x * x * x
 *   erf   0.5 * x * (1 + Erf(x / sqrt(2)))                          BERT's exact GELU, torch's
 *         gelu below opset 20; x / 1.4142135 or x * 0.70710678
 *
 * Method: from each Tanh/Erf node, every candidate root (the Muls above `1 + T` along single uses)
 * is evaluated symbolically: a sub-expression is a polynomial in x of degree <= 3 times (1 + T) or
 * 1. Descending from the root, a tensor is expanded only when it is an interior value: produced by
 * Mul/Div/Add/Sub/Pow/Neg (or the one Tanh/Erf), used exactly once, not a graph output, not a weight
 * view. Leaves are scalar constants (folded Constants or rank-0 initializers, the literal scalars
 * of dynamo exports; never a parameter) and x, the one non-constant leaf. The chain matches when
 * the root is exactly 0.5 x (1 + T) and T's argument is exactly k (x + 0.044715 x^3) or x / sqrt(2):
 * every coefficient within 1e-6 relative (float32 literals are ~3e-8 off), the absent ones zero.
 * Every value of the chain must also have x's dtype (float32/float64) and shape. Anything else is
 * left as it was, so a value the rest of the graph reads (a second use) keeps its chain.
 *
 * The root node is rewritten in place into Gelu(x) (its output tensor and name stay: consumers,
 * graph outputs and error messages see the same names); the other nodes of the chain are removed.
 * Constants the chain read stay in the tensor list, unused, like folded constants; no initializer
 * is removed, so initializer-indexed tools (codegen's --save-onnx offsets) are unaffected. */
#include "frontend/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32
#define COEF_RTOL 1e-6
#define MAX_CHAIN 64 /* nodes in one chain; the exported ones have 6 to 9 */

enum { K_NONE = 0, K_TANH, K_ERF };

/* poly(x) * (has_t ? (1 + T) : 1); poly coefficients of x^0..x^3 */
typedef struct term {
  double c[4];
  int has_t;
} term;

typedef struct matcher {
  bp_graph *g;
  const int *uses;               /* node-input uses per tensor (graph outputs count INT_MAX/2) */
  const unsigned char *removed;  /* nodes already removed by an earlier match */
  int x;                         /* the GELU's input tensor, -1 until the first non-constant leaf */
  int kind;                      /* K_TANH / K_ERF once the (1 + T) factor is found */
  term targ;                     /* T's argument */
  int *chain, nchain;            /* nodes of the chain, the root included */
} matcher;

static int is_scalar_const(const bp_graph *g, int t, double *val) {
  if (t < 0) return 0;
  const bp_tensor *tt = g->tensors[t];
  /* rank-0 initializers are literals (dynamo's scalars); initializers of any other rank may be
   * parameters and are never folded into a fused op */
  int literal = tt->kind == BP_T_CONSTANT || (tt->kind == BP_T_INITIALIZER && tt->v.rank == 0);
  if (!literal || !tt->v.data || bp_value_numel(&tt->v) != 1) return 0;
  if (!bp_dtype_is_float(tt->v.dtype) && !bp_dtype_is_int(tt->v.dtype)) return 0;
  *val = bp_get_f64(tt->v.data, tt->v.dtype, 0);
  return isfinite(*val);
}

static int is_interior(const matcher *m, int t) {
  if (t < 0) return 0;
  const bp_tensor *tt = m->g->tensors[t];
  return m->uses[t] == 1 && !tt->is_output && tt->kind == BP_T_ACTIVATION && tt->producer >= 0 &&
         tt->view_of < 0 && !m->removed[tt->producer];
}

static term poly_const(double v) { return (term){{v, 0, 0, 0}, 0}; }

static int term_mul(const term *a, const term *b, term *r) {
  if (a->has_t && b->has_t) return -1;
  term o = {{0, 0, 0, 0}, a->has_t || b->has_t};
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      if (a->c[i] == 0 || b->c[j] == 0) continue;
      if (i + j > 3) return -1;
      o.c[i + j] += a->c[i] * b->c[j];
    }
  *r = o;
  return 0;
}

static int eval_tensor(matcher *m, int t, term *r, int depth);

static int eval_node(matcher *m, int ni, term *r, int depth) {
  if (depth > MAX_DEPTH) return -1;
  const bp_node *n = m->g->nodes[ni];
  const char *op = n->op_type;
  if (n->domain[0] || n->nout != 1 || n->nattr != 0) return -1;
  term a, b;
  int rc = -1;
  if (!strcmp(op, "Mul") && n->nin == 2) {
    if (!eval_tensor(m, n->in[0], &a, depth + 1) && !eval_tensor(m, n->in[1], &b, depth + 1)) rc = term_mul(&a, &b, r);
  } else if (!strcmp(op, "Div") && n->nin == 2) {
    double d;
    if (is_scalar_const(m->g, n->in[1], &d) && d != 0 && !eval_tensor(m, n->in[0], &a, depth + 1)) {
      b = poly_const(1.0 / d);
      rc = term_mul(&a, &b, r);
    }
  } else if ((!strcmp(op, "Add") || !strcmp(op, "Sub")) && n->nin == 2) {
    int sub = op[0] == 'S';
    for (int k = 0; k < 2 && !sub; k++) {
      /* 1 + T: T a Tanh or Erf used only here, the other operand 1 */
      int t = n->in[k], tp = t >= 0 ? m->g->tensors[t]->producer : -1;
      double one;
      if (!is_interior(m, t) || !is_scalar_const(m->g, n->in[1 - k], &one)) continue;
      const bp_node *tn = m->g->nodes[tp];
      int kind = !strcmp(tn->op_type, "Tanh") ? K_TANH : !strcmp(tn->op_type, "Erf") ? K_ERF : K_NONE;
      if (kind == K_NONE || tn->domain[0] || tn->nin != 1 || tn->nout != 1) continue;
      if (m->kind != K_NONE || fabs(one - 1.0) > COEF_RTOL) return -1;
      if (eval_tensor(m, tn->in[0], &m->targ, depth + 1) || m->targ.has_t) return -1;
      if (m->nchain >= MAX_CHAIN) return -1;
      m->kind = kind;
      m->chain[m->nchain++] = tp;
      *r = (term){{1, 0, 0, 0}, 1};
      rc = 0;
      goto done;
    }
    if (!eval_tensor(m, n->in[0], &a, depth + 1) && !eval_tensor(m, n->in[1], &b, depth + 1) && !a.has_t && !b.has_t) {
      for (int i = 0; i < 4; i++) r->c[i] = sub ? a.c[i] - b.c[i] : a.c[i] + b.c[i];
      r->has_t = 0;
      rc = 0;
    }
  } else if (!strcmp(op, "Pow") && n->nin == 2) {
    double p;
    if (is_scalar_const(m->g, n->in[1], &p) && (p == 1 || p == 2 || p == 3) && !eval_tensor(m, n->in[0], &a, depth + 1) &&
        !a.has_t) {
      *r = poly_const(1);
      rc = 0;
      for (int k = 0; k < (int)p && !rc; k++) rc = term_mul(r, &a, r);
    }
  } else if (!strcmp(op, "Neg") && n->nin == 1) {
    if (!eval_tensor(m, n->in[0], &a, depth + 1)) {
      for (int i = 0; i < 4; i++) a.c[i] = -a.c[i];
      *r = a;
      rc = 0;
    }
  }
done:
  if (rc == 0 && m->nchain >= MAX_CHAIN) rc = -1;
  if (rc == 0) m->chain[m->nchain++] = ni;
  return rc;
}

static int eval_tensor(matcher *m, int t, term *r, int depth) {
  double v;
  if (t < 0) return -1;
  if (t == m->x) {
    *r = (term){{0, 1, 0, 0}, 0};
    return 0;
  }
  if (is_scalar_const(m->g, t, &v)) {
    *r = poly_const(v);
    return 0;
  }
  if (is_interior(m, t)) return eval_node(m, m->g->tensors[t]->producer, r, depth);
  if (m->x >= 0) return -1; /* a second non-constant leaf: not a function of x alone */
  m->x = t;
  *r = (term){{0, 1, 0, 0}, 0};
  return 0;
}

/* Every coefficient within COEF_RTOL of the reference; zero where the reference is zero. */
static int coef_match(const double *c, const double *ref) {
  double scale = 0;
  for (int i = 0; i < 4; i++) scale = fmax(scale, fabs(ref[i]));
  for (int i = 0; i < 4; i++) {
    if (ref[i] == 0 ? fabs(c[i]) > 1e-12 * scale : fabs(c[i] - ref[i]) > COEF_RTOL * fabs(ref[i])) return 0;
  }
  return 1;
}

/* Tries node `root` as the chain's final node; on a match m->x, m->kind and m->chain are set. */
static int try_root(matcher *m, int root) {
  m->x = -1, m->kind = K_NONE, m->nchain = 0;
  term r;
  if (eval_node(m, root, &r, 0) || !r.has_t || m->kind == K_NONE || m->x < 0) return 0;
  static const double half_x[4] = {0, 0.5, 0, 0};
  const double k = 0.7978845608028654; /* sqrt(2 / pi) */
  const double tanh_arg[4] = {0, k, 0, k * 0.044715}, erf_arg[4] = {0, 0.7071067811865476, 0, 0};
  if (!coef_match(r.c, half_x) || !coef_match(m->targ.c, m->kind == K_TANH ? tanh_arg : erf_arg)) return 0;
  const bp_value *xv = &m->g->tensors[m->x]->v;
  if (xv->dtype != BP_F32 && xv->dtype != BP_F64) return 0;
  for (int i = 0; i < m->nchain; i++) {
    const bp_value *ov = &m->g->tensors[m->g->nodes[m->chain[i]]->out[0]]->v;
    if (ov->dtype != xv->dtype || !bp_same_shape(ov, xv)) return 0;
    for (int j = 0; j < i; j++)
      if (m->chain[j] == m->chain[i]) return 0; /* a node reached twice: not a tree */
  }
  return 1;
}

/* Rewrites node `ni` into Gelu(x) with approximate=`approx`, keeping its name and output. */
static int rewrite_as_gelu(bp_graph *g, int ni, int x, const char *approx, bp_err *e) {
  bp_node *n = g->nodes[ni];
  char *op = strdup("Gelu"), *dom = strdup(""), *an = strdup("approximate"), *av = strdup(approx);
  int *in = malloc(sizeof(int));
  bp_attr *at = calloc(1, sizeof(bp_attr));
  const bp_op_def *def = bp_op_find("", "Gelu");
  if (!op || !dom || !an || !av || !in || !at || !def) {
    free(op), free(dom), free(an), free(av), free(in), free(at);
    return def ? bp_errf(e, "out of memory fusing GELU at node '%s'", n->name)
               : bp_errf(e, "internal: the op table has no Gelu");
  }
  free(n->op_type), free(n->domain), free(n->in), free(n->attrs);
  n->op_type = op, n->domain = dom, n->op = def;
  in[0] = x;
  n->in = in, n->nin = 1;
  at->name = an, at->type = BP_ATTR_STRING, at->s = av;
  n->attrs = at, n->nattr = 1;
  return 0;
}

int bp_fuse_enabled(void) {
  const char *v = getenv("BP_FUSE");
  return !(v && !strcmp(v, "0"));
}

int bp_fuse_gelu(bp_graph *g, bp_fuse_stats *stats, bp_err *e) {
  bp_fuse_stats st = {0, 0};
  int nt = g->ntensors, nn = g->nnodes, rc = 0;
  int *uses = calloc((size_t)nt + 1, sizeof(int)), *consumer = malloc(sizeof(int) * ((size_t)nt + 1));
  int *chain = malloc(sizeof(int) * MAX_CHAIN);
  unsigned char *removed = calloc((size_t)nn + 1, 1);
  if (!uses || !consumer || !chain || !removed) {
    rc = bp_errf(e, "out of memory in the GELU fusion");
    goto done;
  }
  for (int i = 0; i < nn; i++)
    for (int k = 0; k < g->nodes[i]->nin; k++) {
      int t = g->nodes[i]->in[k];
      if (t >= 0) uses[t]++, consumer[t] = i;
    }
  for (int i = 0; i < g->noutputs; i++) uses[g->outputs[i]] += 1 << 20; /* never interior */
  matcher m = {.g = g, .uses = uses, .removed = removed, .chain = chain};
  for (int i = 0; i < nn; i++) {
    const bp_node *tn = g->nodes[i];
    if (removed[i] || tn->domain[0] || tn->nout != 1 || (strcmp(tn->op_type, "Tanh") && strcmp(tn->op_type, "Erf")))
      continue;
    int t = tn->out[0];
    if (t < 0 || uses[t] != 1) continue;
    int add = consumer[t];
    if (strcmp(g->nodes[add]->op_type, "Add") || g->nodes[add]->nout != 1) continue;
    /* candidate roots: the Muls/Divs above 1 + T, nearest first, along single uses */
    int cur = g->nodes[add]->out[0], root = -1;
    while (cur >= 0 && uses[cur] == 1 && !g->tensors[cur]->is_output) {
      int c = consumer[cur];
      const char *op = g->nodes[c]->op_type;
      if (removed[c] || (strcmp(op, "Mul") && strcmp(op, "Div")) || g->nodes[c]->nout != 1) break;
      if (try_root(&m, c)) {
        root = c;
        break;
      }
      cur = g->nodes[c]->out[0];
    }
    if (root < 0) continue;
    if (rewrite_as_gelu(g, root, m.x, m.kind == K_TANH ? "tanh" : "none", e)) {
      rc = -1;
      goto done;
    }
    for (int k = 0; k < m.nchain; k++)
      if (m.chain[k] != root) removed[m.chain[k]] = 1;
    if (m.kind == K_TANH) st.gelu_tanh++;
    else st.gelu_erf++;
  }
  if (st.gelu_tanh + st.gelu_erf) bp_graph_remove_nodes(g, removed);
done:
  free(uses), free(consumer), free(chain), free(removed);
  if (stats) *stats = st;
  return rc;
}
