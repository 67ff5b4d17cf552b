/* tests/partition/test_profile_cache.c — the profile cache (partitioner/layer_costs.c): the first
 * profile of a model misses and stores, a second run hits and returns exactly the stored figures
 * (proved by editing the cache file: the edited numbers come back), and a changed input shape,
 * repeat count or model misses. A damaged entry is a miss; a cache that cannot be written is no
 * error. */
#include "partitioner/layer_costs.h"
#include "tests/schedule/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE "profile_cache_test.txt"

static int profile(const char *model, int batch, int repeats, const char *cache, bp_lcosts *c, int *hit) {
  bp_binding binds[2] = {{"batch", batch}, {"sequence", 16}};
  bp_model_layers m;
  bp_err e = {0};
  if (bp_model_layers_build(model, binds, 2, BP_LAYERS_BLOCK, &m, &e)) {
    CHECK(0, "%s: %s", model, e.msg);
    return -1;
  }
  bp_profile_opts o = {.repeats = repeats, .cache_path = cache, .key_extra = "test", .cache_hit = hit};
  int rc = bp_lcosts_profile(&m, &o, c, &e);
  CHECK(rc == 0, "profile %s: %s", model, e.msg);
  bp_model_layers_free(&m);
  return rc;
}

static int count_entries(void) {
  FILE *f = fopen(CACHE, "r");
  if (!f) return 0;
  char line[4096];
  int n = 0;
  while (fgets(line, sizeof line, f)) n += !strncmp(line, "profile ", 8);
  fclose(f);
  return n;
}

/* Rewrites every figure of the cache's first entry to fwd = (i+1) ms, bwd = 2 (i+1) ms. */
static void edit_first_entry(int n) {
  FILE *f = fopen(CACHE, "r");
  CHECK(f != NULL, "cannot read %s", CACHE);
  if (!f) return;
  char head[4096], rest[1 << 16] = "", line[4096];
  CHECK(fgets(head, sizeof head, f) != NULL, "empty cache");
  for (int i = 0; i < n; i++) CHECK(fgets(line, sizeof line, f) != NULL, "short entry");
  size_t k = 0;
  while (fgets(line, sizeof line, f)) k += (size_t)snprintf(rest + k, sizeof rest - k, "%s", line);
  fclose(f);
  f = fopen(CACHE, "w");
  if (!f) return;
  fputs(head, f);
  for (int i = 0; i < n; i++) fprintf(f, "%.17g %.17g\n", (i + 1) * 1e-3, (i + 1) * 2e-3);
  fputs(rest, f);
  fclose(f);
}

int main(void) {
  char gpt2[512], bert[512];
  snprintf(gpt2, sizeof gpt2, "%s/gpt2/train.onnx", BP_MODELS_DIR);
  snprintf(bert, sizeof bert, "%s/bert/train.onnx", BP_MODELS_DIR);
  remove(CACHE);
  bp_lcosts a, b, c;
  int hit = -1;
  /* first run: a miss, one entry stored */
  if (profile(gpt2, 2, 1, CACHE, &a, &hit)) return check_done();
  CHECK(hit == 0 && count_entries() == 1, "first run: hit %d, %d entries (want a miss and 1)", hit, count_entries());
  CHECK(strstr(a.source, "from the profile cache") == NULL, "first run's source says cached: %s", a.source);
  /* second run: a hit with exactly the figures of the first */
  if (profile(gpt2, 2, 1, CACHE, &b, &hit) == 0) {
    CHECK(hit == 1 && count_entries() == 1, "second run: hit %d, %d entries (want a hit and still 1)", hit,
          count_entries());
    CHECK(b.n == a.n, "layers %d vs %d", b.n, a.n);
    for (int l = 0; l < a.n && l < b.n; l++)
      CHECK(a.l[l].fwd == b.l[l].fwd && a.l[l].bwd == b.l[l].bwd, "layer %d: %.17g/%.17g vs cached %.17g/%.17g", l,
            a.l[l].fwd, a.l[l].bwd, b.l[l].fwd, b.l[l].bwd);
    CHECK(strstr(b.source, "from the profile cache") != NULL, "a hit's source should say so: %s", b.source);
    bp_lcosts_free(&b);
  }
  /* the cache is what is read: edited figures come back */
  edit_first_entry(a.n);
  if (profile(gpt2, 2, 1, CACHE, &b, &hit) == 0) {
    CHECK(hit == 1, "after editing: want a hit");
    for (int l = 0; l < b.n; l++)
      CHECK(b.l[l].fwd == (l + 1) * 1e-3 && b.l[l].bwd == (l + 1) * 2e-3, "layer %d: %.17g/%.17g, not the edited figures",
            l, b.l[l].fwd, b.l[l].bwd);
    bp_lcosts_free(&b);
  }
  /* a changed shape, repeat count or model misses (and is stored beside) */
  if (profile(gpt2, 3, 1, CACHE, &c, &hit) == 0) {
    CHECK(hit == 0 && count_entries() == 2, "batch 3: hit %d, %d entries (want a miss and 2)", hit, count_entries());
    bp_lcosts_free(&c);
  }
  if (profile(gpt2, 3, 1, CACHE, &c, &hit) == 0) {
    CHECK(hit == 1, "batch 3 again: want a hit");
    bp_lcosts_free(&c);
  }
  if (profile(gpt2, 2, 3, CACHE, &c, &hit) == 0) {
    CHECK(hit == 0 && count_entries() == 3, "3 repeats: hit %d, %d entries (want a miss and 3)", hit, count_entries());
    bp_lcosts_free(&c);
  }
  if (profile(bert, 2, 1, CACHE, &c, &hit) == 0) {
    CHECK(hit == 0 && count_entries() == 4, "bert: hit %d, %d entries (want a miss and 4)", hit, count_entries());
    bp_lcosts_free(&c);
  }
  /* a damaged entry is a miss, not garbage costs */
  FILE *f = fopen(CACHE, "w"); /* empty it */
  if (f) fclose(f);
  if (profile(gpt2, 2, 1, CACHE, &b, &hit) == 0) { /* re-store a good entry, then damage its figures */
    bp_lcosts_free(&b);
    edit_first_entry(a.n);
    f = fopen(CACHE, "r+");
    if (f) {
      char head[4096];
      if (fgets(head, sizeof head, f)) fputs("nan -1\n", f);
      fclose(f);
    }
    if (profile(gpt2, 2, 1, CACHE, &b, &hit) == 0) {
      CHECK(hit == 0, "a damaged entry should miss");
      for (int l = 0; l < b.n; l++) CHECK(b.l[l].fwd >= 0 && b.l[l].bwd >= 0, "layer %d: negative time", l);
      bp_lcosts_free(&b);
    }
  }
  /* no cache ("") and an unwritable one both profile */
  if (profile(gpt2, 2, 1, "", &b, &hit) == 0) {
    CHECK(hit == 0, "no cache: want a miss");
    bp_lcosts_free(&b);
  }
  if (profile(gpt2, 2, 1, "/proc/bitpipe-no-such-dir/cache.txt", &b, &hit) == 0) {
    CHECK(hit == 0, "unwritable cache: want a miss");
    bp_lcosts_free(&b);
  }
  bp_lcosts_free(&a);
  remove(CACHE);
  return check_done();
}
