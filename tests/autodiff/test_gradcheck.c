/* tests/autodiff/test_gradcheck.c — every gradient rule against central finite differences in
 * float64: a one-node graph on random inputs (shapes with broadcasting where the op allows it),
 * loss = ReduceSum(y * R) for a fixed random R, analytic gradients from bp_autodiff compared
 * with (L(x + h) - L(x - h)) / 2h per input element. Prints one line per case and a closing line
 * `N passed, M failed`. */
#include "frontend/autodiff.h"
#include "frontend/passes.h"
#include "frontend/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 12345;
static double urand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng >> 11) * 0x1p-53;
}

typedef struct {
  bp_graph *g;
  bp_err e;
  bp_ad ad;
  int ins[8], nins;        /* the tensors differentiated (graph inputs) */
  int args[8], nargs;      /* node inputs in order */
  double *data[8];
  int node;
  const char *name;
  int training;            /* Dropout draws masks: the same seed and counter for every evaluation */
  int loss;                /* >= 0: this tensor is the loss (else ReduceSum(y * R) over the outputs) */
  int fixed[4], nfixed;    /* further graph inputs, not differentiated (loss targets) */
  double *fixed_data[4];
} tcase;

static int passed, failed;

static void begin(tcase *c, const char *name) {
  memset(c, 0, sizeof *c);
  c->g = bp_graph_new();
  c->ad.g = c->g;
  c->ad.e = &c->e;
  c->ad.cur = -1;
  c->name = name;
  c->node = -1;
  c->loss = -1;
}

/* A differentiated float64 input; lo..hi the range of its random values. */
static void input(tcase *c, int rank, const int64_t *dims, double lo, double hi) {
  char name[32];
  snprintf(name, sizeof name, "x%d", c->nins);
  int t = bp_graph_tensor(c->g, name);
  bp_tensor *tt = c->g->tensors[t];
  tt->kind = BP_T_INPUT;
  tt->v.dtype = BP_F64;
  tt->v.rank = rank;
  memcpy(tt->v.dims, dims, sizeof(int64_t) * (size_t)rank);
  int64_t n = bp_value_numel(&tt->v);
  double *d = malloc(sizeof(double) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) d[i] = lo + (hi - lo) * urand();
  c->g->inputs = realloc(c->g->inputs, sizeof(int) * (size_t)(c->g->ninputs + 1));
  c->g->inputs[c->g->ninputs++] = t;
  c->data[c->nins] = d;
  c->ins[c->nins++] = t;
  c->args[c->nargs++] = t;
}
#define IN(c, lo, hi, ...) input(c, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}, lo, hi)
static void arg(tcase *c, int t) { c->args[c->nargs++] = t; }
static void ints_arg(tcase *c, int n, const int64_t *v) { arg(c, bp_ad_const_i64(&c->ad, n, v)); }
#define INTS(c, ...) ints_arg(c, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
static void skip_arg(tcase *c) { c->args[c->nargs++] = -1; }

static void node(tcase *c, const char *domain, const char *op, int nout) {
  c->node = bp_ad_node(&c->ad, domain, op, c->nargs, c->args, nout);
}

/* Loss from output 0 (or all float outputs summed), gradients, finite differences. */
static void finish(tcase *c) {
  bp_ad *ad = &c->ad;
  bp_graph *g = c->g;
  int y = c->loss >= 0 ? c->loss : bp_ad_infer(ad, c->node), loss = c->loss;
  for (int k = 0; c->loss < 0 && y >= 0 && k < g->nodes[c->node]->nout; k++) {
    int o = bp_ad_out(ad, c->node, k);
    if (o < 0 || !bp_dtype_is_float(bp_ad_val(ad, o)->dtype)) continue;
    bp_value v = *bp_ad_val(ad, o);
    int r = bp_ad_const_scalar(ad, 0, BP_F64);
    r = bp_ad_op2(ad, "Expand", r, bp_ad_const_i64(ad, v.rank, v.dims));
    /* a random weighting R, materialised as a constant */
    int rid = bp_graph_tensor(g, k ? "R1" : "R0");
    bp_tensor *rt = g->tensors[rid];
    rt->kind = BP_T_CONSTANT;
    rt->v = v;
    rt->v.dtype = BP_F64;
    rt->v.data = NULL;
    bp_tensor_alloc(rt);
    for (int64_t i = 0; i < bp_value_numel(&v); i++) ((double *)rt->v.data)[i] = urand() * 2 - 1;
    (void)r;
    int m = bp_ad_op2(ad, "Mul", o, rid);
    int rs = m < 0 ? -1 : bp_ad_node(ad, NULL, "ReduceSum", 1, &m, 1);
    bp_ad_attr_int(ad, rs, "keepdims", 0);
    int s = bp_ad_infer(ad, rs);
    loss = loss < 0 ? s : bp_ad_op2(ad, "Add", loss, s);
  }
  int grads[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
  bp_ad_result r = {.loss = loss, .nwrt = c->nins, .wrt = c->ins, .grads = grads};
  int ok = loss >= 0 && !c->e.set && bp_autodiff(g, c->training, &r, &c->e) == 0;
  free(r.stash);
  double worst = 0;
  if (ok) {
    int *outs = malloc(sizeof(int) * (size_t)(c->nins + 1));
    outs[0] = loss;
    for (int i = 0; i < c->nins; i++) outs[i + 1] = grads[i] >= 0 ? grads[i] : loss;
    g->outputs = outs;
    g->noutputs = c->nins + 1;
    bp_value vin[12], *pin[12], res[9];
    for (int i = 0; i < c->nins; i++) {
      vin[i] = g->tensors[c->ins[i]]->v;
      vin[i].data = c->data[i];
      pin[i] = &vin[i];
    }
    for (int i = 0; i < c->nfixed; i++) {
      vin[c->nins + i] = g->tensors[c->fixed[i]]->v;
      vin[c->nins + i].data = c->fixed_data[i];
      pin[c->nins + i] = &vin[c->nins + i];
    }
    bp_ctx ctx = {.training = c->training, .seed = 7};
    if (bp_execute(g, &ctx, pin, res, &c->e) < 0) ok = 0;
    for (int i = 0; ok && i < c->nins; i++) {
      if (grads[i] < 0) {
        bp_errf(&c->e, "no gradient for input %d", i);
        ok = 0;
        break;
      }
      int64_t n = bp_value_numel(&vin[i]);
      for (int64_t k = 0; k < n; k++) {
        double x0 = c->data[i][k], h = 1e-6 * fmax(1.0, fabs(x0)), lp, lm;
        bp_value r2[9];
        c->data[i][k] = x0 + h;
        ctx.counter = 0;
        bp_execute(g, &ctx, pin, r2, &c->e);
        lp = ((double *)r2[0].data)[0];
        for (int j = 0; j <= c->nins; j++) free(r2[j].data);
        c->data[i][k] = x0 - h;
        ctx.counter = 0;
        bp_execute(g, &ctx, pin, r2, &c->e);
        lm = ((double *)r2[0].data)[0];
        for (int j = 0; j <= c->nins; j++) free(r2[j].data);
        c->data[i][k] = x0;
        double fd = (lp - lm) / (2 * h), an = ((double *)res[i + 1].data)[k];
        double err = fabs(fd - an) / fmax(1e-3, fabs(fd) + fabs(an));
        if (err > worst) worst = err;
      }
    }
    if (ok)
      for (int j = 0; j <= c->nins; j++) free(res[j].data);
    ok = ok && worst < 1e-5;
  }
  printf("%s %-40s max rel err %.2e%s%s\n", ok ? "ok  " : "FAIL", c->name, worst, c->e.set ? "  " : "",
         c->e.set ? c->e.msg : "");
  if (ok) passed++;
  else failed++;
  for (int i = 0; i < c->nins; i++) free(c->data[i]);
  for (int i = 0; i < c->nfixed; i++) free(c->fixed_data[i]);
  bp_graph_free(g);
}

static void unary(const char *op, double lo, double hi) {
  tcase c;
  begin(&c, op);
  IN(&c, lo, hi, 3, 4);
  node(&c, NULL, op, 1);
  finish(&c);
}

static void binary(const char *op, const char *label, double lo, double hi) {
  tcase c;
  begin(&c, label);
  IN(&c, lo, hi, 2, 3, 4);
  IN(&c, lo, hi, 3, 1);
  node(&c, NULL, op, 1);
  finish(&c);
}

static void gemm_case(int ta, int tb) {
  tcase c;
  char label[64];
  snprintf(label, sizeof label, "Gemm transA=%d transB=%d +C[1,4]", ta, tb);
  begin(&c, label); /* label outlives the case: finish() runs below */
  if (ta) IN(&c, -1, 1, 5, 3); else IN(&c, -1, 1, 3, 5);
  if (tb) IN(&c, -1, 1, 4, 5); else IN(&c, -1, 1, 5, 4);
  IN(&c, -1, 1, 1, 4);
  node(&c, NULL, "Gemm", 1);
  bp_ad_attr_int(&c.ad, c.node, "transA", ta);
  bp_ad_attr_int(&c.ad, c.node, "transB", tb);
  bp_ad_attr_float(&c.ad, c.node, "alpha", 0.7f);
  bp_ad_attr_float(&c.ad, c.node, "beta", 1.3f);
  finish(&c);
}

int main(void) {
  tcase c;
  const char *un[] = {"Neg", "Exp", "Sin", "Cos", "Tanh", "Sigmoid", "Erf", "Identity", "Abs", "Relu"};
  for (size_t i = 0; i < sizeof un / sizeof un[0]; i++) unary(un[i], -2, 2);
  unary("Sqrt", 0.5, 2);
  unary("Reciprocal", 0.5, 2);
  unary("Log", 0.5, 2);
  binary("Add", "Add broadcast", -1, 1);
  binary("Sub", "Sub broadcast", -1, 1);
  binary("Mul", "Mul broadcast", -1, 1);
  binary("Div", "Div broadcast", 0.5, 2);
  binary("Pow", "Pow broadcast (tensor exponent)", 0.5, 2);
  begin(&c, "Pow (constant exponent 3)");
  IN(&c, 0.5, 2, 3, 4);
  arg(&c, bp_ad_const_scalar(&c.ad, 3.0, BP_F64));
  node(&c, NULL, "Pow", 1);
  finish(&c);
  begin(&c, "Sum variadic broadcast");
  IN(&c, -1, 1, 2, 3);
  IN(&c, -1, 1, 3);
  IN(&c, -1, 1, 2, 1);
  node(&c, NULL, "Sum", 1);
  finish(&c);
  for (int t = 0; t < 2; t++) {
    begin(&c, t ? "Gelu tanh" : "Gelu exact");
    IN(&c, -3, 3, 3, 4);
    node(&c, NULL, "Gelu", 1);
    if (t) bp_ad_attr_string(&c.ad, c.node, "approximate", "tanh");
    finish(&c);
  }
  begin(&c, "Cast float64->float64");
  IN(&c, -1, 1, 3, 4);
  node(&c, NULL, "Cast", 1);
  bp_ad_attr_int(&c.ad, c.node, "to", BP_F64);
  finish(&c);
  begin(&c, "Where broadcast");
  {
    int cond = bp_graph_tensor(c.g, "cond");
    bp_tensor *ct = c.g->tensors[cond];
    ct->kind = BP_T_CONSTANT;
    ct->v.dtype = BP_BOOL;
    ct->v.rank = 2;
    ct->v.dims[0] = 3, ct->v.dims[1] = 4;
    bp_tensor_alloc(ct);
    for (int i = 0; i < 12; i++) ((uint8_t *)ct->v.data)[i] = urand() < 0.5;
    arg(&c, cond);
    IN(&c, -1, 1, 3, 4);
    IN(&c, -1, 1, 4);
  }
  node(&c, NULL, "Where", 1);
  finish(&c);
  begin(&c, "Reshape");
  IN(&c, -1, 1, 2, 6);
  INTS(&c, 3, -1);
  node(&c, NULL, "Reshape", 1);
  finish(&c);
  begin(&c, "Flatten axis=2");
  IN(&c, -1, 1, 2, 3, 2);
  node(&c, NULL, "Flatten", 1);
  bp_ad_attr_int(&c.ad, c.node, "axis", 2);
  finish(&c);
  begin(&c, "Squeeze");
  IN(&c, -1, 1, 2, 1, 3);
  INTS(&c, 1);
  node(&c, NULL, "Squeeze", 1);
  finish(&c);
  begin(&c, "Unsqueeze");
  IN(&c, -1, 1, 2, 3);
  INTS(&c, 0, 3);
  node(&c, NULL, "Unsqueeze", 1);
  finish(&c);
  begin(&c, "Expand");
  IN(&c, -1, 1, 3, 1);
  INTS(&c, 2, 3, 4);
  node(&c, NULL, "Expand", 1);
  finish(&c);
  begin(&c, "Transpose perm=[2,0,1]");
  IN(&c, -1, 1, 2, 3, 4);
  node(&c, NULL, "Transpose", 1);
  bp_ad_attr_ints(&c.ad, c.node, "perm", 3, (int64_t[]){2, 0, 1});
  finish(&c);
  begin(&c, "Concat axis=1");
  IN(&c, -1, 1, 2, 3);
  IN(&c, -1, 1, 2, 1);
  IN(&c, -1, 1, 2, 2);
  node(&c, NULL, "Concat", 1);
  bp_ad_attr_int(&c.ad, c.node, "axis", 1);
  finish(&c);
  begin(&c, "Split axis=-1 [2,3]");
  IN(&c, -1, 1, 3, 5);
  INTS(&c, 2, 3);
  node(&c, NULL, "Split", 2);
  bp_ad_attr_int(&c.ad, c.node, "axis", -1);
  finish(&c);
  begin(&c, "Slice steps=2, negative step");
  IN(&c, -1, 1, 4, 6);
  INTS(&c, 1, 5);
  INTS(&c, 4, 0);
  INTS(&c, 0, 1);
  INTS(&c, 2, -2);
  node(&c, NULL, "Slice", 1);
  finish(&c);
  begin(&c, "Gather axis=0 repeated indices");
  IN(&c, -1, 1, 5, 3);
  {
    int64_t v[] = {0, 2, 2, 4, 0, 1};
    int ix = bp_ad_const_i64(&c.ad, 6, v);
    arg(&c, bp_ad_reshape(&c.ad, ix, 2, (int64_t[]){2, 3}));
  }
  node(&c, NULL, "Gather", 1);
  finish(&c);
  begin(&c, "Gather axis=1");
  IN(&c, -1, 1, 2, 4, 3);
  INTS(&c, 3, 1);
  node(&c, NULL, "Gather", 1);
  bp_ad_attr_int(&c.ad, c.node, "axis", 1);
  finish(&c);
  begin(&c, "MatMul batch broadcast");
  IN(&c, -1, 1, 2, 3, 4);
  IN(&c, -1, 1, 4, 5);
  node(&c, NULL, "MatMul", 1);
  finish(&c);
  begin(&c, "MatMul 4-D");
  IN(&c, -1, 1, 2, 1, 3, 4);
  IN(&c, -1, 1, 1, 2, 4, 2);
  node(&c, NULL, "MatMul", 1);
  finish(&c);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) gemm_case(ta, tb);
  begin(&c, "Softmax axis=-1");
  IN(&c, -2, 2, 2, 3, 5);
  node(&c, NULL, "Softmax", 1);
  finish(&c);
  begin(&c, "Softmax axis=1");
  IN(&c, -2, 2, 2, 3, 4);
  node(&c, NULL, "Softmax", 1);
  bp_ad_attr_int(&c.ad, c.node, "axis", 1);
  finish(&c);
  begin(&c, "LayerNormalization axis=-1");
  IN(&c, -2, 2, 2, 3, 5);
  IN(&c, 0.5, 1.5, 5);
  IN(&c, -1, 1, 5);
  node(&c, NULL, "LayerNormalization", 1);
  finish(&c);
  begin(&c, "LayerNormalization axis=1");
  IN(&c, -2, 2, 2, 3, 2);
  IN(&c, 0.5, 1.5, 3, 2);
  IN(&c, -1, 1, 3, 2);
  node(&c, NULL, "LayerNormalization", 1);
  bp_ad_attr_int(&c.ad, c.node, "axis", 1);
  finish(&c);
  begin(&c, "ReduceMean axes=[1] keepdims=1");
  IN(&c, -1, 1, 2, 3, 4);
  INTS(&c, 1);
  node(&c, NULL, "ReduceMean", 1);
  finish(&c);
  begin(&c, "ReduceSum axes=[0,2] keepdims=0");
  IN(&c, -1, 1, 2, 3, 4);
  INTS(&c, 0, 2);
  node(&c, NULL, "ReduceSum", 1);
  bp_ad_attr_int(&c.ad, c.node, "keepdims", 0);
  finish(&c);
  begin(&c, "Dropout (inference: identity)");
  IN(&c, -1, 1, 3, 4);
  arg(&c, bp_ad_const_scalar(&c.ad, 0.1, BP_F64));
  node(&c, NULL, "Dropout", 1);
  finish(&c);
  begin(&c, "SoftmaxCrossEntropy ignore_index");
  IN(&c, -2, 2, 2, 3, 5);
  {
    int64_t tv[] = {0, 4, -100, 2, 1, 3};
    int tg = bp_ad_const_i64(&c.ad, 6, tv);
    arg(&c, bp_ad_reshape(&c.ad, tg, 2, (int64_t[]){2, 3}));
  }
  node(&c, BP_DOMAIN, "SoftmaxCrossEntropy", 1);
  bp_ad_attr_int(&c.ad, c.node, "ignore_index", -100);
  finish(&c);
  /* ---- rules added with the training work: LogSoftmax, RMSNormalization, Min/Max, Clip,
   * ReduceMax/Min, GatherElements, 1-D MatMul; Dropout in training; the MSE loss ---- */
  begin(&c, "LogSoftmax axis=-1");
  IN(&c, -2, 2, 2, 3, 5);
  node(&c, NULL, "LogSoftmax", 1);
  finish(&c);
  begin(&c, "LogSoftmax axis=1 (opset 11: coerced 2-D)");
  IN(&c, -2, 2, 2, 3, 4);
  node(&c, NULL, "LogSoftmax", 1);
  bp_ad_attr_int(&c.ad, c.node, "axis", 1);
  if (c.node >= 0) c.g->nodes[c.node]->opset = 11;
  finish(&c);
  begin(&c, "RMSNormalization axis=-1");
  IN(&c, -2, 2, 2, 3, 5);
  IN(&c, 0.5, 1.5, 5);
  node(&c, NULL, "RMSNormalization", 1);
  bp_ad_attr_float(&c.ad, c.node, "epsilon", 1e-3f);
  finish(&c);
  begin(&c, "RMSNormalization axis=1 scale [3,2]");
  IN(&c, -2, 2, 2, 3, 2);
  IN(&c, 0.5, 1.5, 3, 2);
  node(&c, NULL, "RMSNormalization", 1);
  bp_ad_attr_int(&c.ad, c.node, "axis", 1);
  finish(&c);
  binary("Max", "Max broadcast", -1, 1);
  binary("Min", "Min broadcast", -1, 1);
  begin(&c, "Max variadic (3 inputs)");
  IN(&c, -1, 1, 2, 3);
  IN(&c, -1, 1, 3);
  IN(&c, -1, 1, 2, 1);
  node(&c, NULL, "Max", 1);
  finish(&c);
  begin(&c, "Clip min/max inputs (all differentiated)");
  IN(&c, -2, 2, 3, 4);
  IN(&c, -0.5, -0.4, 1);  /* rank-0 would need IN with no dims; [1] broadcasts the same */
  IN(&c, 0.4, 0.5, 1);
  node(&c, NULL, "Clip", 1);
  if (c.node >= 0) { /* Clip's min/max are scalars: feed them as rank-0 reshapes */
    bp_node *cn = c.g->nodes[c.node];
    cn->in[1] = bp_ad_reshape(&c.ad, cn->in[1], 0, NULL);
    cn->in[2] = bp_ad_reshape(&c.ad, cn->in[2], 0, NULL);
    /* the reshapes were appended after the Clip: move the Clip last */
    int last = c.g->nnodes - 1;
    bp_node *tmp = c.g->nodes[c.node];
    memmove(&c.g->nodes[c.node], &c.g->nodes[c.node + 1], sizeof(bp_node *) * (size_t)(last - c.node));
    c.g->nodes[last] = tmp;
    c.node = last;
  }
  finish(&c);
  begin(&c, "Clip max only (opset 6 attributes)");
  IN(&c, -2, 2, 3, 4);
  node(&c, NULL, "Clip", 1);
  bp_ad_attr_float(&c.ad, c.node, "max", 0.3f);
  bp_ad_attr_float(&c.ad, c.node, "min", -3.0f);
  if (c.node >= 0) c.g->nodes[c.node]->opset = 6;
  finish(&c);
  begin(&c, "ReduceMax axes=[1] keepdims=0");
  IN(&c, -1, 1, 2, 3, 4);
  INTS(&c, 1);
  node(&c, NULL, "ReduceMax", 1);
  bp_ad_attr_int(&c.ad, c.node, "keepdims", 0);
  finish(&c);
  begin(&c, "ReduceMin axes=[0,2] keepdims=1");
  IN(&c, -1, 1, 2, 3, 4);
  INTS(&c, 0, 2);
  node(&c, NULL, "ReduceMin", 1);
  finish(&c);
  begin(&c, "ReduceSum all axes (no axes input)");
  IN(&c, -1, 1, 2, 3);
  node(&c, NULL, "ReduceSum", 1);
  finish(&c);
  begin(&c, "GatherElements axis=1 repeated indices");
  IN(&c, -1, 1, 3, 4);
  {
    int64_t v[] = {0, 3, 3, 1, 1, 1, 2, 0, 3};
    int ix = bp_ad_const_i64(&c.ad, 9, v);
    arg(&c, bp_ad_reshape(&c.ad, ix, 2, (int64_t[]){3, 3}));
  }
  node(&c, NULL, "GatherElements", 1);
  bp_ad_attr_int(&c.ad, c.node, "axis", 1);
  finish(&c);
  /* GatherND (dynamo's constant tensor indexing): repeated and negative index tuples sum */
  begin(&c, "GatherND k=1 repeated/negative tuples");
  IN(&c, -1, 1, 3, 2, 4);
  {
    int64_t v[] = {2, -3, 0, 2};
    int ix = bp_ad_const_i64(&c.ad, 4, v);
    arg(&c, bp_ad_reshape(&c.ad, ix, 3, (int64_t[]){2, 2, 1}));
  }
  node(&c, NULL, "GatherND", 1);
  finish(&c);
  begin(&c, "GatherND k=2 (element slices)");
  IN(&c, -1, 1, 3, 4, 2);
  {
    int64_t v[] = {1, 3, 0, 0, 1, 3};
    int ix = bp_ad_const_i64(&c.ad, 6, v);
    arg(&c, bp_ad_reshape(&c.ad, ix, 2, (int64_t[]){3, 2}));
  }
  node(&c, NULL, "GatherND", 1);
  finish(&c);
  /* CastLike (the dynamo export's type_as) to float64: the gradient passes to input 0 only */
  begin(&c, "CastLike into Tanh");
  IN(&c, -1, 1, 2, 3);
  arg(&c, bp_ad_const_scalar(&c.ad, 0.0, BP_F64));
  node(&c, NULL, "CastLike", 1);
  {
    int y = bp_ad_infer(&c.ad, c.node);
    c.node = y < 0 ? -1 : bp_ad_node(&c.ad, NULL, "Tanh", 1, &y, 1);
  }
  finish(&c);
  /* TopK (the MoE router): values back to the chosen positions; largest and smallest, two axes */
  begin(&c, "TopK k=2 largest axis=-1");
  IN(&c, -1, 1, 3, 5);
  INTS(&c, 2);
  node(&c, NULL, "TopK", 2);
  finish(&c);
  begin(&c, "TopK k=3 smallest axis=0");
  IN(&c, -1, 1, 4, 2, 3);
  INTS(&c, 3);
  node(&c, NULL, "TopK", 2);
  bp_ad_attr_int(&c.ad, c.node, "axis", 0);
  bp_ad_attr_int(&c.ad, c.node, "largest", 0);
  finish(&c);
  /* Tile (Mixtral's TorchScript export repeats the routing weights): copies summed back */
  begin(&c, "Tile repeats [2,1,3]");
  IN(&c, -1, 1, 2, 3, 2);
  INTS(&c, 2, 1, 3);
  node(&c, NULL, "Tile", 1);
  finish(&c);
  begin(&c, "Tile repeats [3,2] of a [1,4]");
  IN(&c, -1, 1, 1, 4);
  INTS(&c, 3, 2);
  node(&c, NULL, "Tile", 1);
  finish(&c);
  begin(&c, "MatMul 1-D x 2-D");
  IN(&c, -1, 1, 4);
  IN(&c, -1, 1, 4, 3);
  node(&c, NULL, "MatMul", 1);
  finish(&c);
  begin(&c, "MatMul 3-D x 1-D");
  IN(&c, -1, 1, 2, 3, 4);
  IN(&c, -1, 1, 4);
  node(&c, NULL, "MatMul", 1);
  finish(&c);
  begin(&c, "MatMul 1-D x 1-D (dot)");
  IN(&c, -1, 1, 5);
  IN(&c, -1, 1, 5);
  node(&c, NULL, "MatMul", 1);
  finish(&c);
  begin(&c, "Dropout training ratio=0.3 (fixed mask)");
  c.training = 1;
  IN(&c, -1, 1, 4, 5);
  arg(&c, bp_ad_const_scalar(&c.ad, 0.3, BP_F64));
  node(&c, NULL, "Dropout", 1);
  finish(&c);
  /* MSE loss as bp_loss_append builds it, on Tanh(x) against fixed targets */
  begin(&c, "MSE loss (bp_loss_append) on Tanh");
  IN(&c, -2, 2, 3, 4);
  node(&c, NULL, "Tanh", 1);
  {
    int y = bp_ad_infer(&c.ad, c.node), tg = -1;
    if (y >= 0) c.loss = bp_loss_append(c.g, y, BP_LOSS_MSE, -100, "targets", &tg, &c.e);
    if (tg >= 0) {
      c.fixed[0] = tg;
      c.fixed_data[0] = malloc(sizeof(double) * 12);
      for (int i = 0; i < 12; i++) c.fixed_data[0][i] = urand() * 2 - 1;
      c.nfixed = 1;
    }
  }
  finish(&c);
  (void)skip_arg;
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
