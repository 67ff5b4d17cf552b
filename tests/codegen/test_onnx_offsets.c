/* tests/codegen/test_onnx_offsets.c — the protobuf wire scanner that locates each parameter's
 * raw_data in the ONNX file (for --save-onnx), against protobuf-c's own parse of the same file.
 *
 * For every committed export: every float initializer the loader reads as raw_data is located, and
 * the bytes at the reported offset equal the loader's tensor data; a name that is not an
 * initializer and a wrong size give -1. Then the scanner is fed damaged files (truncated at many
 * lengths, bytes overwritten with 0xff): it must return an error or -1s, never read out of bounds
 * (this test runs under ASan) and never report an offset whose bytes differ from the original's. */
#include "codegen/codegen.h"
#include "frontend/onnx_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long k = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)k + 1);
  if (b && fread(b, 1, (size_t)k, f) != (size_t)k) free(b), b = NULL;
  fclose(f);
  *n = (size_t)k;
  return b;
}

static int write_file(const char *path, const unsigned char *b, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t k = fwrite(b, 1, n, f);
  fclose(f);
  return k == n ? 0 : -1;
}

int main(void) {
  const char *fams[] = {"gpt2", "bert", "llama"};
  int fails = 0;
  for (int fi = 0; fi < 3; fi++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/train.onnx", BP_MODELS_DIR, fams[fi]);
    bp_err e = {0};
    bp_graph *g = bp_onnx_load(path, &e);
    if (!g) {
      fprintf(stderr, "%s\n", e.msg);
      return 1;
    }
    size_t fsz = 0;
    unsigned char *file = slurp(path, &fsz);
    if (!file || fsz < 2) {
      fprintf(stderr, "cannot read %s\n", path);
      return 1;
    }
    int n = 0;
    const char **names = calloc((size_t)g->ntensors + 2, sizeof(char *));
    int64_t *nbytes = calloc((size_t)g->ntensors + 2, sizeof(int64_t)), *off = calloc((size_t)g->ntensors + 2, sizeof(int64_t));
    int *ids = calloc((size_t)g->ntensors + 2, sizeof(int));
    for (int t = 0; t < g->ntensors; t++) {
      const bp_tensor *tt = g->tensors[t];
      if (tt->kind != BP_T_INITIALIZER || tt->v.dtype != BP_F32) continue;
      ids[n] = t, names[n] = tt->name, nbytes[n] = (int64_t)bp_value_bytes(&tt->v), n++;
    }
    int named = n;
    names[n] = "no such initializer", nbytes[n] = 4, n++;
    names[n] = names[0], nbytes[n] = nbytes[0] + 4, n++; /* right name, wrong size */
    if (bp_onnx_raw_offsets(path, n, names, nbytes, off, &e)) {
      printf("FAIL %s: %s\n", fams[fi], e.msg);
      fails++;
    }
    int found = 0, same = 0;
    for (int i = 0; i < named; i++) {
      if (off[i] < 0) continue;
      found++;
      const bp_tensor *tt = g->tensors[ids[i]];
      same += off[i] + nbytes[i] <= (int64_t)fsz && memcmp(file + off[i], tt->v.data, (size_t)nbytes[i]) == 0;
    }
    printf("%s: %d of %d float initializers located, %d with the loader's bytes; absent name -> %lld, wrong size -> %lld\n",
           fams[fi], found, named, same, (long long)off[named], (long long)off[named + 1]);
    if (found != named || same != found || off[named] != -1 || off[named + 1] != -1) fails++;
    /* damaged copies */
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "bp_offsets_%s.onnx", fams[fi]);
    int wrong = 0, errors = 0, runs = 0;
    for (int cut = 0; cut < 64; cut++) {
      size_t len = fsz * (size_t)cut / 64 + (size_t)cut;
      if (len >= fsz) len = fsz - 1;
      unsigned char *copy = malloc(fsz);
      memcpy(copy, file, fsz);
      if (cut % 2) memset(copy + len / 2, 0xff, len / 8 + 1); /* odd runs: garbage in the middle */
      if (write_file(tmp, copy, cut % 2 ? fsz : len)) {
        fprintf(stderr, "cannot write %s\n", tmp);
        return 1;
      }
      bp_err e2 = {0};
      int64_t *o2 = calloc((size_t)n, sizeof(int64_t));
      errors += bp_onnx_raw_offsets(tmp, n, names, nbytes, o2, &e2) != 0;
      runs++;
      for (int i = 0; i < named; i++)
        if (o2[i] >= 0 && (o2[i] + nbytes[i] > (int64_t)(cut % 2 ? fsz : len) || o2[i] != off[i])) wrong++;
      free(o2), free(copy);
    }
    remove(tmp);
    printf("%s: %d damaged copies: %d refused as malformed, %d offsets that differ from the intact file's\n", fams[fi],
           runs, errors, wrong);
    if (wrong) fails++;
    free(names), free(nbytes), free(off), free(ids), free(file);
    bp_graph_free(g);
  }
  printf("%s\n", fails ? "FAIL" : "ok");
  return fails ? 1 : 0;
}
