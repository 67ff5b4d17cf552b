/* tools/cmd_partition.c — `bitpipec partition`: cut a model into layers, cost them (profiled on the
 * CPU or the GPU, or an analytic device model), place them on a schedule's chunks with the GLPK integer
 * program, and compare the result with uniform and manual partitions through one evaluator (the
 * proxy, the memory per rank and the simulator with one cost row per stage). */
#include "partitioner/partition.h"
#include "tools/commands.h"
#include "tools/gpu_profile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CAND 16
#define GIB 1073741824.0

static void usage(FILE *f) {
  fprintf(f,
          "usage: bitpipec partition MODEL -D RANKS -N MICROBATCHES --schedule NAME [options]\n"
          "       bitpipec partition --synthetic gpt2[:n_layer=12,n_embd=768,vocab=50304,seq=1024,fine=1] ...\n"
          "\n"
          "Cuts MODEL's forward graph into layers (embedding, one per block, head + loss), costs them,\n"
          "and places contiguous layer ranges on the schedule's chunks. Every candidate partition is\n"
          "evaluated alike: per-rank compute and memory, the step-time proxy, and the simulator.\n"
          "\n"
          "  -D N, -N N              pipeline ranks, micro-batches per iteration\n"
          "  --schedule NAME         1f1b, interleaved, chimera, bitpipe, ... (bitpipec schedule --help)\n"
          "  --chunks V              chunks per rank for 'interleaved' (default 2)\n"
          "  --partition P           a candidate: auto (GLPK), uniform, or ranges per chunk in pipeline\n"
          "                          order, e.g. 0-3,4-6,7; repeatable (default: auto and uniform)\n"
          "  --mem-cap SIZE          per-rank memory cap, e.g. 40G (GiB), 512M; default: the device's\n"
          "  --micro-batch B         binds 'batch' (default 1)\n"
          "  --bind NAME=V           binds a symbolic dimension, e.g. sequence=1024\n"
          "  --device-model NAME     gpu-profile (profile on GPU 0 with the CUDA executor; default for a\n"
          "                          model file when this bitpipec has the CUDA backend and a GPU is\n"
          "                          visible; alias cuda-profile), cpu-profile (profile on this CPU;\n"
          "                          default otherwise), or an analytic model: h100 (default for\n"
          "                          --synthetic), h200, a100\n"
          "  --precision P           gpu-profile's GEMM precision: fp32 (default, as ./TRAIN), tf32, bf16\n"
          "  --layers block|fine     one layer per block (default), or blocks split at inner cut points\n"
          "  --repeats R             profiling repeats (median; default 5)\n"
          "  --profile-cache FILE    profile cache (default $BITPIPE_PROFILE_CACHE or\n"
          "                          ~/.cache/bitpipe/profiles.txt); --no-cache to always profile\n"
          "  --time-limit S          GLPK time limit in seconds (default 60)\n"
          "  --report                also the layer table and, per candidate, each rank's chunks\n"
          "  --json                  everything as JSON\n");
}

static int parse_size(const char *s, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v <= 0) return -1;
  double m = 1;
  if (*end == 'k' || *end == 'K') m = 1024.0, end++;
  else if (*end == 'm' || *end == 'M') m = 1048576.0, end++;
  else if (*end == 'g' || *end == 'G') m = GIB, end++;
  else if (*end == 't' || *end == 'T') m = GIB * 1024.0, end++;
  if (*end == 'i') end++;
  if (*end == 'B' || *end == 'b') end++;
  if (*end) return -1;
  *out = v * m;
  return 0;
}

typedef struct {
  char name[24];
  int *first;
  bp_part_eval ev;
  int ok;
} cand;

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if ((unsigned char)*s >= 0x20) fputc(*s, f);
  }
  fputc('"', f);
}

int bp_cmd_partition(int argc, char **argv) {
  const char *model = NULL, *synthetic = NULL, *sched = NULL, *device = NULL, *cache = NULL, *precision = NULL;
  const char *parts[MAX_CAND];
  int nparts = 0, D = 0, N = 0, chunks = 0, report = 0, json = 0, no_cache = 0, repeats = 5, micro = 1;
  double mem_cap = 0, time_limit = 60;
  bp_layers_granularity gran = BP_LAYERS_BLOCK;
  bp_binding binds[16];
  int nbinds = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "-D") && has) D = atoi(argv[++i]);
    else if (!strcmp(a, "-N") && has) N = atoi(argv[++i]);
    else if (!strcmp(a, "--schedule") && has) sched = argv[++i];
    else if (!strcmp(a, "--chunks") && has) chunks = atoi(argv[++i]);
    else if (!strcmp(a, "--synthetic") && has) synthetic = argv[++i];
    else if (!strcmp(a, "--device-model") && has) device = argv[++i];
    else if (!strcmp(a, "--precision") && has) precision = argv[++i];
    else if (!strcmp(a, "--profile-cache") && has) cache = argv[++i];
    else if (!strcmp(a, "--no-cache")) no_cache = 1;
    else if (!strcmp(a, "--report")) report = 1;
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--repeats") && has) repeats = atoi(argv[++i]);
    else if (!strcmp(a, "--time-limit") && has) time_limit = atof(argv[++i]);
    else if (!strcmp(a, "--micro-batch") && has) micro = atoi(argv[++i]);
    else if (!strcmp(a, "--layers") && has) {
      const char *v = argv[++i];
      if (!strcmp(v, "block")) gran = BP_LAYERS_BLOCK;
      else if (!strcmp(v, "fine")) gran = BP_LAYERS_FINE;
      else {
        fprintf(stderr, "bitpipec partition: --layers is block or fine, got '%s'\n", v);
        return 2;
      }
    } else if (!strcmp(a, "--partition") && has) {
      if (nparts == MAX_CAND - 1) {
        fprintf(stderr, "bitpipec partition: at most %d --partition candidates\n", MAX_CAND - 1);
        return 2;
      }
      parts[nparts++] = argv[++i];
    } else if (!strcmp(a, "--mem-cap") && has) {
      if (parse_size(argv[++i], &mem_cap)) {
        fprintf(stderr, "bitpipec partition: --mem-cap wants a size like 40G or 512M, got '%s'\n", argv[i]);
        return 2;
      }
    } else if (!strcmp(a, "--bind") && has) {
      char *s = argv[++i], *eq = strchr(s, '=');
      long v = eq ? strtol(eq + 1, NULL, 10) : 0;
      if (!eq || eq == s || v <= 0 || nbinds >= 15) {
        fprintf(stderr, "bitpipec partition: --bind wants NAME=POSITIVE, got '%s'\n", s);
        return 2;
      }
      *eq = 0;
      binds[nbinds++] = (bp_binding){s, v};
    } else if (a[0] == '-') {
      fprintf(stderr, "bitpipec partition: unknown option or missing value '%s' (see --help)\n", a);
      return 2;
    } else if (!model) model = a;
    else {
      fprintf(stderr, "bitpipec partition: more than one model given ('%s')\n", a);
      return 2;
    }
  }
  if ((!model && !synthetic) || (model && synthetic) || !sched || D <= 0 || N <= 0 || micro <= 0) {
    fprintf(stderr, "bitpipec partition: need one MODEL (or --synthetic), --schedule, -D and -N (positive)\n");
    usage(stderr);
    return 2;
  }
  if (device && strcmp(device, "cpu-profile") && !bp_cli_is_gpu_profile(device) && !bp_device_model_find(device)) {
    fprintf(stderr, "bitpipec partition: unknown --device-model '%s' (cpu-profile, gpu-profile, h100, h200, a100)\n",
            device);
    return 2;
  }
  if (synthetic && device && (!strcmp(device, "cpu-profile") || bp_cli_is_gpu_profile(device))) {
    fprintf(stderr, "bitpipec partition: --synthetic needs an analytic --device-model (h100, h200, a100), not "
                    "%s: there is no model to run\n", device);
    return 2;
  }
  if (!synthetic && !device) device = bp_cli_default_device_model(); /* where the program will train */
  int gpu_profile = bp_cli_is_gpu_profile(device);
  if (precision && !bp_cli_precision_ok(precision)) {
    fprintf(stderr, "bitpipec partition: --precision is fp32, tf32 or bf16, got '%s'\n", precision);
    return 2;
  }
  if (precision && !gpu_profile) {
    fprintf(stderr, "bitpipec partition: --precision sets the GEMM precision of --device-model gpu-profile; the costs "
                    "here come from '%s' (the CPU profiles in fp32, the analytic models assume bf16)\n",
            device ? device : "h100");
    return 2;
  }
  if (nparts == 0) parts[nparts++] = "auto", parts[nparts++] = "uniform";
  /* the schedule's own conditions, in words the user can act on */
  int two = !strcmp(sched, "chimera") || !strncmp(sched, "bitpipe", 7);
  if (two && D % 2) {
    fprintf(stderr,
            "bitpipec partition: schedule '%s' runs two pipelines in opposite directions and pairs rank r with "
            "rank D-1-r, so D must be even; D=%d is odd (try D=%d or D=%d)\n",
            sched, D, D - 1, D + 1);
    return 1;
  }
  if ((two || !strcmp(sched, "interleaved")) && N % D) {
    fprintf(stderr, "bitpipec partition: schedule '%s' needs N to be a multiple of D=%d; N=%d is not (try N=%d or N=%d)\n",
            sched, D, N, N / D * D > 0 ? N / D * D : D, (N / D + 1) * D);
    return 1;
  }
  char err[2048];
  bp_program prog;
  bp_sched_params sp = {.D = D, .N = N, .chunks = chunks};
  if (bp_schedule_generate(sched, &sp, &prog, err, sizeof err)) {
    fprintf(stderr, "bitpipec partition: %s\n", err);
    bp_program_free(&prog);
    return 1;
  }
  int rc = 1;
  bp_model_layers ml;
  memset(&ml, 0, sizeof ml);
  bp_lcosts lc;
  memset(&lc, 0, sizeof lc);
  bp_part_problem pp;
  memset(&pp, 0, sizeof pp);
  cand cs[MAX_CAND];
  memset(cs, 0, sizeof cs);
  int ncand = 0, cache_hit = 0;
  const char *cache_state = NULL; /* profiled costs: "hit", "miss" or "off" */
  bp_err e = {0};
  char shapes[256] = "";
  if (synthetic) {
    bp_gpt2_shape sh;
    const bp_device_model *dev = bp_device_model_find(device ? device : "h100");
    if (!dev) {
      fprintf(stderr, "bitpipec partition: --synthetic needs an analytic --device-model (h100, h200, a100), not '%s'\n",
              device);
      goto done;
    }
    if (bp_gpt2_shape_parse(synthetic, &sh, &e)) goto fail_e;
    sh.micro_batch = micro;
    if (gran == BP_LAYERS_FINE) sh.fine = 1;
    if (bp_lcosts_gpt2(&sh, dev, &lc, &e)) goto fail_e;
    snprintf(shapes, sizeof shapes, "micro-batch %d x sequence %d", micro, sh.seq);
  } else {
    bp_binding all[17];
    int nall = 0, has_batch = 0;
    for (int i = 0; i < nbinds; i++) {
      all[nall++] = binds[i];
      has_batch |= !strcmp(binds[i].name, "batch");
    }
    if (!has_batch) all[nall++] = (bp_binding){"batch", micro};
    size_t k = 0;
    for (int i = 0; i < nall; i++)
      k += (size_t)snprintf(shapes + k, sizeof shapes - k > k ? sizeof shapes - k : 0, "%s%s=%lld", i ? "," : "",
                            all[i].name, (long long)all[i].value);
    if (bp_model_layers_build(model, all, nall, gran, &ml, &e)) goto fail_e;
    if (!device || !strcmp(device, "cpu-profile") || gpu_profile) {
      char extra[400];
      snprintf(extra, sizeof extra, "%s gran=%s", shapes, gran == BP_LAYERS_FINE ? "fine" : "block");
      bp_profile_device pdev;
      bp_cli_gpu_prof *gp = NULL;
      if (gpu_profile) {
        char why[1024];
        if (!(gp = bp_cli_gpu_prof_open(precision, &pdev, why, sizeof why))) {
          fprintf(stderr, "bitpipec partition: %s\n", why);
          goto done;
        }
      }
      bp_profile_opts po = {.repeats = repeats, .cache_path = no_cache ? "" : cache, .key_extra = extra,
                            .cache_hit = &cache_hit, .device = gp ? &pdev : NULL};
      int prc = bp_lcosts_profile(&ml, &po, &lc, &e);
      bp_cli_gpu_prof_close(gp);
      if (prc) goto fail_e;
      cache_state = no_cache ? "off" : cache_hit ? "hit" : "miss";
    } else {
      const bp_device_model *dev = bp_device_model_find(device);
      if (!dev) {
        fprintf(stderr, "bitpipec partition: unknown --device-model '%s' (cpu-profile, gpu-profile, h100, h200, a100)\n",
                device);
        goto done;
      }
      if (bp_lcosts_analytic(&ml, dev, &lc, &e)) goto fail_e;
    }
  }
  if (mem_cap <= 0) mem_cap = lc.mem_bytes;
  if (bp_part_problem_init(&pp, &prog, &lc, mem_cap, err, sizeof err)) {
    fprintf(stderr, "bitpipec partition: %s\n", err);
    goto done;
  }
  int S = pp.S;
  bp_ilp_info ii;
  memset(&ii, 0, sizeof ii);
  int have_ilp = 0;
  for (int c = 0; c < nparts; c++) {
    cand *x = &cs[ncand];
    x->first = calloc((size_t)S + 1, sizeof(int));
    if (!x->first) {
      fprintf(stderr, "bitpipec partition: out of memory\n");
      goto done;
    }
    ncand++;
    if (!strcmp(parts[c], "auto")) {
      snprintf(x->name, sizeof x->name, "auto");
      bp_ilp_opts o = {.time_limit_s = time_limit, .warm_start = 1};
      int r = bp_part_ilp(&pp, &o, x->first, &ii, err, sizeof err);
      if (r < 0) {
        fprintf(stderr, "bitpipec partition: %s\n", err);
        goto done;
      }
      if (r == 1) {
        bp_ilp_info mi;
        int *fm = calloc((size_t)S + 1, sizeof(int));
        char buf[1024];
        bp_ilp_opts mo = {.time_limit_s = time_limit, .warm_start = 1};
        if (fm && bp_part_min_memory_info(&pp, &mo, fm, &mi, err, sizeof err) == 0)
          fprintf(stderr,
                  "bitpipec partition: no partition of the %d layers over %s's %d chunks fits --mem-cap %.2f GiB on "
                  "every rank; the smallest cap that fits is %.2f GiB%s (partition %s)\n",
                  pp.L, sched, S, mem_cap / GIB, ceil(mi.obj / GIB * 100) / 100,
                  mi.timed_out ? " or less (GLPK stopped at the time limit)" : "",
                  bp_part_format(fm, S, buf, sizeof buf));
        else
          fprintf(stderr, "bitpipec partition: no partition fits --mem-cap %.2f GiB (%s)\n", mem_cap / GIB, err);
        free(fm);
        goto done;
      }
      have_ilp = 1;
    } else if (!strcmp(parts[c], "uniform")) {
      snprintf(x->name, sizeof x->name, "uniform");
      bp_part_uniform(pp.L, S, x->first);
    } else {
      snprintf(x->name, sizeof x->name, "manual%d", c);
      if (bp_part_parse(parts[c], pp.L, S, x->first, err, sizeof err)) {
        fprintf(stderr, "bitpipec partition: %s\n", err);
        goto done;
      }
    }
    if (bp_part_evaluate(&pp, x->first, 1, &x->ev, err, sizeof err)) {
      fprintf(stderr, "bitpipec partition: %s\n", err);
      goto done;
    }
    x->ok = 1;
  }
  char buf[4096];
  if (json) {
    printf("{\"model\": ");
    json_str(stdout, synthetic ? synthetic : model);
    printf(", \"shapes\": ");
    json_str(stdout, shapes);
    printf(", \"costs_source\": ");
    json_str(stdout, lc.source);
    printf(", \"schedule\": \"%s\", \"D\": %d, \"N\": %d, \"stages\": %d, \"mem_cap_bytes\": %.0f,\n", sched, D, N, S,
           mem_cap);
    printf(" \"layers\": [");
    for (int l = 0; l < lc.n; l++) {
      const bp_lcost *x = &lc.l[l];
      printf("%s\n  {\"name\": ", l ? "," : "");
      json_str(stdout, x->name);
      printf(", \"fwd_s\": %.17g, \"bwd_s\": %.17g, \"flops\": %.17g, \"param_bytes\": %.0f, \"state_bytes\": %.0f, "
             "\"act_bytes\": %.0f, \"out_bytes\": %.0f}",
             x->fwd, x->bwd, x->flops, x->param_bytes, x->state_bytes, x->act_bytes, x->out_bytes);
    }
    printf("],\n \"tied\": [");
    for (int t = 0; t < lc.n_tied; t++) {
      printf("%s{\"name\": ", t ? ", " : "");
      json_str(stdout, lc.tied[t].name);
      printf(", \"layers\": [%d, %d], \"bytes\": %.0f}", lc.tied[t].a, lc.tied[t].b, lc.tied[t].bytes);
    }
    printf("],\n \"link_bw\": %.17g, \"link_lat_s\": %.17g, \"profile_cache\": ", lc.link_bw, lc.link_lat);
    if (cache_state) printf("\"%s\",\n", cache_state);
    else printf("null,\n");
    if (have_ilp)
      printf(" \"solver\": {\"name\": \"glpk glp_intopt\", \"proxy_s\": %.9g, \"bound_s\": %.9g, \"gap\": %.3g, "
             "\"seconds\": %.3f, \"rows\": %d, \"cols\": %d, \"fixed\": %d, \"incumbent_s\": %.9g, "
             "\"timed_out\": %s},\n",
             ii.obj, ii.bound, ii.gap, ii.seconds, ii.rows, ii.cols, ii.fixed, ii.incumbent,
             ii.timed_out ? "true" : "false");
    printf(" \"candidates\": [");
    for (int c = 0; c < ncand; c++) {
      cand *x = &cs[c];
      printf("%s\n  {\"name\": \"%s\", \"partition\": \"%s\", \"stages\": [", c ? "," : "", x->name,
             bp_part_format(x->first, S, buf, sizeof buf));
      for (int s = 0; s < S; s++) printf("%s[%d, %d]", s ? ", " : "", x->first[s], x->first[s + 1] - 1);
      printf("], \"step_time_s\": %.9g, \"bubble_mean\": %.4f, \"proxy_s\": %.9g, \"max_load_s\": %.9g, "
             "\"pace_s\": %.9g, \"comm_s\": %.9g, \"tied_s\": %.9g, \"peak_mem_bytes\": %.0f, \"feasible\": %s, "
             "\"rank_load_s\": [",
             x->ev.step_time, x->ev.bubble_mean, x->ev.proxy, x->ev.max_load, x->ev.pace, x->ev.comm, x->ev.tied,
             x->ev.peak_mem, x->ev.feasible ? "true" : "false");
      for (int r = 0; r < D; r++) printf("%s%.9g", r ? ", " : "", x->ev.load[r]);
      printf("], \"rank_mem_bytes\": [");
      for (int r = 0; r < D; r++) printf("%s%.0f", r ? ", " : "", x->ev.mem[r]);
      printf("]}");
    }
    printf("]}\n");
    rc = 0;
    goto done;
  }
  /* times in ms, or in us when the whole step is under a millisecond (the tiny committed models) */
  double tsc = 1e3, tmax = 0;
  const char *tu = "ms";
  for (int c = 0; c < ncand; c++) tmax = fmax(tmax, fmax(cs[c].ev.step_time, cs[c].ev.proxy));
  if (tmax < 1e-3) tsc = 1e6, tu = "us";
  printf("model     %s (%s)\n", synthetic ? synthetic : model, shapes);
  if (!synthetic)
    printf("layers    %d found at cut points crossed by <= %.0f bytes (fp32): ", lc.n, ml.threshold);
  else printf("layers    %d: ", lc.n);
  for (int l = 0; l < lc.n; l++) printf("%s%d=%s", l ? " " : "", l, lc.l[l].name);
  printf("\ncosts     %s\n", lc.source);
  if (cache_state)
    printf("          profile cache: %s\n", !strcmp(cache_state, "hit")    ? "hit (costs read from the cache)"
                                            : !strcmp(cache_state, "miss") ? "miss (profiled now, stored)"
                                                                           : "off (--no-cache)");
  for (int t = 0; t < lc.n_tied; t++)
    printf("tied      %s: one weight in layers %d (%s) and %d (%s), %.2f MiB; its gradient is all-reduced when the two "
           "sit on different ranks\n",
           lc.tied[t].name, lc.tied[t].a, lc.l[lc.tied[t].a].name, lc.tied[t].b, lc.l[lc.tied[t].b].name,
           lc.tied[t].bytes / 1048576.0);
  printf("schedule  %s D=%d N=%d: %d chunks in pipeline order, %d per rank; memory cap ", sched, D, N, S,
         prog.chunks_per_rank);
  if (mem_cap > 0) printf("%.2f GiB per rank%s\n", mem_cap / GIB, mem_cap == lc.mem_bytes ? " (the device's)" : "");
  else printf("none\n");
  if (report) {
    printf("\n  #  layer            fwd %s    bwd %s   params MiB  +grad+opt MiB  stash MiB/mb  out KiB/mb\n", tu, tu);
    for (int l = 0; l < lc.n; l++) {
      const bp_lcost *x = &lc.l[l];
      printf("%3d  %-14s %8.3f  %8.3f  %11.2f  %13.2f  %12.2f  %10.1f\n", l, x->name, x->fwd * tsc, x->bwd * tsc,
             x->param_bytes / 1048576.0, x->state_bytes / 1048576.0, x->act_bytes / 1048576.0, x->out_bytes / 1024.0);
    }
  }
  if (have_ilp) {
    printf("\nGLPK      glp_intopt %s in %.3f s (%d rows, %d columns): proxy %.4f %s, bound %.4f %s, gap %.2g%%\n",
           ii.timed_out ? "stopped at the time limit" : "optimal", ii.seconds, ii.rows, ii.cols, ii.obj * tsc, tu,
           ii.bound * tsc, tu, ii.gap * 100);
    if (ii.incumbent > 0)
      printf("          (incumbent %.4f %s from the heuristic; its bounds fixed %d of %d cut variables)\n",
             ii.incumbent * tsc, tu, ii.fixed, ii.fixed + ii.binaries);
  }
  printf("\nstep time: simulated (bitpipe simulator, one cost row per chunk%s)%s; proxy: the solver's objective;\n"
         "load: compute per iteration per rank; memory: weights + grads + AdamW state + peak stash, per rank\n\n",
         lc.link_bw > 0 ? ", NVLink model" : ", free links",
         lc.n_tied ? " + the tied all-reduce" : "");
  double unit = GIB, top = 0;
  const char *un = "GiB";
  for (int c = 0; c < ncand; c++) top = fmax(top, cs[c].ev.peak_mem);
  if (top < GIB) unit = 1048576.0, un = "MiB";
  char h1[16], h2[16], h3[16];
  snprintf(h1, sizeof h1, "step %s", tu), snprintf(h2, sizeof h2, "proxy %s", tu);
  snprintf(h3, sizeof h3, "max load %s", tu);
  printf("%-9s %11s %7s %10s %12s %9s %s  %s\n", "candidate", h1, "bubble", h2, h3,
         "peak mem", un, "layers per chunk (pipeline order)");
  for (int c = 0; c < ncand; c++) {
    cand *x = &cs[c];
    double mx = 0;
    for (int r = 0; r < D; r++) mx = fmax(mx, x->ev.load[r]);
    printf("%-9s %11.3f %7.4f %10.3f %12.3f %12.3f%s %s\n", x->name, x->ev.step_time * tsc, x->ev.bubble_mean,
           x->ev.proxy * tsc, mx * tsc, x->ev.peak_mem / unit, x->ev.feasible ? " " : "!",
           bp_part_format(x->first, S, buf, sizeof buf));
  }
  for (int c = 0; c < ncand; c++) {
    cand *x = &cs[c];
    if (!x->ev.feasible)
      printf("  '!' %s exceeds the memory cap on some rank\n", x->name);
  }
  printf("\nper rank: load %s / memory %s\n", tu, un);
  for (int c = 0; c < ncand; c++) {
    cand *x = &cs[c];
    printf("%-9s", x->name);
    for (int r = 0; r < D; r++) printf(" r%d %.2f/%.2f", r, x->ev.load[r] * tsc, x->ev.mem[r] / unit);
    printf("\n");
  }
  if (report) {
    for (int c = 0; c < ncand; c++) {
      cand *x = &cs[c];
      printf("\n%s: chunks per rank (stage: layers)\n", x->name);
      for (int r = 0; r < D; r++) {
        printf("  rank %d:", r);
        for (int k = 0; k < prog.chunks_per_rank; k++) {
          const bp_chunk *ch = bp_program_chunk(&prog, r, k);
          int s = ch->stage, a = x->first[s], b = x->first[s + 1] - 1;
          printf("  [%s s%d: %s", prog.n_pipes > 1 ? (ch->pipe ? "up" : "down") : "", s, lc.l[a].name);
          if (b > a) printf("..%s", lc.l[b].name);
          printf(" (%d)]", b - a + 1);
        }
        printf("\n");
      }
    }
  }
  rc = 0;
  goto done;
fail_e:
  fprintf(stderr, "bitpipec partition: %s\n", e.msg);
done:
  for (int c = 0; c < ncand; c++) {
    free(cs[c].first);
    if (cs[c].ok) bp_part_eval_free(&cs[c].ev);
  }
  bp_part_problem_free(&pp);
  bp_lcosts_free(&lc);
  bp_model_layers_free(&ml);
  bp_program_free(&prog);
  return rc;
}
