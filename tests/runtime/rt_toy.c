/* tests/runtime/rt_toy.c — the runtime tests' program: the toy model of toy_model.h as a
 * "compiled" training program, and its references.
 *
 *   rt_toy prepare  [toy options] --dir DIR          weights file, token file and a fixed batch
 *   rt_toy run      [toy options] -- [./train options]   bp_rt_main on the toy plan (under mpirun)
 *   rt_toy reference [toy options] --replicas R -- [./train options]
 *        the same model as one graph trained by the single-process trainer (frontend/train.c) on
 *        the same data (N*R*B sequences per step, the runtime's data order), printing the same
 *        'step K loss X grad_norm G' lines
 *   rt_toy datacheck --dir DIR                       properties of the token order (data.c)
 *
 * toy options: --schedule NAME -D N -N N --chunks V --hidden H --vocab V --layers L --batch B
 *              --seq T --init-seed S --optimizer sgd|adamw --lr X --momentum M --clip C
 *              (the optimizer options are the compiled-in defaults; ./train's flags override) */
#include "tests/runtime/toy_model.h"
#include "frontend/npy.h"
#include "frontend/train.h"
#include "runtime/rt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
  fprintf(stderr, "usage: rt_toy prepare|run|reference|datacheck [toy options] [-- train options] (see the file)\n");
  return 2;
}

/* Parses toy options from argv[from..]; stops at "--". Returns the index after the options. */
static int parse_toy(int argc, char **argv, int from, toy_cfg *c, const char **dir, int *replicas) {
  int i = from;
  for (; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--")) return i + 1;
    if (!v) return -1;
    i++;
    if (!strcmp(a, "--schedule")) c->schedule = v;
    else if (!strcmp(a, "-D")) c->D = atoi(v);
    else if (!strcmp(a, "-N")) c->N = atoi(v);
    else if (!strcmp(a, "--chunks")) c->chunks = atoi(v);
    else if (!strcmp(a, "--hidden")) c->H = atoi(v);
    else if (!strcmp(a, "--vocab")) c->V = atoi(v);
    else if (!strcmp(a, "--layers")) c->L = atoi(v);
    else if (!strcmp(a, "--batch")) c->B = atoi(v);
    else if (!strcmp(a, "--seq")) c->T = atoi(v);
    else if (!strcmp(a, "--init-seed")) c->init_seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--optimizer")) c->hp.optimizer = !strcmp(v, "adamw");
    else if (!strcmp(a, "--lr")) c->hp.lr = atof(v);
    else if (!strcmp(a, "--momentum")) c->hp.momentum = atof(v);
    else if (!strcmp(a, "--clip")) c->hp.clip = atof(v);
    else if (!strcmp(a, "--dir") && dir) *dir = v;
    else if (!strcmp(a, "--replicas") && replicas) *replicas = atoi(v);
    else return -1;
  }
  return i;
}

/* A token stream with structure a model can learn (a noisy walk over the vocabulary). */
static int write_tokens(const char *path, int V, int64_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int32_t h[256] = {20240520, 1, (int32_t)n};
  fwrite(h, sizeof h, 1, f);
  uint64_t s = 12345;
  int t = 0;
  for (int64_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    int r = (int)((s >> 33) % 10);
    t = r < 7 ? (t + 1) % V : r < 9 ? (t + 3) % V : (int)((s >> 40) % (uint64_t)V);
    uint16_t u = (uint16_t)t;
    fwrite(&u, 2, 1, f);
  }
  return fclose(f) == 0 ? 0 : -1;
}

static int prepare(const toy_cfg *c, const char *dir, int R) {
  toy_plan tp;
  bp_err e = {0};
  char path[4096];
  if (toy_build(c, &tp, &e) < 0) {
    fprintf(stderr, "rt_toy: %s\n", e.msg);
    toy_free(&tp);
    return 1;
  }
  snprintf(path, sizeof path, "%s/toy.weights", dir);
  int rc = toy_write_weights(&tp, path, &e);
  snprintf(path, sizeof path, "%s/toy.model", dir);
  if (rc == 0) rc = toy_write_model(&tp, c, path, &e);
  toy_free(&tp);
  if (rc < 0) {
    fprintf(stderr, "rt_toy: %s\n", e.msg);
    return 1;
  }
  snprintf(path, sizeof path, "%s/tokens.bin", dir);
  if (write_tokens(path, c->V, 4000) < 0) return 1;
  /* a fixed batch of N*R*B rows: the token file's first windows */
  int64_t rows = (int64_t)c->N * R * c->B;
  bp_value in = {BP_I64, 2, {rows, c->T}, NULL}, tg = in;
  in.data = malloc(sizeof(int64_t) * (size_t)(rows * c->T));
  tg.data = malloc(sizeof(int64_t) * (size_t)(rows * c->T));
  uint64_t s = 99;
  for (int64_t i = 0; i < rows * c->T; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    ((int64_t *)in.data)[i] = (int64_t)((s >> 33) % (uint64_t)c->V);
    ((int64_t *)tg.data)[i] = (int64_t)((((int64_t *)in.data)[i] + 1) % c->V);
  }
  ((int64_t *)tg.data)[3] = -100; /* one ignored target: the loss weights count it out */
  snprintf(path, sizeof path, "%s/tokens.npy", dir);
  rc = bp_npy_write(path, &in, &e);
  snprintf(path, sizeof path, "%s/targets.npy", dir);
  if (rc == 0) rc = bp_npy_write(path, &tg, &e);
  free(in.data);
  free(tg.data);
  if (rc < 0) fprintf(stderr, "rt_toy: %s\n", e.msg);
  return rc < 0;
}

/* The single-process reference: full batch per step through bp_trainer. */
static int reference(const toy_cfg *c, int R, int argc, char **argv) {
  const char *data = NULL, *inp = NULL, *targ = NULL;
  long steps = 10;
  bp_train_opts o;
  bp_train_opts_default(&o);
  o.quiet = 1;
  o.dropout = 0;
  o.optimizer = c->hp.optimizer ? BP_OPT_ADAMW : BP_OPT_SGD;
  o.lr = c->hp.lr;
  o.momentum = c->hp.momentum;
  o.clip = c->hp.clip;
  uint64_t seed = c->hp.seed;
  for (int i = 0; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "--data")) data = v;
    else if (!strcmp(a, "--input")) inp = strchr(v, '=') ? strchr(v, '=') + 1 : v;
    else if (!strcmp(a, "--targets")) targ = v;
    else if (!strcmp(a, "--steps")) steps = atol(v);
    else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--lr")) o.lr = atof(v);
    else if (!strcmp(a, "--momentum")) o.momentum = atof(v);
    else if (!strcmp(a, "--clip")) o.clip = atof(v);
    else if (!strcmp(a, "--weight-decay")) o.weight_decay = atof(v);
    else if (!strcmp(a, "--optimizer")) o.optimizer = !strcmp(v, "adamw") ? BP_OPT_ADAMW : BP_OPT_SGD;
    else {
      fprintf(stderr, "rt_toy reference: unknown option %s\n", a);
      return 2;
    }
  }
  int rows = c->N * R * c->B;
  bp_err e = {0};
  bp_graph *g = toy_full_graph(c, rows, &e);
  if (!g) {
    fprintf(stderr, "rt_toy: %s\n", e.msg);
    return 1;
  }
  bp_value tokens = {BP_I64, 2, {rows, c->T}, NULL}, targets = tokens;
  int rc = 1;
  bp_trainer *t = NULL;
  bp_rt rt;
  memset(&rt, 0, sizeof rt);
  toy_plan tp;
  memset(&tp, 0, sizeof tp);
  if (data) {
    /* the runtime's data order: open the token file through data.c with a plan of the same shape */
    if (toy_build(c, &tp, &e) < 0) goto done;
    rt.model = &tp.model;
    rt.N = c->N;
    rt.R = R;
    rt.o.data = data;
    rt.o.hp.seed = seed;
    if (bp_rt_data_open(&rt, &e) < 0) goto done;
    tokens.data = calloc((size_t)rows * c->T, sizeof(int64_t)); /* filled per step; valid ids meanwhile */
    targets.data = calloc((size_t)rows * c->T, sizeof(int64_t));
  } else {
    if (!inp || !targ || bp_npy_read(inp, &tokens, &e) < 0 || bp_npy_read(targ, &targets, &e) < 0) goto done;
  }
  bp_value *given[1] = {&tokens};
  t = bp_trainer_new(g, given, &targets, NULL, 0, &o, &e);
  g = NULL;
  if (!t) goto done;
  const bp_rt_stage *s0 = &tp.model.stages[0];
  const bp_rt_stage *sl = tp.S ? &tp.model.stages[tp.S - 1] : NULL;
  for (long k = 1; k <= steps; k++) {
    if (data) {
      int64_t pos = (k - 1) * (int64_t)rows;
      for (int smp = 0; smp < c->N * R; smp++) {
        int64_t at = (int64_t)smp * c->B * c->T;
        if (bp_rt_data_fill(&rt.data, pos, smp, &s0->data[0], &s0->tensors[s0->data[0].tensor],
                            (int64_t *)tokens.data + at, &e) < 0 ||
            bp_rt_data_fill(&rt.data, pos, smp, &sl->data[sl->n_data - 1], &sl->tensors[sl->data[sl->n_data - 1].tensor],
                            (int64_t *)targets.data + at, &e) < 0)
          goto done;
      }
    }
    double loss, gn;
    if (bp_trainer_step(t, &loss, &gn, &e) < 0) goto done;
    printf("step %ld loss %.9g grad_norm %.9g\n", k, loss, gn);
  }
  rc = 0;
done:
  if (rc) fprintf(stderr, "rt_toy reference: %s\n", e.msg);
  bp_trainer_free(t);
  bp_graph_free(g);
  bp_rt_data_close(&rt.data);
  toy_free(&tp);
  free(tokens.data);
  free(targets.data);
  return rc;
}

/* The token order: windows are T+1 consecutive tokens, targets are inputs shifted by one, every
 * window is visited once per epoch, the order depends on the seed and only on it. */
static int datacheck(const toy_cfg *cfg, const char *dir) {
  /* a stream of distinct tokens (0, 1, 2, ...) so that every window is recognisable */
  toy_cfg cc = *cfg, *c = &cc;
  c->V = 4096;
  char path[4096];
  snprintf(path, sizeof path, "%s/order.bin", dir);
  FILE *f = fopen(path, "wb");
  int32_t h[256] = {20240520, 1, 3001};
  if (!f || fwrite(h, sizeof h, 1, f) != 1) return 1;
  for (int i = 0; i < 3001; i++) {
    uint16_t u = (uint16_t)i;
    fwrite(&u, 2, 1, f);
  }
  if (fclose(f) != 0) return 1;
  bp_err e = {0};
  toy_plan tp;
  int fails = 0;
  if (toy_build(c, &tp, &e) < 0) {
    fprintf(stderr, "rt_toy: %s\n", e.msg);
    return 1;
  }
  const bp_rt_stage *s0 = &tp.model.stages[0], *sl = &tp.model.stages[tp.S - 1];
  static int64_t seqs[3][4096];
  int64_t nwin = 0;
  for (int run = 0; run < 3; run++) {
    bp_rt rt;
    memset(&rt, 0, sizeof rt);
    rt.model = &tp.model;
    rt.N = c->N;
    rt.R = 1;
    rt.o.data = path;
    rt.o.hp.seed = run == 2 ? 8 : 7;
    if (bp_rt_data_open(&rt, &e) < 0) {
      fprintf(stderr, "rt_toy: %s\n", e.msg);
      toy_free(&tp);
      return 1;
    }
    nwin = rt.data.nwin;
    const uint16_t *tok = rt.data.tok;
    unsigned char *seen = calloc((size_t)nwin, 1);
    int64_t x[64], y[64];
    for (int64_t q = 0; q < nwin && q < 4096; q++) {
      /* sequence q = sample q / B, row q % B of a step starting at position 0 */
      int64_t pos = (q / (c->N * c->B)) * (c->N * c->B), rem = q - pos;
      int smp = (int)(rem / c->B), b = (int)(rem % c->B);
      int64_t xb[64 * 64], yb[64 * 64];
      bp_rt_data_fill(&rt.data, pos, smp, &s0->data[0], &s0->tensors[s0->data[0].tensor], xb, &e);
      bp_rt_data_fill(&rt.data, pos, smp, &sl->data[sl->n_data - 1], &sl->tensors[sl->data[sl->n_data - 1].tensor], yb, &e);
      memcpy(x, xb + b * c->T, sizeof(int64_t) * (size_t)c->T);
      memcpy(y, yb + b * c->T, sizeof(int64_t) * (size_t)c->T);
      /* which window: its start is a multiple of T holding x */
      int64_t w = -1;
      for (int64_t k = 0; k < nwin && w < 0; k++) {
        int same = 1;
        for (int j = 0; j < c->T && same; j++) same = tok[k * c->T + j] == x[j] && tok[k * c->T + j + 1] == y[j];
        if (same) w = k;
      }
      if (w < 0) {
        fprintf(stderr, "datacheck: sequence %lld is not a window of the stream\n", (long long)q);
        fails++;
        break;
      }
      seen[w]++;
      seqs[run][q] = w;
    }
    for (int64_t k = 0; k < nwin && k < 4096; k++)
      if (seen[k] != 1) {
        fprintf(stderr, "datacheck: seed %llu: window %lld visited %d times in the first epoch\n",
                (unsigned long long)rt.o.hp.seed, (long long)k, seen[k]);
        fails++;
        break;
      }
    if (run == 2) {
      int differ = 0;
      for (int64_t q = 0; q < nwin && q < 4096; q++) differ |= seqs[0][q] != seqs[2][q];
      if (!differ) {
        fprintf(stderr, "datacheck: seeds 7 and 8 gave the same order\n");
        fails++;
      }
    }
    free(seen);
    bp_rt_data_close(&rt.data);
    if (run == 1)
      for (int64_t q = 0; q < nwin && q < 4096; q++)
        if (seqs[0][q] != seqs[1][q]) {
          fprintf(stderr, "datacheck: the same seed gave another order\n");
          fails++;
          break;
        }
  }
  toy_free(&tp);
  printf("datacheck: %lld windows, %s\n", (long long)nwin, fails ? "FAILED" : "ok");
  return fails != 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  toy_cfg c;
  toy_cfg_default(&c);
  const char *dir = ".";
  int R = 1;
  int next = parse_toy(argc, argv, 2, &c, &dir, &R);
  if (next < 0) return usage();
  const char *mode = argv[1];
  if (!strcmp(mode, "prepare")) return prepare(&c, dir, R);
  if (!strcmp(mode, "datacheck")) return datacheck(&c, dir);
  if (!strcmp(mode, "reference")) return reference(&c, R, argc - next, argv + next);
  if (!strcmp(mode, "run")) {
    char model[4096];
    snprintf(model, sizeof model, "%s/toy.model", dir);
    c.model_path = model;
    toy_plan tp;
    bp_err e = {0};
    if (toy_build(&c, &tp, &e) < 0) {
      fprintf(stderr, "rt_toy: %s\n", e.msg);
      toy_free(&tp);
      return 1;
    }
    /* ./train's argv: the program name, then what follows "--" */
    char **av = malloc(sizeof(char *) * (size_t)(argc - next + 2));
    int ac = 0;
    av[ac++] = argv[0];
    for (int i = next; i < argc; i++) av[ac++] = argv[i];
    av[ac] = NULL;
    int rc = bp_rt_main(&tp.plan, ac, av);
    free(av);
    toy_free(&tp);
    return rc;
  }
  return usage();
}
