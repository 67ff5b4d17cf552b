/* tests/gpu/test_gpu_ops.c — every CUDA op against the CPU backend.
 *
 * 1. Model nodes: for the committed models (models/{gpt2,bert,llama}/{train,ts,dynamo}.onnx) the
 *    training graph (forward, loss, backward; dropout off) runs once on the CPU keeping every
 *    value; then each node runs alone on the GPU on its real CPU inputs and its outputs are compared
 *    with the CPU's. MatMul/Gemm nodes run in fp32, tf32 and bf16.
 * 2. Random cases for the ops of the table the models do not reach (and other layouts of those they
 *    do): one-node graphs on random inputs, both backends, the same comparison; host-staged ops get
 *    a case too, so the staging path is checked.
 * Relative error: max|gpu - cpu| / max|cpu| per output (tests/gpu/gpu_check.h); tolerances fp32
 * 1e-5, tf32 1e-3, bf16 2e-2 (GEMM-bearing ops); integer/bool outputs (and Dropout's mask) exact.
 * Outputs are poisoned (all bits set) before each GPU run, so an element a kernel fails to write
 * shows up as NaN. 3. Bad data (an index or target out of range) must be reported by the GPU kernel
 * (device flag, naming the node) where the CPU kernel refuses it. Prints the table (op, precision, cases, worst error, own|host) and exits 1 on any
 * failure, 77 when no GPU is visible.
 *
 * usage: test_gpu_ops MODELS_DIR */
#include "frontend/autodiff.h"
#include "frontend/onnx_load.h"
#include "frontend/train.h"
#include "tests/gpu/gpu_check.h"

#include <stdarg.h>

static bp_cuda *DC;
static gpu_table TABLE;
static int total_fail, shown_fail;

/* ---- one node on the GPU vs the CPU ------------------------------------------------------------ */

/* vals: the CPU's values of every tensor of g (inputs and outputs of n included). before: the CPU
 * context before the node ran, counter_after its counter after. host_consts: hand the kernels the
 * host copies of compile-time constants, as the executor does (else they download them). */
static void check_node(const bp_graph *g, const bp_node *n, const bp_value *vals, const bp_ctx *before,
                       uint64_t counter_after, int host_consts, const char *where) {
  const bp_cuda_op *op = bp_cuda_op_find(n->domain, n->op_type);
  const char *kind = op && op->kind == BP_CUDA_OWN ? "own" : "host";
  int gemm = !strcmp(n->op_type, "MatMul") || !strcmp(n->op_type, "Gemm");
  for (int p = 0; p < (gemm ? 3 : 1); p++) {
    bp_precision prec = (bp_precision)p;
    bp_err e = {0};
    bp_value din[64], dout[64], *pin[64] = {0}, *pout[64] = {0};
    const void *host[64] = {0};
    int rc = op ? 0 : bp_errf(&e, "no CUDA entry");
    double err = 0;
    bp_cuda_set_precision(DC, prec);
    for (int k = 0; !rc && k < n->nin; k++) {
      int t = n->in[k];
      if (t < 0) continue;
      din[k] = vals[t];
      size_t bytes = bp_value_bytes(&vals[t]);
      if (!(din[k].data = bp_cuda_alloc(DC, bytes, "test input", &e)) ||
          bp_cuda_upload(DC, din[k].data, vals[t].data, bytes, "test input", &e))
        rc = -1;
      pin[k] = &din[k];
      if (host_consts && g->tensors[t]->kind == BP_T_CONSTANT) host[k] = vals[t].data;
    }
    for (int k = 0; !rc && k < n->nout; k++) {
      int t = n->out[k];
      if (t < 0) continue;
      dout[k] = vals[t];
      size_t bytes = bp_value_bytes(&vals[t]);
      if (!(dout[k].data = bp_cuda_alloc(DC, bytes, "test output", &e)) ||
          bp_cuda_memset(DC, dout[k].data, 0xff, bytes, "test output", &e))
        rc = -1;
      pout[k] = &dout[k];
    }
    bp_ctx c = *before;
    c.device = DC;
    if (!rc) {
      bp_cuda_set_host_inputs(DC, host, n->nin);
      bp_cuda_set_tag(DC, 0);
      rc = op->eval(&c, n, pin, n->nin, pout, n->nout, &e);
      if (!rc) rc = bp_cuda_check_flags(DC, NULL, 0, &e);
      if (!rc && c.counter != counter_after)
        rc = bp_errf(&e, "the random stream advanced to %llu, the CPU's to %llu", (unsigned long long)c.counter,
                     (unsigned long long)counter_after);
    }
    for (int k = 0; !rc && k < n->nout; k++) {
      int t = n->out[k];
      if (t < 0) continue;
      size_t bytes = bp_value_bytes(&vals[t]);
      void *h = malloc(bytes ? bytes : 1);
      if (!h || bp_cuda_download(DC, h, dout[k].data, bytes, "test output", &e)) rc = -1;
      else {
        double r = gpu_rel_err(&vals[t], h);
        if (!(r <= err)) err = r;
      }
      free(h);
    }
    int failed = rc < 0 || !(err <= gpu_tol(prec));
    gpu_record(&TABLE, n->op_type, prec, kind, rc < 0 ? INFINITY : err, failed);
    if (failed) {
      total_fail++;
      if (shown_fail++ < 40)
        printf("FAIL %s: node '%s' (%s) %s: %s\n", where, n->name, n->op_type, bp_precision_name(prec),
               rc < 0 ? e.msg : "error above tolerance");
      if (rc == 0 && shown_fail <= 40) printf("     rel err %.3g (tol %.0e)\n", err, gpu_tol(prec));
    }
    bp_cuda_set_host_inputs(DC, NULL, 0);
    for (int k = 0; k < n->nin; k++)
      if (pin[k]) bp_cuda_release(DC, din[k].data);
    for (int k = 0; k < n->nout; k++)
      if (pout[k]) bp_cuda_release(DC, dout[k].data);
    bp_err se = {0};
    if (bp_cuda_sync(DC, "test", &se)) {
      printf("FAIL %s: the device is unusable after node '%s': %s\n", where, n->name, se.msg);
      exit(1);
    }
  }
  bp_cuda_set_precision(DC, BP_PREC_FP32);
}

/* Runs node n on the CPU into vals (outputs allocated, zeroed as the CPU executor does). */
static int cpu_node(const bp_graph *g, const bp_node *n, bp_value *vals, bp_ctx *ctx, bp_err *e) {
  bp_value *in[64] = {0}, *out[64] = {0};
  for (int k = 0; k < n->nin; k++) in[k] = n->in[k] >= 0 ? &vals[n->in[k]] : NULL;
  for (int k = 0; k < n->nout; k++) {
    int t = n->out[k];
    if (t < 0) continue;
    vals[t] = g->tensors[t]->v;
    size_t bytes = bp_value_bytes(&vals[t]);
    vals[t].data = calloc(bytes ? bytes : 1, 1);
    out[k] = &vals[t];
  }
  return n->op->eval(ctx, n, in, n->nin, out, n->nout, e);
}

/* ---- 1. the committed models' training graphs -------------------------------------------------- */

static void check_model(const char *models, const char *fam, const char *var) {
  char path[1024], ids[1024], tg[1024], where[128];
  snprintf(path, sizeof path, "%s/%s/%s.onnx", models, fam, var);
  snprintf(ids, sizeof ids, "%s/%s/input_ids.npy", models, fam);
  snprintf(tg, sizeof tg, "%s/%s/targets.npy", models, fam);
  snprintf(where, sizeof where, "%s/%s", fam, var);
  bp_err e = {0};
  bp_value vid = {0}, vt = {0};
  bp_graph *g0 = bp_onnx_load(path, &e);
  if (!g0 || bp_value_read_file(ids, &vid, &e) || bp_value_read_file(tg, &vt, &e)) {
    printf("FAIL %s: %s\n", where, e.msg);
    total_fail++;
    bp_graph_free(g0);
    free(vid.data);
    free(vt.data);
    return;
  }
  bp_value *given[8] = {&vid};
  bp_train_opts o;
  bp_train_opts_default(&o);
  o.dropout = 0;
  o.quiet = 1;
  bp_trainer *t = bp_trainer_new(g0, given, &vt, NULL, 0, &o, &e);
  if (!t) {
    printf("FAIL %s: %s\n", where, e.msg);
    total_fail++;
    free(vid.data);
    free(vt.data);
    return;
  }
  bp_graph *g = t->g;
  bp_value *vals = calloc((size_t)g->ntensors, sizeof(bp_value));
  unsigned char *owned = calloc((size_t)g->ntensors, 1);
  for (int i = 0; i < g->ntensors; i++)
    if (g->tensors[i]->kind == BP_T_CONSTANT || g->tensors[i]->kind == BP_T_INITIALIZER) vals[i] = g->tensors[i]->v;
  for (int i = 0; i < g->ninputs; i++) vals[g->inputs[i]] = *t->inputs[i];
  bp_ctx ctx = t->ctx;
  int before_fail = total_fail;
  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    bp_ctx before = ctx;
    if (cpu_node(g, n, vals, &ctx, &e) < 0) {
      printf("FAIL %s: the CPU run failed at node '%s': %s\n", where, n->name, e.msg);
      total_fail++;
      break;
    }
    for (int k = 0; k < n->nout; k++)
      if (n->out[k] >= 0) owned[n->out[k]] = 1;
    check_node(g, n, vals, &before, ctx.counter, 1, where);
  }
  printf("model %-14s %4d nodes checked on the GPU, %d failed\n", where, g->nnodes, total_fail - before_fail);
  for (int i = 0; i < g->ntensors; i++)
    if (owned[i]) free(vals[i].data);
  free(vals);
  free(owned);
  bp_trainer_free(t);
  free(vid.data);
  free(vt.data);
}

/* ---- 2. random one-node cases -------------------------------------------------------------------- */

static bp_graph *G;
static bp_ad AD;
static bp_err E;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double urand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng >> 11) * 0x1p-53;
}

static void rc_begin(void) {
  G = bp_graph_new();
  memset(&AD, 0, sizeof AD);
  memset(&E, 0, sizeof E);
  AD.g = G;
  AD.e = &E;
  AD.cur = -1;
}

/* A graph input of dtype t with random values in [lo, hi] (integers: uniform integers; bool: 0/1). */
static int rin(bp_dtype t, double lo, double hi, int rank, const int64_t *dims) {
  char name[32];
  snprintf(name, sizeof name, "in%d", G->ntensors);
  int id = bp_graph_tensor(G, name);
  bp_tensor *tt = G->tensors[id];
  tt->kind = BP_T_INPUT;
  tt->v.dtype = t;
  tt->v.rank = rank;
  memcpy(tt->v.dims, dims, sizeof(int64_t) * (size_t)rank);
  bp_tensor_alloc(tt);
  int64_t n = bp_value_numel(&tt->v);
  for (int64_t i = 0; i < n; i++) {
    double u = lo + (hi - lo) * urand();
    if (t == BP_BOOL) bp_set_i64(tt->v.data, t, i, urand() < 0.5);
    else if (bp_dtype_is_int(t)) bp_set_i64(tt->v.data, t, i, (int64_t)floor(lo + (hi - lo + 1) * urand()));
    else bp_set_f64(tt->v.data, t, i, u);
  }
  G->inputs = realloc(G->inputs, sizeof(int) * (size_t)(G->ninputs + 1));
  G->inputs[G->ninputs++] = id;
  return id;
}
#define NA(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}
#define RF(lo, hi, ...) rin(BP_F32, lo, hi, NA(__VA_ARGS__))
#define RT(t, lo, hi, ...) rin(t, lo, hi, NA(__VA_ARGS__))
#define CI(...) bp_ad_const_i64(&AD, NA(__VA_ARGS__))
static int scalar_f32(double v) { return bp_ad_const_scalar(&AD, v, BP_F32); }

/* Node op (domain NULL: ONNX, "bitpipe": ours) on the inputs (-1: omitted), nout outputs. */
static int nd(const char *domain, const char *op, int nout, int nin, ...) {
  int in[16];
  va_list ap;
  va_start(ap, nin);
  for (int k = 0; k < nin; k++) in[k] = va_arg(ap, int);
  va_end(ap);
  return bp_ad_node(&AD, domain, op, nin, in, nout);
}
#define AI(node, name, v) bp_ad_attr_int(&AD, node, name, v)
#define AF(node, name, v) bp_ad_attr_float(&AD, node, name, v)
#define AS(node, name, v) bp_ad_attr_string(&AD, node, name, v)
#define AIS(node, name, ...) bp_ad_attr_ints(&AD, node, name, NA(__VA_ARGS__))

/* Infers the node, runs it on the CPU, checks it on the GPU, frees the graph. training: Dropout
 * draws masks. host_consts: see check_node. */
static void rc_run(int node, const char *label, int training, int host_consts) {
  char where[160];
  snprintf(where, sizeof where, "random %s", label);
  if (node >= 0) bp_ad_infer(&AD, node);
  if (E.set || node < 0) {
    printf("FAIL %s: building the case: %s\n", where, E.msg);
    total_fail++;
    bp_graph_free(G);
    return;
  }
  bp_value *vals = calloc((size_t)G->ntensors, sizeof(bp_value));
  for (int i = 0; i < G->ntensors; i++) vals[i] = G->tensors[i]->v;
  const bp_node *n = G->nodes[node];
  bp_ctx ctx = {.training = training, .seed = 11, .counter = 5};
  bp_ctx before = ctx;
  bp_err e = {0};
  if (cpu_node(G, n, vals, &ctx, &e) < 0) {
    printf("FAIL %s: the CPU kernel failed: %s\n", where, e.msg);
    total_fail++;
  } else {
    check_node(G, n, vals, &before, ctx.counter, host_consts, where);
  }
  for (int k = 0; k < n->nout; k++)
    if (n->out[k] >= 0) free(vals[n->out[k]].data);
  free(vals);
  bp_graph_free(G);
}
#define RUN(node, label) rc_run(node, label, 0, 0)

static void random_cases(void) {
  int x, y, z, nn;
  /* unary float ops, values in each op's domain */
  static const struct { const char *op; double lo, hi; } un[] = {
      {"Neg", -3, 3}, {"Abs", -3, 3}, {"Sqrt", 0.01, 4}, {"Reciprocal", 0.5, 3}, {"Exp", -3, 3}, {"Log", 0.05, 4},
      {"Erf", -3, 3}, {"Tanh", -3, 3}, {"Sigmoid", -6, 6}, {"Relu", -3, 3}, {"LeakyRelu", -3, 3}, {"Elu", -3, 3},
      {"Selu", -3, 3}, {"Celu", -3, 3}, {"Softplus", -6, 6}, {"Softsign", -3, 3}, {"HardSigmoid", -5, 5},
      {"HardSwish", -5, 5}, {"ThresholdedRelu", -3, 3}, {"Shrink", -3, 3}, {"Sin", -4, 4}, {"Cos", -4, 4},
      {"Tan", -1.2, 1.2}, {"Asin", -0.95, 0.95}, {"Acos", -0.95, 0.95}, {"Atan", -4, 4}, {"Sinh", -3, 3},
      {"Cosh", -3, 3}, {"Asinh", -4, 4}, {"Acosh", 1.05, 5}, {"Atanh", -0.9, 0.9}, {"Floor", -5, 5},
      {"Ceil", -5, 5}, {"Round", -5, 5}, {"Sign", -3, 3}, {"Gelu", -4, 4}, {"IsNaN", -3, 3}, {"IsInf", -3, 3}};
  for (size_t i = 0; i < sizeof un / sizeof un[0]; i++) {
    rc_begin();
    x = RF(un[i].lo, un[i].hi, 4, 33);
    RUN(nd(NULL, un[i].op, 1, 1, x), un[i].op);
  }
  rc_begin();
  nn = nd(NULL, "Gelu", 1, 1, RF(-4, 4, 3, 17));
  AS(nn, "approximate", "tanh");
  RUN(nn, "Gelu tanh");
  rc_begin();
  nn = nd(NULL, "Gelu", 1, 1, RF(-6, 6, 8, 64)); /* four per thread */
  AS(nn, "approximate", "tanh");
  RUN(nn, "Gelu tanh [8, 64]");
  rc_begin();
  nn = nd(NULL, "LeakyRelu", 1, 1, RF(-3, 3, 40));
  AF(nn, "alpha", 0.2f);
  RUN(nn, "LeakyRelu alpha");
  rc_begin();
  RUN(nd(NULL, "Not", 1, 1, RT(BP_BOOL, 0, 1, 5, 7)), "Not");
  rc_begin();
  RUN(nd(NULL, "Neg", 1, 1, RT(BP_I64, -50, 50, 9)), "Neg int64");

  /* binary with broadcasting */
  static const char *bin[] = {"Add", "Sub", "Mul", "Div", "Pow", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Min", "Max"};
  for (size_t i = 0; i < sizeof bin / sizeof bin[0]; i++) {
    rc_begin();
    int pw = !strcmp(bin[i], "Pow"), div = !strcmp(bin[i], "Div");
    x = RF(pw ? 0.2 : -3, 3, 4, 1, 6);
    y = RF(div ? 0.5 : pw ? -2 : -3, div ? 2 : 2.5, 5, 1);
    RUN(nd(NULL, bin[i], 1, 2, x, y), bin[i]);
  }
  rc_begin(); /* broadcasting four elements per thread (kernels/cuda/elementwise.cu): contiguous and broadcast inner dims */
  RUN(nd(NULL, "Sub", 1, 2, RF(-3, 3, 6, 8), RF(-3, 3, 6, 1)), "Sub [6,8] - [6,1]");
  rc_begin();
  RUN(nd(NULL, "Mul", 1, 2, RF(-3, 3, 3, 5, 8), RF(-3, 3, 5, 8)), "Mul [3,5,8] * [5,8]");
  rc_begin();
  RUN(nd(NULL, "Pow", 1, 2, RF(-3, 3, 7, 9), scalar_f32(2.0)), "Pow x^2");
  rc_begin();
  x = RF(-6, 6, 3, 8);
  y = RF(0.5, 3, 8);
  RUN(nd(NULL, "Mod", 1, 2, x, y), "Mod");
  rc_begin();
  nn = nd(NULL, "Mod", 1, 2, RF(-6, 6, 3, 8), RF(0.5, 3, 8));
  AI(nn, "fmod", 1);
  RUN(nn, "Mod fmod");
  rc_begin(); /* Equal on float values that are often equal */
  x = RF(0, 1, 6, 5);
  y = RF(0, 1, 6, 5);
  for (int k = 0; k < 30; k++) ((float *)G->tensors[y]->v.data)[k] = k % 2 ? ((float *)G->tensors[x]->v.data)[k] : 0.5f;
  RUN(nd(NULL, "Equal", 1, 2, x, y), "Equal");
  static const char *logic[] = {"And", "Or", "Xor", "Equal"};
  for (size_t i = 0; i < 4; i++) {
    rc_begin();
    RUN(nd(NULL, logic[i], 1, 2, RT(BP_BOOL, 0, 1, 3, 1, 4), RT(BP_BOOL, 0, 1, 5, 1)), logic[i]);
  }
  rc_begin();
  RUN(nd(NULL, "Add", 1, 2, RT(BP_I64, -9, 9, 4, 3), RT(BP_I64, -9, 9, 3)), "Add int64");
  rc_begin();
  RUN(nd(NULL, "PRelu", 1, 2, RF(-3, 3, 4, 6), RF(0, 0.5, 6)), "PRelu");
  static const char *var[] = {"Min", "Max", "Sum", "Mean"};
  for (size_t i = 0; i < 4; i++) {
    rc_begin();
    RUN(nd(NULL, var[i], 1, 3, RF(-3, 3, 2, 1, 5), RF(-3, 3, 3, 1), RF(-3, 3, 5)), var[i]);
  }
  rc_begin();
  RUN(nd(NULL, "BitwiseAnd", 1, 2, RT(BP_I32, 0, 255, 17), RT(BP_I32, 0, 255, 17)), "BitwiseAnd");

  /* integer and float64 elementwise (the exact path) */
  static const char *iops[] = {"Add", "Sub", "Mul", "Div", "Mod", "Pow", "Min", "Max", "Less", "Equal", "BitwiseOr", "BitwiseXor"};
  for (size_t i = 0; i < sizeof iops / sizeof iops[0]; i++) {
    char label[64];
    snprintf(label, sizeof label, "%s int32", iops[i]);
    rc_begin();
    int pw = !strcmp(iops[i], "Pow");
    x = RT(BP_I32, pw ? -3 : -40, pw ? 3 : 40, 4, 1, 6);
    y = RT(BP_I32, pw ? -1 : -9, pw ? 5 : 9, 5, 1);
    RUN(nd(NULL, iops[i], 1, 2, x, y), label);
  }
  rc_begin();
  RUN(nd(NULL, "Div", 1, 2, RT(BP_U8, 0, 255, 30), RT(BP_U8, 0, 9, 30)), "Div uint8");
  rc_begin();
  nn = nd(NULL, "BitShift", 1, 2, RT(BP_U32, 0, 100000, 16), RT(BP_U32, 0, 33, 16));
  AS(nn, "direction", "RIGHT");
  RUN(nn, "BitShift right uint32");
  rc_begin();
  nn = nd(NULL, "BitShift", 1, 2, RT(BP_U8, 0, 255, 16), RT(BP_U8, 0, 9, 16));
  AS(nn, "direction", "LEFT");
  RUN(nn, "BitShift left uint8");
  rc_begin();
  RUN(nd(NULL, "BitwiseNot", 1, 1, RT(BP_I16, -300, 300, 20)), "BitwiseNot int16");
  rc_begin();
  RUN(nd(NULL, "Abs", 1, 1, RT(BP_I8, -128, 127, 40)), "Abs int8");
  rc_begin();
  RUN(nd(NULL, "Exp", 1, 1, RT(BP_F64, -3, 3, 4, 9)), "Exp float64");
  rc_begin();
  RUN(nd(NULL, "Add", 1, 2, RT(BP_F64, -3, 3, 4, 9), RT(BP_F64, -3, 3, 9)), "Add float64");
  rc_begin();
  RUN(nd(NULL, "Sum", 1, 3, RT(BP_I64, -9, 9, 2, 3), RT(BP_I64, -9, 9, 3), RT(BP_I64, -9, 9, 2, 1)), "Sum int64");

  /* Clip, Where, Cast */
  rc_begin();
  RUN(nd(NULL, "Clip", 1, 3, RF(-3, 3, 6, 7), scalar_f32(-0.5), scalar_f32(1.25)), "Clip");
  rc_begin();
  RUN(nd(NULL, "Clip", 1, 3, RF(-3, 3, 6, 7), -1, scalar_f32(0.75)), "Clip max only");
  rc_begin();
  RUN(nd(NULL, "Where", 1, 3, RT(BP_BOOL, 0, 1, 4, 1), RF(-3, 3, 4, 6), RF(-3, 3, 6)), "Where f32");
  rc_begin();
  RUN(nd(NULL, "Where", 1, 3, RT(BP_BOOL, 0, 1, 3, 5), RT(BP_I64, -99, 99, 5), RT(BP_I64, -99, 99, 3, 1)), "Where i64");
  static const struct { bp_dtype from, to; double lo, hi; } casts[] = {
      {BP_F32, BP_I64, -300, 300}, {BP_I64, BP_F32, -1e6, 1e6}, {BP_F32, BP_BOOL, -1, 1}, {BP_BOOL, BP_F32, 0, 1},
      {BP_F32, BP_F16, -70000, 70000}, {BP_F16, BP_F32, -60000, 60000}, {BP_F32, BP_BF16, -1e4, 1e4},
      {BP_BF16, BP_F32, -1e4, 1e4}, {BP_I32, BP_I64, -1e6, 1e6}, {BP_I64, BP_I32, -3e9, 3e9}, {BP_F64, BP_F32, -1e3, 1e3},
      {BP_F32, BP_F64, -1e3, 1e3}, {BP_F32, BP_U8, -20, 300}, {BP_I64, BP_BOOL, -2, 2}, {BP_F32, BP_F32, -3, 3}};
  for (size_t i = 0; i < sizeof casts / sizeof casts[0]; i++) {
    char label[64];
    snprintf(label, sizeof label, "Cast %s->%s", bp_dtype_name(casts[i].from), bp_dtype_name(casts[i].to));
    rc_begin();
    nn = nd(NULL, "Cast", 1, 1, RT(casts[i].from, casts[i].lo, casts[i].hi, 5, 11));
    AI(nn, "to", casts[i].to);
    RUN(nn, label);
  }
  rc_begin();
  RUN(nd(NULL, "CastLike", 1, 2, RF(-100, 100, 13), RT(BP_I32, 0, 1, 1)), "CastLike");

  /* softmax family */
  int axes[] = {-1, 1, 0};
  for (int a = 0; a < 3; a++) {
    char label[64];
    snprintf(label, sizeof label, "Softmax axis %d", axes[a]);
    rc_begin();
    nn = nd(NULL, "Softmax", 1, 1, RF(-5, 5, 3, 5, 7));
    AI(nn, "axis", axes[a]);
    RUN(nn, label);
    snprintf(label, sizeof label, "LogSoftmax axis %d", axes[a]);
    rc_begin();
    nn = nd(NULL, "LogSoftmax", 1, 1, RF(-5, 5, 3, 5, 7));
    AI(nn, "axis", axes[a]);
    RUN(nn, label);
  }
  rc_begin();
  RUN(nd(NULL, "Softmax", 1, 1, RF(-5, 5, 2, 1000)), "Softmax long rows");
  rc_begin();
  RUN(nd(NULL, "Hardmax", 1, 1, RF(-5, 5, 4, 9)), "Hardmax");

  /* normalisations */
  rc_begin();
  nn = nd(NULL, "LayerNormalization", 3, 3, RF(-3, 3, 3, 4, 5), RF(0.5, 1.5, 4, 5), RF(-1, 1, 4, 5));
  AI(nn, "axis", 1);
  AF(nn, "epsilon", 1e-3f);
  RUN(nn, "LayerNormalization axis 1 with mean/invstd");
  rc_begin();
  RUN(nd(NULL, "LayerNormalization", 1, 2, RF(-3, 3, 6, 300), RF(0.5, 1.5, 300)), "LayerNormalization no bias");
  rc_begin();
  nn = nd(NULL, "RMSNormalization", 1, 2, RF(-3, 3, 5, 64), RF(0.5, 1.5, 64));
  RUN(nn, "RMSNormalization");
  rc_begin();
  RUN(nd(NULL, "InstanceNormalization", 1, 3, RF(-3, 3, 2, 3, 8), RF(0.5, 1.5, 3), RF(-1, 1, 3)), "InstanceNormalization (host)");

  /* reductions (opset 18: axes as an input) */
  static const struct { const char *op; double lo, hi; } red[] = {
      {"ReduceSum", -3, 3}, {"ReduceMean", -3, 3}, {"ReduceMax", -3, 3}, {"ReduceMin", -3, 3}, {"ReduceProd", 0.8, 1.25},
      {"ReduceSumSquare", -3, 3}, {"ReduceL1", -3, 3}, {"ReduceL2", -3, 3}, {"ReduceLogSum", 0.1, 3}, {"ReduceLogSumExp", -3, 3}};
  for (size_t i = 0; i < sizeof red / sizeof red[0]; i++) {
    char label[96];
    for (int v = 0; v < 3; v++) {
      rc_begin();
      x = RF(red[i].lo, red[i].hi, 4, 5, 40);
      int ax = v == 0 ? CI(2) : v == 1 ? CI(0, 1) : CI(1);
      nn = nd(NULL, red[i].op, 1, 2, x, ax);
      AI(nn, "keepdims", v != 1);
      snprintf(label, sizeof label, "%s axes %s", red[i].op, v == 0 ? "[2]" : v == 1 ? "[0,1] keepdims 0" : "[1]");
      RUN(nn, label);
    }
  }
  rc_begin();
  RUN(nd(NULL, "ReduceSum", 1, 2, RF(-3, 3, 3, 4), -1), "ReduceSum all");
  rc_begin();
  RUN(nd(NULL, "ArgMax", 1, 1, RF(-3, 3, 4, 9)), "ArgMax");

  /* data movement */
  rc_begin();
  nn = nd(NULL, "Transpose", 1, 1, RF(-3, 3, 2, 3, 4, 5));
  AIS(nn, "perm", 2, 0, 3, 1);
  RUN(nn, "Transpose");
  rc_begin();
  RUN(nd(NULL, "Transpose", 1, 1, RT(BP_I64, -9, 9, 3, 7)), "Transpose i64 default perm");
  /* the tiled transposing copy (kernels/cuda/copy.cu): partial 32 x 32 tiles, a batch dim, 8- and
   * 1-byte elements */
  rc_begin();
  nn = nd(NULL, "Transpose", 1, 1, RF(-3, 3, 3, 33, 65));
  AIS(nn, "perm", 0, 2, 1);
  RUN(nn, "Transpose tiles [3,33,65] perm 0,2,1");
  rc_begin();
  RUN(nd(NULL, "Transpose", 1, 1, RT(BP_I64, -99, 99, 40, 70)), "Transpose tiles i64 [40,70]");
  rc_begin();
  RUN(nd(NULL, "Transpose", 1, 1, RT(BP_BOOL, 0, 1, 36, 50)), "Transpose tiles bool [36,50]");
  rc_begin();
  RUN(nd(NULL, "Expand", 1, 2, RF(-3, 3, 3, 1), CI(2, 3, 4)), "Expand");
  rc_begin();
  RUN(nd(NULL, "Tile", 1, 2, RF(-3, 3, 2, 3), CI(2, 3)), "Tile");
  rc_begin();
  nn = nd(NULL, "Concat", 1, 3, RF(-3, 3, 2, 1, 4), RF(-3, 3, 2, 3, 4), RF(-3, 3, 2, 2, 4));
  AI(nn, "axis", 1);
  RUN(nn, "Concat axis 1");
  rc_begin();
  nn = nd(NULL, "Split", 2, 2, RF(-3, 3, 3, 5, 2), CI(2, 3));
  AI(nn, "axis", 1);
  RUN(nn, "Split sizes");
  rc_begin();
  nn = nd(NULL, "Split", 3, 1, RF(-3, 3, 7, 4));
  RUN(nn, "Split equal");
  rc_begin();
  RUN(nd(NULL, "Slice", 1, 5, RF(-3, 3, 6, 8, 5), CI(5, 1), CI(0, 7), CI(0, 1), CI(-2, 3)), "Slice negative step");
  rc_begin();
  RUN(nd(NULL, "Slice", 1, 3, RT(BP_I64, -9, 9, 4, 6), CI(1, -4), CI(3, 100)), "Slice i64");
  rc_begin();
  nn = nd(NULL, "Slice", 1, 5, RF(-3, 3, 6, 8, 5), CI(5, 1), CI(0, 7), CI(0, 1), CI(-2, 3));
  rc_run(nn, "Slice (constants from host)", 0, 1);
  rc_begin();
  RUN(nd(NULL, "Reshape", 1, 2, RF(-3, 3, 4, 6), CI(3, 8)), "Reshape");
  rc_begin();
  RUN(nd(NULL, "Unsqueeze", 1, 2, RF(-3, 3, 4, 6), CI(0)), "Unsqueeze");
  rc_begin();
  RUN(nd(NULL, "Flatten", 1, 1, RF(-3, 3, 2, 3, 4)), "Flatten");
  rc_begin();
  RUN(nd(NULL, "Identity", 1, 1, RT(BP_BOOL, 0, 1, 9)), "Identity");
  rc_begin();
  nn = nd(NULL, "DepthToSpace", 1, 1, RF(-3, 3, 1, 8, 2, 3));
  AI(nn, "blocksize", 2);
  RUN(nn, "DepthToSpace");
  rc_begin();
  nn = nd(NULL, "SpaceToDepth", 1, 1, RF(-3, 3, 1, 2, 4, 6));
  AI(nn, "blocksize", 2);
  RUN(nn, "SpaceToDepth");
  rc_begin();
  nn = nd(NULL, "Gather", 1, 2, RF(-3, 3, 3, 10, 4), RT(BP_I64, -10, 9, 2, 6));
  AI(nn, "axis", 1);
  RUN(nn, "Gather axis 1");
  rc_begin();
  RUN(nd(NULL, "Gather", 1, 2, RF(-3, 3, 50, 8), RT(BP_I32, 0, 49, 4, 5)), "Gather embedding int32");
  rc_begin();
  nn = nd(NULL, "GatherElements", 1, 2, RF(-3, 3, 4, 5, 3), RT(BP_I64, -5, 4, 4, 2, 3));
  AI(nn, "axis", 1);
  RUN(nn, "GatherElements");
  rc_begin();
  nn = nd(NULL, "CumSum", 1, 2, RF(-3, 3, 4, 5), CI(1));
  RUN(nn, "CumSum");
  rc_begin();
  nn = nd(NULL, "CumSum", 1, 2, RT(BP_I64, -9, 9, 3, 4, 5), CI(0));
  AI(nn, "exclusive", 1);
  AI(nn, "reverse", 1);
  RUN(nn, "CumSum int64 exclusive reverse");
  rc_begin();
  nn = nd(NULL, "ArgMin", 1, 1, RT(BP_I64, -3, 3, 4, 9, 2));
  AI(nn, "axis", 1);
  AI(nn, "keepdims", 0);
  AI(nn, "select_last_index", 1);
  RUN(nn, "ArgMin int64 last index");
  rc_begin();
  nn = nd(NULL, "Trilu", 1, 2, RT(BP_I64, -9, 9, 2, 5, 6), CI(1));
  AI(nn, "upper", 0);
  RUN(nn, "Trilu lower k=1");
  rc_begin();
  RUN(nd(NULL, "Pad", 1, 2, RT(BP_I32, -9, 9, 3, 4), CI(-1, 2, 1, 0)), "Pad int32 with crop");
  rc_begin();
  nn = nd(NULL, "Pad", 1, 2, RF(-3, 3, 3, 4), CI(1, 2, 1, 2));
  AS(nn, "mode", "reflect");
  RUN(nn, "Pad reflect (host)");
  rc_begin();
  nn = nd(NULL, "EyeLike", 1, 1, RF(-3, 3, 4, 6));
  AI(nn, "k", -1);
  RUN(nn, "EyeLike k=-1");
  rc_begin();
  RUN(nd(NULL, "ConstantOfShape", 1, 1, CI(3, 4)), "ConstantOfShape default");
  rc_begin();
  RUN(nd(NULL, "GatherND", 1, 2, RF(-3, 3, 4, 5, 2), RT(BP_I64, 0, 3, 3, 1)), "GatherND (host)");
  rc_begin();
  RUN(nd(NULL, "Pad", 1, 3, RF(-3, 3, 3, 4), CI(1, 0, 2, 1), scalar_f32(0.5)), "Pad constant");
  rc_begin();
  RUN(nd(NULL, "Trilu", 1, 1, RF(-3, 3, 4, 5)), "Trilu");
  rc_begin();
  nn = nd(NULL, "Einsum", 1, 2, RF(-3, 3, 2, 3, 4), RF(-3, 3, 2, 4, 5));
  AS(nn, "equation", "bij,bjk->bik");
  RUN(nn, "Einsum (host)");
  rc_begin();
  RUN(nd(NULL, "ScatterND", 1, 3, RF(-3, 3, 6, 3), RT(BP_I64, 0, 5, 2, 1), RF(-3, 3, 2, 3)), "ScatterND (host)");

  /* matrix products */
  static const struct { int ra, rb; int64_t a[4], b[4]; const char *label; } mm[] = {
      {4, 2, {2, 3, 4, 5}, {5, 6}, "MatMul B shared"},      {4, 4, {2, 3, 4, 5}, {2, 3, 5, 6}, "MatMul batched"},
      {2, 4, {4, 5}, {2, 3, 5, 6}, "MatMul A broadcast"},    {4, 3, {3, 1, 4, 5}, {2, 5, 6}, "MatMul both broadcast"},
      {1, 2, {5}, {5, 6}, "MatMul 1-D A"},                    {3, 1, {2, 4, 5}, {5}, "MatMul 1-D B"},
      {2, 2, {64, 96}, {96, 48}, "MatMul 64x96x48"},           {3, 3, {4, 33, 17}, {4, 17, 9}, "MatMul odd sizes"}};
  for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) {
    rc_begin();
    x = rin(BP_F32, -1, 1, mm[i].ra, mm[i].a);
    y = rin(BP_F32, -1, 1, mm[i].rb, mm[i].b);
    RUN(nd(NULL, "MatMul", 1, 2, x, y), mm[i].label);
  }
  rc_begin();
  RUN(nd(NULL, "MatMul", 1, 2, RT(BP_I64, -5, 5, 3, 4), RT(BP_I64, -5, 5, 4, 2)), "MatMul int64 (host)");
  rc_begin();
  nn = nd(NULL, "Gemm", 1, 3, RF(-1, 1, 7, 5), RF(-1, 1, 6, 7), RF(-1, 1, 1, 6));
  AI(nn, "transA", 1);
  AI(nn, "transB", 1);
  AF(nn, "alpha", 0.5f);
  AF(nn, "beta", 2.0f);
  RUN(nn, "Gemm transA transB alpha beta");
  rc_begin();
  RUN(nd(NULL, "Gemm", 1, 3, RF(-1, 1, 8, 16), RF(-1, 1, 16, 12), scalar_f32(0.25)), "Gemm scalar C");
  rc_begin();
  nn = nd(NULL, "Gemm", 1, 2, RF(-1, 1, 9, 31), RF(-1, 1, 10, 31));
  AI(nn, "transB", 1);
  RUN(nn, "Gemm no C");

  /* backward and loss ops (domain bitpipe) */
  rc_begin();
  nn = nd("bitpipe", "SumTo", 1, 1, RF(-3, 3, 4, 5, 6));
  AIS(nn, "shape", 5, 1);
  RUN(nn, "SumTo [4,5,6]->[5,1]");
  rc_begin();
  nn = nd("bitpipe", "SumTo", 1, 1, RF(-3, 3, 300, 64));
  AIS(nn, "shape", 64);
  RUN(nn, "SumTo bias gradient");
  rc_begin();
  nn = nd("bitpipe", "SumTo", 1, 1, RF(-3, 3, 8, 700));
  AIS(nn, "shape", 8, 1);
  RUN(nn, "SumTo rows");
  for (int a = 0; a < 2; a++) {
    rc_begin();
    x = RF(-1, 1, 3, 5, 7);
    y = RF(0, 1, 3, 5, 7);
    nn = nd("bitpipe", "SoftmaxGrad", 1, 2, x, y);
    AI(nn, "axis", a ? 1 : -1);
    RUN(nn, a ? "SoftmaxGrad axis 1" : "SoftmaxGrad axis -1");
  }
  rc_begin();
  nn = nd("bitpipe", "LayerNormGrad", 3, 3, RF(-1, 1, 6, 4, 32), RF(-3, 3, 6, 4, 32), RF(0.5, 1.5, 32));
  AF(nn, "epsilon", 1e-5f);
  RUN(nn, "LayerNormGrad");
  rc_begin();
  nn = nd("bitpipe", "LayerNormGrad", 3, 3, RF(-1, 1, 130, 3, 4), RF(-3, 3, 130, 3, 4), RF(0.5, 1.5, 3, 4));
  AI(nn, "axis", 1);
  RUN(nn, "LayerNormGrad axis 1, 130 rows");
  rc_begin();
  nn = nd("bitpipe", "GatherGrad", 1, 2, RF(-1, 1, 4, 7, 5), RT(BP_I64, -6, 5, 4, 7));
  AIS(nn, "shape", 6, 5);
  RUN(nn, "GatherGrad repeated indices");
  rc_begin();
  nn = nd("bitpipe", "GatherGrad", 1, 2, RF(-1, 1, 3, 2, 4, 5), RT(BP_I32, 0, 8, 2, 4));
  AI(nn, "axis", 1);
  AIS(nn, "shape", 3, 9, 5);
  RUN(nn, "GatherGrad axis 1");
  rc_begin();
  nn = nd("bitpipe", "SliceGrad", 1, 5, RF(-3, 3, 3, 4, 5), CI(5, 1), CI(0, 100), CI(0, 1), CI(-2, 2));
  AIS(nn, "shape", 6, 8, 5);
  if (nn >= 0) G->nodes[nn]->opset = 18; /* the forward Slice's form: parameters as inputs (grad_rules.c) */
  RUN(nn, "SliceGrad steps");
  rc_begin();
  nn = nd("bitpipe", "DropoutGrad", 1, 2, RF(-3, 3, 6, 7), RT(BP_BOOL, 0, 1, 6, 7));
  AF(nn, "scale", 1.25f);
  RUN(nn, "DropoutGrad");
  for (int a = 0; a < 2; a++) {
    rc_begin();
    nn = nd("bitpipe", "GeluGrad", 1, 2, RF(-1, 1, 5, 9), RF(-4, 4, 5, 9));
    if (a) AS(nn, "approximate", "tanh");
    RUN(nn, a ? "GeluGrad tanh" : "GeluGrad");
    rc_begin();
    nn = nd("bitpipe", "GeluGrad", 1, 2, RF(-1, 1, 8, 64), RF(-6, 6, 8, 64)); /* four per thread */
    if (a) AS(nn, "approximate", "tanh");
    RUN(nn, a ? "GeluGrad tanh [8, 64]" : "GeluGrad [8, 64]");
  }
  rc_begin();
  x = RF(-4, 4, 3, 5, 11);
  y = RT(BP_I64, 0, 10, 3, 5);
  ((int64_t *)G->tensors[y]->v.data)[3] = -100;
  ((int64_t *)G->tensors[y]->v.data)[7] = -100;
  RUN(nd("bitpipe", "SoftmaxCrossEntropy", 1, 2, x, y), "SoftmaxCrossEntropy ignore_index");
  rc_begin();
  nn = nd("bitpipe", "SoftmaxCrossEntropy", 1, 2, RF(-4, 4, 64, 500), RT(BP_I32, 0, 499, 64));
  AI(nn, "ignore_index", 3);
  RUN(nn, "SoftmaxCrossEntropy int32, 500 classes");
  rc_begin();
  z = RT(BP_I64, 0, 10, 3, 5);
  ((int64_t *)G->tensors[z]->v.data)[2] = -100;
  RUN(nd("bitpipe", "SoftmaxCrossEntropyGrad", 1, 3, RF(0.5, 2, 1), RF(-4, 4, 3, 5, 11), z), "SoftmaxCrossEntropyGrad");
  /* wide rows through the float4 path (C % 4 == 0) and the scalar one, logits up to +-30 (float exp
   * of far-below-max terms, confident targets) */
  for (int wide = 0; wide < 2; wide++) {
    int64_t cls = wide ? 5000 : 1001;
    rc_begin();
    z = RT(BP_I64, 0, cls - 1, 24);
    ((int64_t *)G->tensors[z]->v.data)[5] = -100;
    x = RF(-30, 30, 24, cls);
    RUN(nd("bitpipe", "SoftmaxCrossEntropy", 1, 2, x, z), wide ? "SoftmaxCrossEntropy 5000 classes" : "SoftmaxCrossEntropy 1001 classes");
    rc_begin();
    z = RT(BP_I64, 0, cls - 1, 24);
    ((int64_t *)G->tensors[z]->v.data)[5] = -100;
    RUN(nd("bitpipe", "SoftmaxCrossEntropyGrad", 1, 3, RF(0.5, 2, 1), RF(-30, 30, 24, cls), z),
        wide ? "SoftmaxCrossEntropyGrad 5000 classes" : "SoftmaxCrossEntropyGrad 1001 classes");
  }

  /* Dropout drawing masks: the GPU's mask must be the CPU's, bit for bit */
  rc_begin();
  nn = nd(NULL, "Dropout", 2, 2, RF(-3, 3, 7, 300), scalar_f32(0.3));
  rc_run(nn, "Dropout training (mask)", 1, 0);
  rc_begin();
  nn = nd(NULL, "Dropout", 2, 1, RF(-3, 3, 5, 8));
  rc_run(nn, "Dropout inference", 0, 0);
}

/* ---- bad data: the kernel must report it (device flag), as the CPU kernel does ---------------------- */

/* Runs node `node` of G on the GPU on its inputs' values and expects an error whose message names
 * the node and contains `want`; the CPU kernel must refuse the same data. */
static void expect_error(int node, const char *label, const char *want) {
  char where[160];
  snprintf(where, sizeof where, "bad data %s", label);
  if (node >= 0) bp_ad_infer(&AD, node);
  if (E.set || node < 0) {
    printf("FAIL %s: building the case: %s\n", where, E.msg);
    total_fail++;
    bp_graph_free(G);
    return;
  }
  const bp_node *n = G->nodes[node];
  bp_value *vals = calloc((size_t)G->ntensors, sizeof(bp_value));
  for (int i = 0; i < G->ntensors; i++) vals[i] = G->tensors[i]->v;
  bp_ctx ctx = {0};
  bp_err ce = {0}, ge = {0};
  int cpu_rc = cpu_node(G, n, vals, &ctx, &ce);
  bp_value din[8], dout[8], *pin[8] = {0}, *pout[8] = {0};
  int rc = 0;
  for (int k = 0; k < n->nin && k < 8; k++) {
    din[k] = vals[n->in[k]];
    size_t b = bp_value_bytes(&din[k]);
    din[k].data = bp_cuda_alloc(DC, b, "input", &ge);
    bp_cuda_upload(DC, din[k].data, vals[n->in[k]].data, b, "input", &ge);
    pin[k] = &din[k];
  }
  for (int k = 0; k < n->nout && k < 8; k++) {
    dout[k] = vals[n->out[k]];
    dout[k].data = bp_cuda_alloc(DC, bp_value_bytes(&dout[k]), "output", &ge);
    pout[k] = &dout[k];
  }
  bp_node *nodes[1] = {G->nodes[node]};
  ctx.device = DC;
  bp_cuda_set_host_inputs(DC, NULL, 0);
  bp_cuda_set_tag(DC, 0);
  rc = bp_cuda_op_find(n->domain, n->op_type)->eval(&ctx, n, pin, n->nin, pout, n->nout, &ge);
  if (rc == 0) rc = bp_cuda_check_flags(DC, nodes, 1, &ge);
  int ok = cpu_rc < 0 && rc < 0 && strstr(ge.msg, want) && strstr(ge.msg, n->name);
  printf("%s %s: CPU '%s'; GPU '%s'\n", ok ? "ok  " : "FAIL", where, cpu_rc < 0 ? ce.msg : "accepted",
         rc < 0 ? ge.msg : "accepted");
  total_fail += !ok;
  for (int k = 0; k < 8; k++) {
    if (pin[k]) bp_cuda_release(DC, din[k].data);
    if (pout[k]) bp_cuda_release(DC, dout[k].data);
  }
  for (int k = 0; k < n->nout; k++) free(vals[n->out[k]].data);
  free(vals);
  bp_graph_free(G);
}

static void bad_data_cases(void) {
  int x, nn;
  rc_begin();
  x = RT(BP_I64, 0, 9, 2, 3);
  ((int64_t *)G->tensors[x]->v.data)[4] = 99;
  expect_error(nd(NULL, "Gather", 1, 2, RF(-1, 1, 10, 4), x), "Gather index 99 of 10", "out of range");
  rc_begin();
  x = RT(BP_I64, 0, 4, 3);
  ((int64_t *)G->tensors[x]->v.data)[1] = 7;
  expect_error(nd("bitpipe", "SoftmaxCrossEntropy", 1, 2, RF(-1, 1, 3, 5), x), "cross-entropy target 7 of 5 classes",
               "out of range");
  rc_begin();
  x = RT(BP_I64, 0, 5, 4);
  ((int64_t *)G->tensors[x]->v.data)[0] = -8;
  nn = nd("bitpipe", "GatherGrad", 1, 2, RF(-1, 1, 4, 3), x);
  AIS(nn, "shape", 6, 3);
  expect_error(nn, "GatherGrad index -8 of 6", "out of range");
}

/* ---- main ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: test_gpu_ops MODELS_DIR\n");
    return 2;
  }
  if (gpu_skip_if_none()) return GPU_SKIP;
  bp_err e = {0};
  if (!(DC = bp_cuda_new(0, BP_PREC_FP32, &e))) {
    printf("FAIL: %s\n", e.msg);
    return 1;
  }
  printf("device: %s\n", bp_cuda_device_name(DC));
  static const char *fams[] = {"gpt2", "bert", "llama"}, *vars[] = {"train", "ts", "dynamo"};
  for (int f = 0; f < 3; f++)
    for (int v = 0; v < 3; v++) check_model(argv[1], fams[f], vars[v]);
  gpu_print(&TABLE, "GPU op check on the committed models' training graphs (fp32; MatMul/Gemm also tf32, bf16):");
  int model_fail = total_fail;
  memset(&TABLE, 0, sizeof TABLE);
  random_cases();
  gpu_print(&TABLE, "GPU op check on random inputs (the table's other ops and layouts):");
  printf("\n");
  bad_data_cases();
  /* coverage: every op of the table, own kernel or host-staged */
  int count, own = 0, host = 0;
  bp_cuda_op_at(0, &count);
  printf("\ncoverage of the op table (%d ops): ", count);
  for (int i = 0; i < count; i++) {
    const bp_cuda_op *op = bp_cuda_op_at(i, &count);
    if (op->kind == BP_CUDA_OWN) own++;
    else host++;
  }
  printf("%d own CUDA kernels, %d host-staged:", own, host);
  for (int i = 0; i < count; i++) {
    const bp_cuda_op *op = bp_cuda_op_at(i, &count);
    if (op->kind == BP_CUDA_HOST) printf(" %s", op->name);
  }
  printf("\nhost-staged node runs during the checks: %lld (%s)\n", (long long)bp_cuda_host_runs(DC), bp_cuda_host_ops(DC));
  printf("\n%d failed (%d on model nodes, %d on random cases)\n", total_fail, model_fail, total_fail - model_fail);
  bp_cuda_free(DC);
  return total_fail ? 1 : 0;
}
