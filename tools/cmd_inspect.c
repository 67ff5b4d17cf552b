/* tools/cmd_inspect.c — `bitpipec inspect MODEL [--bind N=V]...`: what the model is and what
 * the frontend makes of it (opsets, inputs/outputs, op histograms before and after folding,
 * parameters, forward FLOPs for the bound shapes), and what training would do with it (the
 * trainer's own setup, analysis only: trainable and frozen parameters, untied and retied
 * initializers, the activation stash per micro-batch). */
#include "tools/cli_common.h"
#include "tools/commands.h"
#include "frontend/onnx_load.h"
#include "frontend/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f) {
  fprintf(f, "usage: bitpipec inspect MODEL [--bind NAME=VALUE]... [--input NAME=FILE]... [training options]\n"
             "\n"
             "Prints the model's opsets, graph inputs and outputs (with symbolic dimensions), the op\n"
             "histogram before and after constant folding and cleanup, the parameter count and bytes\n"
             "(float initializers the graph uses), and the forward FLOPs for the bound shapes.\n"
             "Then, as `bitpipec train` would set it up: the trainable and frozen parameters (name, shape,\n"
             "elements; why frozen), the initializers untied from an Identity or retied to another, and\n"
             "the activation stash per micro-batch (forward tensors backward reads, Dropout masks included).\n"
             "\n"
             "  --bind NAME=VALUE   bind a symbolic dimension (e.g. --bind batch=8 --bind sequence=1024)\n"
             "  --input NAME=FILE   take an input's shape from a .npy or TensorProto .pb file\n"
             "  --output NAME       graph output the loss is taken on (default: the first float output)\n"
             "  --loss ce|mse       the loss (default ce)\n"
             "  --freeze REGEX      do not train parameters whose name matches\n"
             "  --train REGEX       train only parameters whose name matches (buffers included)\n"
             "  --no-retie          keep initializers that equal another (or its transpose) apart\n"
             "  --no-dropout        Dropout is the identity (no masks in the stash)\n"
             "  --no-training       skip the training section\n");
}

static void print_training(const char *model, const bp_cli_model_args *a, bp_value **given,
                           const bp_train_opts *o) {
  bp_err e = {0};
  bp_graph *g = bp_onnx_load(model, &e);
  bp_trainer *t = g ? bp_trainer_new(g, given, NULL, a->binds, a->nbinds, o, &e) : NULL; /* takes g */
  if (!t) {
    printf("training   not available: %s\n", e.msg);
    return;
  }
  const bp_graph *tg = t->g;
  long long el = 0;
  for (int i = 0; i < t->nparams; i++) el += bp_value_numel(&tg->tensors[t->params[i]]->v);
  printf("trainable parameters: %d tensors, %lld elements\n", t->nparams, el);
  for (int i = 0; i < t->nparams; i++) {
    const bp_tensor *pt = tg->tensors[t->params[i]];
    char s[160];
    printf("  %-56s %-14s %lld\n", pt->name, bp_shape_str(&pt->v, s, sizeof s), (long long)bp_value_numel(&pt->v));
  }
  el = 0;
  for (int i = 0; i < t->nfrozen; i++) el += bp_value_numel(&tg->tensors[t->frozen[i]]->v);
  printf("frozen parameters: %d tensors, %lld elements\n", t->nfrozen, el);
  for (int i = 0; i < t->nfrozen; i++) {
    const bp_tensor *pt = tg->tensors[t->frozen[i]];
    char s[160];
    printf("  %-56s %-14s %-10lld %s\n", pt->name, bp_shape_str(&pt->v, s, sizeof s),
           (long long)bp_value_numel(&pt->v), bp_frozen_reason_str((bp_frozen_reason)t->frozen_why[i]));
  }
  printf("untied from Identity: %d (each its own parameter, a copy of the shared initializer)\n", t->untie_notes.n);
  for (int i = 0; i < t->untie_notes.n; i++)
    printf("  %s <- Identity(%s)\n", t->untie_notes.v[i].name, t->untie_notes.v[i].source);
  printf("retied: %d%s\n", t->retie_notes.n, o->no_retie ? " (--no-retie)" : " (one parameter each; --no-retie keeps them apart)");
  for (int i = 0; i < t->retie_notes.n; i++)
    printf("  %s = %s%s%s\n", t->retie_notes.v[i].name, t->retie_notes.v[i].transpose ? "transpose(" : "",
           t->retie_notes.v[i].source, t->retie_notes.v[i].transpose ? ")" : "");
  printf("activation stash: %lld bytes per micro-batch (%d tensors%s)\n", (long long)t->stash_bytes, t->stash_tensors,
         o->dropout ? ", Dropout masks included" : ", --no-dropout");
  if (t->dynamo_default)
    printf("warning: looks like a default dynamo export (anonymous val_N initializers: equal parameters merged, zero "
           "biases dropped, weights folded): training trains what the file holds, which drifts from the source model. "
           "Export for training with torch.onnx.export(..., training=torch.onnx.TrainingMode.TRAINING, "
           "do_constant_folding=False, dynamo=False)\n");
  bp_trainer_free(t);
}

static void print_value_shape(const bp_tensor *t) {
  printf("[");
  for (int d = 0; d < t->v.rank; d++) {
    if (d) printf(", ");
    if (t->dim_param[d]) printf("%s", t->dim_param[d]);
    else if (t->v.dims[d] < 0) printf("?");
    else printf("%lld", (long long)t->v.dims[d]);
  }
  printf("]");
}

static void print_histogram(const bp_graph *g) {
  /* op types in first-seen order with counts */
  int *count = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof(int));
  if (!count) return;
  for (int i = 0; i < g->nnodes; i++) {
    int first = i;
    for (int j = 0; j < i; j++)
      if (strcmp(g->nodes[j]->op_type, g->nodes[i]->op_type) == 0) {
        first = j;
        break;
      }
    count[first]++;
  }
  int col = 0;
  for (int i = 0; i < g->nnodes; i++)
    if (count[i]) {
      col += printf("  %s %d", g->nodes[i]->op_type, count[i]);
      if (col > 90) {
        printf("\n");
        col = 0;
      }
    }
  if (col) printf("\n");
  free(count);
}

static const char *human_bytes(double b, char *buf, size_t n) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int k = 0;
  while (b >= 1024 && k < 4) { b /= 1024; k++; }
  snprintf(buf, n, k ? "%.2f %s" : "%.0f %s", b, u[k]);
  return buf;
}

int bp_cmd_inspect(int argc, char **argv) {
  bp_cli_model_args a;
  memset(&a, 0, sizeof a);
  bp_train_opts o;
  bp_train_opts_default(&o);
  o.quiet = 1; /* inspect reports on stdout */
  int training = 1;
  for (int i = 1; i < argc; i++) {
    int has = i + 1 < argc;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { help(stdout); return 0; }
    if (!strcmp(argv[i], "--no-retie")) o.no_retie = 1;
    else if (!strcmp(argv[i], "--no-dropout")) o.dropout = 0;
    else if (!strcmp(argv[i], "--no-training")) training = 0;
    else if (!strcmp(argv[i], "--output") && has) o.output = argv[++i];
    else if (!strcmp(argv[i], "--freeze") && has) o.freeze_re = argv[++i];
    else if (!strcmp(argv[i], "--train") && has) o.train_re = argv[++i];
    else if (!strcmp(argv[i], "--loss") && has) {
      const char *v = argv[++i];
      if (!strcmp(v, "ce") || !strcmp(v, "cross-entropy")) o.loss = BP_LOSS_CROSS_ENTROPY;
      else if (!strcmp(v, "mse")) o.loss = BP_LOSS_MSE;
      else { fprintf(stderr, "bitpipec inspect: --loss is ce or mse, got '%s'\n", v); return 2; }
    } else
    if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) { if (bp_cli_parse_bind(&a, argv[++i]) < 0) return 2; }
    else if (strncmp(argv[i], "--bind=", 7) == 0) { if (bp_cli_parse_bind(&a, argv[i] + 7) < 0) return 2; }
    else if (strcmp(argv[i], "--input") == 0 && i + 1 < argc) { if (bp_cli_parse_input(&a, argv[++i]) < 0) return 2; }
    else if (argv[i][0] == '-') { fprintf(stderr, "bitpipec inspect: unknown option '%s' (see --help)\n", argv[i]); return 2; }
    else if (!a.model) a.model = argv[i];
    else { fprintf(stderr, "bitpipec inspect: more than one model given ('%s')\n", argv[i]); return 2; }
  }
  if (!a.model) { help(stderr); return 2; }
  bp_err e = {0};
  bp_graph *g = bp_onnx_load(a.model, &e);
  if (!g) { fprintf(stderr, "bitpipec inspect: %s\n", e.msg); return 1; }
  int rc = 1;
  bp_value *given[BP_MAX_INPUTS] = {0};
  printf("model      %s\n", a.model);
  printf("producer   %s (ONNX IR version %lld)\n", g->producer, (long long)g->ir_version);
  printf("opsets    ");
  for (int i = 0; i < g->nopsets; i++) printf(" %s %lld", *g->opsets[i].domain ? g->opsets[i].domain : "ai.onnx", (long long)g->opsets[i].version);
  printf("\ninputs\n");
  for (int i = 0; i < g->ninputs; i++) {
    const bp_tensor *t = g->tensors[g->inputs[i]];
    printf("  %-24s %-8s ", t->name, bp_dtype_name(t->v.dtype));
    print_value_shape(t);
    printf("\n");
  }
  printf("outputs\n");
  for (int i = 0; i < g->noutputs; i++) {
    const bp_tensor *t = g->tensors[g->outputs[i]];
    printf("  %-24s %-8s ", t->name, bp_dtype_name(t->v.dtype));
    print_value_shape(t);
    printf("\n");
  }
  printf("nodes before folding: %d\n", g->nnodes);
  print_histogram(g);
  if (g->ninputs > BP_MAX_INPUTS) { fprintf(stderr, "bitpipec inspect: too many graph inputs\n"); goto done; }
  if (bp_cli_read_inputs(g, &a, given, &e) < 0) { fprintf(stderr, "bitpipec inspect: %s\n", e.msg); goto done; }
  bp_ctx ctx = {0};
  bp_fold_stats st;
  if (bp_prepare_graph(g, a.binds, a.nbinds, given, &ctx, 0, &st, &e) < 0) {
    fprintf(stderr, "bitpipec inspect: %s\n", e.msg);
    goto done;
  }
  printf("bound inputs\n");
  for (int i = 0; i < g->ninputs; i++) {
    const bp_tensor *t = g->tensors[g->inputs[i]];
    char s[160];
    printf("  %-24s %-8s %s\n", t->name, bp_dtype_name(t->v.dtype), bp_shape_str(&t->v, s, sizeof s));
  }
  printf("bound outputs\n");
  for (int i = 0; i < g->noutputs; i++) {
    const bp_tensor *t = g->tensors[g->outputs[i]];
    char s[160];
    printf("  %-24s %-8s %s\n", t->name, bp_dtype_name(t->v.dtype), bp_shape_str(&t->v, s, sizeof s));
  }
  printf("nodes after folding and cleanup: %d (%d folded into constants, %d computations on weights only kept as views, "
         "%d GELU chains fused: %d tanh, %d erf)\n",
         g->nnodes, st.folded_nodes, st.weight_views, st.fused_gelu_tanh + st.fused_gelu_erf, st.fused_gelu_tanh,
         st.fused_gelu_erf);
  print_histogram(g);
  /* Parameters: float initializers still used by the remaining nodes. */
  unsigned char *used = calloc((size_t)g->ntensors, 1);
  if (!used) goto done;
  for (int i = 0; i < g->nnodes; i++)
    for (int k = 0; k < g->nodes[i]->nin; k++)
      if (g->nodes[i]->in[k] >= 0) used[g->nodes[i]->in[k]] = 1;
  long long nparams = 0, nelems = 0;
  double pbytes = 0, cbytes = 0;
  int nconst = 0;
  for (int t = 0; t < g->ntensors; t++) {
    const bp_tensor *tt = g->tensors[t];
    if (!used[t]) continue;
    if (tt->kind == BP_T_INITIALIZER) {
      nparams++;
      nelems += bp_value_numel(&tt->v);
      pbytes += (double)bp_value_bytes(&tt->v);
    } else if (tt->kind == BP_T_CONSTANT) {
      nconst++;
      cbytes += (double)bp_value_bytes(&tt->v);
    }
  }
  free(used);
  char b1[64], b2[64];
  printf("parameters  %lld tensors, %lld elements, %s (float initializers in use)\n", nparams, nelems,
         human_bytes(pbytes, b1, sizeof b1));
  printf("constants   %d tensors, %s (folded or non-float)\n", nconst, human_bytes(cbytes, b2, sizeof b2));
  double fl = bp_graph_flops(g);
  printf("forward     %.4g FLOPs for the bound shapes (analytic count: 2*M*N*K per GEMM, 1 per output element otherwise)\n", fl);
  fflush(stdout);
  if (training) print_training(a.model, &a, given, &o);
  rc = 0;
done:
  bp_cli_free_inputs(g, given);
  bp_graph_free(g);
  return rc;
}
