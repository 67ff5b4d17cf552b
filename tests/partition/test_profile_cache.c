/* tests/partition/test_profile_cache.c — the profile cache (partitioner/layer_costs.c): the first
 * profile of a model misses and stores, a second run hits and returns exactly the stored figures
 * (proved by editing the cache file: the edited numbers come back), and a changed input shape,
 * repeat count or model misses. A damaged entry is a miss; a cache that cannot be written is no
 * error. Profiling through a device's node timer (the interface --device-model gpu-profile uses,
 * here with a fake timer of known node times, so this runs without a GPU): the per-layer sums and
 * medians against a recomputation from node_layer, the device's memory and links (an H100's name
 * takes the h100 model's NVLink, a PCIe card or an unknown GPU the PCIe default) in the table and
 * its source, the device's key apart from the CPU's, a hit not calling the timer, and a timer's
 * error or a non-finite time failing the profile without storing anything. */
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

/* A fake device: node i takes (1 + i % 7) us in run r, scaled by (1 + r / 100) (so the median run
 * is known); `fail` makes it report an error, `nan_at` a NaN for that node. */
typedef struct {
  int calls, fail, nan_at;
} fake_dev;

static int fake_time(void *self, const bp_graph *g, int R, double *node_s, bp_err *e) {
  fake_dev *d = self;
  d->calls++;
  if (d->fail) return bp_errf(e, "fake device: out of device memory");
  for (int r = 0; r < R; r++)
    for (int i = 0; i < g->nnodes; i++)
      node_s[(size_t)r * g->nnodes + i] = i == d->nan_at ? NAN : 1e-6 * (1 + i % 7) * (1 + r / 100.0);
  return 0;
}

static void device_timer(const char *gpt2) {
  bp_binding binds[2] = {{"batch", 2}, {"sequence", 16}};
  bp_model_layers m;
  bp_err e = {0};
  if (bp_model_layers_build(gpt2, binds, 2, BP_LAYERS_BLOCK, &m, &e)) {
    CHECK(0, "%s: %s", gpt2, e.msg);
    return;
  }
  remove(CACHE);
  fake_dev fd = {.nan_at = -1};
  bp_profile_device dev = {.time_nodes = fake_time, .self = &fd, .key = "gpu:NVIDIA_H100_80GB_HBM3:sm_90:bf16",
                           .what = "NVIDIA H100 80GB HBM3, fake", .gpu_name = "NVIDIA H100 80GB HBM3", .mem_bytes = 85e9};
  int hit = -1, R = 5;
  bp_profile_opts o = {.repeats = R, .cache_path = CACHE, .key_extra = "test", .cache_hit = &hit, .device = &dev};
  bp_lcosts a, b;
  if (bp_lcosts_profile(&m, &o, &a, &e)) {
    CHECK(0, "device profile: %s", e.msg);
    bp_model_layers_free(&m);
    return;
  }
  CHECK(hit == 0 && fd.calls == 1 && count_entries() == 1, "device: hit %d, calls %d, entries %d", hit, fd.calls,
        count_entries());
  for (int l = 0; l < a.n; l++) { /* the median run is r = R / 2 (times grow with r) */
    double f = 0, bw = 0;
    for (int i = 0; i < m.g->nnodes; i++)
      if (m.node_layer[i] == l) *(i < m.n_fwd ? &f : &bw) += 1e-6 * (1 + i % 7) * (1 + (R / 2) / 100.0);
    CHECK(fabs(a.l[l].fwd - f) <= 1e-12 * f && fabs(a.l[l].bwd - bw) <= 1e-12 * bw && f > 0 && bw > 0,
          "device layer %d: %.17g/%.17g, want %.17g/%.17g", l, a.l[l].fwd, a.l[l].bwd, f, bw);
  }
  CHECK(a.mem_bytes == 85e9 && a.link_bw == bp_device_model_find("h100")->link_bw &&
            a.link_lat == bp_device_model_find("h100")->link_lat,
        "device memory %g, links %g %g", a.mem_bytes, a.link_bw, a.link_lat);
  CHECK(strstr(a.source, "profiled on the GPU (NVIDIA H100 80GB HBM3, fake)") && strstr(a.source, "h100 model"),
        "device source: %s", a.source);
  /* a hit does not run the timer; the CPU has its own entry */
  if (bp_lcosts_profile(&m, &o, &b, &e) == 0) {
    CHECK(hit == 1 && fd.calls == 1, "device again: hit %d, calls %d", hit, fd.calls);
    for (int l = 0; l < a.n; l++) CHECK(a.l[l].fwd == b.l[l].fwd && a.l[l].bwd == b.l[l].bwd, "device hit layer %d", l);
    CHECK(strstr(b.source, "from the profile cache") != NULL, "device hit source: %s", b.source);
    bp_lcosts_free(&b);
  } else {
    CHECK(0, "device again: %s", e.msg);
  }
  bp_profile_opts cpu = o;
  cpu.device = NULL;
  if (bp_lcosts_profile(&m, &cpu, &b, &e) == 0) {
    CHECK(hit == 0 && count_entries() == 2 && strstr(b.source, "CPU backend"), "CPU after the device: hit %d, %d entries, %s",
          hit, count_entries(), b.source);
    CHECK(b.link_bw == 0 && b.mem_bytes == 0, "the CPU profile has no device memory or links");
    bp_lcosts_free(&b);
  } else {
    CHECK(0, "CPU after the device: %s", e.msg);
  }
  /* another precision's key misses; PCIe cards and unknown GPUs get the PCIe default links */
  const char *names[2] = {"NVIDIA H100 PCIe", "Some Future GPU"};
  for (int k = 0; k < 2; k++) {
    bp_profile_device d2 = dev;
    d2.key = k ? "gpu:Some_Future_GPU:sm_100:bf16" : "gpu:NVIDIA_H100_PCIe:sm_90:fp32";
    d2.gpu_name = names[k];
    bp_profile_opts o2 = o;
    o2.device = &d2;
    if (bp_lcosts_profile(&m, &o2, &b, &e) == 0) {
      CHECK(hit == 0 && count_entries() == 3 + k, "%s: hit %d, %d entries", names[k], hit, count_entries());
      CHECK(b.link_bw == BP_DEFAULT_LINK_BW && b.link_lat == BP_DEFAULT_LINK_LAT && strstr(b.source, "PCIe 4.0"),
            "%s: links %g %g, %s", names[k], b.link_bw, b.link_lat, b.source);
      bp_lcosts_free(&b);
    } else {
      CHECK(0, "%s: %s", names[k], e.msg);
    }
  }
  CHECK(bp_device_model_match("NVIDIA H200") == bp_device_model_find("h200") &&
            bp_device_model_match("NVIDIA A100-SXM4-80GB") == bp_device_model_find("a100") &&
            bp_device_model_match("nvidia h100 80gb hbm3") == bp_device_model_find("h100") &&
            bp_device_model_match("NVIDIA GeForce RTX 4090") == NULL,
        "bp_device_model_match");
  /* a timer's error and a NaN fail the profile; nothing is stored */
  bp_lcosts_free(&a);
  remove(CACHE);
  fd.fail = 1;
  CHECK(bp_lcosts_profile(&m, &o, &a, &e) != 0 && strstr(e.msg, "out of device memory") && count_entries() == 0,
        "a failing timer: %s, %d entries", e.msg, count_entries());
  fd.fail = 0, fd.nan_at = m.g->nnodes - 1;
  memset(&e, 0, sizeof e); /* bp_errf keeps the first error */
  CHECK(bp_lcosts_profile(&m, &o, &a, &e) != 0 && strstr(e.msg, "was timed at nan") && count_entries() == 0,
        "a NaN node time: %s, %d entries", e.msg, count_entries());
  dev.time_nodes = NULL;
  memset(&e, 0, sizeof e);
  CHECK(bp_lcosts_profile(&m, &o, &a, &e) != 0 && strstr(e.msg, "node timer"), "no timer: %s", e.msg);
  remove(CACHE);
  bp_model_layers_free(&m);
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
  /* the same file and shapes without the GELU fusion is another graph: a miss, not the fused costs */
  setenv("BP_FUSE", "0", 1);
  if (profile(gpt2, 2, 1, CACHE, &c, &hit) == 0) {
    CHECK(hit == 0 && count_entries() == 5, "BP_FUSE=0: hit %d, %d entries (want a miss and 5)", hit, count_entries());
    bp_lcosts_free(&c);
  }
  unsetenv("BP_FUSE");
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
  device_timer(gpt2);
  return check_done();
}
