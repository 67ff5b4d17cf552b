/* tools/cmd_train.c — `bitpipec train MODEL --input NAME=FILE --targets FILE --steps K ...`: trains
 * the model on one fixed batch (repeated each step) in one process on the CPU and prints, per
 * step, the loss and global gradient norm measured before that step's update. */
#include "tools/cli_common.h"
#include "tools/commands.h"
#include "frontend/npy.h"
#include "frontend/onnx_load.h"
#include "frontend/train.h"
#ifdef BP_HAVE_CUDA
#include "kernels/cuda/cuda_train.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void help(FILE *f) {
  fprintf(f,
          "usage: bitpipec train MODEL --input NAME=FILE [...] --targets FILE --steps K [options]\n"
          "\n"
          "Trains MODEL on the given batch (the same batch every step) on the CPU (or the GPU) and prints\n"
          "'step K loss X grad_norm G' per step: the loss and the global L2 norm of the gradients\n"
          "(before clipping), both measured before that step's update. With --device cuda the line\n"
          "ends with 'time_ms T': the step's wall time (graph, loss and norm download, update; the GPU\n"
          "is synchronised at the end of every step).\n"
          "\n"
          "  --input NAME=FILE       value of graph input NAME (.npy or .pb)\n"
          "  --targets FILE          int64 class ids of the output's leading shape (cross-entropy), or\n"
          "                          values of the output's shape (--loss mse)\n"
          "  --steps K               number of steps (default 1)\n"
          "  --output NAME           graph output the loss is taken on (default: the first float output)\n"
          "  --loss ce|mse           softmax cross-entropy (mean over tokens; default) or mean squared error\n"
          "  --ignore-index N        cross-entropy targets equal to N do not count (default -100)\n"
          "  --optimizer sgd|adamw   (default sgd); PyTorch semantics\n"
          "  --lr X --momentum M --weight-decay W --beta1 B1 --beta2 B2 --eps E\n"
          "  --clip C                clip gradients to global norm C (torch.nn.utils.clip_grad_norm_:\n"
          "                          scaled by C / (norm + 1e-6) when that is below 1)\n"
          "  --freeze REGEX          do not train parameters whose name matches\n"
          "  --train REGEX           train only parameters whose name matches (buffers and scalar literals\n"
          "                          included: by default initializers feeding only constant tables, such\n"
          "                          as rotary inv_freq, and rank-0 literals are frozen)\n"
          "  --no-retie              keep initializers that equal another (or its transpose) apart\n"
          "  --no-dropout            Dropout is the identity (compare with a framework run without dropout)\n"
          "  --seed N                dropout seed (default 0)\n"
          "  --bind NAME=VALUE       bind a symbolic dimension\n"
          "  --device cpu|cuda       where the steps run (default cpu); cuda: the first GPU, kernels of\n"
          "                          kernels/cuda, parameters and optimizer state on the device\n"
          "  --precision fp32|tf32|bf16  GEMM precision on cuda (default fp32; bf16: bfloat16 GEMM inputs,\n"
          "                          float32 accumulation, parameters and optimizer state)\n"
          "\nEnvironment: BP_FUSE=0 keeps the exporters' GELU chains as they are (by default each becomes\n"
          "one Gelu node: frontend/fuse_gelu.c; the same in every bitpipec command).\n");
}

static int num(const char *opt, const char *s, double *out) {
  char *end;
  *out = strtod(s, &end);
  if (!*s || *end) {
    fprintf(stderr, "bitpipec train: %s expects a number, got '%s'\n", opt, s);
    return -1;
  }
  return 0;
}

int bp_cmd_train(int argc, char **argv) {
  bp_cli_model_args a;
  memset(&a, 0, sizeof a);
  bp_train_opts o;
  bp_train_opts_default(&o);
  const char *targets_file = NULL, *device = "cpu", *precision = NULL;
  double steps = 1, x;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) { help(stdout); return 0; }
    else if (!strcmp(s, "--no-retie")) o.no_retie = 1;
    else if (!strcmp(s, "--no-dropout")) o.dropout = 0;
    else if (!strcmp(s, "--bind") && has) { if (bp_cli_parse_bind(&a, argv[++i]) < 0) return 2; }
    else if (!strcmp(s, "--input") && has) { if (bp_cli_parse_input(&a, argv[++i]) < 0) return 2; }
    else if (!strcmp(s, "--targets") && has) targets_file = argv[++i];
    else if (!strcmp(s, "--output") && has) o.output = argv[++i];
    else if (!strcmp(s, "--device") && has) device = argv[++i];
    else if (!strcmp(s, "--precision") && has) precision = argv[++i];
    else if (!strcmp(s, "--freeze") && has) o.freeze_re = argv[++i];
    else if (!strcmp(s, "--train") && has) o.train_re = argv[++i];
    else if (!strcmp(s, "--loss") && has) {
      const char *v = argv[++i];
      if (!strcmp(v, "ce") || !strcmp(v, "cross-entropy")) o.loss = BP_LOSS_CROSS_ENTROPY;
      else if (!strcmp(v, "mse")) o.loss = BP_LOSS_MSE;
      else { fprintf(stderr, "bitpipec train: --loss is ce or mse, got '%s'\n", v); return 2; }
    } else if (!strcmp(s, "--optimizer") && has) {
      const char *v = argv[++i];
      if (!strcmp(v, "sgd")) o.optimizer = BP_OPT_SGD;
      else if (!strcmp(v, "adamw")) o.optimizer = BP_OPT_ADAMW;
      else { fprintf(stderr, "bitpipec train: --optimizer is sgd or adamw, got '%s'\n", v); return 2; }
    } else if (has && (!strcmp(s, "--steps") || !strcmp(s, "--lr") || !strcmp(s, "--momentum") ||
                       !strcmp(s, "--weight-decay") || !strcmp(s, "--clip") || !strcmp(s, "--beta1") ||
                       !strcmp(s, "--beta2") || !strcmp(s, "--eps") || !strcmp(s, "--seed") ||
                       !strcmp(s, "--ignore-index"))) {
      if (num(s, argv[++i], &x) < 0) return 2;
      if (!strcmp(s, "--steps")) steps = x;
      else if (!strcmp(s, "--lr")) o.lr = x;
      else if (!strcmp(s, "--momentum")) o.momentum = x;
      else if (!strcmp(s, "--weight-decay")) o.weight_decay = x;
      else if (!strcmp(s, "--clip")) o.clip = x;
      else if (!strcmp(s, "--beta1")) o.beta1 = x;
      else if (!strcmp(s, "--beta2")) o.beta2 = x;
      else if (!strcmp(s, "--eps")) o.eps = x;
      else if (!strcmp(s, "--seed")) o.seed = (uint64_t)x;
      else o.ignore_index = (int64_t)x;
    } else if (s[0] == '-') {
      fprintf(stderr, "bitpipec train: unknown option or missing value '%s' (see --help)\n", s);
      return 2;
    } else if (!a.model) a.model = s;
    else { fprintf(stderr, "bitpipec train: more than one model given ('%s')\n", s); return 2; }
  }
  if (!a.model || !targets_file) {
    if (a.model) fprintf(stderr, "bitpipec train: --targets FILE is required\n");
    help(stderr);
    return 2;
  }
  if (steps < 0 || steps > 1e9) { fprintf(stderr, "bitpipec train: --steps must be >= 0\n"); return 2; }
  if (strcmp(device, "cpu") && strcmp(device, "cuda")) {
    fprintf(stderr, "bitpipec train: --device is cpu or cuda, got '%s'\n", device);
    return 2;
  }
  if (precision && strcmp(precision, "fp32") && strcmp(precision, "tf32") && strcmp(precision, "bf16")) {
    fprintf(stderr, "bitpipec train: --precision is fp32, tf32 or bf16, got '%s'\n", precision);
    return 2;
  }
  if (precision && !strcmp(device, "cpu") && strcmp(precision, "fp32")) {
    fprintf(stderr, "bitpipec train: --precision %s needs --device cuda (the CPU computes in fp32)\n", precision);
    return 2;
  }
#ifndef BP_HAVE_CUDA
  if (!strcmp(device, "cuda")) {
    fprintf(stderr, "bitpipec train: --device cuda: this bitpipec was built without the CUDA backend (no CUDA toolkit)\n");
    return 2;
  }
#endif
  bp_err e = {0};
  bp_graph *g = bp_onnx_load(a.model, &e);
  if (!g) { fprintf(stderr, "bitpipec train: %s\n", e.msg); return 1; }
  int rc = 1, ngiven = g->ninputs;
  bp_value *given[BP_MAX_INPUTS] = {0};
  bp_value targets = {0};
  bp_trainer *t = NULL;
  if (g->ninputs > BP_MAX_INPUTS) { fprintf(stderr, "bitpipec train: too many graph inputs\n"); bp_graph_free(g); return 1; }
  if (bp_cli_read_inputs(g, &a, given, &e) < 0 || bp_value_read_file(targets_file, &targets, &e) < 0) {
    fprintf(stderr, "bitpipec train: %s\n", e.msg);
    goto done_graph;
  }
  if (bp_cli_require_inputs(g, given, &e) < 0) {
    fprintf(stderr, "bitpipec train: %s\n", e.msg);
    goto done_graph;
  }
  t = bp_trainer_new(g, given, &targets, a.binds, a.nbinds, &o, &e); /* takes g */
  g = NULL;
  if (!t) { fprintf(stderr, "bitpipec train: %s\n", e.msg); goto done; }
#ifdef BP_HAVE_CUDA
  if (!strcmp(device, "cuda")) {
    bp_precision prec = BP_PREC_FP32;
    if (precision) bp_precision_parse(precision, &prec);
    if (bp_cuda_trainer_attach(t, prec, &e) < 0) { fprintf(stderr, "bitpipec train: --device cuda: %s\n", e.msg); goto done; }
    printf("device cuda: %s, GEMM precision %s\n", bp_cuda_device_name(bp_cuda_trainer_device(t)), bp_precision_name(prec));
  }
#endif
  printf("trainable %d parameter tensors, frozen %d; activation stash %.1f KiB per micro-batch (%d tensors, "
         "computed from the training graph)\n", t->nparams, t->nfrozen, (double)t->stash_bytes / 1024.0,
         t->stash_tensors);
  rc = 0;
  for (int k = 1; k <= (int)steps; k++) {
    double loss, gn;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (bp_trainer_step(t, &loss, &gn, &e) < 0) {
      fprintf(stderr, "bitpipec train: %s\n", e.msg);
      rc = 1;
      break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!strcmp(device, "cuda"))
      printf("step %d loss %.9g grad_norm %.9g time_ms %.3f\n", k, loss, gn,
             1e3 * (double)(t1.tv_sec - t0.tv_sec) + 1e-6 * (double)(t1.tv_nsec - t0.tv_nsec));
    else
      printf("step %d loss %.9g grad_norm %.9g\n", k, loss, gn);
    fflush(stdout);
  }
#ifdef BP_HAVE_CUDA
  if (bp_cuda_trainer_device(t) && bp_cuda_host_runs(bp_cuda_trainer_device(t)))
    fprintf(stderr, "bitpipec train: note: %lld node runs were staged through the host (CPU kernels): %s\n",
            (long long)bp_cuda_host_runs(bp_cuda_trainer_device(t)), bp_cuda_host_ops(bp_cuda_trainer_device(t)));
#endif
done:
  for (int i = 0; i < ngiven; i++)
    if (given[i]) { free(given[i]->data); free(given[i]); }
  free(targets.data);
  bp_trainer_free(t);
  return rc;
done_graph:
  bp_cli_free_inputs(g, given);
  free(targets.data);
  bp_graph_free(g);
  return rc;
}
