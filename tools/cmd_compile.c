/* tools/cmd_compile.c — `bitpipec MODEL -o train [options]`: the product's main path. Runs the whole
 * flow (frontend, layers, costs, partition, schedule, validation: codegen/prepare.c), cuts the
 * model into stage graphs with their own backward (codegen/stages.c), plans memory, writes
 * TRAIN.c, TRAIN.weights and TRAIN.plan.json, then compiles and links TRAIN against libbitpipe
 * with the command line the build recorded in bitpipe_build.h (BITPIPE_HOME overrides it). */
#include "codegen/codegen.h"
#include "tools/cli_common.h"
#include "tools/commands.h"
#include "tools/gpu_profile.h"

#include "bitpipe_build.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void help(FILE *f) {
  fprintf(f,
          "usage: bitpipec MODEL -o TRAIN [options]\n"
          "\n"
          "Compiles MODEL (ONNX) into a pipeline-parallel training program: cuts it into layers, costs\n"
          "them, places them on the schedule's stages, gives every stage its own forward and backward,\n"
          "plans memory, and writes TRAIN.c (readable C), TRAIN.weights, TRAIN.plan.json and TRAIN.svg\n"
          "(the predicted timeline), then compiles and links TRAIN against libbitpipe. Run it with:\n"
          "mpirun -np D ./TRAIN --data TOKENS.bin\n"
          "\n"
          "  -o TRAIN                the program to write (required)\n"
          "  -D N                    pipeline ranks (default 4)\n"
          "  -N N                    micro-batches per iteration (default 8)\n"
          "  --micro-batch B         sequences per micro-batch: binds 'batch' (default 1)\n"
          "  --seq T                 tokens per sequence: binds 'sequence'\n"
          "  --bind NAME=V           binds another symbolic dimension\n"
          "  --schedule NAME         bitpipe (default), bitpipe-steady, 1f1b, interleaved, chimera, gpipe,\n"
          "                          zb-h1, zb-v (bitpipec schedule --help)\n"
          "  --chunks V              chunks per rank for 'interleaved' (default 2)\n"
          "  --partition P           auto (GLPK integer program; default), uniform, or layer ranges per\n"
          "                          stage in pipeline order, e.g. 0-3,4-6,7 (bitpipec partition)\n"
          "  --device-model NAME     costs: gpu-profile (profile the training graph on GPU 0 with the CUDA\n"
          "                          executor, cached; default when this bitpipec has the CUDA backend and\n"
          "                          a GPU is visible; alias cuda-profile), cpu-profile (profile on this\n"
          "                          CPU, cached; default otherwise) or an analytic model: h100, h200, a100\n"
          "  --precision P           gpu-profile's GEMM precision: fp32 (default, as ./TRAIN --precision),\n"
          "                          tf32 or bf16; profile in the precision you will train in\n"
          "  --profile-cache FILE    profile cache (default $BITPIPE_PROFILE_CACHE or\n"
          "                          ~/.cache/bitpipe/profiles.txt); --no-cache to always profile\n"
          "  --repeats R             profiling repeats (median; default 5)\n"
          "  --time-limit S          GLPK time limit in seconds (default 60)\n"
          "  --loss ce|mse           softmax cross-entropy (default) or mean squared error\n"
          "  --output NAME           graph output the loss is taken on (default: the first float output)\n"
          "  --ignore-index N        cross-entropy targets equal to N do not count (default -100)\n"
          "  --optimizer sgd|adamw   (default sgd), PyTorch semantics; baked in, ./TRAIN's flags override:\n"
          "  --lr X --momentum M --weight-decay W --beta1 B1 --beta2 B2 --eps E --clip C --seed N\n"
          "  --no-dropout            Dropout is the identity\n"
          "  --freeze REGEX, --train REGEX, --no-retie   as for bitpipec train\n"
          "  --emit-c                stop after writing TRAIN.c, TRAIN.weights, TRAIN.plan.json and TRAIN.svg\n"
          "\n"
          "Compile and link: %s <cflags> TRAIN.c <libs> -o TRAIN, with the flags this build recorded\n"
          "(or, when BITPIPE_HOME is set, $BITPIPE_HOME/include and $BITPIPE_HOME/lib).\n",
          BP_BUILD_CC);
}

static int num(const char *opt, const char *s, double *out) {
  char *end;
  *out = strtod(s, &end);
  if (!*s || *end) {
    fprintf(stderr, "bitpipec: %s expects a number, got '%s'\n", opt, s);
    return -1;
  }
  return 0;
}

static int pos_int(const char *opt, const char *s, int *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v <= 0 || v > 1 << 20) {
    fprintf(stderr, "bitpipec: %s expects a positive integer, got '%s'\n", opt, s);
    return -1;
  }
  *out = (int)v;
  return 0;
}

/* Appends s to buf, single-quoted for the shell when it needs quoting. */
static void append_arg(char *buf, size_t n, const char *s) {
  size_t k = strlen(buf);
  int plain = *s != 0;
  for (const char *p = s; *p && plain; p++) plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%", *p) != NULL;
  if (k && k + 1 < n) buf[k++] = ' ', buf[k] = 0;
  if (plain) {
    snprintf(buf + k, n > k ? n - k : 0, "%s", s);
    return;
  }
  if (k + 1 < n) buf[k++] = '\'';
  for (const char *p = s; *p && k + 5 < n; p++) {
    if (*p == '\'') memcpy(buf + k, "'\\''", 4), k += 4;
    else buf[k++] = *p;
  }
  if (k + 1 < n) buf[k++] = '\'';
  buf[k < n ? k : n - 1] = 0;
}

static const char *base_name(const char *p) {
  const char *b = strrchr(p, '/');
  return b ? b + 1 : p;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run_shell(const char *cmd) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void human(double b, char *buf, size_t n) {
  if (b >= 1073741824.0) snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
  else if (b >= 1048576.0) snprintf(buf, n, "%.2f MiB", b / 1048576.0);
  else snprintf(buf, n, "%.1f KiB", b / 1024.0);
}

/* TRAIN.svg: the simulated timeline of every rank (the plan's prediction), to set beside the
 * measured one (./train --trace). */
static int write_timeline(const bp_cg *cg, const char *path, bp_err *e) {
  bp_sim_result res;
  if (bp_cg_simulate(cg, &res, e)) return -1;
  FILE *f = fopen(path, "w");
  int rc = f ? bp_render_svg(f, &cg->prog, &res) : -1;
  if (f && fclose(f) != 0) rc = -1;
  bp_sim_result_free(&res);
  if (rc) return bp_errf(e, "%s: cannot write the timeline", path);
  return 0;
}

int bp_cmd_compile(int argc, char **argv) {
  bp_cg_opts o;
  bp_cg_opts_default(&o);
  bp_cli_model_args a;
  memset(&a, 0, sizeof a);
  const char *out = NULL, *precision = NULL;
  int emit_only = 0, no_cache = 0;
  double x;
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
      help(stdout);
      return 0;
    } else if (!strcmp(s, "-o") && has) out = argv[++i];
    else if (!strcmp(s, "-D") && has) { if (pos_int(s, argv[++i], &o.D)) return 2; }
    else if (!strcmp(s, "-N") && has) { if (pos_int(s, argv[++i], &o.N)) return 2; }
    else if (!strcmp(s, "--micro-batch") && has) { if (pos_int(s, argv[++i], &o.micro_batch)) return 2; }
    else if (!strcmp(s, "--seq") && has) { if (pos_int(s, argv[++i], &o.seq)) return 2; }
    else if (!strcmp(s, "--chunks") && has) { if (pos_int(s, argv[++i], &o.chunks)) return 2; }
    else if (!strcmp(s, "--repeats") && has) { if (pos_int(s, argv[++i], &o.profile_repeats)) return 2; }
    else if (!strcmp(s, "--bind") && has) { if (bp_cli_parse_bind(&a, argv[++i]) < 0) return 2; }
    else if (!strcmp(s, "--schedule") && has) o.schedule = argv[++i];
    else if (!strcmp(s, "--partition") && has) o.partition = argv[++i];
    else if (!strcmp(s, "--device-model") && has) o.device_model = argv[++i];
    else if (!strcmp(s, "--precision") && has) precision = argv[++i];
    else if (!strcmp(s, "--profile-cache") && has) o.profile_cache = argv[++i];
    else if (!strcmp(s, "--no-cache")) no_cache = 1;
    else if (!strcmp(s, "--emit-c")) emit_only = 1;
    else if (!strcmp(s, "--no-dropout")) o.train.dropout = 0;
    else if (!strcmp(s, "--no-retie")) o.train.no_retie = 1;
    else if (!strcmp(s, "--output") && has) o.train.output = argv[++i];
    else if (!strcmp(s, "--freeze") && has) o.train.freeze_re = argv[++i];
    else if (!strcmp(s, "--train") && has) o.train.train_re = argv[++i];
    else if (!strcmp(s, "--loss") && has) {
      const char *v = argv[++i];
      if (!strcmp(v, "ce") || !strcmp(v, "cross-entropy")) o.train.loss = BP_LOSS_CROSS_ENTROPY;
      else if (!strcmp(v, "mse")) o.train.loss = BP_LOSS_MSE;
      else { fprintf(stderr, "bitpipec: --loss is ce or mse, got '%s'\n", v); return 2; }
    } else if (!strcmp(s, "--optimizer") && has) {
      const char *v = argv[++i];
      if (!strcmp(v, "sgd")) o.train.optimizer = BP_OPT_SGD;
      else if (!strcmp(v, "adamw")) o.train.optimizer = BP_OPT_ADAMW;
      else { fprintf(stderr, "bitpipec: --optimizer is sgd or adamw, got '%s'\n", v); return 2; }
    } else if (has && (!strcmp(s, "--lr") || !strcmp(s, "--momentum") || !strcmp(s, "--weight-decay") ||
                       !strcmp(s, "--clip") || !strcmp(s, "--beta1") || !strcmp(s, "--beta2") || !strcmp(s, "--eps") ||
                       !strcmp(s, "--seed") || !strcmp(s, "--ignore-index") || !strcmp(s, "--time-limit"))) {
      if (num(s, argv[++i], &x) < 0) return 2;
      if (!strcmp(s, "--lr")) o.train.lr = x;
      else if (!strcmp(s, "--momentum")) o.train.momentum = x;
      else if (!strcmp(s, "--weight-decay")) o.train.weight_decay = x;
      else if (!strcmp(s, "--clip")) o.train.clip = x;
      else if (!strcmp(s, "--beta1")) o.train.beta1 = x;
      else if (!strcmp(s, "--beta2")) o.train.beta2 = x;
      else if (!strcmp(s, "--eps")) o.train.eps = x;
      else if (!strcmp(s, "--seed")) o.train.seed = (uint64_t)x;
      else if (!strcmp(s, "--time-limit")) o.ilp_time_limit = x;
      else o.train.ignore_index = (int64_t)x;
    } else if (s[0] == '-') {
      fprintf(stderr, "bitpipec: unknown option or missing value '%s' (see bitpipec MODEL --help)\n", s);
      return 2;
    } else if (!a.model) a.model = s;
    else {
      fprintf(stderr, "bitpipec: more than one model given ('%s' and '%s')\n", a.model, s);
      return 2;
    }
  }
  if (!a.model || !out) {
    fprintf(stderr, "bitpipec: %s\n", !a.model ? "no MODEL given" : "-o TRAIN is required (the program to write)");
    help(stderr);
    return 2;
  }
  if (!*base_name(out)) {
    fprintf(stderr, "bitpipec: -o %s names a directory; give the program's file name\n", out);
    return 2;
  }
  { /* the output's directory, before any work */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", out);
    char *sl = strrchr(dir, '/');
    if (sl) *sl = 0;
    struct stat sd;
    if (sl && *dir && (stat(dir, &sd) != 0 || !S_ISDIR(sd.st_mode))) {
      fprintf(stderr, "bitpipec: -o %s: directory '%s' does not exist\n", out, dir);
      return 1;
    }
  }
  if (no_cache) o.profile_cache = "";
  /* the device model: given, or where the program will train (the GPU when one is there) */
  if (!o.device_model) o.device_model = bp_cli_default_device_model();
  int gpu_profile = bp_cli_is_gpu_profile(o.device_model);
  if (precision && !bp_cli_precision_ok(precision)) {
    fprintf(stderr, "bitpipec: --precision is fp32, tf32 or bf16, got '%s'\n", precision);
    return 2;
  }
  if (precision && !gpu_profile) {
    fprintf(stderr, "bitpipec: --precision sets the GEMM precision of --device-model gpu-profile; the costs here "
                    "come from '%s' (the CPU profiles in fp32, the analytic models assume bf16)\n", o.device_model);
    return 2;
  }
  o.model = a.model;
  o.binds = a.binds, o.nbinds = a.nbinds;
  char cmdline[8192] = "bitpipec";
  for (int i = 0; i < argc; i++) append_arg(cmdline, sizeof cmdline, argv[i]);

  double t0 = now_s();
  bp_err e = {0};
  bp_cg cg;
  int rc = 1;
  char csrc[4200], wpath[4200], ppath[4200], wname[4200], pname[4200], svg[4200];
  snprintf(svg, sizeof svg, "%s.svg", out);
  snprintf(csrc, sizeof csrc, "%s.c", out);
  snprintf(wpath, sizeof wpath, "%s.weights", out);
  snprintf(ppath, sizeof ppath, "%s.plan.json", out);
  snprintf(wname, sizeof wname, "%s.weights", base_name(out));
  snprintf(pname, sizeof pname, "%s.plan.json", base_name(out));
  bp_profile_device pdev;
  bp_cli_gpu_prof *gp = NULL;
  memset(&cg, 0, sizeof cg);
  if (gpu_profile) {
    char why[1024];
    if (!(gp = bp_cli_gpu_prof_open(precision, &pdev, why, sizeof why))) {
      fprintf(stderr, "bitpipec: %s\n", why);
      return 1;
    }
    o.profile_device = &pdev;
  }
  int prc = bp_cg_prepare(&cg, &o, stdout, &e);
  bp_cli_gpu_prof_close(gp); /* the GPU is only needed for the costs */
  o.profile_device = cg.o.profile_device = NULL;
  if (prc) goto fail;
  if (bp_cg_build_stages(&cg, &e)) goto fail;
  int nodes = 0, nf = 0, ni = 0, tensors = 0;
  for (int s = 0; s < cg.S; s++) {
    const bp_cg_stage *st = &cg.stages[s];
    nodes += st->g->nnodes, nf += st->n_forward, ni += st->n_bwd_input - st->n_forward, tensors += st->g->ntensors;
  }
  printf("stages    %d stage graphs, each with its own backward: %d nodes (forward %d, backward input half %d, "
         "weight half %d), %d tensors\n", cg.S, nodes, nf, ni, nodes - nf - ni, tensors);
  if (bp_cg_plan_memory(&cg, &e)) goto fail;
  {
    char h[64];
    printf("memory    planned per rank (weights, gradients, %s state, constants, %s slots, work):",
           o.train.optimizer == BP_OPT_ADAMW ? "AdamW" : "SGD", "micro-batch");
    for (int r = 0; r < cg.prog.D; r++) human((double)cg.rank_bytes[r], h, sizeof h), printf("%s %s", r ? "," : "", h);
    printf("\n");
  }
  printf("predicted step %.4g ms (simulated with the costs above); bubble per rank", cg.pred_step_s * 1e3);
  for (int r = 0; r < cg.prog.D; r++) printf(" %.3f", cg.pred_bubble[r]);
  printf("\n");
  char cflags[8192], libs[8192], cc[20000] = "";
  bp_build_flags(cflags, sizeof cflags, libs, sizeof libs);
  snprintf(cc, sizeof cc, "%s %s", BP_BUILD_CC, cflags);
  append_arg(cc, sizeof cc, csrc);
  snprintf(cc + strlen(cc), sizeof cc - strlen(cc), " %s -o", libs);
  append_arg(cc, sizeof cc, out);
  if (bp_cg_emit_c(&cg, csrc, wname, pname, cmdline, cc, &e) || bp_cg_write_weights(&cg, wpath, &e) ||
      bp_cg_write_plan(&cg, ppath, &e) || write_timeline(&cg, svg, &e))
    goto fail;
  {
    struct stat sc, sw;
    char h1[64], h2[64];
    human(stat(csrc, &sc) == 0 ? (double)sc.st_size : 0, h1, sizeof h1);
    human(stat(wpath, &sw) == 0 ? (double)sw.st_size : 0, h2, sizeof h2);
    printf("emit      %s (%s), %s (%s), %s (fingerprint %016llx), %s (predicted timeline)\n", csrc, h1, wpath,
           h2, ppath, (unsigned long long)cg.fingerprint, svg);
  }
  if (emit_only) {
    printf("done      --emit-c: not compiled; build with:\n          %s\n", cc);
    rc = 0;
    goto done;
  }
  printf("cc        %s\n", cc);
  fflush(stdout);
  double tc = now_s();
  int st = run_shell(cc);
  if (st != 0) {
    fprintf(stderr, "bitpipec: compiling %s failed (%s %d); the command was:\n  %s\n", csrc,
            st < 0 ? "could not start the compiler" : "exit status", st, cc);
    goto done;
  }
  char run[4200];
  snprintf(run, sizeof run, "%s%s", strchr(out, '/') ? "" : "./", out);
  printf("done      %s in %.1f s (compile %.1f s); run: mpirun -np %d %s --data TOKENS.bin (%s --help)\n", out,
         now_s() - t0, now_s() - tc, cg.prog.D, run, run);
  rc = 0;
  goto done;
fail:
  /* name the model unless the message starts with it; point at this command's spelling of a binding */
  if (!strncmp(e.msg, a.model, strlen(a.model))) fprintf(stderr, "bitpipec: %s", e.msg);
  else fprintf(stderr, "bitpipec: %s: %s", a.model, e.msg);
  if (strstr(e.msg, "'sequence'") && strstr(e.msg, "not bound")) fprintf(stderr, " (here: --seq T)");
  fprintf(stderr, "\n");
done:
  bp_cg_free(&cg);
  return rc;
}
