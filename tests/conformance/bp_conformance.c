/* tests/conformance/bp_conformance.c — runs ONNX's own backend node tests (Debian
 * libonnx-testdata: DIR/test_NAME/model.onnx with test_data_set_N/{input,output}_K.pb) through the
 * frontend and CPU kernels, comparing every output: floats within a relative error of 1e-4
 * (|got - want| <= 1e-4 * max(1, |want|)), integers and bools exactly, NaN matching NaN.
 *
 * A test is attempted when every op of its model has an op-table entry. Attempted tests listed
 * in the skip file (one "name  # reason" per line) are skipped and counted; every other attempted
 * test must pass. Each test runs in a child process so a crash is reported, not fatal.
 *
 * usage: bp_conformance [--dir DIR] [--skip FILE] [--only REGEX] [-v] */
#include "frontend/npy.h"
#include "frontend/onnx_load.h"
#include "frontend/passes.h"

#include <dirent.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_IO 32

static int verbose = 0;

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static int compare(const bp_value *got, const bp_value *want, const char *what, char *msg, size_t n) {
  char s1[160], s2[160];
  if (got->dtype != want->dtype) {
    snprintf(msg, n, "%s: dtype %s, expected %s", what, bp_dtype_name(got->dtype), bp_dtype_name(want->dtype));
    return -1;
  }
  if (!bp_same_shape(got, want)) {
    snprintf(msg, n, "%s: shape %s, expected %s", what, bp_shape_str(got, s1, sizeof s1), bp_shape_str(want, s2, sizeof s2));
    return -1;
  }
  int64_t cnt = bp_value_numel(want);
  for (int64_t i = 0; i < cnt; i++) {
    if (bp_dtype_is_float(want->dtype)) {
      double a = bp_get_f64(got->data, got->dtype, i), b = bp_get_f64(want->data, want->dtype, i);
      if (isnan(b) && isnan(a)) continue;
      if (isinf(b) && a == b) continue;
      if (!(fabs(a - b) <= 1e-4 * fmax(1.0, fabs(b)))) {
        snprintf(msg, n, "%s: element %lld is %.9g, expected %.9g", what, (long long)i, a, b);
        return -1;
      }
    } else if (bp_get_i64(got->data, got->dtype, i) != bp_get_i64(want->data, want->dtype, i)) {
      snprintf(msg, n, "%s: element %lld is %lld, expected %lld", what, (long long)i,
               (long long)bp_get_i64(got->data, got->dtype, i), (long long)bp_get_i64(want->data, want->dtype, i));
      return -1;
    }
  }
  return 0;
}

/* Runs one data set of one test; 0 pass, -1 fail with msg. */
static int run_dataset(const char *model, const char *ds, char *msg, size_t n) {
  bp_err e = {0};
  bp_graph *g = bp_onnx_load(model, &e);
  if (!g) {
    snprintf(msg, n, "%s", e.msg);
    return -1;
  }
  bp_value ins[MAX_IO], wants[MAX_IO], outs[MAX_IO];
  bp_value *given[MAX_IO];
  int nin = 0, nwant = 0, rc = -1, have_outs = 0;
  memset(ins, 0, sizeof ins);
  memset(wants, 0, sizeof wants);
  memset(outs, 0, sizeof outs);
  char path[8192];
  for (;; nin++) {
    if (snprintf(path, sizeof path, "%s/input_%d.pb", ds, nin) >= (int)sizeof path) break;
    if (nin >= MAX_IO || !file_exists(path)) break;
    if (bp_tensor_pb_read(path, &ins[nin], NULL, 0, &e) < 0) {
      snprintf(msg, n, "%s", e.msg);
      goto done;
    }
  }
  for (;; nwant++) {
    if (snprintf(path, sizeof path, "%s/output_%d.pb", ds, nwant) >= (int)sizeof path) break;
    if (nwant >= MAX_IO || !file_exists(path)) break;
    if (bp_tensor_pb_read(path, &wants[nwant], NULL, 0, &e) < 0) {
      snprintf(msg, n, "%s", e.msg);
      goto done;
    }
  }
  if (nin != g->ninputs) {
    snprintf(msg, n, "data set has %d inputs, model has %d", nin, g->ninputs);
    goto done;
  }
  if (nwant != g->noutputs) {
    snprintf(msg, n, "data set has %d outputs, model has %d", nwant, g->noutputs);
    goto done;
  }
  for (int i = 0; i < nin; i++) {
    if (ins[i].dtype == BP_F16 || ins[i].dtype == BP_BF16) {
      snprintf(msg, n, "input %d is %s: half-precision compute is not supported", i, bp_dtype_name(ins[i].dtype));
      goto done;
    }
    given[i] = &ins[i];
  }
  bp_ctx ctx = {0};
  int prc = bp_prepare_graph(g, NULL, 0, given, &ctx, 0, NULL, &e);
  if (prc < 0 && bp_err_needs_constant(&e)) { /* shape inputs fed as graph inputs: specialise on them */
    bp_graph *g2 = bp_onnx_load(model, &e);
    if (g2) {
      bp_graph_free(g);
      g = g2;
      memset(&e, 0, sizeof e);
      prc = bp_prepare_graph(g, NULL, 0, given, &ctx, 1, NULL, &e);
    }
  }
  if (prc < 0 || bp_execute(g, &ctx, given, outs, &e) < 0) {
    snprintf(msg, n, "%s", e.msg);
    goto done;
  }
  have_outs = 1;
  rc = 0;
  for (int i = 0; i < nwant && rc == 0; i++) {
    char what[64];
    snprintf(what, sizeof what, "output %d", i);
    rc = compare(&outs[i], &wants[i], what, msg, n);
  }
done:
  for (int i = 0; i < nin; i++) free(ins[i].data);
  for (int i = 0; i < nwant; i++) free(wants[i].data);
  if (have_outs)
    for (int i = 0; i < g->noutputs; i++) free(outs[i].data);
  bp_graph_free(g);
  return rc;
}

/* Runs every data set of a test in a child process; writes the failure message to `msg`. */
static int run_test(const char *dir, char *msg, size_t n) {
  int fds[2];
  if (pipe(fds) != 0) {
    snprintf(msg, n, "pipe failed");
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    char model[8192], m[2048] = "";
    int rc = snprintf(model, sizeof model, "%s/model.onnx", dir) >= (int)sizeof model;
    for (int k = 0; rc == 0; k++) {
      char ds[8192];
      if (snprintf(ds, sizeof ds, "%s/test_data_set_%d", dir, k) >= (int)sizeof ds || !file_exists(ds)) break;
      rc = run_dataset(model, ds, m, sizeof m);
      if (rc) {
        char full[2300];
        snprintf(full, sizeof full, "data set %d: %s", k, m);
        if (write(fds[1], full, strlen(full)) < 0) _exit(3);
      }
    }
    close(fds[1]);
    _exit(rc ? 1 : 0);
  }
  close(fds[1]);
  ssize_t got = read(fds[0], msg, n - 1);
  msg[got > 0 ? got : 0] = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    snprintf(msg, n, "CRASH (signal %d)", WTERMSIG(status));
    return -1;
  }
  return WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Loads a model and tells whether every op has an op-table entry. */
static int ops_supported(const char *dir, char *msg, size_t n) {
  char model[8192];
  if (snprintf(model, sizeof model, "%s/model.onnx", dir) >= (int)sizeof model) return 0;
  bp_err e = {0};
  bp_graph *g = bp_onnx_load(model, &e);
  if (!g) {
    snprintf(msg, n, "%s", e.msg);
    return 0;
  }
  int ok = bp_graph_check_ops(g, &e) == 0;
  if (!ok) snprintf(msg, n, "%s", e.msg);
  bp_graph_free(g);
  return ok;
}

typedef struct {
  char *name;
  char *reason;
  int used;
} skip_entry;

static int load_skips(const char *path, skip_entry **out) {
  FILE *f = fopen(path, "r");
  *out = NULL;
  if (!f) return 0;
  int cnt = 0, cap = 0;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#' || *p == '\n' || !*p) continue;
    char *end = p;
    while (*end && *end != ' ' && *end != '\t' && *end != '\n') end++;
    char *reason = strchr(end, '#');
    *end = 0;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 64;
      *out = realloc(*out, sizeof(skip_entry) * (size_t)cap);
      if (!*out) { fclose(f); return 0; }
    }
    (*out)[cnt].name = strdup(p);
    if (reason) {
      reason++;
      while (*reason == ' ') reason++;
      reason[strcspn(reason, "\n")] = 0;
    }
    (*out)[cnt].reason = strdup(reason ? reason : "");
    (*out)[cnt].used = 0;
    cnt++;
  }
  fclose(f);
  return cnt;
}

int main(int argc, char **argv) {
  const char *dir = "/usr/share/libonnx-testdata/data/node", *skipfile = NULL, *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) dir = argv[++i];
    else if (strcmp(argv[i], "--skip") == 0 && i + 1 < argc) skipfile = argv[++i];
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
    else if (strcmp(argv[i], "-v") == 0) verbose = 1;
    else {
      fprintf(stderr, "usage: bp_conformance [--dir DIR] [--skip FILE] [--only REGEX] [-v]\n");
      return 2;
    }
  }
  regex_t re;
  if (only && regcomp(&re, only, REG_EXTENDED | REG_NOSUB) != 0) {
    fprintf(stderr, "bp_conformance: bad regex '%s'\n", only);
    return 2;
  }
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "bp_conformance: cannot open %s (install libonnx-testdata)\n", dir);
    return 1;
  }
  char **names = NULL;
  int nnames = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strncmp(de->d_name, "test_", 5) != 0) continue;
    if (only && regexec(&re, de->d_name, 0, NULL, 0) != 0) continue;
    if (nnames == cap) {
      cap = cap ? cap * 2 : 256;
      names = realloc(names, sizeof(char *) * (size_t)cap);
      if (!names) return 1;
    }
    names[nnames++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(names, (size_t)nnames, sizeof(char *), cmp_names);
  skip_entry *skips = NULL;
  int nskips = skipfile ? load_skips(skipfile, &skips) : 0;
  int passed = 0, failed = 0, listed = 0, unsupported = 0;
  for (int i = 0; i < nnames; i++) {
    char path[4096], msg[2400];
    if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path) continue;
    if (!ops_supported(path, msg, sizeof msg)) {
      unsupported++;
      if (verbose) printf("UNSUPPORTED %s: %s\n", names[i], msg);
      continue;
    }
    int sk = -1;
    for (int k = 0; k < nskips; k++)
      if (strcmp(skips[k].name, names[i]) == 0) sk = k;
    if (sk >= 0) {
      skips[sk].used = 1;
      listed++;
      if (verbose) printf("SKIP %s: %s\n", names[i], skips[sk].reason);
      continue;
    }
    if (run_test(path, msg, sizeof msg) == 0) {
      passed++;
      if (verbose) printf("PASS %s\n", names[i]);
    } else {
      failed++;
      printf("FAIL %s: %s\n", names[i], msg);
    }
  }
  for (int k = 0; k < nskips; k++)
    if (!skips[k].used && !only) printf("note: skip-list entry %s matched no attempted test\n", skips[k].name);
  printf("ONNX node conformance: %d passed / %d attempted (all ops supported); %d skipped by the list; "
         "%d not attempted (unsupported ops); %d test directories\n",
         passed, passed + failed, listed, unsupported, nnames);
  printf("%d passed, %d failed, %d skipped\n", passed, failed, listed);
  for (int i = 0; i < nnames; i++) free(names[i]);
  free(names);
  for (int k = 0; k < nskips; k++) {
    free(skips[k].name);
    free(skips[k].reason);
  }
  free(skips);
  if (only) regfree(&re);
  return failed ? 1 : 0;
}
